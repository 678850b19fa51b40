//! The runner's guarantees, with a small projection that counts events per stream and sums
//! a number from each payload: rebuilding gives the rows built live; a batch that fails
//! leaves neither rows nor checkpoint behind, so nothing is applied twice or skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::RecordedEvent;
use ledger_projections::runner::{open_reader, spawn_live};
use ledger_projections::sql::{params, Db};
use ledger_projections::{Projection, ProjectionError, ReadModels, Runner};
use ledger_store::conformance::{append_n, Store};
use ledger_store::memory::MemoryStore;

mod pg;

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
    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let n = serde_json::from_str::<serde_json::Value>(&e.data).unwrap()["n"].as_i64().unwrap();
        tx.execute(
            "INSERT INTO stream_totals (stream, events, total, last_position) VALUES (?1, 1, ?2, ?3) \
             ON CONFLICT (stream) DO UPDATE SET events = stream_totals.events + 1, total = stream_totals.total + ?2, \
             last_position = ?3",
            params![e.stream, n, e.position as i64],
        )?;
        if FAIL_AT.load(Ordering::SeqCst) == e.position {
            return Err(ProjectionError::Decode { position: e.position, reason: "injected failure".into() });
        }
        Ok(())
    }
}

fn rows(runner: &Runner) -> Vec<(String, i64, i64, i64)> {
    runner
        .db()
        .query_map("SELECT stream, events, total, last_position FROM stream_totals ORDER BY stream", params![], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_rows_equal_live_rows_and_reads_wait_for_their_position() {
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    let (applied, _task) = spawn_live(runner, store.clone());

    for round in 0..5 {
        append_n(&store, &format!("acct-{}", round % 3), 700).await;
        tokio::task::yield_now().await;
    }
    let head = *store.head().borrow();
    assert_eq!(head, 3_500);
    applied.wait_for(head, Duration::from_secs(10)).await.unwrap();
    let err = applied.wait_for(head + 1, Duration::from_millis(50)).await.unwrap_err();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_no_rows_and_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    a_failed_batch_leaves_nothing(&ReadModels::Dir(dir.path().to_path_buf())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_no_rows_and_no_checkpoint_on_postgres() {
    let schema = pg::fresh("failed_batch");
    a_failed_batch_leaves_nothing(&schema.models).await;
}

/// FAIL_AT is global: the two backends' runs take turns.
static FAILING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn a_failed_batch_leaves_nothing(models: &ReadModels) {
    let _turn = FAILING.lock().await;
    let store: Store = Arc::new(MemoryStore::new());
    append_n(&store, "acct", 10).await;
    let mut runner = Runner::open_models(models, vec![Box::new(StreamTotals)]).unwrap();
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
    let mut runner = Runner::open_models(models, vec![Box::new(StreamTotals)]).unwrap();
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
    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
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

/// Waits (up to 10 s) until `runner` takes the lead: the server lets go of a closed
/// session's locks a moment after the connection ends.
async fn lead(runner: &mut Runner) {
    for _ in 0..200 {
        if runner.try_lead().unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no lead after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shared_read_models_one_runner_applies_the_other_follows_and_takes_over_from_the_stored_checkpoint() {
    let schema = pg::fresh("lead");
    let store: Store = Arc::new(MemoryStore::new());
    append_n(&store, "acct", 10).await;
    let mut a = Runner::open_models(&schema.models, vec![Box::new(StreamTotals)]).unwrap();
    let mut b = Runner::open_models(&schema.models, vec![Box::new(StreamTotals)]).unwrap();
    assert!(a.try_lead().unwrap());
    assert!(!b.try_lead().unwrap(), "one node leads at a time");
    assert_eq!(a.catch_up(&store, |_| {}).await.unwrap(), 10);
    // The follower applies nothing, and learns how far the leader went.
    assert_eq!(b.catch_up(&store, |_| {}).await.unwrap(), 0);
    let events = store.read_all(1, 100).await.unwrap();
    assert_eq!(
        b.apply_batch(&events).unwrap_err().to_string(),
        ProjectionError::Superseded { projection: "all" }.to_string()
    );
    let mut seen = b.applied();
    b.follow().unwrap();
    assert_eq!(*seen.borrow_and_update(), 10);

    // The leader goes (its connection with it); the follower takes over where it stopped.
    append_n(&store, "acct", 10).await;
    drop(a);
    lead(&mut b).await;
    assert_eq!(b.low_water(), 10, "from the stored checkpoint");
    assert_eq!(b.catch_up(&store, |_| {}).await.unwrap(), 10);
    assert_eq!(rows(&b), vec![("acct".to_string(), 20, 90, 20)], "each event applied once");

    // Fencing: a checkpoint another process moved makes the batch refuse, with nothing
    // written, and the runner steps back to the stored checkpoint.
    append_n(&store, "acct", 5).await;
    b.db().execute("UPDATE checkpoints SET position = 22 WHERE projection = ?1", params!["stream_totals"]).unwrap();
    let more = store.read_all(21, 100).await.unwrap();
    let err = b.apply_batch(&more).unwrap_err();
    assert!(matches!(err, ProjectionError::Superseded { .. }), "{err}");
    assert_eq!(rows(&b), vec![("acct".to_string(), 20, 90, 20)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_runners_on_shared_read_models_hand_over_when_the_leader_stops() {
    let schema = pg::fresh("live");
    let store: Store = Arc::new(MemoryStore::new());
    let a = Runner::open_models(&schema.models, vec![Box::new(StreamTotals)]).unwrap();
    let (a_applied, a_task) = spawn_live(a, store.clone());
    append_n(&store, "acct-1", 300).await;
    a_applied.wait_for(300, Duration::from_secs(10)).await.unwrap();
    let b = Runner::open_models(&schema.models, vec![Box::new(StreamTotals)]).unwrap();
    let (b_applied, _b_task) = spawn_live(b, store.clone());
    // b follows a: a read on b waiting for a position a applied is answered.
    b_applied.wait_for(300, Duration::from_secs(10)).await.unwrap();

    a_task.abort();
    append_n(&store, "acct-2", 300).await;
    b_applied.wait_for(600, Duration::from_secs(20)).await.unwrap();
    let check = Runner::open_models(&schema.models, vec![Box::new(StreamTotals)]).unwrap();
    let totals: i64 = rows(&check).iter().map(|r| r.1).sum();
    assert_eq!(totals, 600, "every event applied once across the hand-over");
}

/// What [`Pipelined`] writes at `BAD_AT`: 0 nothing wrong, 1 a value the driver cannot send
/// (text into an integer column), 2 a row the server refuses (NULL into NOT NULL).
static BAD_KIND: AtomicU64 = AtomicU64::new(0);
static BAD_AT: AtomicU64 = AtomicU64::new(0);

/// One row per event through [`Db::write`] (queued and pipelined on PostgreSQL).
struct Pipelined;

impl Projection for Pipelined {
    fn name(&self) -> &'static str {
        "pipelined"
    }
    fn schema(&self) -> &'static str {
        "CREATE TABLE IF NOT EXISTS pipelined (position INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["pipelined"]
    }
    fn apply(&mut self, tx: &dyn Db, e: &RecordedEvent) -> Result<(), ProjectionError> {
        let sql = "INSERT INTO pipelined (position, n) VALUES (?1, ?2)";
        match (BAD_AT.load(Ordering::SeqCst) == e.position, BAD_KIND.load(Ordering::SeqCst)) {
            (true, 1) => tx.write(sql, params![e.position as i64, "not a number"]),
            (true, 2) => tx.write(sql, params![e.position as i64, None::<i64>]),
            _ => tx.write(sql, params![e.position as i64, e.position as i64]),
        }
    }
}

/// Queued writes are sent before the COMMIT and their failure, whether the driver or the
/// server refuses a row, rolls the whole batch back and names the projection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipelined_write_rolls_its_batch_back_on_postgres() {
    let schema = pg::fresh("pipelined");
    let store: Store = Arc::new(MemoryStore::new());
    append_n(&store, "acct", 3_000).await;
    let mut runner = Runner::open_models(&schema.models, vec![Box::new(Pipelined)]).unwrap();
    runner.catch_up(&store, |_| {}).await.unwrap();
    let count = |runner: &Runner| -> i64 {
        runner.db().query_row("SELECT count(*) FROM pipelined", params![], |r| r.get(0)).unwrap().unwrap()
    };
    assert_eq!(count(&runner), 3_000);

    for kind in [1, 2] {
        append_n(&store, "acct", 2_500).await;
        let head = *store.head().borrow();
        BAD_KIND.store(kind, Ordering::SeqCst);
        BAD_AT.store(head - 10, Ordering::SeqCst);
        let err = runner.catch_up(&store, |_| {}).await.unwrap_err();
        assert!(err.to_string().contains("pipelined"), "{err}");
        assert_eq!(runner.low_water(), head - 2_500, "kind {kind}");
        assert_eq!(count(&runner), (head - 2_500) as i64, "kind {kind}: nothing of the batch stays");
        BAD_AT.store(0, Ordering::SeqCst);
        runner.catch_up(&store, |_| {}).await.unwrap();
        assert_eq!(count(&runner), head as i64);
    }
}

/// Live, the read models' WAL is copied back into the database by a thread of its own
/// (not inside the runner's commits, which leave it alone): the database file takes the
/// rows soon after they are applied, while the runner goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_read_models_wal_is_copied_back_beside_the_runner() {
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    let file = dir.path().join(ledger_projections::runner::DB_FILE);
    let (applied, _task) = spawn_live(runner, store.clone());
    let before = std::fs::metadata(&file).unwrap().len();
    for round in 0..40 {
        append_n(&store, &format!("acct-{round}"), 50).await;
    }
    applied.wait_for(2_000, Duration::from_secs(10)).await.unwrap();
    let copied = async {
        while std::fs::metadata(&file).unwrap().len() <= before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(ledger_projections::runner::LIVE_CHECKPOINT_EVERY * 20, copied)
        .await
        .expect("the rows reach the database file");
    let wal = std::fs::metadata(dir.path().join(format!("{}-wal", ledger_projections::runner::DB_FILE))).unwrap();
    assert!(wal.len() < ledger_projections::runner::LIVE_WAL_LIMIT as u64);
}

/// At a clean shutdown the read models' WAL is copied back and cut to nothing, so the next
/// start does not read it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_leaves_the_read_models_wal_empty() {
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    let (applied, task) = spawn_live(runner, store.clone());
    append_n(&store, "acct", 500).await;
    applied.wait_for(500, Duration::from_secs(10)).await.unwrap();
    task.abort();
    // The runner is gone once its progress can no longer change.
    let mut watch = applied.watch();
    while watch.changed().await.is_ok() {}
    let wal = dir.path().join(format!("{}-wal", ledger_projections::runner::DB_FILE));
    assert!(std::fs::metadata(&wal).unwrap().len() > 0, "the applied rows are in the WAL");
    ledger_projections::runner::checkpoint_at_close(&ReadModels::Dir(dir.path().to_path_buf()));
    assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    let again = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    assert_eq!(rows(&again).iter().map(|r| r.1).sum::<i64>(), 500, "nothing lost");
}

/// The live runner holds batches in one open transaction (a row several batches change is
/// written once), invisible to readers until it commits; a read waiting for a position in
/// it makes the commit due at once, one waiting beyond it does not. A failure rolls back every batch of the transaction,
/// and they are applied again, each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_held_open_are_committed_when_a_read_waits_and_rolled_back_together() {
    let _turn = FAILING.lock().await;
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    // Never due by time in this test: only a waiting read commits.
    runner.set_group_commit_every(Duration::from_secs(3600));
    let progress = runner.progress();
    append_n(&store, "acct", 40).await;
    let events = store.read_all(1, 100).await.unwrap();
    let reader = open_reader(dir.path()).unwrap();
    let seen =
        || -> i64 { reader.query_row("SELECT COALESCE(SUM(events), 0) FROM stream_totals", [], |r| r.get(0)).unwrap() };

    assert!(!runner.apply_grouped(&events[..10]).unwrap(), "held open");
    assert!(!runner.apply_grouped(&events[10..20]).unwrap(), "held open");
    assert_eq!((progress.applied(), seen()), (0, 0), "nothing committed yet");
    assert_eq!(runner.low_water(), 0, "the committed checkpoint");
    assert!(runner.commit_due().unwrap() > Instant::now() + Duration::from_secs(60));

    let wait = |position: u64| {
        let progress = progress.clone();
        tokio::spawn(async move { progress.wait_for(position, Duration::from_secs(30)).await })
    };
    // A read waiting for a position beyond what is applied does not hurry the commit...
    let far = wait(1_000_000);
    while runner.waiting_for() != [1_000_000] {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(runner.commit_due().unwrap() > Instant::now() + Duration::from_secs(60));
    // ...one waiting for a position the open transaction holds makes it due at once.
    let near = wait(15);
    while runner.waiting_for() != [15, 1_000_000] {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(runner.commit_due().unwrap() <= Instant::now(), "a read waits: due now");
    runner.commit_open().unwrap();
    near.await.unwrap().unwrap();
    while runner.waiting_for() != [1_000_000] {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    far.abort();
    let _ = far.await;
    assert_eq!(runner.waiting_for(), Vec::<u64>::new(), "a read that ends gives up its place");
    assert_eq!((progress.applied(), seen()), (20, 20));
    assert_eq!(runner.commit_due(), None, "nothing open");

    // Two more batches held open, the second fails: both go back.
    assert!(!runner.apply_grouped(&events[20..30]).unwrap());
    FAIL_AT.store(35, Ordering::SeqCst);
    let err = runner.apply_grouped(&events[30..40]).unwrap_err();
    FAIL_AT.store(0, Ordering::SeqCst);
    assert!(err.to_string().contains("position 35"), "{err}");
    assert_eq!((runner.low_water(), progress.applied(), seen()), (20, 20, 20));
    assert_eq!(runner.commit_due(), None, "rolled back");
    runner.apply_batch(&events[20..40]).unwrap();
    assert_eq!(rows(&runner), vec![("acct".to_string(), 40, 780, 40)], "each event applied once");
}

/// Live, a read naming a position is answered as soon as the runner has applied it, even
/// when the runner would otherwise hold its batches open for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waiting_for_a_position_is_answered_without_waiting_for_the_group_commit() {
    let store: Store = Arc::new(MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::open(dir.path(), vec![Box::new(StreamTotals)]).unwrap();
    runner.set_group_commit_every(Duration::from_secs(3600));
    let (progress, _task) = spawn_live(runner, store.clone());
    for round in 1..=3u64 {
        append_n(&store, "acct", 100).await;
        progress.wait_for(round * 100, Duration::from_secs(30)).await.unwrap();
        let reader = open_reader(dir.path()).unwrap();
        let events: i64 = reader.query_row("SELECT events FROM stream_totals", [], |r| r.get(0)).unwrap();
        assert_eq!(events as u64, round * 100, "committed, so other connections read it");
    }
}
