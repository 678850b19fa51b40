//! What nodes sharing one store keep in step: the credentials. A credential issued or
//! revoked through one node is an event in the shared log; every other node takes it into
//! its lookup tables when the log moves ([`follow_credentials`]) and, so that a credential
//! works on every node the moment it is issued, before refusing a caller it does not know
//! ([`learn_new_credentials`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ApiError;
use crate::server::AppState;
use ledger_domain::credential::STREAM as CREDENTIALS_STREAM;

/// Pause between two looks at the credentials while the log keeps moving.
const FOLLOW_PAUSE: Duration = Duration::from_millis(100);

/// The version of the credentials stream the lookup tables were made from.
#[derive(Default)]
pub struct CredentialsSynced {
    version: AtomicU64,
    /// One reload at a time: callers that waited find the work done.
    reload: tokio::sync::Mutex<()>,
}

/// Reloads the credentials if the stored ones moved past what the tables hold; answers
/// whether it did. One cheap query when nothing changed.
pub async fn learn_new_credentials(state: &AppState) -> Result<bool, ApiError> {
    let synced = &state.credentials_synced;
    let before = synced.version.load(Ordering::SeqCst);
    let _one = synced.reload.lock().await;
    let held = synced.version.load(Ordering::SeqCst);
    // The version is read first: a credential stored while loading is seen next time.
    let version = state.store.stream_version(CREDENTIALS_STREAM).await?;
    if version <= held {
        // Up to date; perhaps reloaded by another caller while this one waited.
        return Ok(held > before);
    }
    state.load_credentials().await?;
    synced.version.store(version, Ordering::SeqCst);
    Ok(true)
}

/// Follows the log: after each move (at most every [`FOLLOW_PAUSE`]) the credentials are
/// reloaded if they changed, so a revocation on one node reaches the others.
pub fn follow_credentials(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut head = state.store.head();
        while head.changed().await.is_ok() {
            if let Err(e) = learn_new_credentials(&state).await {
                tracing::warn!(error = %e.message, "reloading credentials");
            }
            tokio::time::sleep(FOLLOW_PAUSE).await;
        }
    })
}
