//! `ledger bench relay`: the relay's throughput over a large log, beside the raw producer's
//! throughput for the same records in the same run.
//!
//! Both runs use the same producer settings (idempotent, `acks=all`), the same in-flight
//! window and the same cluster (librdkafka's mock cluster, 3 brokers, in process, unless
//! `--brokers` points at a real one). The raw run sends records built in memory before the
//! clock starts; the relay run reads the store, parses and checks every payload against
//! its schema, builds headers, produces, and writes its checkpoint.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ledger_store::{memory::MemoryStore, sqlite::SqliteStore, EventStore};
use rdkafka::message::OwnedHeaders;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::checkpoint::Checkpoint;
use crate::relay::{headers, producer_config, Relay, MAX_IN_FLIGHT};
use crate::routing::{route, Route, ALL_TOPICS};
use crate::sample;
use crate::source::StoreSource;

/// Partitions per topic on the benchmark's mock cluster.
const BENCH_PARTITIONS: i32 = 6;
const MARK_BEGIN: &str = "<!-- bench:relay:begin -->";
const MARK_END: &str = "<!-- bench:relay:end -->";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchStore {
    /// The embedded SQLite store (what `ledger relay` reads).
    Sqlite,
    /// The in-memory store (isolates the relay from the store's reads).
    Memory,
}

/// `ledger bench relay`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchRelayArgs {
    /// Events in the log.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct partners (keys).
    #[arg(long, default_value_t = 1_000)]
    pub partners: u64,
    /// Kafka bootstrap servers (default: an in-process mock cluster of 3 brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Which store the relay reads.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: BenchStore,
    /// Write the figures into this file between the relay benchmark's markers.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// A mock cluster living on a thread of its own (it is `!Send`), dropped with this value.
pub struct MockBus {
    bootstrap: String,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockBus {
    /// Starts `brokers` mock brokers with the ledger's topics, `partitions` each.
    pub fn start(brokers: i32, partitions: i32) -> Result<MockBus> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("mock-kafka".into()).spawn(move || {
            let cluster = match MockCluster::new(brokers) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for topic in ALL_TOPICS {
                if let Err(e) = cluster.create_topic(topic, partitions, brokers.min(3)) {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            }
            let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
            let _ = stop_rx.recv();
            drop(cluster);
        })?;
        let bootstrap = ready_rx.recv().context("mock cluster thread")?.map_err(anyhow::Error::msg)?;
        Ok(MockBus { bootstrap, stop: Some(stop_tx), thread: Some(thread) })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for MockBus {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct RawRecord {
    topic: &'static str,
    key: String,
    payload: String,
    timestamp: i64,
    headers: Option<OwnedHeaders>,
}

/// The figures of one benchmark run.
#[derive(Debug, Clone)]
pub struct RelayBench {
    pub events: u64,
    pub partners: u64,
    pub produced: u64,
    pub payload_bytes: usize,
    pub raw_seconds: f64,
    pub relay_seconds: f64,
    pub store: BenchStore,
    pub cluster: String,
}

impl RelayBench {
    pub fn raw_rate(&self) -> f64 {
        self.produced as f64 / self.raw_seconds
    }

    pub fn relay_rate(&self) -> f64 {
        self.produced as f64 / self.relay_seconds
    }

    pub fn markdown(&self, command: &str) -> String {
        let ratio = 100.0 * self.relay_rate() / self.raw_rate();
        format!(
            "{MARK_BEGIN}\nMeasured {} with `{command}`:\n\n\
             {} events in the log ({} produced, the rest on the `credentials` stream, which is never published), \
             {} partners, average payload {} bytes, {} store, {}; producer idempotent with `acks=all`, \
             in-flight window {MAX_IN_FLIGHT}, {} cores. Baseline: the same producer settings sending the same \
             records (topic, key, value, headers) built in memory beforehand, same cluster, same run.\n\n\
             | run | events | seconds | events/s | vs. raw producer |\n|---|---:|---:|---:|---:|\n\
             | raw producer (baseline) | {} | {:.2} | {:.0} | 100% |\n\
             | relay (read log, route, schema check, produce, checkpoint) | {} | {:.2} | {:.0} | {:.0}% |\n{MARK_END}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            self.events,
            self.produced,
            self.partners,
            self.payload_bytes,
            match self.store {
                BenchStore::Sqlite => "SQLite",
                BenchStore::Memory => "in-memory",
            },
            self.cluster,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            self.produced,
            self.raw_seconds,
            self.raw_rate(),
            self.produced,
            self.relay_seconds,
            self.relay_rate(),
            ratio
        )
    }
}

impl BenchRelayArgs {
    pub async fn run(self) -> Result<()> {
        let command = format!(
            "ledger bench relay --events {} --partners {}{}",
            self.events,
            self.partners,
            if self.store == BenchStore::Memory { " --store memory" } else { "" }
        );
        let markdown = self.markdown.clone();
        let result = run_bench(&self).await?;
        println!(
            "raw producer: {} events in {:.2}s = {:.0} events/s",
            result.produced,
            result.raw_seconds,
            result.raw_rate()
        );
        println!(
            "relay:        {} events in {:.2}s = {:.0} events/s ({:.0}% of raw)",
            result.produced,
            result.relay_seconds,
            result.relay_rate(),
            100.0 * result.relay_rate() / result.raw_rate()
        );
        if let Some(path) = markdown {
            write_section(&path, &result.markdown(&format!("{command} --markdown {}", path.display())))?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Replaces the text between the relay markers of `path` (or appends a section).
pub fn write_section(path: &std::path::Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (text.find(MARK_BEGIN), text.find(MARK_END)) {
        (Some(b), Some(e)) if b < e => format!("{}{}{}", &text[..b], section, &text[e + MARK_END.len()..]),
        _ => format!("{}\n## Kafka relay (`ledger bench relay`)\n\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, new)?;
    Ok(())
}

async fn run_bench(args: &BenchRelayArgs) -> Result<RelayBench> {
    anyhow::ensure!(args.events > 0 && args.partners > 0, "--events and --partners must be positive");
    let mock = match &args.brokers {
        Some(_) => None,
        None => Some(MockBus::start(3, BENCH_PARTITIONS)?),
    };
    let brokers = match (&args.brokers, &mock) {
        (Some(b), _) => b.clone(),
        (None, Some(m)) => m.bootstrap_servers().to_string(),
        (None, None) => unreachable!("a mock is started when no brokers are given"),
    };
    let cluster = match &args.brokers {
        Some(b) => format!("cluster at {b}"),
        None => format!("librdkafka mock cluster (3 brokers, {BENCH_PARTITIONS} partitions per topic)"),
    };
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> = match args.store {
        BenchStore::Sqlite => Arc::new(SqliteStore::open(&dir.path().join("store"))?),
        BenchStore::Memory => Arc::new(MemoryStore::new()),
    };
    let started = Instant::now();
    let head =
        sample::append_bulk(store.clone(), args.events, args.partners, ledger_store::MAX_EVENTS_PER_APPEND).await?;
    eprintln!("filled the store with {head} events in {:.1}s", started.elapsed().as_secs_f64());

    // The same records the relay will produce, built before the clock starts.
    let mut records = Vec::with_capacity(args.events as usize);
    let mut payload_bytes = 0usize;
    let mut from = 1;
    while from <= head {
        let batch = store.read_all(from, ledger_store::MAX_READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        for e in batch {
            let data: serde_json::Value = serde_json::from_str(&e.data)?;
            if let Route::Publish { topic, key } = route(&e, &data)? {
                payload_bytes += e.data.len();
                records.push(RawRecord {
                    topic,
                    key,
                    timestamp: e.recorded_at.timestamp_millis(),
                    headers: Some(headers(&e)),
                    payload: e.data,
                });
            }
        }
    }
    let produced = records.len() as u64;
    anyhow::ensure!(produced > 0, "nothing to produce");

    let config = producer_config(&brokers, &[])?;
    let raw_seconds = raw_produce(&config, records).await?;
    eprintln!("raw producer done in {raw_seconds:.2}s");

    let checkpoint = Checkpoint::open(&dir.path().join("relay"))?;
    let mut relay =
        Relay::new(Arc::new(StoreSource(store.clone())), Arc::new(sample::schema_set()), checkpoint, &config)?;
    let started = Instant::now();
    let stats = relay.run_to(head, std::future::pending()).await?;
    let relay_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(stats.checkpoint == head, "the relay stopped at {} of {head}", stats.checkpoint);
    anyhow::ensure!(stats.produced == produced, "the relay produced {} of {produced}", stats.produced);
    drop(relay);
    drop(mock);
    Ok(RelayBench {
        events: args.events,
        partners: args.partners,
        produced,
        payload_bytes: payload_bytes / produced as usize,
        raw_seconds,
        relay_seconds,
        store: args.store,
        cluster,
    })
}

/// Sends every record with the relay's window and waits for every acknowledgement.
async fn raw_produce(config: &rdkafka::ClientConfig, records: Vec<RawRecord>) -> Result<f64> {
    let producer: FutureProducer = config.create()?;
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(MAX_IN_FLIGHT);
    for mut r in records {
        if in_flight.len() >= MAX_IN_FLIGHT {
            let d: rdkafka::producer::DeliveryFuture = in_flight.pop_front().expect("window is full");
            d.await?.map_err(|(e, _)| e)?;
        }
        loop {
            let record = FutureRecord::to(r.topic)
                .key(r.key.as_bytes())
                .payload(r.payload.as_bytes())
                .timestamp(r.timestamp)
                .headers(r.headers.take().unwrap_or_default());
            match producer.send_result(record) {
                Ok(d) => {
                    in_flight.push_back(d);
                    break;
                }
                Err((e, back)) => {
                    r.headers = back.headers;
                    match in_flight.pop_front() {
                        Some(d) => {
                            d.await?.map_err(|(e, _)| e)?;
                        }
                        None => {
                            tracing::warn!(error = %e, "producer queue full with nothing in flight");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
        }
    }
    while let Some(d) = in_flight.pop_front() {
        d.await?.map_err(|(e, _)| e)?;
    }
    Ok(started.elapsed().as_secs_f64())
}
