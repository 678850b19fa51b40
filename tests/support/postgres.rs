//! The same stories on PostgreSQL: a test binary whose name ends in `_on_postgres` (see
//! `tests/e2e_on_postgres.rs`) includes story files as modules, and every server they start
//! runs `serve --store postgres://…` instead of on the embedded store. Any test can put a
//! directory's servers on PostgreSQL with [`use_postgres`], and several nodes on one
//! schema with [`share`].
//!
//! The server is `LEDGER_TEST_POSTGRES` or `postgres://postgres@127.0.0.1:5432/test`. Each
//! data directory gets its own schema (its name kept in the directory, so a restarted server
//! finds its log again); schemas of runs older than an hour are dropped as new ones are made.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The master key every node of a shared store is given.
pub const MASTER_KEY: &str = "e2e-master-key-0123456789abcdef0123456789abcdef";
/// Where a data directory keeps the name of its schema.
const SCHEMA_FILE: &str = "postgres-schema";
const PREFIX: &str = "ledger_e2e_";
const STALE_AFTER_SECS: u64 = 3600;

/// True in a test binary that runs the stories on PostgreSQL.
pub fn enabled() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_on_postgres")
}

pub fn server_url() -> String {
    std::env::var("LEDGER_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The `--store` of the server on `dir`: None on the embedded store (a directory given no
/// schema, outside an `_on_postgres` binary).
pub fn store_of(dir: &Path) -> Option<String> {
    if !enabled() && !dir.join(SCHEMA_FILE).exists() {
        return None;
    }
    Some(format!("{}?schema={}", server_url(), schema_of(dir)))
}

/// A store spec for a fresh schema (kept in `dir`), in any test binary.
pub fn store_of_new(dir: &Path) -> String {
    format!("{}?schema={}", server_url(), schema_of(dir))
}

/// Puts the servers on `dir` on PostgreSQL, in a fresh schema, in any test binary.
pub fn use_postgres(dir: &Path) -> String {
    schema_of(dir)
}

/// Puts the servers on `to` on the same PostgreSQL schema as those on `from`: nodes of one
/// shared store, each with its own data directory (read models, relay checkpoint).
pub fn share(from: &Path, to: &Path) {
    let schema = schema_of(from);
    std::fs::create_dir_all(to).unwrap();
    std::fs::write(to.join(SCHEMA_FILE), schema).unwrap();
}

/// The schema of `dir`, made up (and old ones dropped) on its first server.
pub fn schema_of(dir: &Path) -> String {
    let file = dir.join(SCHEMA_FILE);
    if let Ok(name) = std::fs::read_to_string(&file) {
        return name.trim().to_string();
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    drop_stale_schemas(now);
    // At most 47 characters: the store names a NOTIFY channel after its schema.
    let name = format!("{PREFIX}{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&file, &name).unwrap();
    name
}

/// Drops the schemas earlier runs left behind (a test cannot know when the last server of
/// its directory is gone, so none is dropped at the end).
fn drop_stale_schemas(now: u64) {
    let sql = format!(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE '{PREFIX}%' \
         AND split_part(substr(nspname, {}), '_', 1)::bigint < {}",
        PREFIX.len() + 1,
        now.saturating_sub(STALE_AFTER_SECS)
    );
    let Ok(out) = Command::new("psql").args([&server_url(), "-At", "-c", &sql]).output() else { return };
    for name in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with(PREFIX)) {
        let _ = Command::new("psql")
            .args([&server_url(), "-q", "-c", &format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")])
            .output();
    }
}
