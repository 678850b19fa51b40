//! Queries run on a small pool of read connections, off the async threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::runner::{Conn, ReadModels};
use crate::sql::Db;
use crate::ProjectionError;

/// Read connections kept open, and queries run at once.
pub const MAX_IDLE_READERS: usize = 8;

#[derive(Clone)]
pub struct ReadPool {
    models: ReadModels,
    idle: Arc<Mutex<Vec<Conn>>>,
    /// A query waits for one of the pool's connections rather than opening one of its own
    /// (opening and closing a connection per query cost more than the query under load).
    permits: Arc<Semaphore>,
}

impl ReadPool {
    /// The projections' database in `dir` must exist (the runner creates it).
    pub fn new(dir: &Path) -> ReadPool {
        ReadPool::open(ReadModels::Dir(dir.to_path_buf()))
    }

    /// Reads from `models` (their tables must exist: the runner creates them).
    pub fn open(models: ReadModels) -> ReadPool {
        ReadPool { models, idle: Arc::new(Mutex::new(Vec::new())), permits: Arc::new(Semaphore::new(MAX_IDLE_READERS)) }
    }

    /// Runs `query` on a read connection in the blocking pool.
    pub async fn read<T, F>(&self, query: F) -> Result<T, ProjectionError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, ProjectionError> + Send + 'static,
    {
        let pool = self.clone();
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| std::io::Error::other(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match pool.idle.lock().expect("pool lock").pop() {
                Some(c) => c,
                None => pool.models.reader()?,
            };
            let result = query(conn.db());
            // A PostgreSQL connection that failed a query may be gone: the next one is new.
            let keep = result.is_ok() || matches!(conn, Conn::Lite(_));
            let mut idle = pool.idle.lock().expect("pool lock");
            if keep && idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| ProjectionError::Io(std::io::Error::other(e.to_string())))?
    }
}
