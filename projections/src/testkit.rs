//! Unit-test support: domain events appended to a log of their own and applied by a real
//! [`Runner`] with every projection, and the aggregate state they give, to compare with.

use chrono::{DateTime, Utc};
use ledger_core::envelope::{ChainHash, NewEvent};
use ledger_core::{Actor, CommandMeta, RecordedEvent};
use ledger_domain::{Decider, EventFamily};
use rusqlite::Connection;

use crate::runner::{open_reader, Runner};

pub struct Kit {
    dir: tempfile::TempDir,
    runner: Runner,
    position: u64,
}

impl Kit {
    pub fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::open(dir.path(), crate::all()).unwrap();
        Kit { dir, runner, position: 0 }
    }

    /// The same tables with a fresh runner (no cache), as after a restart.
    pub fn reopen(kit: Kit) -> Kit {
        let Kit { dir, runner, position } = kit;
        drop(runner);
        let runner = Runner::open(dir.path(), crate::all()).unwrap();
        Kit { dir, runner, position }
    }

    /// Appends `events` to `stream` and applies them as one batch; answers the position of
    /// the last.
    pub fn push<E: EventFamily>(&mut self, stream: &str, events: &[E]) -> u64 {
        let meta = CommandMeta::new(Actor::system("test"));
        let batch: Vec<RecordedEvent> = events
            .iter()
            .map(|e| {
                let (ty, version, payload) = ledger_domain::encode(e);
                self.position += 1;
                let new = NewEvent::new(&ty, version, Utc::now(), &payload).unwrap();
                RecordedEvent::seal(new, &meta, stream, self.position, self.position, Utc::now(), ChainHash::ZERO)
            })
            .collect();
        self.runner.apply_batch(&batch).unwrap();
        self.position
    }

    pub fn conn(&self) -> Connection {
        open_reader(self.dir.path()).unwrap()
    }
}

/// The aggregate's state after `events`.
pub fn state<D: Decider>(events: &[D::Event]) -> D::State {
    D::replay(events)
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
