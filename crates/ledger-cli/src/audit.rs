//! `ledger audit verify`: walks the hash chain of the whole log and reports the first event
//! whose position, link or content does not match; with anchors, also checks every anchor's
//! signature and that the log holds each anchored hash (see `ledger_domain::anchors::verify`).
//! The log is the store in `--data`, or a `ledger events` export (`--log`), so an auditor
//! can verify without the server or the store.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use ledger_core::RecordedEvent;
use ledger_domain::anchors::{read_anchor, AnchorEvent, AnchorVerifier, PublicKey, Verdict};
use ledger_store::sqlite::read_all_sync;
use ledger_store::StoreError;

use crate::DataDir;

const BATCH: i64 = 5_000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify the hash chain over the global log (and, with anchors, the log against them).
    /// Exits 1 at the first position that disagrees.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataDir,
    /// Verify this `ledger events` export (JSON lines, from position 1) instead of the store.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Anchors to check the log against: JSON lines, each an anchor event as `ledger events`
    /// prints it, or an item of `GET /v1/audit/anchors`; lines of other events are skipped.
    #[arg(long)]
    anchors: Option<PathBuf>,
    /// Read the anchors from the `ledger.anchors.v1` topic (needs --kafka-brokers).
    #[arg(long, requires = "kafka_brokers", conflicts_with = "anchors")]
    anchors_topic: bool,
    /// Kafka bootstrap servers, for --anchors-topic.
    #[arg(long, env = "LEDGER_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// A trusted anchor public key, 64 hex digits (repeatable; `ledger anchor keygen`
    /// printed it). Any key of a rotation sequence will do.
    #[arg(long = "public-key")]
    public_keys: Vec<String>,
    /// Print the result as JSON: {"ok", "checked", "first_bad_position", "reason"}, and with
    /// anchors also "anchors" and "anchored_through".
    #[arg(long)]
    json: bool,
}

/// Feeds the store's log to `checker`.
fn walk_store(
    conn: &rusqlite::Connection,
    checker: &mut AnchorVerifier,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut from = 1u64;
    loop {
        let batch = match read_all_sync(conn, from, BATCH) {
            Ok(b) => b,
            Err(StoreError::Corrupt { position, reason }) => {
                checker.stop(position, reason);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(last) = batch.last().map(|e| e.position) else { return Ok(()) };
        for e in &batch {
            if checker.check(e).is_err() {
                return Ok(());
            }
        }
        progress.inc(batch.len() as u64);
        from = last + 1;
    }
}

/// Feeds an exported log (JSON lines) to `checker`.
fn walk_file(path: &Path, checker: &mut AnchorVerifier) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut last_position = 0;
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RecordedEvent>(&line) {
            Ok(e) => {
                last_position = e.position;
                if checker.check(&e).is_err() {
                    return Ok(());
                }
            }
            Err(err) => {
                checker.stop(
                    last_position + 1,
                    format!("line {} of {} is not a ledger event: {err}", n + 1, path.display()),
                );
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The anchors of a JSON-lines file, or of the topic.
fn load_anchors(args: &VerifyArgs) -> Result<Option<Vec<AnchorEvent>>> {
    let values: Vec<serde_json::Value> = if let Some(path) = &args.anchors {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut values = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            values.push(
                serde_json::from_str(line)
                    .with_context(|| format!("line {} of {} is not JSON", n + 1, path.display()))?,
            );
        }
        values
    } else if args.anchors_topic {
        let brokers = args.kafka_brokers.as_deref().context("--anchors-topic needs --kafka-brokers")?;
        ledger_bus::anchors::read_topic(brokers, &[], Duration::from_secs(60))?
    } else {
        return Ok(None);
    };
    let mut anchors = Vec::new();
    for (n, v) in values.iter().enumerate() {
        if let Some(a) = read_anchor(v).map_err(|e| anyhow::anyhow!("anchor {}: {e}", n + 1))? {
            anchors.push(a);
        }
    }
    Ok(Some(anchors))
}

pub fn run(cmd: Command) -> Result<()> {
    let Command::Verify(args) = cmd;
    // The keys first: a typo is reported before any file or topic is read.
    let keys = args
        .public_keys
        .iter()
        .map(|k| k.parse::<PublicKey>().map_err(|e| anyhow::anyhow!("--public-key {k}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let anchors = load_anchors(&args)?;
    match (&anchors, keys.is_empty()) {
        (None, false) => anyhow::bail!("--public-key checks anchors: give --anchors FILE or --anchors-topic"),
        (Some(_), true) => anyhow::bail!("checking anchors needs the anchor public key you trust: --public-key HEX"),
        _ => {}
    }
    let with_anchors = anchors.is_some();
    // Without anchors the verifier checks the chain alone.
    let mut checker = AnchorVerifier::new(anchors.unwrap_or_default(), &keys);
    match &args.log {
        Some(path) => walk_file(path, &mut checker)?,
        None => {
            let conn = crate::open_read_only(&args.data)?;
            let total: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
            let progress = crate::bench::progress_bar(total as u64, "verifying");
            walk_store(&conn, &mut checker, &progress)?;
            progress.finish_and_clear();
        }
    }
    let verdict = checker.finish();
    print(&verdict, with_anchors, args.json);
    if !verdict.ok() {
        std::process::exit(1);
    }
    Ok(())
}

fn print(verdict: &Verdict, with_anchors: bool, json: bool) {
    let bad = verdict.first_bad.as_ref();
    if json {
        let mut out = serde_json::json!({
            "ok": verdict.ok(), "checked": verdict.checked,
            "first_bad_position": bad.map(|b| b.position), "reason": bad.map(|b| &b.reason)
        });
        if with_anchors {
            out["anchors"] = verdict.anchors.into();
            out["anchored_through"] = verdict.anchored_through.into();
        }
        println!("{out}");
        return;
    }
    match bad {
        None if with_anchors => println!(
            "ok: the hash chain holds over {} events and agrees with {} signed anchors (through position {})",
            verdict.checked, verdict.anchors, verdict.anchored_through
        ),
        None => println!("ok: the hash chain holds over {} events", verdict.checked),
        Some(b) => {
            println!("BROKEN at position {}: {} ({} events before it verified)", b.position, b.reason, verdict.checked)
        }
    }
}
