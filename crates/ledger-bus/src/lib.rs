//! # ledger-bus
//!
//! The ledger's Kafka side: the [`relay::Relay`] that publishes the global log to one topic
//! per event family (key = partner id, value = the event's JSON checked against its schema,
//! envelope fields as headers) with an idempotent producer and a durable checkpoint, and a
//! [`consumer::ReferenceConsumer`] that shows downstream teams how to consume it correctly
//! (dedupe by event id, commit offsets after applying).
//!
//! It knows the envelope and the topic contract (routing, schemas), not what the events
//! mean: no domain rules, no HTTP.

pub mod anchors;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod consumer;
pub mod relay;
pub mod routing;
pub mod sample;
pub mod schema;
pub mod source;

pub use checkpoint::{read_checkpoint, Checkpoint, CHECKPOINT_FILE};
pub use consumer::{ConsumerSettings, PaidTotalsView, ReferenceConsumer};
pub use relay::{producer_config, Relay, RelayError, RelayStats};
pub use schema::SchemaSet;
pub use source::{LogSource, SqliteFileSource, StoreSource};
