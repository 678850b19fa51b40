//! Runs one command against one aggregate: wait for the stream's turn in this process, load
//! the stream (from a cache of recent states, reading only what is new), decide, append with
//! the expected version, and retry a bounded number of times when another writer (another
//! process) got there first.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ledger_core::envelope::{CommandMeta, NewEvent};
use ledger_domain::{decode, encode_canonical, Decider, DomainError, EventFamily};
use ledger_store::{
    AppendRequest, Appended, EventKey, EventStore, ExpectedVersion, IdempotencyKey, StoreError, MAX_EVENTS_PER_APPEND,
};

use crate::turns::StreamTurns;
use crate::AppError;

/// Attempts per command before a conflict is reported to the caller.
pub const MAX_ATTEMPTS: usize = 8;
/// Attempts of a batch (which never answers a conflict: every lost race means another
/// append to the stream landed, so this bounds only a store that keeps failing to decide).
pub const MAX_BATCH_ATTEMPTS: usize = 10_000;
/// Stream states kept in memory; past this the cache starts afresh.
pub const MAX_CACHED_STREAMS: usize = 50_000;
/// Events read per call while loading a stream.
const READ_BATCH: usize = 5_000;
/// A stream's state is snapshotted (for aggregates that keep snapshots, see
/// `Decider::snapshot`) each time its version passes a multiple of this: a load reads at
/// most this many events after the snapshot.
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// Who asks, when, and under which idempotency key.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub meta: CommandMeta,
    pub now: DateTime<Utc>,
    pub idempotency: Option<IdempotencyKey>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<E> {
    /// New events were stored.
    Stored { events: Vec<E>, appended: Appended },
    /// The command changed nothing (e.g. a repeated consumption line).
    Unchanged { stream_version: u64 },
    /// The idempotency key was used before with the same request: its first result.
    Replayed { appended: Appended },
}

impl<E> Outcome<E> {
    /// The global position a read must wait for to see this command's effect.
    pub fn position(&self) -> Option<u64> {
        match self {
            Outcome::Stored { appended, .. } | Outcome::Replayed { appended } => Some(appended.last_position),
            Outcome::Unchanged { .. } => None,
        }
    }

    pub fn is_stored(&self) -> bool {
        matches!(self, Outcome::Stored { .. })
    }

    /// The version of the command's stream this write left (for a replay, the first call's;
    /// for a step over two streams, the first stream's).
    pub fn stream_version(&self) -> u64 {
        match self {
            Outcome::Stored { appended, .. } | Outcome::Replayed { appended } => appended.stream_version,
            Outcome::Unchanged { stream_version } => *stream_version,
        }
    }
}

/// What became of one command of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Its events were stored; `position` is that of its last event.
    Stored { position: u64 },
    /// It changed nothing (e.g. a line the stream already holds).
    Unchanged,
    /// A rule refused it; the other commands of the batch are not affected.
    Refused(DomainError),
}

/// An aggregate the executor runs: its state is cached and shared between tasks, its events
/// are encoded into the log, and its command is decided again after a lost race.
pub trait Aggregate: Decider<State: Send + Sync + 'static, Command: Clone, Event: EventFamily> {}

impl<D> Aggregate for D where D: Decider<State: Send + Sync + 'static, Command: Clone, Event: EventFamily> {}

/// A stream's state at a version, of whichever aggregate owns the stream.
type CachedState = (u64, Arc<dyn Any + Send + Sync>);

pub struct Executor {
    store: Arc<dyn EventStore>,
    cache: Mutex<HashMap<String, CachedState>>,
    turns: StreamTurns,
    /// Appends that lost to another writer and were decided again.
    conflicts_retried: AtomicU64,
}

impl Executor {
    pub fn new(store: Arc<dyn EventStore>) -> Executor {
        Executor {
            store,
            cache: Mutex::new(HashMap::new()),
            turns: StreamTurns::default(),
            conflicts_retried: AtomicU64::new(0),
        }
    }

    /// How many appends lost to another writer and were decided again (within this process
    /// commands queue, so these come from other processes).
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts_retried.load(Ordering::Relaxed)
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The current state of an aggregate's stream, and its version.
    pub async fn load<D: Aggregate>(&self, stream: &str) -> Result<(D::State, u64), AppError> {
        let (state, version) = self.load_shared::<D>(stream).await?;
        Ok((Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone()), version))
    }

    /// The current state shared with the cache: a read of an unchanged stream costs one
    /// query for newer events and no copy of the state.
    pub async fn load_shared<D: Aggregate>(&self, stream: &str) -> Result<(Arc<D::State>, u64), AppError> {
        let cached = self.cache.lock().expect("cache lock").get(stream).cloned();
        let (shared, start) = match cached.and_then(|(v, s)| s.downcast::<D::State>().ok().map(|s| (s, v))) {
            Some((s, v)) => (s, v),
            None => {
                let (state, version) = self.restore::<D>(stream).await?;
                (Arc::new(state), version)
            }
        };
        // Ask the store for newer events first: an unchanged stream needs no copy.
        let first = self.store.read_stream(stream, start + 1, READ_BATCH).await?;
        if first.is_empty() {
            return Ok((shared, start));
        }
        let state = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
        let (state, version) = self.catch_up::<D>(stream, state, start, first, u64::MAX).await?;
        let state = Arc::new(state);
        self.remember_shared(stream, version, state.clone());
        Ok((state, version))
    }

    /// The state of an aggregate's stream as it stood at `version` (the answer to a write is
    /// of the state the write left, also when a retry asks it again after later writes).
    /// The cached state when it is at that version (a write just stored); else rebuilt from
    /// the stream's snapshot when it is not newer, or from the start.
    pub async fn load_at<D: Aggregate>(&self, stream: &str, version: u64) -> Result<Arc<D::State>, AppError> {
        let cached = self.cache.lock().expect("cache lock").get(stream).cloned();
        if let Some(state) = cached.filter(|(v, _)| *v == version).and_then(|(_, s)| s.downcast::<D::State>().ok()) {
            return Ok(state);
        }
        let (state, at) = match self.store.load_snapshot(stream).await? {
            Some((v, text)) if v <= version => D::restore(&text).map_or((D::State::default(), 0), |state| (state, v)),
            _ => (D::State::default(), 0),
        };
        let first = match version - at {
            0 => vec![],
            left => self.store.read_stream(stream, at + 1, READ_BATCH.min(left as usize)).await?,
        };
        let (state, _) = self.catch_up::<D>(stream, state, at, first, version).await?;
        Ok(Arc::new(state))
    }

    /// Like [`Executor::load`], but takes the cached state out of the cache instead of
    /// cloning it; the caller (holding the stream's turn) puts it back with `remember`. A read
    /// of the same stream meanwhile rebuilds from the store: slower, never wrong.
    async fn take<D: Aggregate>(&self, stream: &str) -> Result<(D::State, u64), AppError> {
        let cached = self.cache.lock().expect("cache lock").remove(stream);
        let (state, version) = match cached.map(|(v, s)| (v, s.downcast::<D::State>())) {
            Some((v, Ok(s))) => (Arc::try_unwrap(s).unwrap_or_else(|shared| (*shared).clone()), v),
            _ => self.restore::<D>(stream).await?,
        };
        let first = self.store.read_stream(stream, version + 1, READ_BATCH).await?;
        self.catch_up::<D>(stream, state, version, first, u64::MAX).await
    }

    /// The current state of each of `streams` (of one aggregate), shared with the cache:
    /// their versions are asked of the store in one call, and only a stream that moved
    /// past its cached state (or has none cached) is read.
    pub async fn load_many_shared<D: Aggregate>(
        &self,
        streams: &[String],
    ) -> Result<Vec<(Arc<D::State>, u64)>, AppError> {
        let cached: Vec<Option<CachedState>> = {
            let cache = self.cache.lock().expect("cache lock");
            streams.iter().map(|s| cache.get(s).cloned()).collect()
        };
        let versions = self.store.stream_versions(streams).await?;
        let mut out = Vec::with_capacity(streams.len());
        for ((stream, cached), version) in streams.iter().zip(cached).zip(versions) {
            match cached.and_then(|(v, s)| s.downcast::<D::State>().ok().map(|s| (s, v))) {
                Some((state, v)) if v == version => out.push((state, v)),
                _ => out.push(self.load_shared::<D>(stream).await?),
            }
        }
        Ok(out)
    }

    /// Like [`Executor::take`] for several streams: one call for their versions, and a read
    /// only of those that moved past their cached state.
    async fn take_many<D: Aggregate>(&self, streams: &[String]) -> Result<Vec<(D::State, u64)>, AppError> {
        let cached: Vec<Option<CachedState>> = {
            let mut cache = self.cache.lock().expect("cache lock");
            streams.iter().map(|s| cache.remove(s)).collect()
        };
        let versions = self.store.stream_versions(streams).await?;
        let mut out = Vec::with_capacity(streams.len());
        for ((stream, cached), version) in streams.iter().zip(cached).zip(versions) {
            let (state, at) = match cached.map(|(v, s)| (v, s.downcast::<D::State>())) {
                Some((v, Ok(s))) => (Arc::try_unwrap(s).unwrap_or_else(|shared| (*shared).clone()), v),
                _ => self.restore::<D>(stream).await?,
            };
            if at == version {
                out.push((state, at));
                continue;
            }
            let first = self.store.read_stream(stream, at + 1, READ_BATCH).await?;
            out.push(self.catch_up::<D>(stream, state, at, first, u64::MAX).await?);
        }
        Ok(out)
    }

    /// Where a load starts when no state is cached: the stream's snapshot when the store
    /// keeps one and it restores, else the empty state at version 0.
    async fn restore<D: Aggregate>(&self, stream: &str) -> Result<(D::State, u64), AppError> {
        if let Some((version, text)) = self.store.load_snapshot(stream).await? {
            match D::restore(&text) {
                Some(state) => return Ok((state, version)),
                None => tracing::info!(stream, version, "snapshot does not restore; reading the stream"),
            }
        }
        Ok((D::State::default(), 0))
    }

    /// Keeps a snapshot of `state` (at `after`) when the append from `before` passed a
    /// multiple of [`SNAPSHOT_EVERY`]. Off the caller's path: the text is made and saved on
    /// a blocking thread, and a failure only costs a longer load later.
    fn snapshot_if_due<D: Aggregate>(&self, stream: &str, before: u64, after: u64, state: Arc<D::State>) {
        if after / SNAPSHOT_EVERY == before / SNAPSHOT_EVERY {
            return;
        }
        let (store, stream) = (self.store.clone(), stream.to_string());
        tokio::spawn(async move {
            let made = tokio::task::spawn_blocking(move || D::snapshot(&state)).await;
            if let Ok(Some(text)) = made {
                if let Err(e) = store.save_snapshot(&stream, after, text).await {
                    tracing::warn!(stream, error = %e, "snapshot not saved");
                }
            }
        });
    }

    /// Evolves `state` (at `version`) through `batch` and the later events of the stream up
    /// to version `until` (`u64::MAX`: all of them).
    async fn catch_up<D: Aggregate>(
        &self,
        stream: &str,
        mut state: D::State,
        mut version: u64,
        mut batch: Vec<ledger_core::RecordedEvent>,
        until: u64,
    ) -> Result<(D::State, u64), AppError> {
        while let Some(last) = batch.last().map(|e| e.version) {
            for e in &batch {
                let event: D::Event = decode(&e.event_type, e.schema_version, &e.data)
                    .map_err(|err| AppError::Decode { position: e.position, reason: err.to_string() })?;
                state = D::evolve(state, &event);
            }
            version = last;
            if version >= until {
                break;
            }
            let limit = READ_BATCH.min(usize::try_from(until - version).unwrap_or(usize::MAX));
            batch = self.store.read_stream(stream, version + 1, limit).await?;
        }
        Ok((state, version))
    }

    /// Decides `command` against the stream's current state and appends the result.
    pub async fn execute<D: Aggregate>(
        &self,
        stream: &str,
        command: D::Command,
        ctx: &CommandContext,
    ) -> Result<Outcome<D::Event>, AppError> {
        self.execute_with::<D>(stream, |_| Ok(command.clone()), ctx).await
    }

    /// Like [`Executor::execute`], building the command from the state on each attempt
    /// (for commands whose content depends on what the stream holds).
    pub async fn execute_with<D: Aggregate>(
        &self,
        stream: &str,
        mut make: impl FnMut(&D::State) -> Result<D::Command, AppError>,
        ctx: &CommandContext,
    ) -> Result<Outcome<D::Event>, AppError> {
        self.execute_steps::<D>(stream, |state| Ok(vec![make(state)?]), ctx).await
    }

    /// One step made of several commands on one stream, all-or-nothing (docs/DOMAIN.md §5):
    /// each is decided on the state the ones before it leave, and their events are stored
    /// in one append under the step's request id; a refusal of any stores nothing.
    pub async fn execute_all<D: Aggregate>(
        &self,
        stream: &str,
        commands: Vec<D::Command>,
        ctx: &CommandContext,
    ) -> Result<Outcome<D::Event>, AppError> {
        self.execute_steps::<D>(stream, |_| Ok(commands.clone()), ctx).await
    }

    async fn execute_steps<D: Aggregate>(
        &self,
        stream: &str,
        mut make: impl FnMut(&D::State) -> Result<Vec<D::Command>, AppError>,
        ctx: &CommandContext,
    ) -> Result<Outcome<D::Event>, AppError> {
        let _turn = self.turns.enter(stream).await;
        if let Some(replayed) = self.replay(ctx).await? {
            return Ok(replayed);
        }
        for attempt in 1..=MAX_ATTEMPTS {
            // The cached state is taken out, not cloned: a long stream's state is decided on
            // and evolved in place, and put back at its new version.
            let (state, version) = self.take::<D>(stream).await?;
            let commands = match make(&state) {
                Ok(c) => c,
                Err(e) => {
                    self.remember(stream, version, state);
                    return Err(e);
                }
            };
            let events = match decide_all::<D>(&state, commands, ctx.now) {
                Ok(events) => events,
                Err(e) => {
                    self.remember(stream, version, state);
                    return Err(e.into());
                }
            };
            if events.is_empty() {
                self.remember(stream, version, state);
                return Ok(Outcome::Unchanged { stream_version: version });
            }
            let new_events = events.iter().map(|e| to_new_event(e, ctx.now)).collect();
            let req = AppendRequest {
                stream: stream.to_string(),
                expected: if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) },
                events: new_events,
                meta: ctx.meta.clone(),
                idempotency: ctx.idempotency.clone(),
                event_keys: vec![],
            };
            match self.store.append(req).await {
                Ok(appended) if appended.replayed => return Ok(Outcome::Replayed { appended }),
                Ok(appended) => {
                    self.stored::<D>(stream, version, state, &events, appended);
                    return Ok(Outcome::Stored { events, appended });
                }
                Err(StoreError::ConcurrencyConflict { .. }) if attempt < MAX_ATTEMPTS => {
                    self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(stream, attempt, "concurrent append; deciding again");
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Two commands on two streams of aggregates `A` and `B`, each decided on its stream's
    /// current state, stored in one append to both (`EventStore::append_all`): both or
    /// neither, never one without the other (docs/DOMAIN.md §3 "Unbind reclaim"). `second`
    /// may decide nothing; then `first` is stored alone. The request's idempotency key is
    /// the whole append's. Answers `first`'s outcome, whose `appended` spans the whole append
    /// (a read waiting for its position sees both), and `second`'s events (none in a replay:
    /// the caller reads them back from the span).
    pub async fn execute_two<A: Aggregate, B: Aggregate>(
        &self,
        (stream_a, command_a): (&str, A::Command),
        (stream_b, command_b): (&str, B::Command),
        ctx: &CommandContext,
    ) -> Result<(Outcome<A::Event>, Vec<B::Event>), AppError> {
        self.execute_then::<A, B>((stream_a, command_a), stream_b, |_| Some(command_b.clone()), ctx).await
    }

    /// Like [`Executor::execute_two`], `B`'s command made on each attempt from the events
    /// `A`'s command decided (`None`: `A`'s events are stored alone): a step whose second
    /// half follows from what its first half decided (the rebate credit of a payment paid by
    /// cloud-account credit is the paid amount).
    pub async fn execute_then<A: Aggregate, B: Aggregate>(
        &self,
        (stream_a, command_a): (&str, A::Command),
        stream_b: &str,
        mut then: impl FnMut(&[A::Event]) -> Option<B::Command>,
        ctx: &CommandContext,
    ) -> Result<(Outcome<A::Event>, Vec<B::Event>), AppError> {
        if stream_a == stream_b {
            return Err(
                StoreError::InvalidAppend(format!("{stream_a}: two commands of one stream are one step")).into()
            );
        }
        // Turns are entered in name order, so two of these never wait for each other.
        let (low, high) = if stream_a < stream_b { (stream_a, stream_b) } else { (stream_b, stream_a) };
        let _low = self.turns.enter(low).await;
        let _high = self.turns.enter(high).await;
        if let Some(replayed) = self.replay(ctx).await? {
            return Ok((replayed, vec![]));
        }
        for attempt in 1..=MAX_ATTEMPTS {
            let (state_a, version_a) = self.take::<A>(stream_a).await?;
            let (state_b, version_b) = self.take::<B>(stream_b).await?;
            let decided = A::decide(&state_a, command_a.clone(), ctx.now).and_then(|a| {
                let b = match then(&a) {
                    Some(command_b) => B::decide(&state_b, command_b, ctx.now)?,
                    None => vec![],
                };
                Ok((a, b))
            });
            let (events_a, events_b) = match decided {
                Ok((a, b)) if !a.is_empty() || !b.is_empty() => (a, b),
                other => {
                    self.remember(stream_a, version_a, state_a);
                    self.remember(stream_b, version_b, state_b);
                    return match other {
                        Err(e) => Err(e.into()),
                        Ok(_) => Ok((Outcome::Unchanged { stream_version: version_a }, vec![])),
                    };
                }
            };
            let mut requests = vec![];
            for (stream, version, events) in [
                (stream_a, version_a, events_a.iter().map(|e| to_new_event(e, ctx.now)).collect::<Vec<_>>()),
                (stream_b, version_b, events_b.iter().map(|e| to_new_event(e, ctx.now)).collect()),
            ] {
                if !events.is_empty() {
                    requests.push(AppendRequest {
                        stream: stream.to_string(),
                        expected: if version == 0 {
                            ExpectedVersion::NoStream
                        } else {
                            ExpectedVersion::Exact(version)
                        },
                        events,
                        meta: ctx.meta.clone(),
                        // The first request carries the whole append's key.
                        idempotency: if requests.is_empty() { ctx.idempotency.clone() } else { None },
                        event_keys: vec![],
                    });
                }
            }
            match self.store.append_all(requests).await {
                Ok(results) if results[0].replayed => return Ok((Outcome::Replayed { appended: results[0] }, vec![])),
                Ok(results) => {
                    let mut results = results.into_iter();
                    let mut span = None;
                    if !events_a.is_empty() {
                        let appended = results.next().expect("one result per request");
                        self.stored::<A>(stream_a, version_a, state_a, &events_a, appended);
                        span = Some(appended);
                    }
                    if !events_b.is_empty() {
                        let appended = results.next().expect("one result per request");
                        self.stored::<B>(stream_b, version_b, state_b, &events_b, appended);
                        let first = span.unwrap_or(appended);
                        span = Some(Appended { last_position: appended.last_position, ..first });
                    }
                    let appended = span.expect("something was appended");
                    return Ok((Outcome::Stored { events: events_a, appended }, events_b));
                }
                Err(StoreError::ConcurrencyConflict { .. }) if attempt < MAX_ATTEMPTS => {
                    self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(stream_a, stream_b, attempt, "concurrent append; deciding both again");
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Keeps the state `events` leave once they are stored at `appended`.
    fn stored<D: Aggregate>(
        &self,
        stream: &str,
        version: u64,
        state: D::State,
        events: &[D::Event],
        appended: Appended,
    ) {
        let next = Arc::new(events.iter().fold(state, |s, e| D::evolve(s, e)));
        self.remember_shared(stream, appended.stream_version, next.clone());
        self.snapshot_if_due::<D>(stream, version, appended.stream_version, next);
    }

    /// Decides a batch of items against one state per stream and stores them with one
    /// append to all the streams they touch (`EventStore::append_all`: one transaction,
    /// all or nothing). Each item is a command on a stream of `A` and, decided with it, an
    /// optional command on a stream of `B` (a billing line and its drawdown): both are
    /// stored or neither, and a refusal of either answers the item alone. Items are decided
    /// in order, each seeing the ones before it; an append carries at most
    /// `MAX_EVENTS_PER_APPEND` events, so a larger batch is stored in several appends, each
    /// holding whole items. When another writer appended first, the append's items are
    /// decided again on the new state: a batch never answers `CONCURRENCY_CONFLICT`. When an
    /// item's key was kept by another append meanwhile, that append's items and the ones
    /// after it are answered `None`: the caller looks their keys up and sends them again.
    pub async fn execute_paired<A: Aggregate, B: Aggregate>(
        &self,
        items: &[PairedItem<A::Command, B::Command>],
        ctx: &CommandContext,
    ) -> Result<Vec<Option<ItemOutcome>>, AppError> {
        let mut names: Vec<&str> = items
            .iter()
            .flat_map(|i| std::iter::once(i.stream.as_str()).chain(i.second.as_ref().map(|(s, _)| s.as_str())))
            .collect();
        names.sort_unstable();
        names.dedup();
        let firsts: std::collections::HashSet<&str> = items.iter().map(|i| i.stream.as_str()).collect();
        if let Some(both) = items.iter().filter_map(|i| i.second.as_ref()).find(|(s, _)| firsts.contains(s.as_str())) {
            let reason = format!("{}: a stream of both halves of a batch", both.0);
            return Err(StoreError::InvalidAppend(reason).into());
        }
        // Turns are entered in name order (as `execute_two` does), so batches never wait
        // for each other in a circle.
        let mut turns = Vec::with_capacity(names.len());
        for name in &names {
            turns.push(self.turns.enter(name).await);
        }
        let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; items.len()];
        let mut start = 0;
        let mut attempt = 0;
        while start < items.len() {
            attempt += 1;
            if attempt > MAX_BATCH_ATTEMPTS {
                return Err(
                    StoreError::Backend(format!("a batch kept losing for {MAX_BATCH_ATTEMPTS} attempts")).into()
                );
            }
            // Every stream the rest of the batch touches, loaded at once.
            let mut a: Streams<A> = Streams::default();
            let mut b: Streams<B> = Streams::default();
            a.preload(self, items[start..].iter().map(|i| i.stream.as_str())).await?;
            b.preload(self, items[start..].iter().filter_map(|i| i.second.as_ref().map(|(s, _)| s.as_str()))).await?;
            // Per item of this append: its index, its outcome (positions filled in once
            // stored), and for each half with events (is it A's, its stream's index, the
            // index of its last event in that stream's request).
            let mut decided: Vec<(usize, ItemOutcome, Vec<(bool, usize, usize)>)> = vec![];
            let mut count = 0;
            let mut end = start;
            while end < items.len() {
                let item = &items[end];
                let ia = a.index[item.stream.as_str()];
                let new_a = match A::decide(&a.streams[ia].state, item.command.clone(), ctx.now) {
                    Ok(new) => new,
                    Err(e) => {
                        decided.push((end, ItemOutcome::Refused(e), vec![]));
                        end += 1;
                        continue;
                    }
                };
                let (ib, new_b) = match &item.second {
                    None => (None, vec![]),
                    Some((stream, command)) => {
                        let ib = b.index[stream.as_str()];
                        match B::decide(&b.streams[ib].state, command.clone(), ctx.now) {
                            Ok(new) => (Some(ib), new),
                            Err(e) => {
                                decided.push((end, ItemOutcome::Refused(e), vec![]));
                                end += 1;
                                continue;
                            }
                        }
                    }
                };
                let n = new_a.len() + new_b.len();
                if count > 0 && count + n > MAX_EVENTS_PER_APPEND {
                    break;
                }
                count += n;
                let mut lasts = vec![];
                let outcome =
                    if new_a.is_empty() { ItemOutcome::Unchanged } else { ItemOutcome::Stored { position: 0 } };
                if !new_a.is_empty() {
                    let s = &mut a.streams[ia];
                    if let Some((key, fingerprint)) = &item.key {
                        s.keys.push(EventKey { key: key.clone(), fingerprint: *fingerprint, event: s.events.len() });
                    }
                    lasts.push((true, ia, s.events.len() + new_a.len() - 1));
                    s.absorb(new_a, ctx.now);
                }
                if let (Some(ib), false) = (ib, new_b.is_empty()) {
                    let s = &mut b.streams[ib];
                    lasts.push((false, ib, s.events.len() + new_b.len() - 1));
                    s.absorb(new_b, ctx.now);
                }
                decided.push((end, outcome, lasts));
                end += 1;
            }
            if count == 0 {
                a.keep(self);
                b.keep(self);
                for (i, outcome, _) in decided {
                    outcomes[i] = Some(outcome);
                }
                start = end;
                continue;
            }
            let mut requests = vec![];
            let order_a = a.requests(ctx, &mut requests);
            let order_b = b.requests(ctx, &mut requests);
            match self.store.append_all(requests).await {
                Ok(results) => {
                    let at = |(first, s, e): (bool, usize, usize)| {
                        let request = if first { order_a[s] } else { order_b[s] };
                        results[request.expect("a stream with events has a request")].first_position + e as u64
                    };
                    for (i, outcome, lasts) in decided {
                        outcomes[i] = Some(match outcome {
                            ItemOutcome::Stored { .. } => ItemOutcome::Stored {
                                position: lasts.into_iter().map(at).max().expect("a stored item has events"),
                            },
                            other => other,
                        });
                    }
                    a.stored(self, &order_a, &results);
                    b.stored(self, &order_b, &results);
                    start = end;
                }
                // The streams that took events were evolved through them: those states are
                // dropped (read afresh next time), the others are kept.
                Err(StoreError::ConcurrencyConflict { stream, .. }) => {
                    self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(stream, attempt, "concurrent append; deciding the batch again");
                    a.keep(self);
                    b.keep(self);
                    tokio::task::yield_now().await;
                }
                Err(StoreError::IdempotencyConflict { .. }) => {
                    a.keep(self);
                    b.keep(self);
                    return Ok(outcomes);
                }
                Err(e) => {
                    a.keep(self);
                    b.keep(self);
                    return Err(e.into());
                }
            }
        }
        Ok(outcomes)
    }

    /// The first result of `ctx`'s idempotency key when it was used before with the same
    /// request; `IDEMPOTENCY_CONFLICT` when it was used for another.
    pub(crate) async fn replay<E>(&self, ctx: &CommandContext) -> Result<Option<Outcome<E>>, AppError> {
        let Some(key) = &ctx.idempotency else { return Ok(None) };
        match self.store.idempotency_key(&key.key).await? {
            None => Ok(None),
            Some((fingerprint, appended)) if fingerprint == key.fingerprint => {
                Ok(Some(Outcome::Replayed { appended: Appended { replayed: true, ..appended } }))
            }
            Some(_) => Err(StoreError::IdempotencyConflict { key: key.key.clone() }.into()),
        }
    }

    fn remember<S: Send + Sync + 'static>(&self, stream: &str, version: u64, state: S) {
        self.remember_shared(stream, version, Arc::new(state));
    }

    fn remember_shared<S: Send + Sync + 'static>(&self, stream: &str, version: u64, state: Arc<S>) {
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= MAX_CACHED_STREAMS && !cache.contains_key(stream) {
            cache.clear();
        }
        match cache.get(stream) {
            Some((v, _)) if *v >= version => {}
            _ => {
                cache.insert(stream.to_string(), (version, state));
            }
        }
    }
}

/// Decides `commands` in order, each on the state the events before it leave (one command,
/// the common case, is decided on `state` itself, without a copy).
fn decide_all<D: Decider>(
    state: &D::State,
    commands: Vec<D::Command>,
    now: DateTime<Utc>,
) -> Result<Vec<D::Event>, ledger_domain::DomainError> {
    let last = commands.len().saturating_sub(1);
    let mut events = vec![];
    let mut scratch: Option<D::State> = None;
    for (i, command) in commands.into_iter().enumerate() {
        let new = D::decide(scratch.as_ref().unwrap_or(state), command, now)?;
        if i < last && !new.is_empty() {
            let base = scratch.take().unwrap_or_else(|| state.clone());
            scratch = Some(new.iter().fold(base, |s, e| D::evolve(s, e)));
        }
        events.extend(new);
    }
    Ok(events)
}

/// One item of [`Executor::execute_paired`]: a command on `stream`, the key naming its first
/// event, and a command on another stream stored with it or not at all.
#[derive(Debug, Clone)]
pub struct PairedItem<A, B> {
    pub stream: String,
    pub command: A,
    pub key: Option<(String, [u8; 32])>,
    pub second: Option<(String, B)>,
}

/// A stream's state taken for a batch, and what the batch decided on it so far.
struct Taken<D: Aggregate> {
    name: String,
    state: D::State,
    version: u64,
    events: Vec<NewEvent>,
    keys: Vec<EventKey>,
    /// Whether the state was evolved through events decided here (right only once stored).
    touched: bool,
}

impl<D: Aggregate> Taken<D> {
    /// Evolves the state through `new` and keeps them to append.
    fn absorb(&mut self, new: Vec<D::Event>, now: DateTime<Utc>) {
        for e in &new {
            self.events.push(to_new_event(e, now));
        }
        let state = std::mem::take(&mut self.state);
        self.state = new.iter().fold(state, |s, e| D::evolve(s, e));
        self.touched = true;
    }
}

/// The streams of one aggregate a batch touches, in the order it first touched them.
struct Streams<D: Aggregate> {
    streams: Vec<Taken<D>>,
    index: HashMap<String, usize>,
}

impl<D: Aggregate> Default for Streams<D> {
    fn default() -> Self {
        Streams { streams: vec![], index: HashMap::new() }
    }
}

impl<D: Aggregate> Streams<D> {
    /// Takes the states of `streams` out of the executor's cache (or loads them).
    async fn preload(&mut self, exec: &Executor, streams: impl Iterator<Item = &str>) -> Result<(), AppError> {
        let mut names: Vec<String> = vec![];
        for s in streams {
            if !self.index.contains_key(s) {
                self.index.insert(s.to_string(), self.streams.len() + names.len());
                names.push(s.to_string());
            }
        }
        let taken = exec.take_many::<D>(&names).await?;
        for (name, (state, version)) in names.into_iter().zip(taken) {
            self.streams.push(Taken { name, state, version, events: vec![], keys: vec![], touched: false });
        }
        Ok(())
    }

    /// An append request for each stream with events; answers, per stream, its request's
    /// index in `requests`.
    fn requests(&mut self, ctx: &CommandContext, requests: &mut Vec<AppendRequest>) -> Vec<Option<usize>> {
        self.streams
            .iter_mut()
            .map(|s| {
                if s.events.is_empty() {
                    return None;
                }
                requests.push(AppendRequest {
                    stream: s.name.clone(),
                    expected: if s.version == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(s.version)
                    },
                    events: std::mem::take(&mut s.events),
                    meta: ctx.meta.clone(),
                    idempotency: None,
                    event_keys: std::mem::take(&mut s.keys),
                });
                Some(requests.len() - 1)
            })
            .collect()
    }

    /// Puts back the states nothing was decided on; the others were evolved through
    /// events that were not stored, and are dropped (the next load reads them afresh).
    fn keep(self, exec: &Executor) {
        for s in self.streams {
            if !s.touched {
                exec.remember(&s.name, s.version, s.state);
            }
        }
    }

    /// Keeps each state at the version its append left it.
    fn stored(self, exec: &Executor, order: &[Option<usize>], results: &[Appended]) {
        for (s, request) in self.streams.into_iter().zip(order) {
            match request {
                None => exec.remember(&s.name, s.version, s.state),
                Some(r) => {
                    let appended = results[*r];
                    let state = Arc::new(s.state);
                    exec.remember_shared(&s.name, appended.stream_version, state.clone());
                    exec.snapshot_if_due::<D>(&s.name, s.version, appended.stream_version, state);
                }
            }
        }
    }
}

/// The envelope payload of a domain event.
pub fn to_new_event<E: EventFamily>(event: &E, occurred_at: DateTime<Utc>) -> NewEvent {
    let (event_type, version, data) = encode_canonical(event);
    NewEvent::from_canonical(event_type, version, occurred_at, data)
}
