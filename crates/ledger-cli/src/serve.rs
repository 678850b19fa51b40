//! `ledger serve`: the HTTP API of docs/API.md on the embedded store or a shared one
//! (`--store postgres://…`, `esdb://…`), with the projections running in the same process.
//!
//! On a shared store several nodes may serve at once (README, Running at scale): every
//! decision is appended at the stream version it was made from, so a node that decided on a
//! stale state gets a conflict and decides again. The read models are shared too on a
//! PostgreSQL store (one node applies the log to them at a time, the others follow its
//! checkpoints), or each node's own (`--readmodels DIR`); either way `min_position` waits
//! on whichever node reads.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use ledger_api::auth::{new_master_key, Credentials};
use ledger_api::AppState;
use ledger_app::{Executor, Ledger};
use ledger_projections::runner::spawn_live;
use ledger_projections::{ReadModels, Runner};
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

use crate::{CalendarFile, DataDir};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    #[command(flatten)]
    calendar: CalendarFile,
    /// Where the log lives: a directory (SQLite, the default: the `--data` directory),
    /// `postgres://user@host:port/db[?schema=name]`, or `esdb://…` / `kurrentdb://…`. With a
    /// shared store, `--data` keeps this node's read models and relay checkpoint, and every
    /// node needs the same `LEDGER_MASTER_KEY`.
    #[arg(long, env = "LEDGER_STORE")]
    store: Option<String>,
    /// Where the read models live: a directory (SQLite, this node's own) or
    /// `postgres://user@host:port/db[?schema=name]` (one schema every node shares: one node
    /// applies the log to it at a time, the others read it). Default: on a PostgreSQL store,
    /// its database in the schema `<store schema>_readmodels`; otherwise the `--data` directory.
    #[arg(long, env = "LEDGER_READMODELS")]
    readmodels: Option<String>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The first admin token (docs/API.md: the bootstrap credential).
    #[arg(long, env = "LEDGER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Seed a sample history first when the store is empty (20 partners, 6 months ending
    /// last month), and accept the admin token `demo-admin-token` unless one is given.
    #[arg(long)]
    demo: bool,
    #[command(flatten)]
    kafka: ledger_bus::cli::ServeKafkaArgs,
    /// Seconds of the kafka lease: with `--kafka-brokers`, the nodes sharing a store hold it
    /// in turn and only its holder publishes; another takes over this long after it dies.
    /// (The anchor lease has its own term, `--anchor-lease-secs`.)
    #[arg(long, env = "LEDGER_KAFKA_LEASE_SECS", default_value = "10", value_parser = seconds)]
    kafka_lease_secs: std::time::Duration,
    #[command(flatten)]
    anchor: crate::anchor::ServeArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What one client may hold of the server (ledger_api::limits).
#[derive(clap::Args)]
pub struct LimitArgs {
    /// Open connections at once; more wait in the listen backlog.
    #[arg(long, env = "LEDGER_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Seconds for a request's headers to arrive; also how long an idle connection stays open.
    #[arg(long, env = "LEDGER_HEADER_TIMEOUT", default_value = "10", value_parser = seconds)]
    header_timeout: std::time::Duration,
    /// Seconds for a request's whole body to arrive.
    #[arg(long, env = "LEDGER_BODY_TIMEOUT", default_value = "15", value_parser = seconds)]
    body_timeout: std::time::Duration,
    /// MiB of request bodies held in memory at once, over all connections (at least 1).
    #[arg(long, env = "LEDGER_BODY_BUDGET_MIB", default_value_t = 64)]
    body_budget_mib: usize,
}

pub(crate) fn seconds(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 3600.0)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds between 0 and 3600"))
}

impl LimitArgs {
    fn config(&self) -> ledger_api::limits::LimitsConfig {
        ledger_api::limits::LimitsConfig {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            body_budget_bytes: self.body_budget_mib.saturating_mul(1024 * 1024),
        }
    }
}

/// On a clean shutdown, how long the relay may take to publish what was appended last.
const RELAY_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// The admin token of `--demo` when none is configured: for a local sample only.
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

/// The master key that secret keys derive from: `LEDGER_MASTER_KEY`, else `<data>/master.key`
/// (made on first start, readable by the owner only).
fn master_key(dir: &Path) -> Result<Vec<u8>> {
    if let Ok(k) = std::env::var("LEDGER_MASTER_KEY") {
        anyhow::ensure!(k.len() >= 32, "LEDGER_MASTER_KEY must have at least 32 characters");
        return Ok(k.into_bytes());
    }
    let path = dir.join("master.key");
    if !path.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::write(&path, new_master_key())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .as_bytes()
        .to_vec())
}

/// How often the allocator is asked to give memory nobody uses back to the system. mimalloc
/// does so only when it is next called into, and a server quiet after a flood of large bodies
/// would keep it for good (issue 17: the memory of a flood must come back).
const RETURN_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// mimalloc's option `mi_option_purge_delay` (its number in mimalloc.h, v2 and v3 alike):
/// how long memory freed in whole pages stays committed before it goes back to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages stay committed this long (ms): long enough for the next batch to reuse them.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Holds the server's resident memory to what it uses (issue 11). Measured under `ledger bench
/// ingest` (BENCHMARKS.md): the server's own heap stays at a few MiB at any history (heaptrack,
/// system allocator) and SQLite's page caches are capped, yet with mimalloc's defaults the peak
/// RSS grew with the length of a run (443 MiB after 1M lines): its arenas are advised as
/// transparent huge pages (a few live blocks keep 2 MiB resident), and freed pages stay
/// committed for a second (mimalloc 3's default) under millions of allocations a second.
/// Without huge pages (318 MiB) and with pages returned once free, the run peaked at 246 MiB.
/// Returned at once, though, every batch faulted its pages back in (page faults and TLB
/// shootdowns were 18% of the server's CPU); after [`PURGE_DELAY_MS`] the 1M-line run peaks
/// at 194 MiB, as with 0, and a batch costs a fifth less CPU.
fn hold_memory_to_use() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes no pointers; it only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // SAFETY: mi_option_set takes no pointers; options may be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

fn return_memory_in_the_background() {
    std::thread::Builder::new()
        .name("return-memory".into())
        .spawn(|| loop {
            std::thread::sleep(RETURN_MEMORY_EVERY);
            // SAFETY: mi_collect takes no pointers; it is safe to call from any thread.
            unsafe { libmimalloc_sys::mi_collect(false) };
        })
        .expect("a thread starts");
}

/// The log `serve` runs on: the embedded SQLite store (closed cleanly at shutdown) or a
/// shared one.
enum Log {
    Embedded(Arc<SqliteStore>),
    Shared(Arc<dyn EventStore>),
}

impl Log {
    async fn open(spec: Option<&str>, data: &Path) -> Result<Log> {
        let dir = match spec.map(str::trim) {
            None => data.to_path_buf(),
            Some(s) if !s.contains("://") => std::path::PathBuf::from(s),
            Some(s) if s.starts_with("sqlite://") => std::path::PathBuf::from(&s["sqlite://".len()..]),
            Some(s) => {
                anyhow::ensure!(
                    std::env::var("LEDGER_MASTER_KEY").is_ok(),
                    "a shared store needs LEDGER_MASTER_KEY (the same on every node), or credentials issued \
                     on one node would not verify on another"
                );
                std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
                let store = ledger_store::open_store(s).await.context("opening the store")?;
                return Ok(Log::Shared(store));
            }
        };
        anyhow::ensure!(!dir.as_os_str().is_empty(), "--store names no directory");
        Ok(Log::Embedded(Arc::new(SqliteStore::open(&dir).with_context(|| format!("opening {}", dir.display()))?)))
    }

    fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Log::Embedded(s) => s.clone(),
            Log::Shared(s) => s.clone(),
        }
    }

    fn close(&self) {
        if let Log::Embedded(s) = self {
            s.close();
        }
    }
}

pub fn run(mut args: Args) -> Result<()> {
    hold_memory_to_use();
    return_memory_in_the_background();
    if args.demo && args.admin_token.is_none() {
        args.admin_token = Some(DEMO_ADMIN_TOKEN.to_string());
    }
    let calendar = args.calendar.load()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let log = Log::open(args.store.as_deref(), &args.data.dir).await?;
        let dyn_store = log.store();
        if args.demo && *dyn_store.head().borrow() == 0 {
            eprintln!("seeding a sample history ...");
            let plan = ledger_demo::DemoPlan::new(20, 6, chrono::Utc::now());
            crate::demo::seed_with_progress(&dyn_store, &plan, &calendar).await?;
        }
        let models = match args.readmodels.as_deref() {
            Some(spec) => ReadModels::parse(spec)?,
            None => ReadModels::default_for(args.store.as_deref(), &args.data.dir)?,
        };
        eprintln!("read models: {}", models.describe());
        let mut runner = Runner::open_models(&models, ledger_projections::all())?;
        // The server answers at once, whatever the history: the projections catch up in the
        // background, and a read naming a `min_position` they have not reached waits for it.
        let progress = runner.progress();
        let projections = {
            let store = dyn_store.clone();
            tokio::spawn(async move {
                let head = *store.head().borrow();
                if runner.low_water() < head {
                    eprintln!("catching up projections from position {} to {head}...", runner.low_water());
                    if let Err(e) = runner.catch_up(&store, |_| {}).await {
                        tracing::error!(error = %e, "projection catch-up stopped");
                        return;
                    }
                }
                // Aborting this task (at shutdown) stops the live runner with it.
                struct AbortOnDrop(tokio::task::JoinHandle<()>);
                impl Drop for AbortOnDrop {
                    fn drop(&mut self) {
                        self.0.abort();
                    }
                }
                let mut live = AbortOnDrop(spawn_live(runner, store).1);
                let _ = (&mut live.0).await;
            })
        };
        let relay =
            crate::relay_lease::spawn(&args.kafka, args.kafka_lease_secs, args.data.dir.clone(), dyn_store.clone());
        let credentials = Arc::new(Credentials::new(master_key(&args.data.dir)?, args.admin_token.as_deref()));
        let ledger = Arc::new(Ledger::new(Arc::new(Executor::new(dyn_store.clone()))).with_calendar(calendar));
        let anchorer = crate::anchor::spawn_in_serve(&args.anchor, &args.data.dir, ledger.clone()).await?;
        let state = Arc::new(AppState {
            store: dyn_store.clone(),
            ledger,
            credentials,
            progress,
            reads: ledger_projections::ReadPool::open(models.clone()),
            metrics: Default::default(),
            limits: ledger_api::limits::Limits::new(args.limits.config()),
            credentials_synced: Default::default(),
            anchor_key: anchorer.as_ref().map(|(_, public)| public.parse()).transpose()?,
        });
        if matches!(log, Log::Shared(_)) {
            state.credentials_synced.check_every_request();
        }
        ledger_api::nodes::learn_new_credentials(&state)
            .await
            .map_err(|e| anyhow::anyhow!("loading credentials: {}", e.message))?;
        // Credentials issued or revoked through another node sharing the store.
        let credentials_follower = ledger_api::nodes::follow_credentials(state.clone());
        let completing = tokio::spawn(complete_cut_short_payments(state.clone(), *dyn_store.head().borrow()));
        if args.admin_token.is_none() {
            eprintln!("warning: no LEDGER_ADMIN_TOKEN set; only credentials stored earlier can sign in");
        }
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("ledger listening on http://{addr}");
        if args.demo {
            print_demo_help(&addr.to_string(), args.admin_token.as_deref().unwrap_or(DEMO_ADMIN_TOKEN));
        }
        // The console's pages at `/`, beside the JSON API.
        let console = ledger_console::router(state.clone());
        ledger_api::serve_with(state, console, listener).await?;
        if let Some((anchorer, _)) = anchorer {
            // A clean shutdown anchors whatever came since the last anchor.
            let made = anchorer.shutdown().await?;
            eprintln!("anchors made: {made}");
        }
        if let Some(relay) = relay {
            // The last anchor leaves the database with the server (bounded: Kafka may be down).
            relay.shutdown(*dyn_store.head().borrow(), RELAY_FLUSH).await;
        }
        completing.abort();
        projections.abort();
        credentials_follower.abort();
        ledger_projections::runner::checkpoint_at_close(&models);
        log.close();
        eprintln!("stopped cleanly");
        Ok(())
    })
}

/// Credits the rebate of every payment paid by `cloud_account_credit` whose credit is
/// missing, once the read models hold the log as it stood at start (`head`): a log written
/// when the pay and its credit were two appends, and a crash came between them
/// (docs/DOMAIN.md §5). `LEDGER_START_COMPLETION=off` leaves them to the next pay call (a
/// test hook, to show that call completes them).
async fn complete_cut_short_payments(state: Arc<AppState>, head: u64) {
    if std::env::var("LEDGER_START_COMPLETION").is_ok_and(|v| v == "off") {
        return;
    }
    if !state.progress.reached(head).await {
        return;
    }
    let paid = match state.reads.read(ledger_projections::quarterly_payments::paid_by_credit).await {
        Ok(paid) => paid,
        Err(e) => return tracing::error!(error = %e, "listing the payments paid by credit"),
    };
    let ctx = ledger_app::CommandContext {
        meta: ledger_core::CommandMeta::new(ledger_core::Actor::system("serve-start")),
        now: chrono::Utc::now(),
        idempotency: None,
    };
    for (partner, payment) in paid {
        match state.ledger.complete_rebate_credit(&ctx, &partner, &payment).await {
            Ok(Some(credit)) => eprintln!(
                "completed the missing rebate credit of payment {payment} (partner {partner}) at position {}",
                credit.last_position
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e.to_string(), payment, "completing a rebate credit"),
        }
    }
}

fn print_demo_help(addr: &str, token: &str) {
    let quarter = ledger_core::Quarter::of(chrono::Utc::now());
    let last_quarter = ledger_core::Month::of(quarter.start()).prev().quarter();
    let year = ledger_core::Month::of(chrono::Utc::now()).year();
    eprintln!(
        "\nsample data is in; try (admin token {token}):\n  \
         curl -s -H 'X-Auth-Token: {token}' 'http://{addr}/v1/incentive-months?year={year}&partner_id=P00001'\n  \
         curl -s -H 'X-Auth-Token: {token}' 'http://{addr}/v1/quarterly-payments/eligibility?quarter={last_quarter}&partner_id=P00002'\n  \
         curl -s -H 'X-Auth-Token: {token}' 'http://{addr}/v1/trial-balance'\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_holds_its_memory_to_what_it_uses() {
        hold_memory_to_use();
        // SAFETY: both calls only read settings.
        let purge_delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(purge_delay, PURGE_DELAY_MS, "freed pages go back soon after");
        #[cfg(target_os = "linux")]
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1, "no transparent huge pages");
    }
}
