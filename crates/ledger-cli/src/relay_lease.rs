//! The Kafka relay of `ledger serve` when several nodes share one store: exactly one node
//! publishes at a time. The nodes given `--kafka-brokers` compete for a lease kept in the
//! store ([`EventStore::lease`]); the holder runs the relay and renews the lease every fifth
//! of its term, storing its checkpoint with it. When the holder dies, the lease expires and
//! another node takes it over, starting from that shared checkpoint (a few events may be
//! sent again: Kafka delivery is at least once, consumers dedupe by event id). A holder that
//! cannot renew stops publishing before its term ends; one that stops cleanly releases the
//! lease at once. On a store that keeps no leases (KurrentDB) the relay runs unleased.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ledger_bus::cli::{spawn_in_serve, RelayHandle, ServeKafkaArgs};
use ledger_store::{EventStore, Lease, NO_LEASES};
use tokio::sync::oneshot;

/// The lease's name in the store.
pub const LEASE: &str = "kafka-relay";

/// The relay under the lease, running as a task of the server.
pub struct LeasedRelay {
    /// The head to publish through (for at most the duration) before stopping.
    stop: oneshot::Sender<(u64, Duration)>,
    task: tokio::task::JoinHandle<()>,
}

impl LeasedRelay {
    /// Stops publishing (a holder first publishes through `head`, for at most `flush`),
    /// writes the checkpoint and releases the lease.
    pub async fn shutdown(self, head: u64, flush: Duration) {
        let _ = self.stop.send((head, flush));
        let _ = self.task.await;
    }
}

/// Starts competing for the lease when `--kafka-brokers` is given (else `None`).
pub fn spawn(args: &ServeKafkaArgs, term: Duration, data: PathBuf, store: Arc<dyn EventStore>) -> Option<LeasedRelay> {
    args.kafka_brokers.as_ref()?;
    let (stop, stopped) = oneshot::channel();
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let task = tokio::spawn(hold(args.clone(), term, data, store, holder, stopped));
    Some(LeasedRelay { stop, task })
}

fn lease(holder: &str, now_micros: i64, until_micros: i64, position: u64) -> Lease<'_> {
    Lease { name: LEASE, holder, now_micros, until_micros, position }
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

async fn hold(
    args: ServeKafkaArgs,
    term: Duration,
    data: PathBuf,
    store: Arc<dyn EventStore>,
    holder: String,
    mut stopped: oneshot::Receiver<(u64, Duration)>,
) {
    let renew = term / 5;
    let mut relay: Option<RelayHandle> = None;
    let mut held_until = Instant::now();
    loop {
        let local = relay.as_ref().map(|r| *r.checkpoint().borrow()).unwrap_or(0);
        let now = chrono::Utc::now();
        let until = now + chrono::TimeDelta::from_std(term).expect("a short term");
        let asked = Instant::now();
        match store.lease(lease(&holder, micros(now), micros(until), local)).await {
            Ok(Some(shared)) => {
                held_until = asked + term;
                if relay.as_ref().is_some_and(RelayHandle::is_finished) {
                    // It stopped on an error (logged): give the lease up and try again later.
                    relay = None;
                    let _ = store.lease(lease(&holder, micros(now), micros(now), local)).await;
                } else if relay.is_none() {
                    match start(&args, &data, &store, shared) {
                        Ok(r) => relay = Some(r),
                        Err(e) => tracing::error!(error = %e, "the kafka relay cannot start"),
                    }
                }
            }
            Ok(None) => {
                if let Some(r) = relay.take() {
                    eprintln!("another node holds the kafka lease: this one stops publishing");
                    let _ = r.shutdown().await;
                }
            }
            Err(e) if e.to_string().contains(NO_LEASES) => {
                tracing::warn!("the store keeps no leases: the kafka relay runs unleased (run one such node)");
                if let Ok(r) = start(&args, &data, &store, 0) {
                    if let Ok((head, flush)) = stopped.await {
                        flush_through(&r, head, flush).await;
                    }
                    let _ = r.shutdown().await;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the kafka lease");
                if Instant::now() >= held_until {
                    if let Some(r) = relay.take() {
                        eprintln!("the kafka lease could not be renewed: this node stops publishing");
                        let _ = r.shutdown().await;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(renew) => {}
            asked = &mut stopped => {
                if let (Some(r), Ok((head, flush))) = (&relay, asked) {
                    flush_through(r, head, flush).await;
                }
                break;
            }
        }
    }
    if let Some(r) = relay {
        if let Ok(stats) = r.shutdown().await {
            eprintln!("kafka relay stopped: {stats:?}");
        }
        // Released: the checkpoint written, the term ended now, so another node goes on at once.
        let position = ledger_bus::read_checkpoint(&data).unwrap_or(0);
        let now = micros(chrono::Utc::now());
        let _ = store.lease(lease(&holder, now, now, position)).await;
    }
}

async fn flush_through(relay: &RelayHandle, head: u64, flush: Duration) {
    let mut published = relay.checkpoint();
    let _ = tokio::time::timeout(flush, published.wait_for(|p| *p >= head)).await;
}

/// Runs the relay from the shared checkpoint (or this node's own, if further on).
fn start(
    args: &ServeKafkaArgs,
    data: &std::path::Path,
    store: &Arc<dyn EventStore>,
    shared: u64,
) -> Result<RelayHandle> {
    let mut checkpoint = ledger_bus::Checkpoint::open(data)?;
    if shared > checkpoint.position() {
        checkpoint.advance(shared)?;
    }
    eprintln!("this node holds the kafka lease: publishing from position {}", checkpoint.position() + 1);
    drop(checkpoint);
    spawn_in_serve(args, data, store.clone())?.ok_or_else(|| anyhow::anyhow!("no kafka brokers"))
}
