//! `ledger statement`: a partner's monthly statement from the journal, as CSV for finance
//! staff or JSON. Brings the projections up to the log's head first.

use std::sync::Arc;

use anyhow::Result;
use ledger_core::{Currency, Month};
use ledger_projections::{journal, Runner};
use ledger_store::sqlite::SqliteStore;
use ledger_store::EventStore;

use crate::DataDir;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub data: DataDir,
    /// The partner id.
    #[arg(long)]
    pub partner: String,
    /// The month, e.g. 2026-07.
    #[arg(long)]
    pub month: String,
    #[arg(long, default_value = "CNY")]
    pub currency: String,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    pub format: String,
}

pub fn run(args: Args) -> Result<()> {
    let month: Month = args.month.parse()?;
    let currency: Currency = args.currency.parse()?;
    anyhow::ensure!(matches!(args.format.as_str(), "csv" | "json"), "--format must be csv or json");
    let rt = tokio::runtime::Runtime::new()?;
    let statement = rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&args.data.dir)?);
        let mut runner = Runner::open(&args.data.dir, ledger_projections::all())?;
        runner.catch_up(&store, |_| {}).await?;
        let conn = ledger_projections::runner::open_reader(&args.data.dir)?;
        anyhow::Ok(journal::statement(&conn, &args.partner, month, currency)?)
    })?;
    if args.format == "csv" {
        print!("{}", ledger_api::statement_routes::statement_csv(&statement));
    } else {
        println!("{}", serde_json::to_string_pretty(&statement)?);
    }
    Ok(())
}
