//! The runner's guarantees, with a small projection that counts events per stream and sums
//! a number from each payload: rebuilding gives the rows built live; a batch that fails
//! leaves neither rows nor checkpoint behind, so nothing is applied twice or skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::RecordedEvent;
use ledger_projections::runner::{spawn_live, wait_for};
use ledger_projections::{Projection, ProjectionError, Runner};
use ledger_store::conformance::{append_n, Store};
use ledger_store::memory::MemoryStore;
use rusqlite::{params, Transaction};

/// Fails at this position while set (0: never).
static FAIL_AT: AtomicU64 = AtomicU64::new(0);

struct StreamTotals;

impl Projection for StreamTotals {
    fn name(&self) -> &'static str {
        "stream_totals"
    }
    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS stream_totals (stream TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL, last_position INTEGER NOT NULL)"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["stream_totals"]
    }
    fn apply(&mut self, tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let n = serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["n"].as_i64().unwrap();
        tx.execute(
            "INSERT INTO stream_totals (stream, events, total, last_position) VALUES (?1, 1, ?2, ?3) \
             ON CONFLICT (stream) DO UPDATE SET events = events + 1, total = total + ?2, last_position = ?3",
            params![e.stream, n, e.position as i64],
        )?;
        if FAIL_AT.load(Ordering::SeqCst) == e.position {
            return Err(ProjectionError::Decode { position: e.position, reason: "injected failure".into() });
        }
        Ok(())
    }
}

fn rows(runner: &Runner) -> Vec<(String, i64, i64, i64)> {
    let conn = rusqlite::Connection::open(runner.path()).unwrap();
    let mut st =
        conn.prepare("SELECT stream, events, total, last_position FROM stream_totals ORDER BY stream").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_rows_equal_live_rows_and_reads_wait_for_their_position() {
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    let (mut applied, _task) = spawn_live(runner, store.clone());

    for round in 0..5 {
        append_n(&store, &format!("acct-{}", round % 3), 700).await;
        tokio::task::yield_now().await;
    }
    let head = *store.head().borrow();
    assert_eq!(head, 3_500);
    wait_for(&mut applied, head, Duration::from_secs(10)).await.unwrap();
    let err = wait_for(&mut applied, head + 1, Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(err.code(), "PROJECTION_LAGGING");

    // Same file, opened again (the live runner only ever commits whole batches): rebuild.
    let mut again = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    let live = rows(&again);
    assert_eq!(live.iter().map(|r| r.1).sum::<i64>(), 3_500);
    again.reset(&[]).unwrap();
    assert!(rows(&again).is_empty());
    let mut batches = 0;
    again.catch_up(&store, |_| batches += 1).await.unwrap();
    assert_eq!(rows(&again), live);
    assert!(batches >= 1);
    assert_eq!(again.reset(&["nope".to_string()]).unwrap_err().code(), "NOT_FOUND");
}

#[tokio::test]
async fn a_failed_batch_leaves_no_rows_and_no_checkpoint() {
    let store: Store = Arc::new(MemoryStore::new());
    append_n(&store, "acct", 10).await;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    runner.catch_up(&store, |_| {}).await.unwrap();
    assert_eq!(runner.low_water(), 10);

    append_n(&store, "acct", 10).await;
    FAIL_AT.store(15, Ordering::SeqCst);
    let err = runner.catch_up(&store, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("position 15"), "{err}");
    assert_eq!(runner.low_water(), 10);
    assert_eq!(rows(&runner), vec![("acct".to_string(), 10, 45, 10)]);
    drop(runner);

    // After a restart the batch is applied once, from the stored checkpoint.
    FAIL_AT.store(0, Ordering::SeqCst);
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    assert_eq!(runner.checkpoints(), vec![("stream_totals", 10)]);
    runner.catch_up(&store, |_| {}).await.unwrap();
    assert_eq!(rows(&runner), vec![("acct".to_string(), 20, 90, 20)]);
}

/// [`StreamTotals`] with one more column: the same name, another table definition.
struct StreamTotalsV2;

impl Projection for StreamTotalsV2 {
    fn name(&self) -> &'static str {
        "stream_totals"
    }
    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS stream_totals (stream TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL, last_position INTEGER NOT NULL, doubled INTEGER NOT NULL)"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["stream_totals"]
    }
    fn apply(&mut self, tx: &Transaction<'_>, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let n = serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["n"].as_i64().unwrap();
        tx.execute(
            "INSERT INTO stream_totals (stream, events, total, last_position, doubled) VALUES (?1, 1, ?2, ?3, ?4) \
             ON CONFLICT (stream) DO UPDATE SET events = events + 1, total = total + ?2, last_position = ?3, \
             doubled = doubled + ?4",
            params![e.stream, n, e.position as i64, 2 * n],
        )?;
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_whose_table_definition_changed_replays_from_the_start() {
    let store: Store = Arc::new(MemoryStore::new());
    append_n(&store, "acct", 10).await;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    runner.catch_up(&store, |_| {}).await.unwrap();
    drop(runner);
    // The same definition again: the checkpoint holds.
    let runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    assert_eq!(runner.checkpoints(), vec![("stream_totals", 10)]);
    drop(runner);

    // A new column: the old rows are dropped and the log replays into the new table.
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotalsV2)]).unwrap();
    assert_eq!(runner.checkpoints(), vec![("stream_totals", 0)]);
    runner.catch_up(&store, |_| {}).await.unwrap();
    let conn = rusqlite::Connection::open(runner.path()).unwrap();
    let row: (i64, i64, i64) = conn
        .query_row("SELECT events, total, doubled FROM stream_totals", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    assert_eq!(row, (10, 45, 90));
}
