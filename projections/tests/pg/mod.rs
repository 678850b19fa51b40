//! Read models on PostgreSQL for tests: `LEDGER_TEST_POSTGRES` or
//! `postgres://postgres@127.0.0.1:5432/test`, a fresh schema per call, dropped with its guard.

use std::sync::atomic::{AtomicU32, Ordering};

use ledger_projections::sql::{Db, PgDb, PgTarget};
use ledger_projections::ReadModels;

pub fn server_url() -> String {
    std::env::var("LEDGER_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own; dropped when the guard goes.
pub struct Schema {
    pub models: ReadModels,
    target: PgTarget,
}

pub fn fresh(name: &str) -> Schema {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let schema = format!("rm_test_{name}_{}_{}_{nanos}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let target = PgTarget::parse(&format!("{}?schema={schema}", server_url()), "").unwrap();
    Schema { models: ReadModels::Postgres(target.clone()), target }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let schema = self.target.schema.clone();
        let url = PgTarget { url: self.target.url.clone(), schema: "public".into() };
        let _ = std::thread::spawn(move || {
            if let Ok(db) = PgDb::connect(&url, "test-cleanup") {
                let _ = db.batch(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        })
        .join();
    }
}
