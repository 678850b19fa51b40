//! The relay's checkpoint: the last global position up to which every event has been
//! acknowledged by Kafka (or withheld on purpose), kept in a small SQLite file `relay.db`
//! beside the store. It only ever moves forward, and only in a transaction.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

/// The checkpoint file in the data directory.
pub const CHECKPOINT_FILE: &str = "relay.db";
/// The row of the Kafka relay (the table can hold other relays' checkpoints). Run one relay
/// per store: two would only send events twice (consumers dedupe), and the stored position
/// never moves back (`max` in the update), but it is wasted work.
const RELAY_NAME: &str = "kafka";

pub struct Checkpoint {
    conn: Connection,
    path: PathBuf,
    position: u64,
}

impl Checkpoint {
    /// Opens (or creates) `dir/relay.db`.
    pub fn open(dir: &Path) -> rusqlite::Result<Checkpoint> {
        std::fs::create_dir_all(dir).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let path = dir.join(CHECKPOINT_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS relay_checkpoint (
                 relay TEXT PRIMARY KEY,
                 position INTEGER NOT NULL CHECK (position >= 0),
                 updated_at TEXT NOT NULL
             )",
        )?;
        let position = read(&conn)?;
        Ok(Checkpoint { conn, path, position })
    }

    /// The last acknowledged position (0 when nothing was relayed yet).
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the checkpoint to `position`, durably. Never moves it back.
    pub fn advance(&mut self, position: u64) -> rusqlite::Result<()> {
        assert!(position >= self.position, "the checkpoint never moves back ({} → {position})", self.position);
        if position == self.position {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO relay_checkpoint (relay, position, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (relay) DO UPDATE SET position = max(position, excluded.position), updated_at = excluded.updated_at",
            params![RELAY_NAME, position as i64, chrono::Utc::now().to_rfc3339()],
        )?;
        tx.commit()?;
        self.position = position;
        Ok(())
    }
}

fn read(conn: &Connection) -> rusqlite::Result<u64> {
    let p: Option<i64> = conn
        .query_row("SELECT position FROM relay_checkpoint WHERE relay = ?1", [RELAY_NAME], |r| r.get(0))
        .optional()?;
    Ok(p.unwrap_or(0) as u64)
}

/// Reads the checkpoint of `dir` without holding it open (for status and tests); 0 when
/// there is no checkpoint file yet.
pub fn read_checkpoint(dir: &Path) -> rusqlite::Result<u64> {
    let path = dir.join(CHECKPOINT_FILE);
    if !path.exists() {
        return Ok(0);
    }
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let has_table: bool =
        conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'relay_checkpoint')", [], |r| {
            r.get(0)
        })?;
    if !has_table {
        return Ok(0);
    }
    read(&conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_survives_a_reopen_and_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), 0);
        let mut c = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(c.position(), 0);
        c.advance(5).unwrap();
        c.advance(5).unwrap();
        c.advance(9).unwrap();
        drop(c);
        assert_eq!(read_checkpoint(dir.path()).unwrap(), 9);
        let c = Checkpoint::open(dir.path()).unwrap();
        assert_eq!(c.position(), 9);
    }

    #[test]
    #[should_panic(expected = "never moves back")]
    fn moving_back_is_a_bug() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::open(dir.path()).unwrap();
        c.advance(3).unwrap();
        c.advance(2).unwrap();
    }
}
