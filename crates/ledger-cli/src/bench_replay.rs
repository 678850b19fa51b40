//! `ledger bench replay`: rebuilds every projection over generated histories of growing
//! size and prints events/s, with raw SQLite inserts of the journal's rows as the baseline
//! run in the same process, and the rebuild process's peak memory.
//!
//! With `--readmodels postgres://…` the rebuild writes into a PostgreSQL schema made for the
//! run (dropped after it), and the baseline is raw batched `INSERT`s of journal-shaped rows
//! into that server.
//!
//! The history is generated once per size through the real use cases into the in-memory
//! store (generation is not what is measured), a little more than asked, and its first
//! `--events` events (a prefix of a log is a log the server had at that moment) are copied in
//! order into an embedded SQLite store; the rebuild is then `ledger projections rebuild` on it, in a process of its own,
//! whose time and peak memory are reported.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use ledger_app::{Executor, Ledger};
use ledger_core::{CommandMeta, NewEvent};
use ledger_demo::{seed, DemoPlan};
use ledger_store::memory::MemoryStore;
use ledger_store::sqlite::SqliteStore;
use ledger_store::{AppendRequest, EventStore, ExpectedVersion};

/// Events a generated partner contributes per month with `lines` lines per customer
/// (three customers): used to size the plan for a target event count. Measured about 3.7
/// (100,000 asked of a 2.6 sizing gave 143,522); set lower so the plan overshoots and the
/// copy can stop at exactly the count asked.
const EVENTS_PER_PARTNER_MONTH_PER_LINE: f64 = 3.3;

pub struct ReplayFigure {
    /// Events in the rebuilt log: the count asked, unless the generator made fewer.
    pub events: u64,
    pub seconds: f64,
    pub baseline_rows_per_s: f64,
    pub journal_rows: u64,
    /// Peak resident memory of the rebuild's process.
    pub rebuild_peak_mib: f64,
}

pub async fn replay_bench(dir: &Path, target_events: u64, readmodels: Option<&str>) -> Result<ReplayFigure> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let months = 12;
    let lines = 20;
    let partners =
        ((target_events as f64) / (EVENTS_PER_PARTNER_MONTH_PER_LINE * lines as f64 * months as f64)).ceil() as usize;
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let ledger = Ledger::new(Arc::new(Executor::new(store.clone())));
    let mut plan = DemoPlan::new(partners.max(1), months, Utc::now());
    plan.lines_per_customer = lines;
    let bar = crate::bench::progress_bar(u64::from(months), &format!("generating ~{target_events} events"));
    seed(&ledger, &plan, |d, _| bar.set_position(u64::from(d))).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let generated = *store.head().borrow();
    if generated < target_events {
        eprintln!("the generator made {generated} events, fewer than the {target_events} asked: replaying {generated}");
    }
    let events = generated.min(target_events);
    let log_dir = tempfile::tempdir_in(dir)?;
    let store = copy_to_sqlite(store, log_dir.path(), events).await?;
    drop(ledger);

    drop(store);

    // The rebuild is `ledger projections rebuild` in a process of its own: its time and its
    // peak memory are the rebuild's alone, not the generator's.
    let Some(url) = readmodels else {
        let (seconds, rebuild_peak_mib) = rebuild_in_child(log_dir.path(), None)?;
        let conn = ledger_projections::runner::open_reader(log_dir.path())?;
        let journal_rows: u64 = conn.query_row("SELECT count(*) FROM journal", [], |r| r.get(0))?;
        let baseline_rows_per_s = raw_inserts(dir, journal_rows.max(10_000))?;
        return Ok(ReplayFigure { events, seconds, baseline_rows_per_s, journal_rows, rebuild_peak_mib });
    };
    let (models, raw) =
        (crate::bench_pg::run_schema("bench_replay", events), crate::bench_pg::run_schema("bench_replay_raw", events));
    let measured = async {
        let (seconds, rebuild_peak_mib) =
            rebuild_in_child(log_dir.path(), Some(&crate::bench_pg::with_schema(url, &models)))?;
        let db = crate::bench_pg::client(url).await?;
        let journal_rows: i64 = db.query_one(&format!("SELECT count(*) FROM \"{models}\".journal"), &[]).await?.get(0);
        let baseline_rows_per_s = raw_postgres_inserts(url, &raw, (journal_rows as u64).max(10_000)).await?;
        anyhow::Ok((seconds, rebuild_peak_mib, journal_rows as u64, baseline_rows_per_s))
    }
    .await;
    let _ = crate::bench_pg::drop_schema(url, &models).await;
    let _ = crate::bench_pg::drop_schema(url, &raw).await;
    let (seconds, rebuild_peak_mib, journal_rows, baseline_rows_per_s) = measured?;
    Ok(ReplayFigure { events, seconds, baseline_rows_per_s, journal_rows, rebuild_peak_mib })
}

/// Runs `ledger projections rebuild --data DIR` and answers (its rebuild seconds and its
/// peak resident memory in MiB, as it prints them). The child reports its own peak: the
/// kernel's accounting of a child's peak would include this process's pages, which the child
/// shares between fork and exec.
fn rebuild_in_child(data: &Path, readmodels: Option<&str>) -> Result<(f64, f64)> {
    let mut rebuild = std::process::Command::new(std::env::current_exe()?);
    rebuild.args(["projections", "rebuild", "--data"]).arg(data);
    if let Some(spec) = readmodels {
        rebuild.args(["--readmodels", spec]);
    }
    let out = rebuild.stderr(std::process::Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "the rebuild failed: {text}");
    // "rebuilt every projection from N events in S s: R events/s, peak memory M MiB"
    let number_after = |marker: &str, end: &str| {
        text.split(marker).nth(1).and_then(|rest| rest.split(end).next()).and_then(|s| s.trim().parse::<f64>().ok())
    };
    let seconds = number_after(" in ", " s:").ok_or_else(|| anyhow::anyhow!("no rebuild time in: {text}"))?;
    let peak = number_after("peak memory ", " MiB").ok_or_else(|| anyhow::anyhow!("no peak memory in: {text}"))?;
    Ok((seconds, peak))
}

/// Copies the first `head` events of a history, in log order, into a new SQLite store in `dir`
/// and answers it. Many
/// appends are in flight at once (group commit); each enters the writer's queue on its first
/// poll, so polling each once in turn keeps the log order (and every stream's order).
async fn copy_to_sqlite(from: Arc<dyn EventStore>, dir: &Path, head: u64) -> Result<Arc<dyn EventStore>> {
    use std::task::{Context, Poll, Waker};

    let to: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir)?);
    let bar = crate::bench::progress_bar(head, "copying the log into SQLite");
    let mut next = 1;
    while next <= head {
        let batch = from.read_all(next, 10_000.min(head - next + 1) as usize).await?;
        let Some(last) = batch.last().map(|e| e.position) else { break };
        let mut pending = Vec::with_capacity(batch.len());
        for e in batch {
            let req = AppendRequest {
                stream: e.stream,
                expected: ExpectedVersion::Any,
                events: vec![NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    occurred_at: e.occurred_at,
                    data: e.data,
                }],
                meta: CommandMeta {
                    actor: e.actor,
                    correlation_id: e.correlation_id,
                    causation_id: e.causation_id,
                    request_id: e.request_id,
                },
                idempotency: None,
                event_keys: vec![],
            };
            let mut append = to.append(req);
            match append.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(r) => {
                    r?;
                }
                Poll::Pending => pending.push(append),
            }
        }
        for append in pending {
            append.await?;
        }
        bar.set_position(last);
        next = last + 1;
    }
    bar.finish_and_clear();
    anyhow::ensure!(*to.head().borrow() == head, "the copy holds {} events, not {head}", *to.head().borrow());
    Ok(to)
}

/// Raw SQLite inserts of `rows` journal-shaped rows in batches of 5,000 per transaction,
/// with the projections' pragmas: what the disk and SQLite alone allow.
fn raw_inserts(dir: &Path, rows: u64) -> Result<f64> {
    let tmp = tempfile::tempdir_in(dir)?;
    let conn = ledger_projections::runner::open_connection(&tmp.path().join("raw.db"))?;
    conn.execute_batch(
        "CREATE TABLE raw (position INTEGER, seq INTEGER, occurred_at INTEGER, owner TEXT, account TEXT, \
         currency TEXT, side INTEGER, amount TEXT, kind TEXT, PRIMARY KEY (position, seq)) WITHOUT ROWID; \
         CREATE INDEX raw_owner ON raw (owner, occurred_at);",
    )?;
    let started = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st =
                tx.prepare_cached("INSERT INTO raw VALUES (?1, 0, ?2, ?3, ?4, 'CNY', ?5, ?6, 'ConsumptionRecorded')")?;
            for _ in 0..5_000.min(rows - i) {
                let owner = format!("partner:P{:05}", i % 997);
                st.execute(rusqlite::params![
                    i as i64,
                    1_780_000_000_000_000i64 + i as i64,
                    owner,
                    format!("{owner}:rebate"),
                    (i % 2) as i64,
                    format!("{}.{:02}", i % 9_000, i % 100)
                ])?;
                i += 1;
            }
        }
        tx.commit()?;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// Raw batched `INSERT`s of `rows` journal-shaped rows into a table of a new schema on
/// PostgreSQL, 1,000 rows per statement and transaction, one connection: what the server
/// alone does with such rows here. Answers rows/s.
async fn raw_postgres_inserts(url: &str, schema: &str, rows: u64) -> Result<f64> {
    let db = crate::bench_pg::client(url).await?;
    db.batch_execute(&format!(
        "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\"; \
         CREATE TABLE raw (position BIGINT, seq BIGINT, occurred_at BIGINT, owner TEXT COLLATE \"C\", \
         account TEXT COLLATE \"C\", currency TEXT COLLATE \"C\", side BIGINT, amount TEXT COLLATE \"C\", \
         kind TEXT COLLATE \"C\", PRIMARY KEY (position, seq)); CREATE INDEX raw_owner ON raw (owner, occurred_at);"
    ))
    .await?;
    let insert = db
        .prepare(
            "INSERT INTO raw SELECT p, 0, o, w, w || ':rebate', 'CNY', p % 2, a, 'ConsumptionRecorded' \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS t(p, o, w, a)",
        )
        .await?;
    let started = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let n = 1_000.min(rows - i);
        let positions: Vec<i64> = (i..i + n).map(|p| p as i64).collect();
        let times: Vec<i64> = (i..i + n).map(|p| 1_780_000_000_000_000i64 + p as i64).collect();
        let owners: Vec<String> = (i..i + n).map(|p| format!("partner:P{:05}", p % 997)).collect();
        let amounts: Vec<String> = (i..i + n).map(|p| format!("{}.{:02}", p % 9_000, p % 100)).collect();
        db.batch_execute("BEGIN").await?;
        db.execute(&insert, &[&positions, &times, &owners, &amounts]).await?;
        db.batch_execute("COMMIT").await?;
        i += n;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// The table; `postgres`: the rebuild wrote into PostgreSQL and the baseline is its raw
/// batched inserts.
pub fn report(figures: &[ReplayFigure], postgres: bool) -> String {
    let (baseline, memory) = match postgres {
        false => ("raw SQLite inserts/s (same process)", "rebuild process peak RSS MiB"),
        true => ("raw PostgreSQL batched INSERTs/s (same run)", "rebuild process peak RSS MiB"),
    };
    let mut out = format!(
        "| events | rebuild s | events/s | journal rows | {baseline} | rebuild rows/s ÷ raw | {memory} |\n|---|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let rows_per_s = f.journal_rows as f64 / f.seconds;
        out += &format!(
            "| {} | {:.2} | {:.0} | {} | {:.0} | {:.0}% | {:.0} |\n",
            f.events,
            f.seconds,
            f.events as f64 / f.seconds,
            f.journal_rows,
            f.baseline_rows_per_s,
            100.0 * rows_per_s / f.baseline_rows_per_s,
            f.rebuild_peak_mib
        );
    }
    out
}
