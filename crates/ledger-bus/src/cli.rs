//! The command-line entry points, for the `ledger` binary to mount:
//! `ledger relay` ([`RelayArgs`]), `ledger consume` ([`ConsumeArgs`]),
//! `ledger bench relay` ([`BenchRelayArgs`]), and the relay inside `ledger serve`
//! ([`ServeKafkaArgs`], [`spawn_in_serve`]). Each `run` returns when its work is done or on
//! Ctrl-C / SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ledger_store::EventStore;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoint;
use crate::consumer::{ConsumerSettings, PaidTotalsView, ReferenceConsumer};
use crate::relay::{producer_config, Relay, RelayError, RelayStats};
use crate::routing::ALL_TOPICS;
use crate::schema::SchemaSet;
use crate::source::{LogSource, SqliteFileSource, StoreSource};

/// `KEY=VALUE` for librdkafka settings.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, found {s:?}"))?;
    if k.trim().is_empty() {
        return Err(format!("empty key in {s:?}"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

/// `ledger relay`: publish the store's global log to Kafka.
#[derive(clap::Args, Debug, Clone)]
pub struct RelayArgs {
    /// Directory of the embedded store (its `ledger.db` is read; `relay.db` holds the
    /// relay's checkpoint).
    #[arg(long = "data", env = "LEDGER_DATA", default_value = "data")]
    pub data: PathBuf,
    /// The event store to read when it is not the SQLite file in --data:
    /// `postgres://…` or `esdb://…`/`kurrentdb://…` (a directory path means SQLite). The
    /// checkpoint stays in --data.
    #[arg(long, env = "LEDGER_STORE")]
    pub store: Option<String>,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "LEDGER_KAFKA_BROKERS")]
    pub brokers: String,
    /// Directory of `{Type}.v{N}.json` schemas (default: `schemas` beside the data
    /// directory, else `./schemas`, else the repository's `schemas/`).
    #[arg(long, env = "LEDGER_SCHEMAS")]
    pub schemas: Option<PathBuf>,
    /// Extra librdkafka producer setting (repeatable), e.g. `-X security.protocol=ssl`.
    /// Idempotence, acks, gapless guarantee and the message timeout cannot be changed.
    #[arg(short = 'X', long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_config: Vec<(String, String)>,
    /// Stop once every event in the log at start is acknowledged, instead of following.
    #[arg(long)]
    pub until_caught_up: bool,
}

impl RelayArgs {
    pub async fn run(self) -> Result<()> {
        let schemas = Arc::new(load_schemas(self.schemas.as_deref(), &self.data)?);
        // The SQLite file is opened read-only (the server owns its writer); a server store
        // (PostgreSQL, KurrentDB) through its client.
        let (source, last, name): (Arc<dyn LogSource>, u64, String) = match self.store.as_deref().map(str::trim) {
            Some(spec) if spec.contains("://") && !spec.starts_with("sqlite://") => {
                let store = ledger_store::open_store(spec).await?;
                let last = *store.head().borrow();
                (Arc::new(StoreSource(store)), last, spec.split('@').next_back().unwrap_or(spec).to_string())
            }
            spec => {
                let dir = spec.map(|s| PathBuf::from(s.trim_start_matches("sqlite://"))).unwrap_or(self.data.clone());
                let file = SqliteFileSource::open(&dir)?;
                let last = file.last_position()?;
                (Arc::new(file), last, dir.display().to_string())
            }
        };
        let checkpoint = Checkpoint::open(&self.data).context("opening the relay checkpoint")?;
        let config = producer_config(&self.brokers, &self.kafka_config)?;
        let target = self.until_caught_up.then_some(last);
        eprintln!(
            "relay: from position {} of {name} to {} ({} schemas)",
            checkpoint.position() + 1,
            self.brokers,
            schemas.len()
        );
        let mut relay = Relay::new(source, schemas, checkpoint, &config)?;
        let result = match target {
            Some(position) => relay.run_to(position, shutdown_signal()).await,
            None => relay.run(shutdown_signal()).await,
        };
        report(result)
    }
}

fn report(result: Result<RelayStats, RelayError>) -> Result<()> {
    match result {
        Ok(s) => {
            eprintln!(
                "relay: produced {}, withheld {}, checkpoint at position {}",
                s.produced, s.withheld, s.checkpoint
            );
            Ok(())
        }
        Err(e) => bail!("relay stopped: {e}"),
    }
}

/// Finds and loads the schema set: `explicit`, else `schemas` beside the data directory,
/// else `./schemas`, else the repository's `schemas/` (when run from a checkout).
pub fn load_schemas(explicit: Option<&Path>, data: &Path) -> Result<SchemaSet> {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => {
            let beside_data = data.parent().map(|p| p.join("schemas"));
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
            let candidates = [beside_data, Some(PathBuf::from("schemas")), Some(repo)];
            match candidates.into_iter().flatten().find(|d| d.is_dir()) {
                Some(dir) => dir,
                None => bail!("no schema directory found beside {} or here; pass --schemas DIR", data.display()),
            }
        }
    };
    let set = SchemaSet::load_dir(&dir).with_context(|| format!("loading schemas from {}", dir.display()))?;
    if set.is_empty() {
        tracing::warn!(dir = %dir.display(), "no schema files: the relay will stop at the first event");
    }
    Ok(set)
}

/// The relay inside `ledger serve`: flatten into serve's arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeKafkaArgs {
    /// Kafka bootstrap servers; when given, `serve` also runs the relay in process.
    #[arg(long = "kafka-brokers", env = "LEDGER_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Directory of event schemas for the relay (see `ledger relay --help`).
    #[arg(long = "schemas", env = "LEDGER_SCHEMAS")]
    pub schemas: Option<PathBuf>,
    /// Extra librdkafka producer setting for the relay (repeatable).
    #[arg(long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_config: Vec<(String, String)>,
}

/// A relay running as a task of the server.
pub struct RelayHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<RelayStats, RelayError>>,
    checkpoint: watch::Receiver<u64>,
}

impl RelayHandle {
    /// The relay's durable checkpoint (for `/metrics` or a status page).
    pub fn checkpoint(&self) -> watch::Receiver<u64> {
        self.checkpoint.clone()
    }

    /// True when the relay stopped by itself (an error; it was logged).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the relay: it waits for deliveries in flight and writes its checkpoint.
    pub async fn shutdown(mut self) -> Result<RelayStats> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        Ok(self.task.await.context("relay task")??)
    }
}

/// Starts the relay for `ledger serve` when `--kafka-brokers` is given (else `None`).
/// A relay that stops on an error logs it; the server keeps serving.
pub fn spawn_in_serve(args: &ServeKafkaArgs, data: &Path, store: Arc<dyn EventStore>) -> Result<Option<RelayHandle>> {
    let Some(brokers) = &args.kafka_brokers else { return Ok(None) };
    let schemas = Arc::new(load_schemas(args.schemas.as_deref(), data)?);
    let checkpoint = Checkpoint::open(data).context("opening the relay checkpoint")?;
    let config = producer_config(brokers, &args.kafka_config)?;
    let mut relay = Relay::new(Arc::new(StoreSource(store)), schemas, checkpoint, &config)?;
    let checkpoint = relay.checkpoint_watch();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let brokers = brokers.clone();
    let task = tokio::spawn(async move {
        tracing::info!(%brokers, from = relay.checkpoint() + 1, "kafka relay started");
        let result = relay
            .run(async {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "kafka relay stopped");
        }
        result
    });
    Ok(Some(RelayHandle { stop: Some(stop_tx), task, checkpoint }))
}

/// `ledger consume`: the reference consumer, building per-partner paid totals.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsumeArgs {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "LEDGER_KAFKA_BROKERS")]
    pub brokers: String,
    /// Consumer group id.
    #[arg(long, default_value = "ledger-reference-consumer")]
    pub group: String,
    /// SQLite file of the view (paid totals and applied event ids).
    #[arg(long, default_value = "paid-totals.db")]
    pub view: PathBuf,
    /// Topics to consume (comma-separated; default: every ledger topic).
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Exit after this many seconds without a message (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub exit_when_idle: Option<u64>,
    /// Extra librdkafka consumer setting (repeatable).
    #[arg(short = 'X', long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub kafka_config: Vec<(String, String)>,
}

impl ConsumeArgs {
    pub async fn run(self) -> Result<()> {
        let topics =
            if self.topics.is_empty() { ALL_TOPICS.iter().map(|t| t.to_string()).collect() } else { self.topics };
        let settings =
            ConsumerSettings { brokers: self.brokers, group: self.group, topics, overrides: self.kafka_config };
        let view = PaidTotalsView::open(&self.view).with_context(|| format!("opening {}", self.view.display()))?;
        let mut consumer = ReferenceConsumer::new(&settings, view)?;
        eprintln!("consume: group {} on {}", settings.group, settings.topics.join(","));
        let stats = consumer.run(shutdown_signal(), self.exit_when_idle.map(Duration::from_secs), |_, _| false).await?;
        eprintln!(
            "consume: {} messages, {} applied, {} duplicates skipped",
            stats.messages, stats.applied, stats.duplicates
        );
        for t in consumer.view().paid_totals()? {
            println!(
                "{}",
                serde_json::json!({
                    "partner_id": t.partner_id, "currency": t.currency,
                    "paid": t.amount.to_string(), "payments": t.payments
                })
            );
        }
        Ok(())
    }
}

pub use crate::bench::BenchRelayArgs;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
