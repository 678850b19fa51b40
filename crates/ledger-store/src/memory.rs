//! An in-memory store for tests: the same contract as the durable backends, nothing kept.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use ledger_core::{ChainHash, RecordedEvent};
use tokio::sync::watch;

use crate::plan::{plan_group, LogTip, StoredLog};
use crate::{validate, validate_all, AppendRequest, Appended, EventStore, Lease, StoreError};

#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    keys: HashMap<String, ([u8; 32], Appended)>,
    event_ids: HashSet<uuid::Uuid>,
    /// Keys of [`EventStore::first_use`] and until when each is kept.
    used_once: HashMap<String, i64>,
    /// Leases by name: holder, until, position.
    leases: HashMap<String, (String, i64, u64)>,
    snapshots: HashMap<String, (u64, String)>,
}

pub struct MemoryStore {
    log: Mutex<Log>,
    head_tx: watch::Sender<u64>,
    head_rx: watch::Receiver<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let (head_tx, head_rx) = watch::channel(0);
        MemoryStore { log: Mutex::new(Log::default()), head_tx, head_rx }
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl MemoryStore {
    /// Decides and stores one unit (see [`EventStore::append_all`]) under the lock.
    fn append_unit(&self, unit: &[AppendRequest]) -> Result<Vec<Appended>, StoreError> {
        let mut log = self.log.lock().expect("store lock");
        let tip = LogTip {
            next_position: log.events.len() as u64 + 1,
            prev_hash: log.events.last().map_or(ChainHash::ZERO, |e| e.hash),
        };
        let mut plan = plan_group([unit], &*log, tip, Utc::now());
        let results = plan.answers.pop().expect("one answer per unit")?;
        for e in plan.events {
            let index = log.events.len();
            log.event_ids.insert(e.event_id);
            log.streams.entry(e.stream.clone()).or_default().push(index);
            log.events.push(e);
        }
        for (key, fingerprint, first) in plan.keys {
            log.keys.insert(key, (fingerprint, first));
        }
        let last = log.events.len() as u64;
        crate::plan::raise(&self.head_tx, last);
        Ok(results)
    }
}

impl StoredLog for Log {
    fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(self.streams.get(stream).map_or(0, |v| v.len() as u64))
    }

    fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(self.keys.get(key).copied())
    }

    fn has_event(&self, id: &uuid::Uuid) -> Result<bool, StoreError> {
        Ok(self.event_ids.contains(id))
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        validate(&req)?;
        Ok(self.append_unit(std::slice::from_ref(&req))?.remove(0))
    }

    async fn append_all(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, StoreError> {
        validate_all(&reqs)?;
        self.append_unit(&reqs)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log.lock().expect("store lock");
        let Some(indices) = log.streams.get(stream) else {
            return Ok(vec![]);
        };
        let skip = from_version.saturating_sub(1) as usize;
        Ok(indices.iter().skip(skip).take(limit).map(|&i| log.events[i].clone()).collect())
    }

    async fn read_all(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log.lock().expect("store lock");
        let skip = from_position.saturating_sub(1) as usize;
        Ok(log.events.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn idempotency_key(&self, key: &str) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        Ok(self.log.lock().expect("store lock").keys.get(key).copied())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.log.lock().expect("store lock").snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, stream: &str, version: u64, text: String) -> Result<(), StoreError> {
        let mut log = self.log.lock().expect("store lock");
        if !matches!(log.snapshots.get(stream), Some((kept, _)) if *kept >= version) {
            log.snapshots.insert(stream.to_string(), (version, text));
        }
        Ok(())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        let log = self.log.lock().expect("store lock");
        Ok(log.streams.get(stream).map_or(0, |v| v.len() as u64))
    }

    fn head(&self) -> watch::Receiver<u64> {
        self.head_rx.clone()
    }

    async fn lease(&self, lease: Lease<'_>) -> Result<Option<u64>, StoreError> {
        let Lease { name, holder, now_micros, until_micros, position } = lease;
        let mut log = self.log.lock().expect("store lock");
        let lease = log.leases.entry(name.to_string()).or_insert_with(|| (holder.to_string(), 0, 0));
        if lease.0 != holder && lease.1 > now_micros {
            return Ok(None);
        }
        *lease = (holder.to_string(), until_micros, lease.2.max(position));
        Ok(Some(lease.2))
    }

    async fn first_use(&self, key: &str, now_micros: i64, until_micros: i64) -> Result<bool, StoreError> {
        let mut log = self.log.lock().expect("store lock");
        log.used_once.retain(|_, until| *until > now_micros);
        Ok(log.used_once.insert(key.to_string(), until_micros).is_none())
    }
}
