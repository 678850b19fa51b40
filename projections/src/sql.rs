//! One SQL layer under the read models, so each projection and each query is written once
//! and runs on SQLite (a file per node, the default) and on PostgreSQL (one schema every
//! node shares). The code speaks the SQL both engines accept (`?1` parameters, `INSERT …
//! ON CONFLICT … DO UPDATE`, `CREATE TABLE IF NOT EXISTS`); the few words PostgreSQL spells
//! otherwise are translated once per statement by [`to_postgres`]:
//!
//! * `?N` → `$N`;
//! * `INTEGER` → `BIGINT` (SQLite's integers are 64-bit: positions, microseconds);
//! * `TEXT` → `TEXT COLLATE "C"` (byte order, as SQLite sorts: pages and reports list rows
//!   in the same order on both);
//! * `WITHOUT ROWID` is dropped (a SQLite storage hint).
//!
//! Values cross as text or 64-bit integers only: amounts are exact decimal text, times are
//! text or microseconds, so no float and no engine-specific type is ever involved.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::BytesMut;
use rusqlite::types::{ToSqlOutput, Value as LiteValue, ValueRef};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::ProjectionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement's parameter: text, an integer or NULL, on either engine.
pub trait Param {
    fn lite(&self) -> ToSqlOutput<'_>;
    fn pg(&self) -> PgParam<'_>;
}

/// `params![a, b]`: the parameters of a statement, in order (`?1`, `?2`, …).
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::sql::Param] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::sql::Param),+] as &[&dyn $crate::sql::Param] };
}
pub use crate::params;

impl Param for str {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Borrowed(ValueRef::Text(self.as_bytes()))
    }
    fn pg(&self) -> PgParam<'_> {
        PgParam::Text(self)
    }
}

impl Param for String {
    fn lite(&self) -> ToSqlOutput<'_> {
        self.as_str().lite()
    }
    fn pg(&self) -> PgParam<'_> {
        PgParam::Text(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn lite(&self) -> ToSqlOutput<'_> {
        (**self).lite()
    }
    fn pg(&self) -> PgParam<'_> {
        (**self).pg()
    }
}

impl<T: Param> Param for Option<T> {
    fn lite(&self) -> ToSqlOutput<'_> {
        match self {
            Some(v) => v.lite(),
            None => ToSqlOutput::Owned(LiteValue::Null),
        }
    }
    fn pg(&self) -> PgParam<'_> {
        match self {
            Some(v) => v.pg(),
            None => PgParam::Null,
        }
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn lite(&self) -> ToSqlOutput<'_> {
                ToSqlOutput::Owned(LiteValue::Integer(*self as i64))
            }
            fn pg(&self) -> PgParam<'_> {
                PgParam::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, u32, u64, usize);

impl Param for bool {
    fn lite(&self) -> ToSqlOutput<'_> {
        ToSqlOutput::Owned(LiteValue::Integer(*self as i64))
    }
    fn pg(&self) -> PgParam<'_> {
        PgParam::Int(*self as i64)
    }
}

/// A parameter as PostgreSQL gets it: converted to the type the server inferred for its
/// place in the statement (an integer column is `BIGINT`, `LIMIT` takes `BIGINT`, …).
#[derive(Debug)]
pub enum PgParam<'a> {
    Null,
    Text(&'a str),
    Int(i64),
}

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgParam::Null => Ok(IsNull::Yes),
            PgParam::Text(s) => match *ty {
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                _ => s.to_sql(ty, out),
            },
            PgParam::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One result row of either engine.
pub enum Row<'a> {
    Lite(&'a rusqlite::Row<'a>),
    Pg(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `i` (from 0) as `T`.
    pub fn get<T: Cell>(&self, i: usize) -> Result<T, ProjectionError> {
        match self {
            Row::Lite(r) => T::lite(r, i),
            Row::Pg(r) => T::pg(r, i),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Row::Lite(r) => r.as_ref().column_count(),
            Row::Pg(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A column value that reads the same off either engine.
pub trait Cell: Sized {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError>;
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError>;
}

impl Cell for Option<String> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.try_get(i)?)
    }
}

impl Cell for String {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.try_get(i)?)
    }
}

impl Cell for Option<i64> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        match *r.columns()[i].type_() {
            Type::INT4 => Ok(r.try_get::<_, Option<i32>>(i)?.map(i64::from)),
            Type::INT2 => Ok(r.try_get::<_, Option<i16>>(i)?.map(i64::from)),
            _ => Ok(r.try_get(i)?),
        }
    }
}

fn required<T>(v: Option<T>, i: usize) -> Result<T, ProjectionError> {
    v.ok_or_else(|| ProjectionError::Decode { position: 0, reason: format!("column {i} is NULL") })
}

impl Cell for i64 {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        required(<Option<i64> as Cell>::pg(r, i)?, i)
    }
}

impl Cell for u32 {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(r.get(i)?)
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        let v = <i64 as Cell>::pg(r, i)?;
        u32::try_from(v).map_err(|_| crate::codec::corrupt("count", &v.to_string()))
    }
}

/// Any column as text (integers in decimal): for comparing whole tables across engines.
pub struct AnyText(pub Option<String>);

impl Cell for AnyText {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> Result<Self, ProjectionError> {
        Ok(AnyText(match r.get_ref(i)? {
            ValueRef::Null => None,
            ValueRef::Integer(v) => Some(v.to_string()),
            ValueRef::Real(v) => Some(v.to_string()),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        }))
    }
    fn pg(r: &tokio_postgres::Row, i: usize) -> Result<Self, ProjectionError> {
        Ok(AnyText(match *r.columns()[i].type_() {
            Type::INT8 | Type::INT4 | Type::INT2 => <Option<i64> as Cell>::pg(r, i)?.map(|v| v.to_string()),
            _ => r.try_get(i)?,
        }))
    }
}

/// A connection to the read models' database, or a transaction on it.
pub trait Db {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; answers the rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, ProjectionError>;
    /// Runs one statement whose row count is not needed. On PostgreSQL it is queued and sent
    /// pipelined with the writes after it (see [`PgDb`]), so its error may surface at a later
    /// call (at the latest [`Db::flush`] or the `COMMIT`); elsewhere it runs at once.
    fn write(&self, sql: &str, params: &[&dyn Param]) -> Result<(), ProjectionError> {
        self.execute(sql, params).map(|_| ())
    }
    /// Sends the queued writes and waits for their answers.
    fn flush(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
    /// Runs one query and calls `each` with every row, in order.
    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError>;
    /// Runs statements without parameters (table definitions, BEGIN, COMMIT).
    fn batch(&self, sql: &str) -> Result<(), ProjectionError>;
}

impl dyn Db + '_ {
    /// Every row of the query through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T, ProjectionError>,
    ) -> Result<Vec<T>, ProjectionError> {
        let mut out = vec![];
        self.each_row(sql, params, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of the query through `f`, if there is one.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T, ProjectionError>,
    ) -> Result<Option<T>, ProjectionError> {
        let mut f = Some(f);
        let mut out = None;
        self.each_row(sql, params, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

impl<T: Db + ?Sized> Db for &T {
    fn dialect(&self) -> Dialect {
        (**self).dialect()
    }
    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, ProjectionError> {
        (**self).execute(sql, params)
    }
    fn write(&self, sql: &str, params: &[&dyn Param]) -> Result<(), ProjectionError> {
        (**self).write(sql, params)
    }
    fn flush(&self) -> Result<(), ProjectionError> {
        (**self).flush()
    }
    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        (**self).each_row(sql, params, each)
    }
    fn batch(&self, sql: &str) -> Result<(), ProjectionError> {
        (**self).batch(sql)
    }
}

struct LiteParam<'a>(&'a dyn Param);

impl rusqlite::ToSql for LiteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.0.lite())
    }
}

impl Db for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, ProjectionError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter().map(|p| LiteParam(*p))))?)
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let mut stmt = self.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(|p| LiteParam(*p))))?;
        while let Some(r) = rows.next()? {
            each(&Row::Lite(r))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<(), ProjectionError> {
        Ok(self.execute_batch(sql)?)
    }
}

/// A PostgreSQL connection used from blocking code (the runner's batches, the read pool's
/// queries run off the async threads): it drives its own small runtime. Statements are
/// prepared once per connection.
///
/// [`Db::write`]s are queued and sent together, pipelined (one round trip for up to
/// [`PIPELINE`] rows instead of one each), before any other statement runs: a query or
/// `execute` sees every write before it, and `COMMIT` is sent only once they all succeeded.
/// A `ROLLBACK` drops the writes not yet sent (they would be undone anyway).
pub struct PgDb {
    /// Always Some until dropped (then shut down without blocking: a connection may be
    /// dropped on an async thread).
    rt: Option<tokio::runtime::Runtime>,
    client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    queued: RefCell<Vec<(tokio_postgres::Statement, Vec<PgValue>)>>,
}

/// Most writes queued before they are sent.
pub const PIPELINE: usize = 1_000;

/// A parameter kept until its queued write is sent.
#[derive(Debug)]
enum PgValue {
    Null,
    Text(String),
    Int(i64),
}

impl PgValue {
    fn of(p: PgParam<'_>) -> PgValue {
        match p {
            PgParam::Null => PgValue::Null,
            PgParam::Text(s) => PgValue::Text(s.to_string()),
            PgParam::Int(i) => PgValue::Int(i),
        }
    }

    fn param(&self) -> PgParam<'_> {
        match self {
            PgValue::Null => PgParam::Null,
            PgValue::Text(s) => PgParam::Text(s),
            PgValue::Int(i) => PgParam::Int(*i),
        }
    }
}

/// Where read models live on PostgreSQL: a server and a schema of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// The connection URL without the `schema` parameter.
    pub url: String,
    pub schema: String,
}

/// Schema of the read models when a PostgreSQL spec names none.
pub const DEFAULT_SCHEMA: &str = "ledger_readmodels";

impl PgTarget {
    /// `postgres://user@host:port/db[?schema=name&…]`: the schema is taken out of the URL
    /// (the driver does not know the parameter); without one, `default_schema`.
    pub fn parse(spec: &str, default_schema: &str) -> Result<PgTarget, ProjectionError> {
        let (base, query) = spec.split_once('?').unwrap_or((spec, ""));
        let mut schema = None;
        let mut rest = vec![];
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", name)) => schema = Some(name.to_string()),
                _ => rest.push(pair),
            }
        }
        let schema = schema.unwrap_or_else(|| default_schema.to_string());
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !schema.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(ProjectionError::Config(format!(
                "read models schema {schema:?} must be 1 to 63 of a-z, 0-9, _ (not starting with a digit)"
            )));
        }
        let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        Ok(PgTarget { url, schema })
    }
}

/// Serializes schema creation across nodes starting at once.
const SCHEMA_LOCK: i64 = 0x1ed9_0001;

impl PgDb {
    /// Connects and points `search_path` at the target's schema (created if missing);
    /// `name` is the connection's `application_name` (who holds what, in `pg_stat_activity`).
    pub fn connect(target: &PgTarget, name: &str) -> Result<PgDb, ProjectionError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut config: tokio_postgres::Config =
            target.url.parse().map_err(|e: tokio_postgres::Error| ProjectionError::Config(e.to_string()))?;
        config.application_name(name);
        let (client, connection) = crate::runner::off_async(|| rt.block_on(config.connect(tokio_postgres::NoTls)))?;
        // Driven whenever this connection's runtime runs a statement.
        rt.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "read models connection closed");
            }
        });
        let schema = &target.schema;
        let db = PgDb { rt: Some(rt), client, statements: RefCell::new(HashMap::new()), queued: RefCell::default() };
        db.run(db.client.batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); CREATE SCHEMA IF NOT EXISTS \"{schema}\"; COMMIT; \
             SET search_path TO \"{schema}\""
        )))?;
        Ok(db)
    }

    /// Runs one request to the server to its end (off the async threads when called from one).
    fn run<T>(&self, request: impl std::future::Future<Output = T>) -> T {
        let rt = self.rt.as_ref().expect("a connection's runtime lives as long as it");
        crate::runner::off_async(|| rt.block_on(request))
    }

    fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, ProjectionError> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.run(self.client.prepare(&to_postgres(sql, false)))?;
        self.statements.borrow_mut().insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    /// Sends every queued write at once and waits for all their answers; the first error
    /// (in order) is the answer.
    fn send_queued(&self) -> Result<(), ProjectionError> {
        let queued = std::mem::take(&mut *self.queued.borrow_mut());
        if queued.is_empty() {
            return Ok(());
        }
        let values: Vec<Vec<PgParam<'_>>> =
            queued.iter().map(|(_, v)| v.iter().map(PgValue::param).collect()).collect();
        let refs: Vec<Vec<&(dyn ToSql + Sync)>> =
            values.iter().map(|v| v.iter().map(|p| p as &(dyn ToSql + Sync)).collect()).collect();
        // Each request is sent when first polled, and `try_join_all` polls them all in order
        // before waiting: one round trip for the lot.
        let sent = queued.iter().zip(&refs).map(|((st, _), refs)| self.client.execute(st, refs));
        self.run(futures::future::try_join_all(sent))?;
        Ok(())
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<usize, ProjectionError> {
        self.send_queued()?;
        let stmt = self.statement(sql)?;
        let values: Vec<PgParam<'_>> = params.iter().map(|p| p.pg()).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(self.run(self.client.execute(&stmt, &refs))? as usize)
    }

    fn write(&self, sql: &str, params: &[&dyn Param]) -> Result<(), ProjectionError> {
        let stmt = self.statement(sql)?;
        let values = params.iter().map(|p| PgValue::of(p.pg())).collect();
        let full = {
            let mut queued = self.queued.borrow_mut();
            queued.push((stmt, values));
            queued.len() >= PIPELINE
        };
        if full {
            self.send_queued()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), ProjectionError> {
        self.send_queued()
    }

    fn each_row(
        &self,
        sql: &str,
        params: &[&dyn Param],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        self.send_queued()?;
        let stmt = self.statement(sql)?;
        let values: Vec<PgParam<'_>> = params.iter().map(|p| p.pg()).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self.run(self.client.query(&stmt, &refs))?;
        for r in &rows {
            each(&Row::Pg(r))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<(), ProjectionError> {
        if sql.trim().eq_ignore_ascii_case("ROLLBACK") {
            self.queued.borrow_mut().clear();
        } else {
            self.send_queued()?;
        }
        Ok(self.run(self.client.batch_execute(&to_postgres(sql, true)))?)
    }
}

/// SQLite's spelling to PostgreSQL's (see the module's documentation). Quoted text and
/// comments are left alone; `TEXT` is given its collation in table definitions (`ddl`) only
/// (`CAST(?1 AS TEXT)` stays a plain cast).
pub fn to_postgres(sql: &str, ddl: bool) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A quoted literal, '' escapes included, copied as it is.
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            out.extend(&chars[start..(i + 1).min(chars.len())]);
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(chars[i]);
                i += 1;
            }
        } else if c == '?' {
            out.push('$');
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.as_str() {
                "INTEGER" => out.push_str("BIGINT"),
                "TEXT" if ddl => out.push_str("TEXT COLLATE \"C\""),
                "WITHOUT" if rest_starts_with(&chars[i..], "ROWID") => {
                    i = skip_word(&chars, i, "ROWID");
                }
                _ => out.push_str(&word),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn rest_starts_with(rest: &[char], word: &str) -> bool {
    let s: String = rest.iter().skip_while(|c| c.is_whitespace()).take(word.len()).collect();
    s == word
}

fn skip_word(chars: &[char], mut i: usize, word: &str) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i + word.len()
}

/// `INSERT INTO table (columns) VALUES (?1, …) ON CONFLICT (key) DO UPDATE SET …`: a row
/// written whole, new or replacing the one with its key (SQLite's `INSERT OR REPLACE`, in
/// the form both engines accept).
pub fn upsert(table: &str, columns: &str, key: &str) -> String {
    let cols: Vec<&str> = columns.split(',').map(str::trim).collect();
    let keys: Vec<&str> = key.split(',').map(str::trim).collect();
    let values: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let set: Vec<String> = cols.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        cols.join(", "),
        values.join(", "),
        keys.join(", "),
        set.join(", ")
    )
}

/// [`upsert`] of `rows` rows in one statement (`VALUES (?1, …), (?n+1, …), …`): the
/// parameters are each row's columns in turn. No two rows may share a key (PostgreSQL
/// refuses to change a row twice in one statement).
pub fn upsert_rows(table: &str, columns: &str, key: &str, rows: usize) -> String {
    let one = upsert(table, columns, key);
    let width = columns.split(',').count();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let values: Vec<String> = (1..=width).map(|i| format!("?{}", r * width + i)).collect();
            format!("({})", values.join(", "))
        })
        .collect();
    let (head, tail) = one.split_once(" VALUES (").expect("an upsert has VALUES");
    let (_, conflict) = tail.split_once(") ON CONFLICT").expect("an upsert has ON CONFLICT");
    format!("{head} VALUES {} ON CONFLICT{conflict}", tuples.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_spelling_becomes_postgres_spelling_outside_quotes_and_comments() {
        let ddl = "CREATE TABLE IF NOT EXISTS t (\n    id TEXT NOT NULL, -- TEXT kept? ?1\n    n INTEGER PRIMARY KEY\n) WITHOUT ROWID;";
        assert_eq!(
            to_postgres(ddl, true),
            "CREATE TABLE IF NOT EXISTS t (\n    id TEXT COLLATE \"C\" NOT NULL, -- TEXT kept? ?1\n    n BIGINT PRIMARY KEY\n) ;"
        );
        assert_eq!(
            to_postgres(
                "SELECT a FROM t WHERE (CAST(?1 AS TEXT) IS NULL OR b = ?1) AND c != '?2 TEXT' AND d = ?12",
                false
            ),
            "SELECT a FROM t WHERE (CAST($1 AS TEXT) IS NULL OR b = $1) AND c != '?2 TEXT' AND d = $12"
        );
        assert_eq!(to_postgres("SELECT 'it''s ?1' , ?2", false), "SELECT 'it''s ?1' , $2");
    }

    #[test]
    fn an_upsert_replaces_every_column_but_the_key() {
        assert_eq!(
            upsert("t", "a, b, c", "a, b"),
            "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3) ON CONFLICT (a, b) DO UPDATE SET c = excluded.c"
        );
    }

    #[test]
    fn a_multi_row_upsert_numbers_each_rows_parameters_in_turn() {
        assert_eq!(
            upsert_rows("t", "a, b, c", "a", 2),
            "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3), (?4, ?5, ?6) ON CONFLICT (a) DO UPDATE SET b = excluded.b, c = excluded.c"
        );
        assert_eq!(upsert_rows("t", "a, b, c", "a", 1), upsert("t", "a, b, c", "a"));
    }

    #[test]
    fn the_schema_is_taken_out_of_the_url_and_checked() {
        let t = PgTarget::parse("postgres://u@h/db?schema=rm_a&connect_timeout=5", "x").unwrap();
        assert_eq!((t.url.as_str(), t.schema.as_str()), ("postgres://u@h/db?connect_timeout=5", "rm_a"));
        let t = PgTarget::parse("postgres://u@h/db", "ledger_rm").unwrap();
        assert_eq!((t.url.as_str(), t.schema.as_str()), ("postgres://u@h/db", "ledger_rm"));
        assert!(PgTarget::parse("postgres://u@h/db?schema=Bad-Name", "x").is_err());
    }
}
