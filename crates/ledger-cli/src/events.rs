//! `ledger events`: the global log as JSON lines, for auditors and scripts.

use std::io::Write;

use anyhow::Result;
use ledger_store::sqlite::read_all_sync;

use crate::DataDir;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// First global position to print.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// Print at most this many events.
    #[arg(long)]
    limit: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    let conn = crate::open_read_only(&args.data)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut from = args.from.max(1);
    let mut left = args.limit.unwrap_or(u64::MAX);
    while left > 0 {
        let batch = read_all_sync(&conn, from, left.min(5_000) as i64)?;
        let Some(last) = batch.last().map(|e| e.position) else {
            break;
        };
        for e in &batch {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        left -= batch.len() as u64;
        from = last + 1;
    }
    out.flush()?;
    Ok(())
}
