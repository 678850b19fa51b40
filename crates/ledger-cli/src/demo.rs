//! `ledger demo seed`: a realistic generated history in the embedded store, through the
//! same use cases as the HTTP API (see `ledger_demo`).

use std::sync::Arc;

use anyhow::Result;
use ledger_app::{Executor, Ledger};
use ledger_demo::{self as demo, DemoPlan, DemoSummary};
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

use crate::{CalendarFile, DataDir};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Generate a history: distributors with resellers and customers, consumption with
    /// late settlements and refunds, allocations, reclaims, coupons, reviews,
    /// finalizations, quarterly payments and withdrawals. Refuses a store that holds events.
    Seed(SeedArgs),
}

#[derive(clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub calendar: CalendarFile,
    /// Partners to generate (every fifth is a distributor, the next two its resellers).
    #[arg(long, default_value_t = 20)]
    pub partners: usize,
    /// Months of history, ending last month.
    #[arg(long, default_value_t = 6)]
    pub months: u32,
    /// Consumption lines per customer and month.
    #[arg(long, default_value_t = 4)]
    pub lines: usize,
    /// Customers per partner.
    #[arg(long, default_value_t = 3)]
    pub customers: usize,
}

pub fn run(cmd: Command) -> Result<()> {
    let Command::Seed(args) = cmd;
    let calendar = args.calendar.load()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&args.data.dir)?);
        anyhow::ensure!(
            *store.head().borrow() == 0,
            "{} already holds events; seed an empty --data directory",
            args.data.dir.display()
        );
        let mut plan = DemoPlan::new(args.partners, args.months, chrono::Utc::now());
        plan.lines_per_customer = args.lines;
        plan.customers_per_partner = args.customers;
        let summary = seed_with_progress(&store, &plan, &calendar).await?;
        println!(
            "seeded {} partners over {} months: {} commands ({} refused by the rules, as in real life), {} events",
            summary.partners.len(),
            args.months,
            summary.commands,
            summary.refused,
            *store.head().borrow()
        );
        Ok(())
    })
}

/// Seeds `plan` into `store`, with a progress bar on stderr.
pub async fn seed_with_progress(
    store: &Arc<dyn EventStore>,
    plan: &DemoPlan,
    calendar: &ledger_core::WorkingCalendar,
) -> Result<DemoSummary> {
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone()))).with_calendar(calendar.clone());
    let bar = crate::bench::progress_bar(u64::from(plan.months), "seeding months");
    let started = std::time::Instant::now();
    let summary = demo::seed(&ledger, plan, |done, _| bar.set_position(u64::from(done)))
        .await
        .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
    bar.finish_and_clear();
    let events = *store.head().borrow();
    eprintln!("{events} events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(summary)
}
