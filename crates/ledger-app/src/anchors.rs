//! Anchoring the chain head (`ledger_domain::anchors`): the use cases, and the task that
//! anchors at a fixed cadence inside `ledger serve` (every N events, at least every minute
//! while events arrive, and once more on a clean shutdown).

use std::sync::Arc;
use std::time::Duration;

use ledger_core::envelope::{Actor, CommandMeta};
use ledger_domain::anchors::RotateAnchorKey;
use ledger_domain::anchors::{self, AnchorCommand, AnchorEvent, AnchorHead, AnchorKey, AnchorState, Anchors};
use ledger_domain::DomainError;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{AppError, CommandContext, Ledger, Outcome};

/// The actor of the anchors the ledger makes by itself.
pub const ANCHORER: &str = "anchorer";

impl Ledger {
    pub async fn anchor_state(&self) -> Result<Arc<AnchorState>, AppError> {
        Ok(self.exec.load_shared::<Anchors>(&anchors::stream_id()).await?.0)
    }

    /// Refuses a key that may not sign the next anchor, before anything runs with it.
    pub async fn check_anchor_key(&self, key: &AnchorKey) -> Result<(), AppError> {
        let state = self.anchor_state().await?;
        match &state.current_key {
            Some(current) if *current != key.public_hex() => Err(DomainError::InvalidState(format!(
                "the anchor key {} is not the ledger's current anchor key {current}: use the current key, or \
                 introduce this one with `ledger anchor rotate`",
                key.public_hex()
            ))
            .into()),
            _ => Ok(()),
        }
    }

    /// Signs the log's head as it is now.
    pub async fn anchor_head(&self, ctx: &CommandContext, key: &AnchorKey) -> Result<Outcome<AnchorEvent>, AppError> {
        let (head_position, head_hash) = self.head().await?;
        let command = AnchorCommand::AnchorHead(AnchorHead { head_position, head_hash, key: key.clone() });
        self.exec.execute::<Anchors>(&anchors::stream_id(), command, ctx).await
    }

    /// Anchors the head with the current `key` and introduces `new_key`.
    pub async fn rotate_anchor_key(
        &self,
        ctx: &CommandContext,
        key: &AnchorKey,
        new_key: &AnchorKey,
    ) -> Result<Outcome<AnchorEvent>, AppError> {
        let (head_position, head_hash) = self.head().await?;
        let command = AnchorCommand::RotateAnchorKey(RotateAnchorKey {
            head_position,
            head_hash,
            key: key.clone(),
            new_key: new_key.clone(),
        });
        self.exec.execute::<Anchors>(&anchors::stream_id(), command, ctx).await
    }

    /// The last position of the log and its chain hash (position 0 and the zero hash when
    /// the log is empty, which the decider refuses to anchor).
    async fn head(&self) -> Result<(u64, ledger_core::envelope::ChainHash), AppError> {
        let store = self.exec.store();
        let position = *store.head().borrow();
        let event = store.read_all(position.max(1), 1).await?.into_iter().next();
        Ok(match event {
            Some(e) if e.position == position => (e.position, e.hash),
            _ => (0, ledger_core::envelope::ChainHash::ZERO),
        })
    }

    /// The position of the last anchor event in the log (0: none).
    async fn last_anchor_event(&self) -> Result<u64, AppError> {
        let stream = anchors::stream_id();
        let store = self.exec.store();
        let version = store.stream_version(&stream).await?;
        if version == 0 {
            return Ok(0);
        }
        Ok(store.read_stream(&stream, version, 1).await?.first().map_or(0, |e| e.position))
    }
}

/// How often the ledger anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Anchor once this many events came after the last anchor.
    pub every_events: u64,
    /// ...or once this long passed since the last anchor while events came.
    pub every: Duration,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence { every_events: 1_000, every: Duration::from_secs(60) }
    }
}

/// The anchoring task of a server.
pub struct Anchorer {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<u64, AppError>>,
}

impl Anchorer {
    /// Starts anchoring `ledger`'s log with `key` (checked with
    /// [`Ledger::check_anchor_key`] first).
    pub fn spawn(ledger: Arc<Ledger>, key: AnchorKey, cadence: Cadence) -> Anchorer {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(ledger, key, cadence, stopped));
        Anchorer { stop: Some(stop), task }
    }

    /// Stops the task after one last anchor of whatever came since the previous one;
    /// returns how many anchors it made.
    pub async fn shutdown(mut self) -> Result<u64, AppError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(0), // never aborted: it ends only through `stop`
        }
    }
}

/// Where the last anchor stands: the position it covers and its own position. An event
/// appended between reading the head and appending the anchor sits between the two, so what
/// is left to anchor is everything after `covered` except the anchor itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LastAnchor {
    covered: u64,
    own: u64,
}

impl LastAnchor {
    fn pending(&self, head: u64) -> u64 {
        let own_counts = u64::from(self.own > self.covered && self.own <= head);
        head.saturating_sub(self.covered).saturating_sub(own_counts)
    }
}

async fn run(
    ledger: Arc<Ledger>,
    key: AnchorKey,
    cadence: Cadence,
    mut stopped: oneshot::Receiver<()>,
) -> Result<u64, AppError> {
    let mut heads = ledger.exec.store().head();
    let mut last =
        LastAnchor { covered: ledger.anchor_state().await?.last_head_position, own: ledger.last_anchor_event().await? };
    let mut last_anchor = Instant::now();
    let mut made = 0;
    loop {
        // An anchor alone is not anchored again.
        let pending = last.pending(*heads.borrow_and_update());
        let due = pending >= cadence.every_events || (pending > 0 && last_anchor.elapsed() >= cadence.every);
        if due {
            match anchor_once(&ledger, &key).await {
                Ok(Some(anchor)) => (last, made) = (anchor, made + 1),
                Ok(None) => {}
                // A rule refused the anchor (another key became current): stop, and say so.
                Err(e @ AppError::Domain(_)) => return Err(e),
                // A store that fails now may work later; the next change or tick tries again.
                Err(e) => tracing::error!(error = %e, "anchoring the chain head failed"),
            }
            last_anchor = Instant::now();
            continue;
        }
        let wake = if pending > 0 { last_anchor + cadence.every } else { Instant::now() + Duration::from_secs(3600) };
        tokio::select! {
            _ = &mut stopped => break,
            changed = heads.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    let head = *ledger.exec.store().head().borrow();
    if last.pending(head) > 0 && anchor_once(&ledger, &key).await?.is_some() {
        made += 1;
    }
    Ok(made)
}

/// One anchor of the head now.
async fn anchor_once(ledger: &Ledger, key: &AnchorKey) -> Result<Option<LastAnchor>, AppError> {
    let ctx =
        CommandContext { meta: CommandMeta::new(Actor::system(ANCHORER)), now: chrono::Utc::now(), idempotency: None };
    Ok(match ledger.anchor_head(&ctx, key).await? {
        Outcome::Stored { events, appended } => {
            events.first().map(|a| LastAnchor { covered: a.head_position(), own: appended.last_position })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::LastAnchor;

    #[test]
    fn what_is_left_to_anchor_leaves_out_the_anchor_itself() {
        let none = LastAnchor::default();
        assert_eq!((none.pending(0), none.pending(3)), (0, 3));
        // The anchor of 12 stored at 13: nothing left at 13, one event at 14.
        let next = LastAnchor { covered: 12, own: 13 };
        assert_eq!((next.pending(13), next.pending(14)), (0, 1));
        // An event appended at 13 while the anchor of 12 was decided, the anchor at 14: the
        // event at 13 is still to anchor.
        let raced = LastAnchor { covered: 12, own: 14 };
        assert_eq!((raced.pending(14), raced.pending(15)), (1, 2));
    }
}
