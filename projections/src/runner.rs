//! The projection runner: follows the global log from each projection's checkpoint and
//! applies events in batches. Each transaction (a batch, or live several batches: see
//! [`GROUP_COMMIT_EVERY`]) holds the projection's rows *and* its checkpoint, so a crash at
//! any point neither skips an event nor applies one twice. Rebuilding drops a projection's
//! tables and replays from position 1; the rows are the same as those built live, because
//! both run the same `apply` in the same order.
//!
//! The read models live in a directory of this node's own (SQLite, `projections.db`) or in
//! a PostgreSQL schema that every node shares ([`ReadModels`]). Shared read models are
//! applied by one node at a time: the one holding a session advisory lock of the schema
//! (given up with its connection, so a node that dies hands over at once); the others
//! follow the checkpoints it commits, so a read waiting for a `min_position` is answered on
//! any node. Each batch also locks the checkpoint rows and checks they are still where this
//! node left them, so even two nodes that both believed they led could not apply an event
//! twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::RecordedEvent;
use ledger_store::{subscribe_all, EventStore};
use rusqlite::Connection;
use tokio::sync::watch;

use crate::sql::{params, Db, PgDb, PgTarget};
use crate::ProjectionError;

pub const DB_FILE: &str = "projections.db";
/// Events applied per transaction.
pub const BATCH: usize = 5_000;
/// Events applied per transaction while catching up (a rebuild): fewer, larger commits, so a
/// page many rows touch is written once per batch.
pub const CATCH_UP_BATCH: usize = 20_000;
/// WAL pages before SQLite copies them back into the database, while catching up (default
/// 1,000): a rebuild writes far more than live processing, and each copy ends in an fsync.
const CATCH_UP_WAL_PAGES: u32 = 20_000;
/// While live, the WAL of SQLite read models is copied back by a thread of its own this
/// often (when anything was applied), instead of inside a commit every 1,000 pages: a
/// batch into 1,000 partners dirties a few pages of each, the same pages batch after batch,
/// and a copy made less often writes each of them once for several batches (the copy inside
/// the commit was a ninth of the server's time in `ledger bench ingest --partners 1000`).
pub const LIVE_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Past this size the checkpoint waits briefly for readers and cuts the WAL back to nothing.
pub const LIVE_WAL_LIMIT: i64 = 64 * 1024 * 1024;
/// How often a node that does not apply shared read models reads their checkpoints (what a
/// read waiting for a `min_position` waits on) and tries to take the lead.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(25);
/// While live and under a steady stream of batches, the transaction applying them is
/// committed at most this often (unless a read waits for a position in it, then at once):
/// a billing batch into 1,000 partners dirties a page of each in `incentive_details` and
/// `incentive_months`, the same pages batch after batch, and one commit for several batches
/// writes each to the WAL once (the commits were a third of the projections' time in
/// `ledger bench ingest --partners 1000`). After a quiet spell the first batch commits at
/// once, so a single write is seen as soon as before.
pub const GROUP_COMMIT_EVERY: Duration = Duration::from_millis(100);
/// The first key of the advisory lock that elects the applying node; the second is the
/// hash of the schema's name.
pub const LEAD_LOCK_CLASS: i32 = 0x1ed9;

/// One read model. `apply` must be deterministic: the same events in the same order give
/// the same rows.
pub trait Projection: Send {
    /// Stable name: the checkpoint key and the `--only` argument.
    fn name(&self) -> &'static str;
    /// `CREATE TABLE IF NOT EXISTS ...` for its tables, in the SQL of [`crate::sql`].
    fn schema(&self) -> &'static str;
    /// Its tables, dropped on rebuild.
    fn tables(&self) -> &'static [&'static str];
    /// Applies one event inside the batch's transaction.
    fn apply(&mut self, tx: &dyn Db, event: &RecordedEvent) -> Result<(), ProjectionError>;
    /// Called once a batch's events are applied, in the batch's transaction before the
    /// checkpoint: a projection that keeps changed rows in memory writes them here.
    fn flush(&mut self, _tx: &dyn Db) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Called after each batch commits or rolls back: drop any in-memory cache that might
    /// now disagree with the tables.
    fn reset_cache(&mut self) {}
}

/// Where the read models live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadModels {
    /// `<dir>/projections.db`, this node's own.
    Dir(PathBuf),
    /// A PostgreSQL schema every node shares.
    Postgres(PgTarget),
}

impl ReadModels {
    /// `--readmodels`: a directory, or `postgres://…[?schema=name]` (default schema
    /// [`crate::sql::DEFAULT_SCHEMA`]).
    pub fn parse(spec: &str) -> Result<ReadModels, ProjectionError> {
        let spec = spec.trim();
        match spec.split_once("://") {
            None if !spec.is_empty() => Ok(ReadModels::Dir(PathBuf::from(spec))),
            Some(("postgres" | "postgresql", _)) => {
                Ok(ReadModels::Postgres(PgTarget::parse(spec, crate::sql::DEFAULT_SCHEMA)?))
            }
            Some(("sqlite", dir)) if !dir.is_empty() => Ok(ReadModels::Dir(PathBuf::from(dir))),
            _ => Err(ProjectionError::Config(format!(
                "--readmodels {spec:?}: use a directory or postgres://user@host/db[?schema=name]"
            ))),
        }
    }

    /// Where the read models go when `--readmodels` is not given: on a PostgreSQL store, the
    /// same database, in the schema `<store schema>_readmodels` (`ledger_readmodels` for a
    /// store without one); otherwise SQLite in `data`.
    pub fn default_for(store: Option<&str>, data: &Path) -> Result<ReadModels, ProjectionError> {
        let Some(spec) = store.map(str::trim) else { return Ok(ReadModels::Dir(data.to_path_buf())) };
        let is_postgres = spec.starts_with("postgres://") || spec.starts_with("postgresql://");
        if !is_postgres {
            return Ok(ReadModels::Dir(data.to_path_buf()));
        }
        let store = PgTarget::parse(spec, "ledger")?;
        let schema = if store.schema == "ledger" && !spec.contains("schema=") {
            crate::sql::DEFAULT_SCHEMA.to_string()
        } else {
            format!("{}_readmodels", store.schema)
        };
        Ok(ReadModels::Postgres(PgTarget::parse(&format!("{}{}schema={schema}", store.url, sep(&store.url)), "")?))
    }

    /// Whether several nodes may share them (one applies, the others follow).
    pub fn shared(&self) -> bool {
        matches!(self, ReadModels::Postgres(_))
    }

    /// For logs: the directory, or the server and schema without credentials.
    pub fn describe(&self) -> String {
        match self {
            ReadModels::Dir(d) => d.join(DB_FILE).display().to_string(),
            ReadModels::Postgres(t) => {
                let host = t.url.split_once('@').map_or(t.url.as_str(), |(_, h)| h);
                format!("postgres {host}, schema {}", t.schema)
            }
        }
    }

    /// The connection that applies batches.
    fn writer(&self) -> Result<Conn, ProjectionError> {
        match self {
            ReadModels::Dir(dir) => {
                std::fs::create_dir_all(dir)?;
                let conn = open_connection(&dir.join(DB_FILE))?;
                conn.set_prepared_statement_cache_capacity(64);
                Ok(Conn::Lite(conn))
            }
            ReadModels::Postgres(t) => {
                Ok(Conn::Pg(PgDb::connect(t, &format!("ledger-projections-{}", std::process::id()))?))
            }
        }
    }

    /// A connection for queries.
    pub fn reader(&self) -> Result<Conn, ProjectionError> {
        match self {
            ReadModels::Dir(dir) => Ok(Conn::Lite(open_reader(dir)?)),
            ReadModels::Postgres(t) => {
                let db = PgDb::connect(t, &format!("ledger-reads-{}", std::process::id()))?;
                db.batch("SET default_transaction_read_only = on")?;
                Ok(Conn::Pg(db))
            }
        }
    }
}

fn sep(url: &str) -> &'static str {
    if url.contains('?') {
        "&"
    } else {
        "?"
    }
}

/// A connection to the read models of either kind.
pub enum Conn {
    Lite(Connection),
    Pg(PgDb),
}

impl Conn {
    pub fn db(&self) -> &dyn Db {
        match self {
            Conn::Lite(c) => c,
            Conn::Pg(c) => c,
        }
    }
}

/// Runs `f`, which may block on a PostgreSQL connection, off the async worker threads when
/// called from one (a blocking-pool thread or plain thread runs it as it is).
pub fn off_async<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub struct Runner {
    conn: Conn,
    models: ReadModels,
    projections: Vec<(Box<dyn Projection>, u64)>,
    applied_tx: watch::Sender<u64>,
    /// The positions reads wait for (see [`Progress::wait_for`]).
    waiting: Arc<Waiting>,
    /// Whether this runner applies batches: always on SQLite; on shared read models, while
    /// it holds the schema's lead lock.
    leading: bool,
    /// The transaction the live runner keeps open across batches ([`GROUP_COMMIT_EVERY`]).
    open: Option<Open>,
    /// When the last transaction was committed.
    last_commit: Instant,
    group_every: Duration,
}

/// A transaction applied to but not committed.
struct Open {
    /// Each projection's checkpoint as committed, where a rollback puts it back.
    committed: Vec<u64>,
    /// Events applied in it.
    events: usize,
}

/// The positions reads wait for, each with how many reads wait for it: the runner commits
/// at once when the nearest is in its open transaction. Only a position it has applied
/// hurries it, so a read naming a position far beyond the log does not.
#[derive(Default)]
struct Waiting {
    positions: std::sync::Mutex<std::collections::BTreeMap<u64, usize>>,
    /// Wakes the live runner when a read starts waiting.
    arrived: tokio::sync::Notify,
}

/// One read's place in [`Waiting`], given up when the read ends (answered or timed out).
struct Wait<'a> {
    waiting: &'a Waiting,
    position: u64,
}

impl<'a> Wait<'a> {
    fn new(waiting: &'a Waiting, position: u64) -> Wait<'a> {
        *waiting.positions.lock().expect("waiting lock").entry(position).or_default() += 1;
        waiting.arrived.notify_one();
        Wait { waiting, position }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut positions = self.waiting.positions.lock().expect("waiting lock");
        if let std::collections::btree_map::Entry::Occupied(mut n) = positions.entry(self.position) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
    }
}

/// What the projections have applied (committed), and what reads wait for: a read naming a
/// position tells the runner, which then commits the batches it holds open at once.
#[derive(Clone)]
pub struct Progress {
    applied: watch::Receiver<u64>,
    waiting: Arc<Waiting>,
}

impl Progress {
    /// The position every projection has applied and committed.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the projections have applied `position` (read-your-writes), at most `limit`.
    pub async fn wait_for(&self, position: u64, limit: Duration) -> Result<(), ProjectionError> {
        if tokio::time::timeout(limit, self.reached(position)).await == Ok(true) {
            Ok(())
        } else {
            Err(ProjectionError::Lagging { position, applied: self.applied() })
        }
    }

    /// A receiver of the applied position (it ends when the runner is gone).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Waits until the projections have applied `position`; false when the runner is gone.
    pub async fn reached(&self, position: u64) -> bool {
        if self.applied() >= position {
            return true;
        }
        let _wait = Wait::new(&self.waiting, position);
        self.applied.clone().wait_for(|&at| at >= position).await.is_ok()
    }
}

const CHECKPOINTS: &str =
    "CREATE TABLE IF NOT EXISTS checkpoints (projection TEXT PRIMARY KEY, position INTEGER NOT NULL)";

/// The table definition each projection's rows were written under.
const SCHEMAS: &str =
    "CREATE TABLE IF NOT EXISTS projection_schemas (projection TEXT PRIMARY KEY, schema TEXT NOT NULL)";

const SAVE_CHECKPOINT: &str = "INSERT INTO checkpoints (projection, position) VALUES (?1, ?2) \
                               ON CONFLICT (projection) DO UPDATE SET position = excluded.position";

/// Serializes the table definitions of nodes starting at once on shared read models.
const DDL_LOCK: i64 = 0x1ed9_0002;

/// Creates `p`'s tables and answers its checkpoint. A projection whose table definition
/// changed since its rows were written (or whose definition was never recorded, by a
/// version before this check) is dropped and replays from position 1: a new column must be
/// filled from the log, never left empty.
fn replay_if_schema_changed(db: &dyn Db, p: &dyn Projection) -> Result<u64, ProjectionError> {
    let stored: Option<String> =
        db.query_row("SELECT schema FROM projection_schemas WHERE projection = ?1", params![p.name()], |r| r.get(0))?;
    let at: Option<i64> =
        db.query_row("SELECT position FROM checkpoints WHERE projection = ?1", params![p.name()], |r| r.get(0))?;
    let mut at = at.unwrap_or(0) as u64;
    if stored.as_deref() != Some(p.schema()) && (stored.is_some() || at > 0) {
        tracing::warn!(projection = p.name(), "table definition changed: replaying it from the start of the log");
        for t in p.tables() {
            db.batch(&format!("DROP TABLE IF EXISTS {t}"))?;
        }
        db.execute("DELETE FROM checkpoints WHERE projection = ?1", params![p.name()])?;
        at = 0;
    }
    db.batch(p.schema())?;
    db.execute(
        "INSERT INTO projection_schemas (projection, schema) VALUES (?1, ?2) \
         ON CONFLICT (projection) DO UPDATE SET schema = excluded.schema",
        params![p.name(), p.schema()],
    )?;
    // Every projection has its row, so a batch can lock them all (see `fence`).
    db.execute(
        "INSERT INTO checkpoints (projection, position) VALUES (?1, 0) ON CONFLICT (projection) DO NOTHING",
        params![p.name()],
    )?;
    Ok(at)
}

/// The stored checkpoint of each projection (`FOR UPDATE`: locked until the transaction ends).
fn stored_checkpoints(db: &dyn Db, lock: bool) -> Result<Vec<(String, u64)>, ProjectionError> {
    let sql = if lock {
        "SELECT projection, position FROM checkpoints FOR UPDATE"
    } else {
        "SELECT projection, position FROM checkpoints"
    };
    db.query_map(sql, params![], |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)? as u64)))
}

fn checkpoint_of(stored: &[(String, u64)], name: &str) -> u64 {
    stored.iter().find(|(n, _)| n == name).map_or(0, |(_, at)| *at)
}

/// `LEDGER_CRASH_AT=mid-projection-batch`: the process aborts after applying a batch's rows,
/// before its commit, as a node killed mid-batch would (a test hook).
fn crash_mid_batch() -> bool {
    static CRASH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CRASH.get_or_init(|| std::env::var("LEDGER_CRASH_AT").is_ok_and(|v| v == "mid-projection-batch"))
}

impl Runner {
    /// The read models in `dir` (SQLite).
    pub fn open(dir: &Path, projections: Vec<Box<dyn Projection>>) -> Result<Runner, ProjectionError> {
        Runner::open_models(&ReadModels::Dir(dir.to_path_buf()), projections)
    }

    pub fn open_models(models: &ReadModels, projections: Vec<Box<dyn Projection>>) -> Result<Runner, ProjectionError> {
        off_async(|| {
            let conn = models.writer()?;
            let db = conn.db();
            db.batch("BEGIN")?;
            let defined = (|| {
                if models.shared() {
                    db.batch(&format!("SELECT pg_advisory_xact_lock({DDL_LOCK})"))?;
                }
                db.batch(CHECKPOINTS)?;
                db.batch(SCHEMAS)?;
                let mut loaded = vec![];
                for p in projections {
                    let at = replay_if_schema_changed(db, p.as_ref())?;
                    loaded.push((p, at));
                }
                Ok::<_, ProjectionError>(loaded)
            })();
            let loaded = match defined {
                Ok(l) => {
                    db.batch("COMMIT")?;
                    l
                }
                Err(e) => {
                    let _ = db.batch("ROLLBACK");
                    return Err(e);
                }
            };
            let low = loaded.iter().map(|(_, at)| *at).min().unwrap_or(0);
            let (applied_tx, _) = watch::channel(low);
            let leading = !models.shared();
            Ok(Runner {
                conn,
                models: models.clone(),
                projections: loaded,
                applied_tx,
                waiting: Arc::default(),
                leading,
                open: None,
                last_commit: Instant::now(),
                group_every: GROUP_COMMIT_EVERY,
            })
        })
    }

    /// The SQLite file of read models kept in a directory.
    pub fn path(&self) -> PathBuf {
        match &self.models {
            ReadModels::Dir(d) => d.join(DB_FILE),
            ReadModels::Postgres(t) => PathBuf::from(&t.schema),
        }
    }

    pub fn models(&self) -> &ReadModels {
        &self.models
    }

    /// The connection batches are applied on (tests read the rows through it).
    pub fn db(&self) -> &dyn Db {
        self.conn.db()
    }

    /// The position every projection has applied and committed.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// The handle reads wait on (see [`Progress`]).
    pub fn progress(&self) -> Progress {
        Progress { applied: self.applied_tx.subscribe(), waiting: self.waiting.clone() }
    }

    /// The lowest committed checkpoint: where the next batch starts after a restart.
    pub fn low_water(&self) -> u64 {
        self.checkpoints().into_iter().map(|(_, at)| at).min().unwrap_or(0)
    }

    /// Each projection's committed checkpoint.
    pub fn checkpoints(&self) -> Vec<(&'static str, u64)> {
        match &self.open {
            Some(open) => self.projections.iter().zip(&open.committed).map(|((p, _), at)| (p.name(), *at)).collect(),
            None => self.projections.iter().map(|(p, at)| (p.name(), *at)).collect(),
        }
    }

    pub fn is_leading(&self) -> bool {
        self.leading
    }

    /// Takes the lead of shared read models if no other node holds it (then continues from
    /// the checkpoints as stored); answers whether this runner applies batches now.
    pub fn try_lead(&mut self) -> Result<bool, ProjectionError> {
        if self.leading {
            return Ok(true);
        }
        off_async(|| {
            let got: Option<i64> = self.conn.db().query_row(
                &format!(
                    "SELECT CASE WHEN pg_try_advisory_lock({LEAD_LOCK_CLASS}, hashtext(current_schema())) \
                     THEN 1 ELSE 0 END"
                ),
                params![],
                |r| r.get(0),
            )?;
            if got == Some(1) {
                self.leading = true;
                self.reload()?;
                tracing::info!(models = %self.models.describe(), "this node applies the shared read models");
            }
            Ok(self.leading)
        })
    }

    /// Reads the stored checkpoints into this runner, as after another node's batches.
    fn reload(&mut self) -> Result<(), ProjectionError> {
        let stored = stored_checkpoints(self.conn.db(), false)?;
        for (p, at) in self.projections.iter_mut() {
            *at = checkpoint_of(&stored, p.name());
            p.reset_cache();
        }
        self.applied_tx.send_replace(self.low_water());
        Ok(())
    }

    /// On shared read models applied by another node: tells the readers waiting on this
    /// node how far that node has applied.
    pub fn follow(&mut self) -> Result<(), ProjectionError> {
        let stored = off_async(|| stored_checkpoints(self.conn.db(), false))?;
        let low = self.projections.iter().map(|(p, _)| checkpoint_of(&stored, p.name())).min().unwrap_or(0);
        self.applied_tx.send_if_modified(|at| {
            let moved = low > *at;
            *at = (*at).max(low);
            moved
        });
        Ok(())
    }

    /// Gives up the lead (the connection is made again, which releases the lock), after an
    /// error on shared read models.
    pub fn step_down(&mut self) -> Result<(), ProjectionError> {
        if !self.models.shared() {
            return Ok(());
        }
        self.leading = false;
        self.roll_back();
        self.conn = off_async(|| self.models.writer())?;
        Ok(())
    }

    fn must_lead(&mut self) -> Result<(), ProjectionError> {
        if self.try_lead()? {
            Ok(())
        } else {
            Err(ProjectionError::Config(format!(
                "another process applies the read models in {} (a running server?): stop it first",
                self.models.describe()
            )))
        }
    }

    /// Drops the named projections' tables and checkpoints (all when `only` is empty) so
    /// that they replay from position 1.
    pub fn reset(&mut self, only: &[String]) -> Result<(), ProjectionError> {
        for name in only {
            if !self.projections.iter().any(|(p, _)| p.name() == name) {
                return Err(ProjectionError::Unknown(name.clone()));
            }
        }
        self.must_lead()?;
        off_async(|| {
            let db = self.conn.db();
            db.batch("BEGIN")?;
            let done = (|| {
                for (p, at) in self.projections.iter_mut() {
                    if only.is_empty() || only.iter().any(|n| n == p.name()) {
                        for t in p.tables() {
                            db.batch(&format!("DROP TABLE IF EXISTS {t}"))?;
                        }
                        db.batch(p.schema())?;
                        db.execute(SAVE_CHECKPOINT, params![p.name(), 0i64])?;
                        p.reset_cache();
                        *at = 0;
                    }
                }
                Ok::<_, ProjectionError>(())
            })();
            match done {
                Ok(()) => db.batch("COMMIT")?,
                Err(e) => {
                    let _ = db.batch("ROLLBACK");
                    return Err(e);
                }
            }
            self.applied_tx.send_replace(self.low_water());
            Ok(())
        })
    }

    /// Applies one batch of consecutive events in one transaction.
    pub fn apply_batch(&mut self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        off_async(|| {
            self.apply_open(events)?;
            self.commit_here()
        })
    }

    /// Applies a batch in the transaction held open across batches (begun if none is),
    /// and commits it when it is due ([`Runner::commit_due`]): the live runner's step.
    /// Answers whether it committed.
    pub fn apply_grouped(&mut self, events: &[RecordedEvent]) -> Result<bool, ProjectionError> {
        off_async(|| {
            self.apply_open(events)?;
            if self.commit_due().is_some_and(|at| at <= Instant::now()) {
                self.commit_here()?;
                return Ok(true);
            }
            Ok(false)
        })
    }

    /// When the open transaction is to be committed: at once when a read waits for a
    /// position it holds or it holds a catch-up batch's worth of events, else
    /// the set interval ([`GROUP_COMMIT_EVERY`]) after the last commit. `None` when none is
    /// open.
    pub fn commit_due(&self) -> Option<Instant> {
        let open = self.open.as_ref()?;
        let committed = open.committed.iter().copied().min().unwrap_or(0);
        let applied = self.projections.iter().map(|(_, at)| *at).min().unwrap_or(0);
        let positions = self.waiting.positions.lock().expect("waiting lock");
        let nearest = positions.range(committed.saturating_add(1)..).next().map(|(p, _)| *p);
        if nearest.is_some_and(|p| p <= applied) || open.events >= CATCH_UP_BATCH {
            return Some(Instant::now());
        }
        Some(self.last_commit + self.group_every)
    }

    /// How often, at most, the live runner commits under a steady stream of batches
    /// ([`GROUP_COMMIT_EVERY`] unless set; zero commits every batch).
    pub fn set_group_commit_every(&mut self, every: Duration) {
        self.group_every = every;
    }

    /// The positions reads wait for now, in order.
    pub fn waiting_for(&self) -> Vec<u64> {
        self.waiting.positions.lock().expect("waiting lock").keys().copied().collect()
    }

    /// Applies `events` in the open transaction, begun here if none is; on an error the
    /// whole transaction is rolled back (every batch in it) and the runner is where it was
    /// at the last commit.
    fn apply_open(&mut self, events: &[RecordedEvent]) -> Result<(), ProjectionError> {
        let Some(last) = events.last().map(|e| e.position) else { return Ok(()) };
        if !self.leading {
            return Err(ProjectionError::Superseded { projection: "all" });
        }
        let result = (|| {
            if self.open.is_none() {
                self.begin()?;
            }
            let db = self.conn.db();
            for (p, at) in self.projections.iter_mut() {
                let mut moved = false;
                for e in events.iter().filter(|e| e.position > *at) {
                    p.apply(db, e).map_err(|err| ProjectionError::Apply {
                        projection: p.name(),
                        position: e.position,
                        reason: err.to_string(),
                    })?;
                    moved = true;
                }
                if moved {
                    *at = last;
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if let Some(open) = self.open.as_mut() {
                    open.events += events.len();
                }
                Ok(())
            }
            Err(e) => {
                self.roll_back();
                Err(e)
            }
        }
    }

    /// Begins the transaction batches are applied in. On shared read models it first checks
    /// (fencing) that the checkpoints are where this node left them, and they stay so until
    /// the commit.
    fn begin(&mut self) -> Result<(), ProjectionError> {
        let db = self.conn.db();
        db.batch("BEGIN")?;
        self.open = Some(Open { committed: self.projections.iter().map(|(_, at)| *at).collect(), events: 0 });
        if self.models.shared() {
            let stored = stored_checkpoints(db, true)?;
            for (p, at) in self.projections.iter() {
                if checkpoint_of(&stored, p.name()) != *at {
                    return Err(ProjectionError::Superseded { projection: p.name() });
                }
            }
        }
        Ok(())
    }

    /// Commits the open transaction (if any) and tells the readers how far it went.
    pub fn commit_open(&mut self) -> Result<(), ProjectionError> {
        off_async(|| self.commit_here())
    }

    /// Each projection that moved writes what it queued (once for all the batches of the
    /// transaction: a row several batches change is written once) and its checkpoint, in
    /// the transaction, before it commits.
    fn commit_here(&mut self) -> Result<(), ProjectionError> {
        let Some(open) = &self.open else { return Ok(()) };
        let db = self.conn.db();
        let mut moved = false;
        let written =
            self.projections.iter_mut().zip(&open.committed).filter(|((_, at), was)| at != *was).try_for_each(
                |((p, at), _)| {
                    moved = true;
                    // The projection's queued writes are answered here, so an error names it.
                    p.flush(db).and_then(|()| db.flush()).map_err(|err| ProjectionError::Apply {
                        projection: p.name(),
                        position: *at,
                        reason: err.to_string(),
                    })?;
                    db.write(SAVE_CHECKPOINT, params![p.name(), *at as i64])
                },
            );
        if moved && crash_mid_batch() {
            std::process::abort();
        }
        if let Err(e) = written.and_then(|()| db.batch("COMMIT")) {
            self.roll_back();
            return Err(e);
        }
        self.open = None;
        self.last_commit = Instant::now();
        self.applied_tx.send_replace(self.low_water());
        Ok(())
    }

    /// Rolls the open transaction back: every projection back at its committed checkpoint,
    /// its cache dropped.
    fn roll_back(&mut self) {
        let committed = self.open.take().map(|o| o.committed);
        if committed.is_some() {
            let _ = self.conn.db().batch("ROLLBACK");
        }
        for (i, (p, at)) in self.projections.iter_mut().enumerate() {
            if let Some(was) = committed.as_ref().and_then(|c| c.get(i)) {
                *at = *was;
            }
            p.reset_cache();
        }
    }

    /// Applies everything up to the store's head now, calling `progress` after each batch.
    /// The next batch is read (on another thread) while this one is applied: reading and
    /// decoding the log and writing the rows each take one core. On shared read models
    /// another node leads, this applies nothing (answers 0).
    pub async fn catch_up(
        &mut self,
        store: &Arc<dyn EventStore>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ProjectionError> {
        if !self.try_lead()? {
            return Ok(0);
        }
        let head = *store.head().borrow();
        if self.low_water() >= head {
            return Ok(0);
        }
        let read = |from: u64| {
            let store = store.clone();
            tokio::spawn(async move { store.read_all(from, CATCH_UP_BATCH).await })
        };
        let lite = matches!(self.conn, Conn::Lite(_));
        if lite {
            self.conn.db().batch(&format!("PRAGMA wal_autocheckpoint = {CATCH_UP_WAL_PAGES};"))?;
        }
        let caught_up = async {
            let mut applied = 0;
            let mut next = Some(read(self.low_water() + 1));
            while let Some(reading) = next.take() {
                let batch = reading.await.map_err(|e| ProjectionError::Io(std::io::Error::other(e.to_string())))??;
                let Some(last) = batch.last().map(|e| e.position) else { break };
                if last < head {
                    next = Some(read(last + 1));
                }
                self.apply_batch(&batch)?;
                applied += batch.len() as u64;
                progress(batch.len() as u64);
            }
            Ok::<_, ProjectionError>(applied)
        }
        .await;
        if lite {
            self.conn.db().batch("PRAGMA wal_autocheckpoint = 1000; PRAGMA wal_checkpoint(PASSIVE);")?;
        }
        caught_up
    }
}

/// Runs the projections live in the background: catch up, then follow the log. On shared
/// read models the runner applies only while it leads; otherwise it follows the leader's
/// checkpoints, tries for the lead every [`FOLLOW_EVERY`], and takes over from the stored
/// checkpoints when the leader is gone.
pub fn spawn_live(runner: Runner, store: Arc<dyn EventStore>) -> (Progress, tokio::task::JoinHandle<()>) {
    let progress = runner.progress();
    let shared = runner.models.shared();
    if let Conn::Lite(conn) = &runner.conn {
        let path = runner.path();
        let moved = conn
            .execute_batch(&format!("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {LIVE_WAL_LIMIT};"));
        match moved.map_err(ProjectionError::from).and_then(|()| spawn_checkpointer(&path, runner.applied())) {
            Ok(()) => {}
            Err(e) => {
                // Without its own checkpointer the connection copies the WAL back itself.
                tracing::warn!(error = %e, "read-model checkpointer not started; checkpointing in commits");
                let _ = conn.execute_batch("PRAGMA wal_autocheckpoint = 1000;");
            }
        }
    }
    let runner = Arc::new(Mutex::new(runner));
    let blocking = |runner: &Arc<Mutex<Runner>>, f: fn(&mut Runner) -> Result<bool, ProjectionError>| {
        let runner = runner.clone();
        async move {
            tokio::task::spawn_blocking(move || f(&mut runner.lock().expect("runner lock")))
                .await
                .unwrap_or_else(|e| Err(ProjectionError::Io(std::io::Error::other(e.to_string()))))
        }
    };
    let handle = tokio::spawn(async move {
        loop {
            // Lead, or follow the node that does.
            loop {
                let led = blocking(&runner, |r| {
                    if r.try_lead()? {
                        return Ok(true);
                    }
                    r.follow()?;
                    Ok(false)
                })
                .await;
                match led {
                    Ok(true) => break,
                    Ok(false) => tokio::time::sleep(FOLLOW_EVERY).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "shared read models unreachable; connecting again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = blocking(&runner, |r| r.step_down().map(|_| false)).await;
                    }
                }
            }
            let (from, waiting) = {
                let r = runner.lock().expect("runner lock");
                (r.low_water() + 1, r.waiting.clone())
            };
            let mut sub = subscribe_all(store.clone(), from);
            loop {
                // While a transaction is open, the next batch joins it unless the commit
                // comes due first (a read waits for a position it holds, or
                // GROUP_COMMIT_EVERY passed); a read that starts waiting has it looked at again.
                let due = runner.lock().expect("runner lock").commit_due();
                let next = match due {
                    None => Some(sub.next_batch().await),
                    Some(at) => tokio::select! {
                        batch = sub.next_batch() => Some(batch),
                        _ = tokio::time::sleep_until(at.into()) => None,
                        _ = waiting.arrived.notified() => continue,
                    },
                };
                let batch = match next {
                    Some(Ok(b)) => Some(b),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "projection subscription ended");
                        return;
                    }
                    None => None,
                };
                let r = runner.clone();
                let done = tokio::task::spawn_blocking(move || {
                    let mut r = r.lock().expect("runner lock");
                    match batch {
                        Some(batch) => r.apply_grouped(&batch).map(|_| ()),
                        None => r.commit_open(),
                    }
                })
                .await
                .unwrap_or_else(|e| Err(ProjectionError::Io(std::io::Error::other(e.to_string()))));
                match done {
                    Ok(()) => {}
                    Err(e) if shared => {
                        // Lost the connection, or another node applied: give up the lead
                        // and start again from the stored checkpoints.
                        tracing::warn!(error = %e, "stepping down from applying the shared read models");
                        tokio::time::sleep(FOLLOW_EVERY).await;
                        if let Err(e) = blocking(&runner, |r| r.step_down().map(|_| false)).await {
                            tracing::warn!(error = %e, "reconnecting to the shared read models");
                        }
                        break;
                    }
                    Err(e) => {
                        // A projection that cannot apply an event stops rather than skip it.
                        tracing::error!(error = %e, "projection stopped");
                        return;
                    }
                }
            }
        }
    });
    (progress, handle)
}

/// Copies the WAL of the SQLite read models at `path` back into the database every
/// [`LIVE_CHECKPOINT_EVERY`] while the runner whose progress `applied` follows applies, on
/// a connection and thread of its own, as the log's checkpointer copies (with
/// [`LIVE_WAL_LIMIT`]: [`ledger_store::sqlite::checkpoint_bounded`]); stops when that
/// runner is gone.
fn spawn_checkpointer(path: &Path, mut applied: watch::Receiver<u64>) -> Result<(), ProjectionError> {
    let conn = open_connection(path)?;
    std::thread::Builder::new().name("ledger-readmodels-checkpoint".into()).spawn(move || loop {
        std::thread::sleep(LIVE_CHECKPOINT_EVERY);
        match applied.has_changed() {
            Err(_) => return, // the runner is gone
            Ok(false) => continue,
            Ok(true) => {
                applied.borrow_and_update();
            }
        }
        if let Err(e) = ledger_store::sqlite::checkpoint_bounded(&conn, LIVE_WAL_LIMIT) {
            tracing::warn!(error = %e, "read-model checkpoint failed; will retry");
        }
    })?;
    Ok(())
}

/// Copies the WAL of SQLite read models back and cuts it to nothing (at a clean shutdown):
/// the next start then opens them without reading up to [`LIVE_WAL_LIMIT`] of WAL first.
/// Shared read models have no such file; an error is logged, not raised (it costs only a
/// slower next start).
pub fn checkpoint_at_close(models: &ReadModels) {
    let ReadModels::Dir(dir) = models else { return };
    let conn = match open_connection(&dir.join(DB_FILE)) {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "read-model checkpoint at close failed"),
    };
    let _ = conn.execute_batch("PRAGMA busy_timeout = 1000;");
    // The checkpoint thread may be finishing a copy of its own: the TRUNCATE then answers
    // busy at once, and is tried again.
    for _ in 0..20 {
        match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
            Ok(0) => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return tracing::warn!(error = %e, "read-model checkpoint at close failed"),
        }
    }
    tracing::warn!("read-model checkpoint at close was kept from finishing");
}

pub fn open_connection(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
         PRAGMA cache_size = -65536;",
    )?;
    Ok(conn)
}

/// A read-only connection for queries.
pub fn open_reader(dir: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open_with_flags(dir.join(DB_FILE), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}
