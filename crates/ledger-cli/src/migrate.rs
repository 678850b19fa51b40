//! `ledger migrate --from <spec> --to <spec>`: copies a log between any two backends that
//! `ledger_store::open_store` opens (a directory for SQLite, `postgres://…`, `esdb://…`),
//! event by event as stored: positions, event ids, times, metadata and hashes intact.
//!
//! Each batch is one transaction in the target ([`EventStore::import`]), so an interrupted
//! migration leaves a prefix of the source, and running the same command again resumes
//! after it. A non-empty target that is not a prefix of the source is refused before
//! anything is written. At the end the whole target is read back: its chain must verify,
//! its count and its last hash must be the source's.

use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::envelope::ChainVerifier;
use ledger_store::{open_store, EventStore, MAX_READ_BATCH};

#[derive(clap::Args)]
pub struct Args {
    /// The store to copy from: a directory (SQLite), postgres://… or esdb://….
    #[arg(long)]
    from: String,
    /// The store to copy to (SQLite or PostgreSQL; created if missing). It must be empty or
    /// hold a prefix of the source's log (left by an interrupted migration, which resumes).
    #[arg(long)]
    to: String,
    /// Events per read and per import transaction.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=MAX_READ_BATCH as u64))]
    batch: u64,
}

pub fn run(args: Args) -> Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let from = open_store(&args.from).await.context("opening --from")?;
        let to = open_store(&args.to).await.context("opening --to")?;
        let source_head = *from.head().borrow();
        let start = resume_point(&from, &to, source_head).await?;
        let bar = ProgressBar::new(source_head).with_position(start);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, eta {eta}")
                .expect("a valid template"),
        );
        let began = std::time::Instant::now();
        let mut next = start + 1;
        while next <= source_head {
            let want = (source_head - next + 1).min(args.batch) as usize;
            let events = from.read_all(next, want).await.context("reading the source")?;
            let Some(last) = events.last().map(|e| e.position) else {
                anyhow::bail!("the source ended at position {} before its head {source_head}", next - 1);
            };
            to.import(events).await.context("writing the target")?;
            next = last + 1;
            bar.set_position(last);
        }
        bar.finish();
        let copied = source_head - start;
        let secs = began.elapsed().as_secs_f64();
        eprintln!("verifying the target ...");
        verify(&from, &to, source_head).await?;
        println!(
            "migrated {copied} events ({} were there already); the target's {source_head} events chain and end \
             with the source's last hash{}",
            start,
            if copied > 0 && secs > 0.0 { format!(" ({:.0} events/s)", copied as f64 / secs) } else { String::new() }
        );
        Ok(())
    })
}

/// Where copying starts: after the target's last event, once the target is seen to be a
/// prefix of the source (its last event is the source's event at that position, hash for
/// hash: the chain makes the whole prefix equal).
async fn resume_point(from: &Arc<dyn EventStore>, to: &Arc<dyn EventStore>, source_head: u64) -> Result<u64> {
    let target_head = *to.head().borrow();
    if target_head == 0 {
        return Ok(0);
    }
    anyhow::ensure!(
        target_head <= source_head,
        "the target holds {target_head} events, the source {source_head}: the target is not a prefix of the \
         source; migrate into an empty store"
    );
    let theirs = to.read_all(target_head, 1).await?;
    let ours = from.read_all(target_head, 1).await?;
    let same =
        matches!((theirs.first(), ours.first()), (Some(t), Some(s)) if t.hash == s.hash && t.event_id == s.event_id);
    anyhow::ensure!(
        same,
        "the target's log is not a prefix of the source's (its event at position {target_head} differs); migrate \
         into an empty store"
    );
    eprintln!("the target holds the source's first {target_head} events: resuming after them");
    Ok(target_head)
}

/// Reads the whole target back: a valid chain of exactly `source_head` events whose last
/// hash is the source's.
async fn verify(from: &Arc<dyn EventStore>, to: &Arc<dyn EventStore>, source_head: u64) -> Result<()> {
    let mut chain = ChainVerifier::default();
    let mut last_hash = None;
    loop {
        let events = to.read_all(chain.checked() + 1, MAX_READ_BATCH).await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            chain
                .check(e)
                .map_err(|b| anyhow::anyhow!("the target's chain breaks at position {}: {}", b.position, b.reason))?;
        }
        last_hash = events.last().map(|e| e.hash);
    }
    anyhow::ensure!(
        chain.checked() == source_head,
        "the target holds {} events, the source {source_head}",
        chain.checked()
    );
    if source_head > 0 {
        let source_last = from.read_all(source_head, 1).await?.first().map(|e| e.hash);
        anyhow::ensure!(last_hash == source_last, "the target's last hash is not the source's");
    }
    Ok(())
}
