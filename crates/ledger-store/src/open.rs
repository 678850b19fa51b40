//! Opening a store from one configuration string, so a binary can be pointed at any
//! backend without knowing them.

use std::path::Path;
use std::sync::Arc;

use crate::kurrent::KurrentStore;
use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::{EventStore, StoreError};

/// URL schemes of PostgreSQL connection strings.
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres", "postgresql"];
/// URL schemes the KurrentDB client accepts (EventStoreDB's `esdb` included).
pub const KURRENT_SCHEMES: [&str; 8] =
    ["esdb", "esdb+discover", "kurrentdb", "kurrentdb+discover", "kurrent", "kurrent+discover", "kdb", "kdb+discover"];

/// Opens the store that `spec` names:
/// - a filesystem path (a directory; `sqlite://<dir>` also works) → SQLite, the default;
/// - `postgres://…` / `postgresql://…` → PostgreSQL (`?schema=name` keeps the ledger in its
///   own schema);
/// - `esdb://…` / `kurrentdb://…` (and the client's other schemes) → KurrentDB, with the
///   log in [`crate::kurrent::DEFAULT_LOG_STREAM`].
pub async fn open_store(spec: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(StoreError::Backend("no store given: a directory path, postgres://… or esdb://…".into()));
    }
    Ok(match scheme(spec) {
        None => Arc::new(open_sqlite(Path::new(spec)).await?),
        Some("sqlite") => Arc::new(open_sqlite(Path::new(&spec["sqlite://".len()..])).await?),
        Some(s) if POSTGRES_SCHEMES.contains(&s) => Arc::new(PostgresStore::connect(spec).await?),
        Some(s) if KURRENT_SCHEMES.contains(&s) => Arc::new(KurrentStore::connect(spec).await?),
        Some(other) => {
            return Err(StoreError::Backend(format!(
                "unknown store scheme {other}://: use a directory path, postgres://… or esdb://…"
            )))
        }
    })
}

async fn open_sqlite(dir: &Path) -> Result<SqliteStore, StoreError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || SqliteStore::open(&dir))
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
}

/// The scheme of a URL-like spec (`scheme://…`), lower-cased rules aside; None for a path.
fn scheme(spec: &str) -> Option<&str> {
    let (scheme, _) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    let looks_like_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    looks_like_scheme.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(scheme("/var/lib/ledger"), None);
        assert_eq!(scheme("data/ledger"), None);
        assert_eq!(scheme("./odd://name"), None);
        assert_eq!(scheme("postgres://u@h/db"), Some("postgres"));
        assert_eq!(scheme("esdb+discover://h:2113"), Some("esdb+discover"));
    }

    #[tokio::test]
    async fn a_path_opens_sqlite_and_an_unknown_scheme_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path().to_str().unwrap()).await.unwrap();
        crate::conformance::append_n(&store, "acct", 2).await;
        assert!(dir.path().join(crate::sqlite::DB_FILE).exists());
        let err = open_store("mysql://u@h/db").await.err().expect("refused");
        assert!(err.to_string().contains("unknown store scheme mysql"), "{err}");
        assert!(open_store("  ").await.is_err());
        assert!(open_store("esdb://").await.is_err());
    }
}
