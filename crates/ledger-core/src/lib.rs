//! # ledger-core
//!
//! The vocabulary every other crate speaks: [`Money`] (decimal amount + currency, never a
//! float), the business calendar in China Standard Time ([`Month`], [`Quarter`],
//! [`WorkingCalendar`]), validated identifiers, and the event envelope with its canonical
//! bytes and hash chain ([`envelope`]).
//!
//! It must not know about storage, HTTP or Kafka, nor about any particular business rule:
//! those live in `ledger-domain`.

pub mod calendar;
pub mod canonical;
pub mod envelope;
pub mod error;
pub mod ids;
pub mod money;
pub mod workdays;

pub use calendar::{business_date, start_of_business_day, Month, Quarter, CST};
pub use envelope::{Actor, ChainHash, CommandMeta, NewEvent, RecordedEvent, Role};
pub use error::CoreError;
pub use money::{round_money, Currency, Money, Rate};
pub use workdays::WorkingCalendar;
