//! Benchmarks are programs: each prints its figures beside a baseline measured in the same
//! run (absolute times on a shared machine mean little; ratios do), and can write them into
//! BENCHMARKS.md between markers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use ledger_core::envelope::{format_time, Actor, CommandMeta, NewEvent, Role};
use ledger_store::sqlite::SqliteStore;
use ledger_store::{AppendRequest, EventStore, ExpectedVersion};
use serde_json::json;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Durable appends/s and latency with 1, 16 and 256 concurrent appenders on the
    /// SQLite store (or PostgreSQL, `--store postgres://…`), beside raw batched inserts of
    /// the same rows into the same table.
    Append {
        /// `postgres://user@host/db`: measure the PostgreSQL store (a schema per level, made
        /// and dropped by the run) instead of SQLite.
        #[arg(long)]
        store: Option<String>,
        /// Concurrency levels to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
        appenders: Vec<usize>,
        /// Seconds to run each level.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Where to put the stores (a temporary directory by default).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also write the figures into this markdown file (e.g. BENCHMARKS.md).
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Load on `ledger serve` over loopback: write commands/s and reads/s with p50/p99 at
    /// N connections, beside /healthz as the baseline.
    Http {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Partners the writes spread over (one incentive stream each).
        #[arg(long, default_value_t = 64)]
        partners: usize,
        /// `postgres://user@host/db`: run the nodes on one PostgreSQL database (a schema made
        /// and dropped by the run) instead of the embedded store.
        #[arg(long)]
        store: Option<String>,
        /// Node counts to measure side by side on `--store` (e.g. 1,2).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        nodes: Vec<usize>,
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Billing batches of 1,000 lines on `ledger serve` (into one partner, and into 1,000
    /// partners) after histories of these sizes (lines), with raw SQLite inserts as the
    /// baseline: lines/s, p50/p99 per batch, peak RSS, WAL size, restart latencies.
    Ingest {
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        history: Vec<usize>,
        /// Partner counts to measure (1: one partner with 100 customers).
        #[arg(long, value_delimiter = ',', default_value = "1,1000")]
        partners: Vec<usize>,
        /// Measured batches per scenario.
        #[arg(long, default_value_t = 50)]
        batches: usize,
        /// Batches in flight at once, each list entry a scenario (1: the feed waits for each
        /// answer before it sends the next batch; more: a feed that sends in parallel).
        #[arg(long, value_delimiter = ',', default_value = "1")]
        senders: Vec<usize>,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// `ledger migrate` from embedded stores of these sizes (events) into PostgreSQL: events/s
    /// beside raw batched inserts of as many rows into the same table.
    Migrate {
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        events: Vec<u64>,
        /// The PostgreSQL server (`postgres://user@host/db`); schemas are made and dropped.
        #[arg(long, env = "LEDGER_BENCH_POSTGRES")]
        to: String,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// Relay throughput to librdkafka's mock cluster beside the raw producer.
    Relay(ledger_bus::cli::BenchRelayArgs),
    /// Rebuild every projection over generated histories of these sizes (events), with
    /// raw SQLite inserts as the baseline and the peak memory.
    Replay {
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        events: Vec<u64>,
        /// `postgres://user@host/db`: rebuild into PostgreSQL read models (a schema made and
        /// dropped by the run), beside raw batched `INSERT`s of journal rows there.
        #[arg(long)]
        readmodels: Option<String>,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Append { appenders, seconds, dir, markdown, store } => {
            anyhow::ensure!(
                !appenders.is_empty() && appenders.iter().all(|&a| (1..=4096).contains(&a)),
                "--appenders takes 1 to 4096"
            );
            anyhow::ensure!((1..=600).contains(&seconds), "--seconds takes 1 to 600");
            let tmp =
                tempfile::Builder::new().prefix("ledger-bench-").tempdir_in(dir.unwrap_or_else(std::env::temp_dir))?;
            let (report, section) = match store {
                None => (append_bench(tmp.path(), &appenders, Duration::from_secs(seconds))?, "append"),
                Some(url) => {
                    (append_bench_postgres(&url, &appenders, Duration::from_secs(seconds))?, "append-postgres")
                }
            };
            println!("{report}");
            if let Some(path) = markdown {
                write_section(&path, section, &report)?;
                eprintln!("wrote the figures into {}", path.display());
            }
            Ok(())
        }
        Command::Http { connections, seconds, partners, store, nodes, markdown } => {
            anyhow::ensure!(
                (1..=1024).contains(&connections) && (1..=600).contains(&seconds) && (1..=10_000).contains(&partners),
                "limits: connections 1..=1024, seconds 1..=600, partners 1..=10000"
            );
            anyhow::ensure!(
                nodes.iter().all(|&n| (1..=8).contains(&n)) && (store.is_some() || nodes == [1]),
                "--nodes takes 1 to 8, and more than one needs --store postgres://…"
            );
            let (report, section) = match store {
                None => {
                    let phases = crate::bench_http::run(connections, seconds, partners)?;
                    (crate::bench_http::report(&phases, connections), "http")
                }
                Some(url) => {
                    let mut runs = vec![];
                    for &n in &nodes {
                        let phases = crate::bench_http::run_nodes(connections, seconds, partners, Some(&url), n)?;
                        for p in &phases {
                            eprintln!("{n} node(s), {}: {:.0}/s", p.name, p.per_second);
                        }
                        runs.push((n, phases));
                    }
                    (crate::bench_http::report_nodes(&runs, connections), "http-nodes")
                }
            };
            println!("{report}");
            if let Some(path) = markdown {
                write_section(&path, section, &report)?;
            }
            Ok(())
        }
        Command::Ingest { history, partners, batches, senders, dir, markdown } => {
            anyhow::ensure!(
                history.iter().all(|&h| (6_000..=10_000_000).contains(&h))
                    && partners.iter().all(|&p| (1..=10_000).contains(&p))
                    && (1..=10_000).contains(&batches)
                    && senders.iter().all(|&s| (1..=64).contains(&s)),
                "limits: history 6000..=10000000, partners 1..=10000, batches 1..=10000, senders 1..=64"
            );
            let root = dir.unwrap_or_else(std::env::temp_dir);
            let mut figures = vec![];
            for &p in &partners {
                for &s in &senders {
                    for &h in &history {
                        let f = crate::bench_ingest::scenario(&root, p, h, batches, s)?;
                        eprintln!("{p} partners, {s} senders, {h} lines of history: {:.0} lines/s", f.lines_per_s);
                        figures.push(f);
                    }
                }
            }
            let raw_dir = tempfile::Builder::new().prefix("ledger-raw-").tempdir_in(&root)?;
            let raw = raw_sqlite_baseline(raw_dir.path(), (batches as u64 * 1_000).max(100_000))?;
            let report = crate::bench_ingest::report(&figures, raw);
            println!("{report}");
            if let Some(path) = markdown {
                write_section(&path, "ingest", &report)?;
            }
            Ok(())
        }
        Command::Relay(args) => tokio::runtime::Runtime::new()?.block_on(args.run()),
        Command::Migrate { events, to, dir, markdown } => {
            anyhow::ensure!(
                events.iter().all(|&e| (1_000..=10_000_000).contains(&e)),
                "--events takes 1000 to 10000000"
            );
            let root = dir.unwrap_or_else(std::env::temp_dir);
            let rt = tokio::runtime::Runtime::new()?;
            let mut figures = vec![];
            for n in events {
                let f = rt.block_on(crate::bench_pg::migrate_bench(&root, &to, n))?;
                eprintln!(
                    "{n} events migrated in {:.2} s ({:.0} events/s)",
                    f.copy_secs,
                    f.events as f64 / f.copy_secs
                );
                figures.push(f);
            }
            let report = crate::bench_pg::migrate_report(&figures);
            println!("{report}");
            if let Some(path) = markdown {
                write_section(&path, "migrate", &report)?;
            }
            Ok(())
        }
        Command::Replay { events, readmodels, dir, markdown } => {
            anyhow::ensure!(
                events.iter().all(|&e| (1_000..=20_000_000).contains(&e)),
                "--events takes 1000 to 20000000"
            );
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let rt = tokio::runtime::Runtime::new()?;
            let mut figures = vec![];
            for n in events {
                let f = rt.block_on(crate::bench_replay::replay_bench(&dir, n, readmodels.as_deref()))?;
                eprintln!(
                    "{} events replayed in {:.2} s ({:.0} events/s)",
                    f.events,
                    f.seconds,
                    f.events as f64 / f.seconds
                );
                figures.push(f);
            }
            let report = crate::bench_replay::report(&figures, readmodels.is_some());
            println!("{report}");
            if let Some(path) = markdown {
                write_section(&path, if readmodels.is_some() { "replay-postgres" } else { "replay" }, &report)?;
            }
            Ok(())
        }
    }
}

/// An event payload of about 300 bytes, shaped like a consumption line.
pub fn sample_payload(i: u64) -> serde_json::Value {
    json!({
        "record_id": format!("R{i:012}"),
        "partner_id": format!("P{:06}", i % 997),
        "customer_id": format!("C{:08}", i % 100_003),
        "product": "ecs.g6.large",
        "amount": {"amount": format!("{}.{:02}", 100 + i % 9_000, i % 100), "currency": "CNY"},
        "consumed_at": "2026-07-14T03:12:45.123456Z",
        "settled_at": "2026-08-02T01:00:00.000000Z",
        "incentive_month": "2026-07",
        "rate": "0.035",
        "remark": "monthly compute consumption",
    })
}

pub fn bench_meta() -> CommandMeta {
    meta()
}

fn meta() -> CommandMeta {
    CommandMeta::new(Actor { principal: "bench".into(), role: Role::System })
}

struct Level {
    appenders: usize,
    events: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// The table both append benchmarks print: one row per level of appenders, as a ratio to the
/// same run's baseline.
fn level_rows(results: &[Level], baseline: f64, against: &str) -> String {
    let mut out = format!("| appenders | events | events/s | p50 latency | p99 latency | vs. {against} |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for l in results {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.0}% |\n",
            l.appenders,
            l.events,
            l.per_sec,
            l.p50_ms,
            l.p99_ms,
            100.0 * l.per_sec / baseline
        ));
    }
    out
}

fn append_bench(dir: &Path, levels: &[usize], duration: Duration) -> Result<String> {
    let payload_len = ledger_core::envelope::canonical_json(&sample_payload(1)).len();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = vec![];
    for &appenders in levels {
        let store_dir = dir.join(format!("appenders-{appenders}"));
        let level = rt.block_on(run_level(&store_dir, appenders, duration))?;
        eprintln!(
            "{appenders:>4} appenders: {:>9.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
            level.per_sec, level.p50_ms, level.p99_ms
        );
        results.push(level);
    }
    let rows = results.iter().map(|l| l.events).max().unwrap_or(10_000).clamp(10_000, 2_000_000);
    eprintln!("baseline: {rows} raw SQLite inserts in transactions of 1000 rows...");
    let baseline = raw_sqlite_baseline(&dir.join("baseline"), rows)?;
    eprintln!("baseline: {baseline:.0} rows/s");

    let mut out = String::new();
    out.push_str(&format!(
        "Durable appends on the SQLite store (WAL, synchronous=FULL, group commit), one event of {payload_len} \
         payload bytes per append, {}s per level, {} cores. Baseline: raw SQLite inserts of the same rows \
         into the same table, 1000 rows per transaction, same pragmas, one thread, same run.\n\n",
        duration.as_secs(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    ));
    out.push_str(&level_rows(&results, baseline, "raw SQLite"));
    out.push_str(&format!("| raw SQLite baseline | {rows} | {baseline:.0} | | | 100% |\n"));
    Ok(out)
}

async fn run_level(dir: &Path, appenders: usize, duration: Duration) -> Result<Level> {
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir)?);
    run_level_on(store, appenders, duration).await
}

async fn run_level_on(store: Arc<dyn EventStore>, appenders: usize, duration: Duration) -> Result<Level> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{t}");
                let mut latencies = Vec::with_capacity(4096);
                let mut version = 0u64;
                while Instant::now() < deadline {
                    let i = (t as u64) << 32 | version;
                    let event = NewEvent::new("ConsumptionRecorded", 1, Utc::now(), &sample_payload(i))?;
                    let req = AppendRequest {
                        stream: stream.clone(),
                        expected: ExpectedVersion::Exact(version),
                        events: vec![event],
                        meta: meta(),
                        idempotency: None,
                        event_keys: vec![],
                    };
                    let sent = Instant::now();
                    version = store.append(req).await?.stream_version;
                    latencies.push(sent.elapsed().as_micros() as u32);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = vec![];
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: usize| latencies.get(latencies.len() * p / 100).copied().unwrap_or(0) as f64 / 1000.0;
    let events = latencies.len() as u64;
    Ok(Level { appenders, events, per_sec: events as f64 / elapsed.as_secs_f64(), p50_ms: pct(50), p99_ms: pct(99) })
}

/// The append bench on the PostgreSQL store at `url`: each level in a fresh schema, then the
/// raw baseline ([`crate::bench_pg::raw_postgres_baseline`]) in another; all dropped after.
fn append_bench_postgres(url: &str, levels: &[usize], duration: Duration) -> Result<String> {
    let payload_len = ledger_core::envelope::canonical_json(&sample_payload(1)).len();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = vec![];
    for &appenders in levels {
        let schema = crate::bench_pg::run_schema("bench_append", appenders);
        let level = rt.block_on(async {
            let store: Arc<dyn EventStore> = Arc::new(
                ledger_store::postgres::PostgresStore::connect(&crate::bench_pg::with_schema(url, &schema)).await?,
            );
            let level = run_level_on(store, appenders, duration).await;
            crate::bench_pg::drop_schema(url, &schema).await?;
            level
        })?;
        eprintln!(
            "{appenders:>4} appenders: {:>9.0} events/s, p50 {:.2} ms, p99 {:.2} ms",
            level.per_sec, level.p50_ms, level.p99_ms
        );
        results.push(level);
    }
    let rows = results.iter().map(|l| l.events).max().unwrap_or(10_000).clamp(10_000, 1_000_000);
    eprintln!("baseline: {rows} raw INSERTs, 1000 rows per statement and transaction...");
    let schema = crate::bench_pg::run_schema("bench_append_raw", rows);
    let baseline = rt.block_on(async {
        let b = crate::bench_pg::raw_postgres_baseline(url, &schema, rows).await;
        crate::bench_pg::drop_schema(url, &schema).await?;
        b
    })?;
    eprintln!("baseline: {baseline:.0} rows/s");
    let mut out = format!(
        "Durable appends on the PostgreSQL store (one server on the same machine, group commit: one transaction \
         and one binary `COPY` of its events per group), one event of {payload_len} payload bytes per append, \
         {}s per level, {} cores shared by the server, the appenders and the baseline. Baseline: raw batched \
         `INSERT`s of the same rows into the same `events` table, 1,000 rows per statement and transaction, one \
         connection, same run.\n\n",
        duration.as_secs(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    out.push_str(&level_rows(&results, baseline, "raw INSERTs"));
    out.push_str(&format!("| raw batched INSERTs | {rows} | {baseline:.0} | | | 100% |\n"));
    Ok(out)
}

/// The same rows, written straight into the same table: what SQLite alone can do.
fn raw_sqlite_baseline(dir: &Path, rows: u64) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let conn = ledger_store::sqlite::open_connection(&dir.join("baseline.db"))?;
    conn.execute_batch(ledger_store::sqlite::SCHEMA)?;
    let now = format_time(Utc::now());
    let prepared: Vec<(String, String, String)> = (0..rows)
        .map(|i| {
            let data = ledger_core::envelope::canonical_json(&sample_payload(i));
            (format!("bench-{}", i % 256), uuid::Uuid::now_v7().to_string(), data)
        })
        .collect();
    let hash = [7u8; 32];
    let start = Instant::now();
    for (chunk_no, chunk) in prepared.chunks(1000).enumerate() {
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, occurred_at, \
                 recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, data, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, 'ConsumptionRecorded', 1, ?5, ?5, 'bench', 'system', ?4, NULL, NULL, ?6, ?7, ?7)",
            )?;
            for (k, (stream, id, data)) in chunk.iter().enumerate() {
                let pos = (chunk_no * 1000 + k) as i64 + 1;
                st.execute(rusqlite::params![pos, stream, pos, id, now, data, &hash[..]])?;
            }
        }
        tx.commit()?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// Replaces (or appends) the section between `<!-- bench:NAME -->` markers.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let begin = format!("<!-- bench:{name}:begin -->");
    let end = format!("<!-- bench:{name}:end -->");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let section = format!(
        "{begin}\nMeasured {} with `ledger {}`:\n\n{body}{end}",
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        args.join(" ")
    );
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if e > b => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec}, eta {eta})")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar
}
