//! The projection runner: follows the global log from each projection's checkpoint and
//! applies events in batches. Each batch is one SQLite transaction holding the projection's
//! rows *and* its checkpoint, so a crash at any point neither skips an event nor applies
//! one twice. Rebuilding drops a projection's tables and replays from position 1; the rows
//! are the same as those built live, because both run the same `apply` in the same order.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::RecordedEvent;
use ledger_store::{subscribe_all, EventStore};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::watch;

use crate::ProjectionError;

pub const DB_FILE: &str = "projections.db";
/// Events applied per transaction.
pub const BATCH: usize = 5_000;
/// Events applied per transaction while catching up (a rebuild): fewer, larger commits, so a
/// page many rows touch is written once per batch.
pub const CATCH_UP_BATCH: usize = 20_000;
/// WAL pages before SQLite copies them back into the database, while catching up (default
/// 1,000): a rebuild writes far more than live processing, and each copy ends in an fsync.
const CATCH_UP_WAL_PAGES: u32 = 20_000;

/// One read model. `apply` must be deterministic: the same events in the same order give
/// the same rows.
pub trait Projection: Send {
    /// Stable name: the checkpoint key and the `--only` argument.
    fn name(&self) -> &'static str;
    /// `CREATE TABLE IF NOT EXISTS ...` for its tables.
    fn schema(&self) -> &'static str;
    /// Its tables, dropped on rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event inside the batch's transaction.
    fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ProjectionError>;
    /// Called once a batch's events are applied, in the batch's transaction before the
    /// checkpoint: a projection that keeps changed rows in memory writes them here.
    fn flush(&mut self, _tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Called after each batch commits or rolls back: drop any in-memory cache that might
    /// now disagree with the tables.
    fn reset_cache(&mut self) {}
}

pub struct Runner {
    conn: Connection,
    projections: Vec<(Box<dyn Projection>, u64)>,
    applied_tx: watch::Sender<u64>,
    path: PathBuf,
}

const CHECKPOINTS: &str =
    "CREATE TABLE IF NOT EXISTS checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL)";

/// The table definition each projection's rows were written under.
const SCHEMAS: &str =
    "CREATE TABLE IF NOT EXISTS projection_schemas (projection TEXT PRIMARY KEY, schema TEXT NOT NULL)";

/// Creates `p`'s tables and answers its checkpoint. A projection whose table definition
/// changed since its rows were written (or whose definition was never recorded, by a
/// version before this check) is dropped and replays from position 1: a new column must be
/// filled from the log, never left empty.
fn replay_if_schema_changed(conn: &Connection, p: &dyn Projection) -> Result<u64, ProjectionError> {
    let stored: Option<String> = conn
        .query_row("SELECT schema FROM projection_schemas WHERE projection = ?1", [p.name()], |r| r.get(0))
        .optional()?;
    let at: Option<i64> = conn
        .query_row("SELECT position FROM checkpoints WHERE projection = ?1", [p.name()], |r| r.get(0))
        .optional()?;
    let mut at = at.unwrap_or(0) as u64;
    if stored.as_deref() != Some(p.schema()) && (stored.is_some() || at > 0) {
        tracing::warn!(projection = p.name(), "table definition changed: replaying it from the start of the log");
        for t in p.tables() {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {t}"))?;
        }
        conn.execute("DELETE FROM checkpoints WHERE projection = ?1", [p.name()])?;
        at = 0;
    }
    conn.execute_batch(p.schema())?;
    conn.execute(
        "INSERT INTO projection_schemas (projection, schema) VALUES (?1, ?2) \
         ON CONFLICT (projection) DO UPDATE SET schema = excluded.schema",
        [p.name(), p.schema()],
    )?;
    Ok(at)
}

impl Runner {
    pub fn open(dir: &Path, projections: Vec<Box<dyn Projection>>) -> Result<Runner, ProjectionError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        let conn = open_connection(&path)?;
        conn.execute_batch(CHECKPOINTS)?;
        conn.execute_batch(SCHEMAS)?;
        let mut loaded = vec![];
        for p in projections {
            let at = replay_if_schema_changed(&conn, p.as_ref())?;
            loaded.push((p, at));
        }
        let low = loaded.iter().map(|(_, at)| *at).min().unwrap_or(0);
        let (applied_tx, _) = watch::channel(low);
        Ok(Runner { conn, projections: loaded, applied_tx, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The position every projection has applied: reads wait on it.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The lowest checkpoint: where the next batch starts.
    pub fn low_water(&self) -> u64 {
        self.projections.iter().map(|(_, at)| *at).min().unwrap_or(0)
    }

    pub fn checkpoints(&self) -> Vec<(&'static str, u64)> {
        self.projections.iter().map(|(p, at)| (p.name(), *at)).collect()
    }

    /// Drops the named projections' tables and checkpoints (all when `only` is empty) so
    /// that they replay from position 1.
    pub fn reset(&mut self, only: &[String]) -> Result<(), ProjectionError> {
        for name in only {
            if !self.projections.iter().any(|(p, _)| p.name() == name) {
                return Err(ProjectionError::Unknown(name.clone()));
            }
        }
        let tx = self.conn.transaction()?;
        for (p, at) in self.projections.iter_mut() {
            if only.is_empty() || only.iter().any(|n| n == p.name()) {
                for t in p.tables() {
                    tx.execute_batch(&format!("DROP TABLE IF EXISTS {t}"))?;
                }
                tx.execute_batch(p.schema())?;
                tx.execute("DELETE FROM checkpoints WHERE projection = ?1", [p.name()])?;
                p.reset_cache();
                *at = 0;
            }
        }
        tx.commit()?;
        self.applied_tx.send_replace(self.low_water());
        Ok(())
    }

    /// Applies one batch of consecutive events in one transaction.
    pub fn apply_batch(&mut self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
        let result = (|| {
            let tx = self.conn.transaction()?;
            for (p, at) in self.projections.iter_mut() {
                let mut moved = false;
                for e in events.iter().filter(|e| e.position > *at) {
                    p.apply(&tx, e).map_err(|err| ProjectionError::Apply {
                        projection: p.name(),
                        position: e.position,
                        reason: err.to_string(),
                    })?;
                    moved = true;
                }
                if moved {
                    p.flush(&tx).map_err(|err| ProjectionError::Apply {
                        projection: p.name(),
                        position: last,
                        reason: err.to_string(),
                    })?;
                    tx.execute(
                        "INSERT INTO checkpoints (projection, position) VALUES (?1, ?2) \
                         ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
                        params![p.name(), last as i64],
                    )?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                for (_, at) in self.projections.iter_mut() {
                    *at = (*at).max(last);
                }
                self.applied_tx.send_replace(self.low_water());
                Ok(())
            }
            Err(e) => {
                for (p, _) in self.projections.iter_mut() {
                    p.reset_cache();
                }
                Err(e)
            }
        }
    }

    /// Applies everything up to the store's head now, calling `progress` after each batch.
    /// The next batch is read (on another thread) while this one is applied: reading and
    /// decoding the log and writing the rows each take one core.
    pub async fn catch_up(
        &mut self,
        store: &Arc<dyn EventStore>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ProjectionError> {
        let head = *store.head().borrow();
        if self.low_water() >= head {
            return Ok(0);
        }
        let read = |from: u64| {
            let store = store.clone();
            tokio::spawn(async move { store.read_all(from, CATCH_UP_BATCH).await })
        };
        self.conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {CATCH_UP_WAL_PAGES};"))?;
        let caught_up = async {
            let mut applied = 0;
            let mut next = Some(read(self.low_water() + 1));
            while let Some(reading) = next.take() {
                let batch = reading.await.map_err(|e| ProjectionError::Io(std::io::Error::other(e.to_string())))??;
                let Some(last) = batch.last().map(|e| e.position) else { break };
                if last < head {
                    next = Some(read(last + 1));
                }
                self.apply_batch(&batch)?;
                applied += batch.len() as u64;
                progress(batch.len() as u64);
            }
            Ok::<_, ProjectionError>(applied)
        }
        .await;
        self.conn.execute_batch("PRAGMA wal_autocheckpoint = 1000; PRAGMA wal_checkpoint(PASSIVE);")?;
        caught_up
    }
}

/// Runs the projections live in the background: catch up, then follow the log.
pub fn spawn_live(runner: Runner, store: Arc<dyn EventStore>) -> (watch::Receiver<u64>, tokio::task::JoinHandle<()>) {
    let applied = runner.applied();
    let runner = Arc::new(Mutex::new(runner));
    let handle = tokio::spawn(async move {
        let from = runner.lock().expect("runner lock").low_water() + 1;
        let mut sub = subscribe_all(store, from);
        loop {
            let batch = match sub.next_batch().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "projection subscription ended");
                    return;
                }
            };
            let runner = runner.clone();
            let done =
                tokio::task::spawn_blocking(move || runner.lock().expect("runner lock").apply_batch(&batch)).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // A projection that cannot apply an event stops rather than skip it.
                    tracing::error!(error = %e, "projection stopped");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "projection task failed");
                    return;
                }
            }
        }
    });
    (applied, handle)
}

/// Waits until the projections have applied `position` (read-your-writes), at most `limit`.
pub async fn wait_for(
    applied: &mut watch::Receiver<u64>,
    position: u64,
    limit: Duration,
) -> Result<(), ProjectionError> {
    let reached = matches!(tokio::time::timeout(limit, applied.wait_for(|&at| at >= position)).await, Ok(Ok(_)));
    if reached {
        Ok(())
    } else {
        Err(ProjectionError::Lagging { position, applied: *applied.borrow() })
    }
}

pub fn open_connection(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
         PRAGMA cache_size = -65536;",
    )?;
    Ok(conn)
}

/// A read-only connection for queries.
pub fn open_reader(dir: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open_with_flags(dir.join(DB_FILE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}
