//! A catch-up subscription written once over `read_all` and `head`, so every backend gets
//! the same ordering guarantees: it reads in batches up to the head, then waits for the
//! head to move.

use std::collections::VecDeque;
use std::sync::Arc;

use ledger_core::RecordedEvent;
use tokio::sync::watch;

use crate::{EventStore, StoreError};

/// Events fetched per read while catching up.
const BATCH: usize = 1_000;

pub struct Subscription {
    store: Arc<dyn EventStore>,
    next_position: u64,
    head: watch::Receiver<u64>,
    buffer: VecDeque<RecordedEvent>,
}

impl Subscription {
    pub(crate) fn new(store: Arc<dyn EventStore>, from_position: u64) -> Subscription {
        let head = store.head();
        Subscription { store, next_position: from_position.max(1), head, buffer: VecDeque::new() }
    }

    /// The next event in log order; waits for one when caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Ok(e);
            }
            self.fill().await?;
        }
    }

    /// The next batch of events (at least one); waits when caught up.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        Ok(self.buffer.drain(..).collect())
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        loop {
            let head = *self.head.borrow_and_update();
            if head >= self.next_position {
                let events = self.store.read_all(self.next_position, BATCH).await?;
                if let Some(last) = events.last() {
                    if events.first().map(|e| e.position) != Some(self.next_position) {
                        return Err(StoreError::Corrupt {
                            position: self.next_position,
                            reason: "the log has a gap".into(),
                        });
                    }
                    self.next_position = last.position + 1;
                    self.buffer.extend(events);
                    return Ok(());
                }
            }
            if self.head.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
    }
}
