//! Appends forever from several tasks and prints `acked <correlation_id> <first> <last>`
//! after each append is acknowledged. The crash test kills this process with SIGKILL at a
//! random moment and checks that every printed append is in the store, whole.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use ledger_store::conformance::{event, request};
use ledger_store::sqlite::SqliteStore;
use ledger_store::{EventStore, ExpectedVersion};

use crate::DataDir;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 8)]
    appenders: u64,
    /// Events per append.
    #[arg(long, default_value_t = 3)]
    batch: u64,
}

pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&args.data.dir)?);
        let tasks: Vec<_> = (0..args.appenders)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let stream = format!("soak-{t}");
                    for i in 0.. {
                        let events = (0..args.batch).map(|k| event(i * 100 + k)).collect();
                        let req = request(&stream, ExpectedVersion::Any, events);
                        let correlation = req.meta.correlation_id;
                        let a = store.append(req).await.expect("append");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "acked {correlation} {} {}", a.first_position, a.last_position).expect("stdout");
                        out.flush().expect("stdout");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        Ok(())
    })
}
