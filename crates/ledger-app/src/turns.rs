//! One decision at a time per stream, within this process: commands on one stream wait for
//! their turn instead of deciding on the same version and all but one losing the append
//! (issue 17, item 2). Optimistic concurrency still guards against other processes.
//!
//! A stream's lock lives only while someone holds or waits for it, so the table is as large
//! as the number of streams being written at this moment, not every stream ever written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type StreamLock = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub struct StreamTurns {
    locks: Mutex<HashMap<String, StreamLock>>,
}

/// A stream's turn: while it lives, no other command of this process decides on the stream.
pub struct Turn<'a> {
    turns: &'a StreamTurns,
    stream: String,
    lock: StreamLock,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl StreamTurns {
    /// Waits until no other command of this process is deciding on `stream`.
    pub async fn enter(&self, stream: &str) -> Turn<'_> {
        let lock = self.locks.lock().expect("turns lock").entry(stream.to_string()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        Turn { turns: self, stream: stream.to_string(), lock, guard: Some(guard) }
    }

    /// Streams with a command deciding or waiting.
    pub fn active(&self) -> usize {
        self.locks.lock().expect("turns lock").len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.turns.locks.lock().expect("turns lock");
        // Clones are only made under this lock, so two owners (the table and this turn) mean
        // nobody else waits: the entry can go.
        if Arc::strong_count(&self.lock) == 2 {
            locks.remove(&self.stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_turn_per_stream_and_the_table_empties() {
        let turns = Arc::new(StreamTurns::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(32));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let (turns, inside, most, barrier) = (turns.clone(), inside.clone(), most.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Half the tasks on stream "a", half on streams of their own.
                    let stream = if i % 2 == 0 { "a".to_string() } else { format!("s{i}") };
                    let _turn = turns.enter(&stream).await;
                    if stream == "a" {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "two commands were inside stream a at once");
        assert_eq!(turns.active(), 0, "the table keeps no stream nobody is writing");
    }
}
