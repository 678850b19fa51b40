//! What nodes sharing one store keep in step: the credentials. A credential issued or
//! revoked through one node is an event in the shared log; every other node takes it into
//! its lookup tables when the log moves ([`follow_credentials`]) and, so that a credential
//! works on every node the moment it is issued, before refusing a caller it does not know
//! ([`learn_new_credentials`]). On a shared store a revocation must hold on every node the
//! moment it is acknowledged, so every request first checks the credentials stream's version
//! ([`check_credentials_fresh`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Whether every request checks the stored credentials first (nodes sharing a store).
    every_request: AtomicBool,
    /// Freshness checks begun (the ticket of the latest), and the ticket of the last one
    /// finished: a request is served by any check that began after it arrived.
    begun: AtomicU64,
    finished: AtomicU64,
}

impl CredentialsSynced {
    /// Makes every request check the stored credentials before it acts (see
    /// [`check_credentials_fresh`]): for a node sharing its store with others.
    pub fn check_every_request(&self) {
        self.every_request.store(true, Ordering::SeqCst);
    }
}

/// On a node sharing its store: before the caller is identified, the credentials stream's
/// version is read, and the lookup tables reloaded if it moved, so a credential revoked
/// through another node is refused here at once (not one follow pause later). One query
/// serves every request that arrived before it began: the requests waiting while a check
/// runs are answered by the next one, so the store sees at most one at a time per node.
pub async fn check_credentials_fresh(state: &AppState) -> Result<(), ApiError> {
    let synced = &state.credentials_synced;
    if !synced.every_request.load(Ordering::SeqCst) {
        return Ok(());
    }
    let arrived = synced.begun.load(Ordering::SeqCst);
    let _one = synced.reload.lock().await;
    if synced.finished.load(Ordering::SeqCst) > arrived {
        // A check that began after this request arrived has finished.
        return Ok(());
    }
    let ticket = synced.begun.fetch_add(1, Ordering::SeqCst) + 1;
    let version = state.store.stream_version(CREDENTIALS_STREAM).await?;
    if version > synced.version.load(Ordering::SeqCst) {
        state.load_credentials().await?;
        synced.version.store(version, Ordering::SeqCst);
    }
    synced.finished.store(ticket, Ordering::SeqCst);
    Ok(())
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
