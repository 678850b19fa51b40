//! `ledger`: the event-sourced incentive and settlement ledger's command line.
//!
//! Every subcommand works on the embedded store (a SQLite file in `--data DIR`) unless it
//! says otherwise. Run `ledger --help` or `ledger <command> --help` for the details.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the ledger allocates many short-lived strings
/// per event on one thread and frees them on another (reader → projections, request →
/// writer), which glibc's arenas handle poorly (see BENCHMARKS.md for the measured gain).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod anchor;
mod audit;
mod bench;
mod bench_http;
mod bench_ingest;
mod bench_pg;
mod bench_replay;
mod demo;
mod events;
mod migrate;
mod projections_cmd;
mod relay_lease;
mod serve;
mod soak;
mod statement;

#[derive(Parser)]
#[command(
    name = "ledger",
    version,
    about = "Event-sourced incentive and settlement ledger for a cloud partner program",
    long_about = "Every incentive, allocation, coupon, withdrawal and quarterly payment is stored \
as an event in one hash-chained log. By default the log is a SQLite file in --data DIR \
(`ledger.db`), which any SQLite tool can read."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct DataDir {
    /// Directory of the embedded store (created if missing).
    #[arg(long = "data", env = "LEDGER_DATA", default_value = "data")]
    pub dir: PathBuf,
}

/// `--calendar FILE`: the working-day calendar (docs/DOMAIN.md, Conventions).
#[derive(clap::Args, Clone)]
pub struct CalendarFile {
    /// Working-day calendar file, in the format of the built-in one
    /// (crates/ledger-core/calendar/cn.txt); without it, the built-in PRC calendar. A date
    /// beyond the years the file lists is refused `CALENDAR_UNKNOWN`.
    #[arg(long = "calendar", env = "LEDGER_CALENDAR")]
    pub path: Option<PathBuf>,
}

impl CalendarFile {
    pub fn load(&self) -> Result<ledger_core::WorkingCalendar> {
        match &self.path {
            None => Ok(ledger_core::WorkingCalendar::builtin()),
            Some(path) => ledger_core::WorkingCalendar::load(path).map_err(anyhow::Error::msg),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API of docs/API.md on the embedded store, projections in process.
    Serve(serve::Args),
    /// Print the global log in order, one JSON event per line.
    Events(events::Args),
    /// Generate a realistic sample history (`ledger demo seed --help`).
    #[command(subcommand)]
    Demo(demo::Command),
    /// Copy a log between backends (a directory, postgres://…, esdb://…), resumable, verified.
    Migrate(migrate::Args),
    /// Read models: rebuild from the log, or show their checkpoints.
    #[command(subcommand)]
    Projections(projections_cmd::Command),
    /// Publish the global log to Kafka, one topic per family, from a durable checkpoint.
    Relay(ledger_bus::cli::RelayArgs),
    /// The reference downstream consumer: per-partner paid totals, deduplicated by event id.
    Consume(ledger_bus::cli::ConsumeArgs),
    /// A partner's monthly statement (opening, movements by kind, closing) as CSV or JSON.
    Statement(statement::Args),
    /// The anchor key: make one, print its public key, rotate to a new one.
    #[command(subcommand)]
    Anchor(anchor::Command),
    /// Audit commands for finance staff and auditors.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Benchmarks: programs that print their figures (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::Command),
    /// Append test events in a loop, printing each acknowledged append (used by the
    /// crash test: kill it at any moment and every printed append must be in the store).
    #[command(hide = true)]
    Soak(soak::Args),
}

/// Every command's error is one clear line on stderr (its causes joined by ": ") and exit
/// status 1: no backtrace, no debug dump.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("ledger: error: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LEDGER_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Events(args) => events::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Demo(cmd) => demo::run(cmd),
        Command::Projections(cmd) => projections_cmd::run(cmd),
        Command::Statement(args) => statement::run(args),
        Command::Relay(args) => tokio::runtime::Runtime::new()?.block_on(args.run()),
        Command::Consume(args) => tokio::runtime::Runtime::new()?.block_on(args.run()),
        Command::Anchor(cmd) => anchor::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Soak(args) => soak::run(args),
    }
}

/// Opens the store's SQLite file read-only: audits and exports never write.
pub fn open_read_only(data: &DataDir) -> Result<rusqlite::Connection> {
    let path = data.dir.join(ledger_store::sqlite::DB_FILE);
    anyhow::ensure!(path.exists(), "no ledger store at {} (is --data right?)", path.display());
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn)
}
