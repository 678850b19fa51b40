//! The decider shape every aggregate implements, and a given/when/then harness for tests.

use chrono::{DateTime, Utc};

use crate::DomainError;

/// One aggregate: a consistency boundary whose events live in one stream.
pub trait Decider {
    /// The stream family: every stream of this aggregate is named `{FAMILY}-{id}`, and
    /// whatever reads the log (journal, projections, relay) tells the aggregate by it.
    const FAMILY: &'static str;

    type State: Default + Clone + std::fmt::Debug;
    type Command: std::fmt::Debug;
    type Event: Clone + std::fmt::Debug + PartialEq;

    /// Decides what happens when `command` meets `state` at business time `now`.
    fn decide(state: &Self::State, command: Self::Command, now: DateTime<Utc>)
        -> Result<Vec<Self::Event>, DomainError>;

    /// Applies one event. Must be total: a stored event is a fact and is never refused.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The state as text, kept beside the log so that loading a long stream reads the
    /// snapshot and only the events after it. A cache: the log stays the truth, a snapshot
    /// that does not restore is ignored. `None` (the default): never kept.
    fn snapshot(_state: &Self::State) -> Option<String> {
        None
    }

    /// The state a [`Decider::snapshot`] text gives back (`None` when it does not).
    fn restore(_snapshot: &str) -> Option<Self::State> {
        None
    }

    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::State::default(), Self::evolve)
    }
}

/// `given(events).when(command).then(events)` or `.then_error(error)`.
#[cfg(test)]
pub mod harness {
    use super::*;

    pub struct Given<D: Decider> {
        history: Vec<D::Event>,
        now: DateTime<Utc>,
    }

    pub fn given<D: Decider>(history: impl IntoIterator<Item = D::Event>) -> Given<D> {
        Given { history: history.into_iter().collect(), now: Utc::now() }
    }

    pub struct When<D: Decider> {
        result: Result<Vec<D::Event>, DomainError>,
    }

    impl<D: Decider> Given<D> {
        pub fn at(mut self, now: DateTime<Utc>) -> Self {
            self.now = now;
            self
        }

        pub fn state(&self) -> D::State {
            D::replay(&self.history)
        }

        pub fn when(self, command: D::Command) -> When<D> {
            When { result: D::decide(&D::replay(&self.history), command, self.now) }
        }
    }

    impl<D: Decider> When<D> {
        #[track_caller]
        pub fn then(self, expected: impl IntoIterator<Item = D::Event>) {
            let expected: Vec<D::Event> = expected.into_iter().collect();
            match self.result {
                Ok(events) => assert_eq!(events, expected),
                Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
            }
        }

        #[track_caller]
        pub fn then_error(self, code: &str) {
            match self.result {
                Ok(events) => panic!("expected {code}, got events {events:?}"),
                Err(e) => assert_eq!(e.code(), code, "{e}"),
            }
        }

        /// The events, for assertions on a part of them.
        #[track_caller]
        pub fn events(self) -> Vec<D::Event> {
            self.result.unwrap_or_else(|e| panic!("expected events, got {e:?}"))
        }
    }
}
