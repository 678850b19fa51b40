//! `ledger audit verify`: walks the hash chain of the whole log and reports the first event
//! whose position, link or content does not match.

use anyhow::Result;
use ledger_core::envelope::ChainVerifier;
use ledger_store::sqlite::read_all_sync;
use ledger_store::StoreError;

use crate::DataDir;

const BATCH: i64 = 5_000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify the hash chain over the global log. Exits 1 at the first broken link.
    Verify {
        #[command(flatten)]
        data: DataDir,
        /// Print the result as JSON: {"ok", "checked", "first_bad_position", "reason"}.
        #[arg(long)]
        json: bool,
    },
}

pub struct Verdict {
    pub checked: u64,
    pub first_bad: Option<(u64, String)>,
}

pub fn verify(conn: &rusqlite::Connection, progress: &indicatif::ProgressBar) -> Result<Verdict> {
    let mut verifier = ChainVerifier::default();
    let mut from = 1u64;
    loop {
        let batch = match read_all_sync(conn, from, BATCH) {
            Ok(b) => b,
            Err(StoreError::Corrupt { position, reason }) => {
                return Ok(Verdict { checked: verifier.checked(), first_bad: Some((position, reason)) })
            }
            Err(e) => return Err(e.into()),
        };
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(Verdict { checked: verifier.checked(), first_bad: None });
        };
        for e in &batch {
            if let Err(b) = verifier.check(e) {
                return Ok(Verdict {
                    checked: verifier.checked(),
                    first_bad: Some((b.position, b.reason.to_string())),
                });
            }
        }
        progress.inc(batch.len() as u64);
        from = last + 1;
    }
}

pub fn run(cmd: Command) -> Result<()> {
    let Command::Verify { data, json } = cmd;
    let conn = crate::open_read_only(&data)?;
    let total: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let progress = crate::bench::progress_bar(total as u64, "verifying");
    let verdict = verify(&conn, &progress)?;
    progress.finish_and_clear();
    if json {
        let (pos, reason) = verdict.first_bad.clone().unzip();
        println!(
            "{}",
            serde_json::json!({"ok": pos.is_none(), "checked": verdict.checked, "first_bad_position": pos, "reason": reason})
        );
    } else {
        match &verdict.first_bad {
            None => println!("ok: the hash chain holds over {} events", verdict.checked),
            Some((pos, reason)) => {
                println!("BROKEN at position {pos}: {reason} ({} events before it verified)", verdict.checked)
            }
        }
    }
    if verdict.first_bad.is_some() {
        std::process::exit(1);
    }
    Ok(())
}
