//! Benchmarks on PostgreSQL: durable appends beside raw batched `INSERT`s into the same
//! table (`ledger bench append --store postgres://…`), and `ledger migrate` from an embedded
//! store of N events into PostgreSQL (`ledger bench migrate`), each in schemas of their own
//! made for the run and dropped after it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use ledger_core::envelope::NewEvent;
use ledger_store::sqlite::SqliteStore;
use ledger_store::{AppendRequest, EventKey, EventStore, ExpectedVersion};

/// `url` with `?schema=name` (or `&schema=`).
pub fn with_schema(url: &str, schema: &str) -> String {
    format!("{url}{}schema={schema}", if url.contains('?') { '&' } else { '?' })
}

/// A schema name of this run: `prefix_<pid>_<n>`.
pub fn run_schema(prefix: &str, n: impl std::fmt::Display) -> String {
    format!("{prefix}_{}_{n}", std::process::id())
}

pub async fn client(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    client(url).await?.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await?;
    Ok(())
}

/// The same rows as the append bench, written straight into the store's own `events` table
/// (made by opening the store in `schema`) by one connection, 1,000 rows per `INSERT` and
/// per transaction: what PostgreSQL alone does with this table here. Answers rows/s.
pub async fn raw_postgres_baseline(url: &str, schema: &str, rows: u64) -> Result<f64> {
    ledger_store::postgres::PostgresStore::connect(&with_schema(url, schema)).await?;
    let mut db = client(url).await?;
    db.batch_execute(&format!("SET search_path TO \"{schema}\"")).await?;
    let prepared: Vec<(String, String, String)> = (0..rows)
        .map(|i| {
            let data = ledger_core::envelope::canonical_json(&crate::bench::sample_payload(i));
            (format!("bench-{}", i % 256), uuid::Uuid::now_v7().to_string(), data)
        })
        .collect();
    let hash = vec![7u8; 32];
    let insert = db
        .prepare(
            "INSERT INTO events (position, stream, version, event_id, event_type, schema_version, occurred_at, \
             recorded_at, actor_principal, actor_role, correlation_id, causation_id, request_id, data, prev_hash, hash) \
             SELECT p, s, p, e::uuid, 'ConsumptionRecorded', 1, now(), now(), 'bench', 'system', e::uuid, NULL, NULL, \
             d, $5, $5 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[]) AS t(p, s, e, d)",
        )
        .await?;
    let start = Instant::now();
    for (chunk_no, chunk) in prepared.chunks(1000).enumerate() {
        let positions: Vec<i64> = (0..chunk.len()).map(|k| (chunk_no * 1000 + k) as i64 + 1).collect();
        let streams: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
        let data: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
        let tx = db.transaction().await?;
        tx.execute(&insert, &[&positions, &streams, &ids, &data, &hash]).await?;
        tx.commit().await?;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// Fills an embedded store in `dir` with `events` events of the append bench's payload, a
/// billing line's event key each (what `migrate` carries beside the log), 1,000 per append.
pub async fn fill_embedded(dir: &Path, events: u64) -> Result<()> {
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(dir)?);
    let mut i = 0u64;
    let mut versions = std::collections::HashMap::new();
    while i < events {
        let n = (events - i).min(1000);
        let stream = format!("bench-{}", (i / 1000) % 64);
        let version = versions.entry(stream.clone()).or_insert(0u64);
        let mut batch = Vec::with_capacity(n as usize);
        let mut keys = Vec::with_capacity(n as usize);
        for k in 0..n {
            batch.push(NewEvent::new("ConsumptionRecorded", 1, Utc::now(), &crate::bench::sample_payload(i + k))?);
            keys.push(EventKey { key: format!("consumption:R{:012}", i + k), fingerprint: [1; 32], event: k as usize });
        }
        let appended = store
            .append(AppendRequest {
                stream,
                expected: ExpectedVersion::Exact(*version),
                events: batch,
                meta: crate::bench::bench_meta(),
                idempotency: None,
                event_keys: keys,
            })
            .await?;
        *version = appended.stream_version;
        i += n;
    }
    Ok(())
}

pub struct MigrateFigures {
    pub events: u64,
    pub keys: u64,
    pub copy_secs: f64,
    pub keys_secs: f64,
    pub verify_secs: f64,
    pub raw_rows_per_s: f64,
}

/// `ledger migrate` from an embedded store of `events` events into a fresh PostgreSQL
/// schema, beside raw batched inserts of as many rows into another.
pub async fn migrate_bench(root: &Path, url: &str, events: u64) -> Result<MigrateFigures> {
    let dir = tempfile::Builder::new().prefix("ledger-bench-migrate-").tempdir_in(root)?;
    eprintln!("filling an embedded store with {events} events ...");
    fill_embedded(dir.path(), events).await?;
    let (target, raw) = (run_schema("bench_migrate", events), run_schema("bench_migrate_raw", events));
    let done =
        crate::migrate::migrate(dir.path().to_str().context("a UTF-8 path")?, &with_schema(url, &target), 5_000, false)
            .await;
    let raw_rows_per_s = raw_postgres_baseline(url, &raw, events).await;
    let _ = drop_schema(url, &target).await;
    let _ = drop_schema(url, &raw).await;
    let done = done?;
    Ok(MigrateFigures {
        events: done.copied,
        keys: done.once_only.map_or(0, |(k, _)| k),
        copy_secs: done.copy_secs,
        keys_secs: done.keys_secs,
        verify_secs: done.verify_secs,
        raw_rows_per_s: raw_rows_per_s?,
    })
}

pub fn migrate_report(figures: &[MigrateFigures]) -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = format!(
        "`ledger migrate` from an embedded (SQLite) store into a fresh PostgreSQL schema on the same machine \
         ({cores} cores): events of about 300 payload bytes, each with a billing line's event key. Baseline: raw \
         `INSERT`s of as many rows into the same `events` table, 1,000 rows per statement and transaction, one \
         connection, same run.\n\n| events | keys | copy s | events/s | vs. raw inserts | keys s | verify s | \
         whole migrate events/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for f in figures {
        let rate = f.events as f64 / f.copy_secs.max(1e-9);
        let whole = f.events as f64 / (f.copy_secs + f.keys_secs + f.verify_secs).max(1e-9);
        out += &format!(
            "| {} | {} | {:.2} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.0} |\n",
            f.events,
            f.keys,
            f.copy_secs,
            rate,
            100.0 * rate / f.raw_rows_per_s,
            f.keys_secs,
            f.verify_secs,
            whole
        );
    }
    out
}
