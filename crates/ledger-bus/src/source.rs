//! Where the relay reads the global log from: an [`EventStore`] in the same process (inside
//! `ledger serve`), or the store's SQLite file opened read-only by a separate
//! `ledger relay` process.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ledger_core::RecordedEvent;
use ledger_store::{EventStore, StoreError};
use rusqlite::Connection;
use tokio::sync::watch;

#[async_trait]
pub trait LogSource: Send + Sync + 'static {
    /// Events with position ≥ `from_position`, in order, at most `limit`.
    async fn read(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// A receiver that changes when the log grows, when the source can tell; the relay
    /// also polls, so a source in another process needs none.
    fn head(&self) -> Option<watch::Receiver<u64>>;
}

/// The store of this process.
pub struct StoreSource(pub Arc<dyn EventStore>);

#[async_trait]
impl LogSource for StoreSource {
    async fn read(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.0.read_all(from_position, limit).await
    }

    fn head(&self) -> Option<watch::Receiver<u64>> {
        Some(self.0.head())
    }
}

/// The SQLite file of a store written by another process, read-only.
pub struct SqliteFileSource {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteFileSource {
    /// Opens `dir/ledger.db` read-only; the file must exist.
    pub fn open(dir: &Path) -> Result<SqliteFileSource, StoreError> {
        let path = dir.join(ledger_store::sqlite::DB_FILE);
        if !path.exists() {
            return Err(StoreError::Backend(format!("no ledger store at {} (is --data right?)", path.display())));
        }
        let conn = Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteFileSource { conn: Arc::new(Mutex::new(conn)) })
    }

    /// The last position in the file now (0 when empty).
    pub fn last_position(&self) -> Result<u64, StoreError> {
        let conn = self.conn.lock().expect("reader lock");
        let last: Option<i64> = conn.query_row("SELECT MAX(position) FROM events", [], |r| r.get(0))?;
        Ok(last.unwrap_or(0) as u64)
    }
}

#[async_trait]
impl LogSource for SqliteFileSource {
    async fn read(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let conn = self.conn.clone();
        let limit = limit.min(ledger_store::MAX_READ_BATCH) as i64;
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().expect("reader lock");
            ledger_store::sqlite::read_all_sync(&conn, from_position, limit)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task: {e}")))?
    }

    fn head(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}
