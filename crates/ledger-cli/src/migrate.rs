//! `ledger migrate --from <spec> --to <spec>`: copies a log between any two backends that
//! `ledger_store::open_store` opens (a directory for SQLite, `postgres://…`, `esdb://…`),
//! event by event as stored: positions, event ids, times, metadata and hashes intact.
//!
//! Each batch is one transaction in the target ([`EventStore::import`]), so an interrupted
//! migration leaves a prefix of the source, and running the same command again resumes
//! after it. A non-empty target that is not a prefix of the source is refused before
//! anything is written. At the end the whole target is read back: its chain must verify,
//! its count and its last hash must be the source's.
//!
//! What makes a request act once travels with the log: the idempotency keys (`X-Request-Id`)
//! and event keys (a billing line's `record_id`) with the first append's result, and the
//! signed-request replay memory (entries whose time has not passed). A request retried
//! after the move answers its first answer; a captured signed request still acts once.

use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ledger_core::envelope::ChainVerifier;
use ledger_store::{open_store, EventStore, OnceOnly, StoreError, MAX_READ_BATCH, NO_ONCE_ONLY_EXPORT};

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
        let done = migrate(&args.from, &args.to, args.batch, true).await?;
        let kept = match done.once_only {
            Some((keys, used)) => format!("; {keys} idempotency keys and {used} signed-request entries carried"),
            None => String::new(),
        };
        println!(
            "migrated {} events ({} were there already); the target's {} events chain and end with the source's \
             last hash{}{kept}",
            done.copied,
            done.start,
            done.head,
            if done.copied > 0 && done.copy_secs > 0.0 {
                format!(" ({:.0} events/s)", done.copied as f64 / done.copy_secs)
            } else {
                String::new()
            }
        );
        Ok(())
    })
}

/// What a migration did.
pub struct Migrated {
    /// Events copied, events the target held already, the source's head.
    pub copied: u64,
    pub start: u64,
    pub head: u64,
    /// Seconds copying the events; copying the keys; verifying the target.
    pub copy_secs: f64,
    pub keys_secs: f64,
    pub verify_secs: f64,
    /// Idempotency keys and replay entries carried (None: the source cannot list them).
    pub once_only: Option<(u64, u64)>,
}

/// Copies `from`'s log (and what makes its requests act once) into `to`, then verifies the
/// target; `bar` shows a progress bar.
pub async fn migrate(from: &str, to: &str, batch: u64, bar: bool) -> Result<Migrated> {
    let from = open_store(from).await.context("opening --from")?;
    let to = open_store(to).await.context("opening --to")?;
    let source_head = *from.head().borrow();
    let start = resume_point(&from, &to, source_head).await?;
    let progress = if bar { ProgressBar::new(source_head) } else { ProgressBar::hidden() };
    progress.set_position(start);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events, {per_sec}, eta {eta}").expect("a valid template"),
    );
    let began = std::time::Instant::now();
    let mut next = start + 1;
    while next <= source_head {
        let want = (source_head - next + 1).min(batch) as usize;
        let events = from.read_all(next, want).await.context("reading the source")?;
        let Some(last) = events.last().map(|e| e.position) else {
            anyhow::bail!("the source ended at position {} before its head {source_head}", next - 1);
        };
        to.import(events).await.context("writing the target")?;
        next = last + 1;
        progress.set_position(last);
    }
    progress.finish();
    let copy_secs = began.elapsed().as_secs_f64();
    let began = std::time::Instant::now();
    let once_only = copy_once_only(&from, &to, batch as usize, bar).await?;
    let keys_secs = began.elapsed().as_secs_f64();
    let began = std::time::Instant::now();
    if bar {
        eprintln!("verifying the target ...");
    }
    verify(&from, &to, source_head).await?;
    if let Some((keys, _)) = once_only {
        let there = count_keys(&to, batch as usize).await?;
        anyhow::ensure!(there >= keys, "the target holds {there} idempotency keys, the source {keys}");
    }
    let verify_secs = began.elapsed().as_secs_f64();
    Ok(Migrated { copied: source_head - start, start, head: source_head, copy_secs, keys_secs, verify_secs, once_only })
}

/// Copies the source's idempotency and event keys and its live replay memory (already
/// kept ones are left as they are, so a resumed migration copies them again harmlessly);
/// answers (keys, replay entries), or None for a source that cannot list them (KurrentDB).
async fn copy_once_only(
    from: &Arc<dyn EventStore>,
    to: &Arc<dyn EventStore>,
    batch: usize,
    show: bool,
) -> Result<Option<(u64, u64)>> {
    let now = chrono::Utc::now().timestamp_micros();
    let bar = if show { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} idempotency keys and signed-request entries, {per_sec}")
            .expect("a valid template"),
    );
    let (mut after, mut keys, mut used) = (None, 0, 0);
    loop {
        let items = match from.read_once_only(after.clone(), batch, now).await {
            Err(StoreError::Backend(m)) if m == NO_ONCE_ONLY_EXPORT => {
                eprintln!(
                    "warning: the source cannot list its idempotency keys: requests retried under an X-Request-Id \
                     from before the move are decided afresh"
                );
                return Ok(None);
            }
            read => read.context("reading the source's idempotency keys")?,
        };
        let Some(last) = items.last() else { break };
        after = Some((last.cursor().0, last.cursor().1.to_string()));
        let n = items.len();
        for item in &items {
            match item {
                OnceOnly::Key { .. } => keys += 1,
                OnceOnly::Used { .. } => used += 1,
            }
        }
        to.import_once_only(items).await.context("writing the target's idempotency keys")?;
        bar.inc(n as u64);
        if n < batch {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(Some((keys, used)))
}

/// The idempotency and event keys `store` keeps.
async fn count_keys(store: &Arc<dyn EventStore>, batch: usize) -> Result<u64> {
    let (mut after, mut keys) = (None, 0);
    loop {
        let items = store.read_once_only(after.clone(), batch, i64::MAX).await?;
        keys += items.iter().filter(|i| matches!(i, OnceOnly::Key { .. })).count() as u64;
        match items.last() {
            Some(OnceOnly::Key { key, .. }) if items.len() == batch => after = Some((0, key.clone())),
            _ => return Ok(keys),
        }
    }
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
