//! `ledger projections rebuild`: drop read models and replay them from position 1.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use ledger_projections::{ReadModels, Runner};
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

use crate::DataDir;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Replay every projection (or only those named) from position 1 with a progress bar,
    /// then print events/s. Safe while nothing serves: the rows are rebuilt in place.
    Rebuild(RebuildArgs),
    /// Each projection's checkpoint against the log's head.
    Status(StatusArgs),
}

/// Which log and which read models: the embedded store in `--data` by default.
#[derive(clap::Args)]
pub struct Target {
    #[command(flatten)]
    pub data: DataDir,
    /// The log: a directory (SQLite, default `--data`), `postgres://…` or `esdb://…`.
    #[arg(long, env = "LEDGER_STORE")]
    pub store: Option<String>,
    /// The read models: a directory or `postgres://…[?schema=name]`; by default as `ledger
    /// serve` places them for the same `--store`.
    #[arg(long, env = "LEDGER_READMODELS")]
    pub readmodels: Option<String>,
}

impl Target {
    pub async fn store(&self) -> Result<Arc<dyn EventStore>> {
        Ok(match &self.store {
            None => Arc::new(SqliteStore::open(&self.data.dir)?),
            Some(spec) => ledger_store::open_store(spec).await?,
        })
    }

    pub fn models(&self) -> Result<ReadModels> {
        Ok(match self.readmodels.as_deref() {
            Some(spec) => ReadModels::parse(spec)?,
            None => ReadModels::default_for(self.store.as_deref(), &self.data.dir)?,
        })
    }
}

#[derive(clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub target: Target,
    /// Rebuild only this projection (repeatable): journal, lookup, adjustments,
    /// incentive_months, rollover_lines, quarterly_payments, coupons, withdrawals.
    #[arg(long)]
    pub only: Vec<String>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
}

pub fn run(cmd: Command) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match cmd {
            Command::Rebuild(args) => {
                let store = args.target.store().await?;
                let (events, seconds) = rebuild_models(&args.target.models()?, &store, &args.only).await?;
                let peak = peak_memory_mib().map(|m| format!(", peak memory {m:.0} MiB")).unwrap_or_default();
                println!(
                    "rebuilt {} from {events} events in {seconds:.2} s: {:.0} events/s{peak}",
                    if args.only.is_empty() { "every projection".to_string() } else { args.only.join(", ") },
                    events as f64 / seconds.max(1e-9)
                );
            }
            Command::Status(args) => {
                let store = args.target.store().await?;
                let runner = Runner::open_models(&args.target.models()?, ledger_projections::all())?;
                let head = *store.head().borrow();
                for (name, at) in runner.checkpoints() {
                    println!("{name:<12} {at:>10} / {head} ({} behind)", head.saturating_sub(at));
                }
            }
        }
        Ok(())
    })
}

/// This process's peak resident memory in MiB (Linux's `VmHWM`), where the system tells it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Resets and replays; answers (events replayed, seconds).
/// Resets and replays the read models in `models` (on shared ones, only while no server
/// applies them: it refuses otherwise).
pub async fn rebuild_models(models: &ReadModels, store: &Arc<dyn EventStore>, only: &[String]) -> Result<(u64, f64)> {
    let mut runner = Runner::open_models(models, ledger_projections::all())?;
    runner.reset(only)?;
    let head = *store.head().borrow();
    let bar = crate::bench::progress_bar(head, "replaying");
    let started = Instant::now();
    let events = runner.catch_up(store, |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    Ok((events, started.elapsed().as_secs_f64()))
}
