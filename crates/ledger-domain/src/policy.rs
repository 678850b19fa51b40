//! # Incentive policies (stream `policies-{currency}`)
//!
//! Which product codes earn an incentive, at which rate, and how many grace days after a
//! month's end a settlement still counts into that month (§2). Policies are versioned by
//! effective month; a month uses the latest version whose effective month is not after it.
//!
//! Versions only move forward: a new version takes effect after the latest one. Inserting
//! a version before an existing one would change, behind the back of lines already
//! recorded, which policy their month "used"; lines carry their rate, so history stays
//! readable either way, but the book must keep telling the same story.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use ledger_core::ids::validate_id;
use ledger_core::{CoreError, Currency, Month, Rate};
use serde::{Deserialize, Serialize};

use crate::{Decider, DomainError, EventFamily};

/// Most product codes one policy version lists.
pub const MAX_PRODUCTS_PER_POLICY: usize = 1_000;
/// Longest settlement grace after a month's end (ours): beyond this a month could never be
/// closed within the next one.
pub const MAX_SETTLEMENT_GRACE_DAYS: u32 = 27;

pub fn stream_id(currency: Currency) -> String {
    format!("policies-{currency}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProductRate {
    pub product: String,
    pub rate: Rate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum PolicyEvent {
    PolicyPublished {
        currency: Currency,
        effective_month: Month,
        rates: Vec<ProductRate>,
        settlement_grace_days: u32,
        published_at: DateTime<Utc>,
    },
}

impl EventFamily for PolicyEvent {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCommand {
    Publish { currency: Currency, effective_month: Month, rates: Vec<ProductRate>, settlement_grace_days: Option<u32> },
}

/// One version of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub currency: Currency,
    pub effective_month: Month,
    pub rates: BTreeMap<String, Rate>,
    pub settlement_grace_days: u32,
}

impl Policy {
    /// The rate of a product, `None` when the policy does not list it (earns nothing).
    pub fn rate(&self, product: &str) -> Option<Rate> {
        self.rates.get(product).copied()
    }

    /// When `month` stops taking settlements under this policy.
    pub fn cut_off(&self, month: Month) -> DateTime<Utc> {
        cut_off(month, self.settlement_grace_days)
    }
}

/// The cut-off of a month: its end in CST plus the grace days (§2, ours).
pub fn cut_off(month: Month, settlement_grace_days: u32) -> DateTime<Utc> {
    month.end() + Duration::days(i64::from(settlement_grace_days))
}

/// All versions of one currency's policy, by effective month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyBook {
    pub versions: BTreeMap<Month, Policy>,
}

impl PolicyBook {
    /// The policy in force for `month`: the latest with effective month ≤ `month`.
    pub fn policy_for(&self, month: Month) -> Option<&Policy> {
        self.versions.range(..=month).next_back().map(|(_, p)| p)
    }

    /// Grace days in force for `month`; 0 without a policy (the default).
    pub fn settlement_grace_days(&self, month: Month) -> u32 {
        self.policy_for(month).map_or(0, |p| p.settlement_grace_days)
    }
}

pub struct Policies;

impl Decider for Policies {
    type State = PolicyBook;
    type Command = PolicyCommand;
    type Event = PolicyEvent;

    fn decide(state: &PolicyBook, command: PolicyCommand, now: DateTime<Utc>) -> Result<Vec<PolicyEvent>, DomainError> {
        let PolicyCommand::Publish { currency, effective_month, rates, settlement_grace_days } = command;
        if let Some(existing) = state.versions.values().next() {
            if existing.currency != currency {
                return Err(invalid("currency", format!("this policy book is for {}", existing.currency)));
            }
        }
        if rates.len() > MAX_PRODUCTS_PER_POLICY {
            return Err(invalid("rates", format!("at most {MAX_PRODUCTS_PER_POLICY} products")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &rates {
            validate_id("product", &r.product)?;
            if !seen.insert(r.product.as_str()) {
                return Err(invalid("rates", format!("product {} is listed twice", r.product)));
            }
        }
        let settlement_grace_days = settlement_grace_days.unwrap_or(0);
        if settlement_grace_days > MAX_SETTLEMENT_GRACE_DAYS {
            return Err(invalid("settlement_grace_days", format!("at most {MAX_SETTLEMENT_GRACE_DAYS}")));
        }
        if state.versions.contains_key(&effective_month) {
            return Err(DomainError::AlreadyExists {
                what: "policy version",
                id: format!("{currency} {effective_month}"),
            });
        }
        if let Some(latest) = state.versions.keys().next_back() {
            if effective_month < *latest {
                return Err(DomainError::InvalidState(format!(
                    "a new policy version must take effect after the latest one ({latest})"
                )));
            }
        }
        Ok(vec![PolicyEvent::PolicyPublished {
            currency,
            effective_month,
            rates,
            settlement_grace_days,
            published_at: now,
        }])
    }

    fn evolve(mut state: PolicyBook, event: &PolicyEvent) -> PolicyBook {
        let PolicyEvent::PolicyPublished { currency, effective_month, rates, settlement_grace_days, .. } = event;
        state.versions.insert(
            *effective_month,
            Policy {
                currency: *currency,
                effective_month: *effective_month,
                rates: rates.iter().map(|r| (r.product.clone(), r.rate)).collect(),
                settlement_grace_days: *settlement_grace_days,
            },
        );
        state
    }
}

fn invalid(field: &'static str, reason: String) -> DomainError {
    DomainError::Invalid(CoreError::InvalidField { field, reason })
}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<PolicyEvent> {
    vec![PolicyEvent::PolicyPublished {
        currency: Currency::CNY,
        effective_month: Month::new(2026, 7).expect("a valid month"),
        rates: vec![
            ProductRate { product: "ecs".into(), rate: Rate::parse("0.05").expect("a valid rate") },
            ProductRate { product: "obs".into(), rate: Rate::parse("0.035").expect("a valid rate") },
        ],
        settlement_grace_days: 3,
        published_at: "2026-06-20T02:00:00Z".parse().expect("a valid timestamp"),
    }]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decider::harness::given;
    use crate::partner::tests::t;

    pub fn month(s: &str) -> Month {
        s.parse().unwrap()
    }

    pub fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    pub fn published(m: &str, rates: &[(&str, &str)], grace: u32) -> PolicyEvent {
        PolicyEvent::PolicyPublished {
            currency: Currency::CNY,
            effective_month: month(m),
            rates: rates.iter().map(|(p, r)| ProductRate { product: p.to_string(), rate: rate(r) }).collect(),
            settlement_grace_days: grace,
            published_at: t("2026-01-01T00:00:00Z"),
        }
    }

    fn publish(m: &str, rates: &[(&str, &str)], grace: Option<u32>) -> PolicyCommand {
        PolicyCommand::Publish {
            currency: Currency::CNY,
            effective_month: month(m),
            rates: rates.iter().map(|(p, r)| ProductRate { product: p.to_string(), rate: rate(r) }).collect(),
            settlement_grace_days: grace,
        }
    }

    #[test]
    fn a_policy_is_published_with_zero_grace_days_by_default() {
        given::<Policies>([])
            .at(t("2026-01-01T00:00:00Z"))
            .when(publish("2026-01", &[("ecs", "0.05")], None))
            .then([published("2026-01", &[("ecs", "0.05")], 0)]);
    }

    #[test]
    fn the_policy_of_a_month_is_the_latest_effective_by_then() {
        let book = Policies::replay(&[
            published("2026-01", &[("ecs", "0.05")], 0),
            published("2026-07", &[("ecs", "0.08")], 3),
        ]);
        assert!(book.policy_for(month("2025-12")).is_none());
        assert_eq!(book.policy_for(month("2026-06")).unwrap().rate("ecs"), Some(rate("0.05")));
        assert_eq!(book.policy_for(month("2026-07")).unwrap().rate("ecs"), Some(rate("0.08")));
        assert_eq!(book.policy_for(month("2027-03")).unwrap().effective_month, month("2026-07"));
        assert_eq!(book.policy_for(month("2027-03")).unwrap().rate("obs"), None);
        assert_eq!(book.settlement_grace_days(month("2026-08")), 3);
        assert_eq!(book.settlement_grace_days(month("2025-08")), 0);
    }

    #[test]
    fn the_cut_off_is_the_end_of_the_month_in_cst_plus_grace_days() {
        // July ends 2026-08-01 00:00 CST = 2026-07-31 16:00 UTC.
        assert_eq!(cut_off(month("2026-07"), 0), t("2026-07-31T16:00:00Z"));
        assert_eq!(cut_off(month("2026-07"), 3), t("2026-08-03T16:00:00Z"));
    }

    #[test]
    fn versions_only_move_forward_and_are_never_replaced() {
        let history = [published("2026-07", &[("ecs", "0.05")], 0)];
        given::<Policies>(history.clone()).when(publish("2026-07", &[], None)).then_error("ALREADY_EXISTS");
        given::<Policies>(history).when(publish("2026-06", &[], None)).then_error("INVALID_STATE");
    }

    #[test]
    fn bad_policies_are_refused() {
        given::<Policies>([])
            .when(publish("2026-07", &[("ecs", "0.05"), ("ecs", "0.06")], None))
            .then_error("INVALID_FIELD");
        given::<Policies>([]).when(publish("2026-07", &[("e cs", "0.05")], None)).then_error("INVALID_FIELD");
        given::<Policies>([])
            .when(publish("2026-07", &[], Some(MAX_SETTLEMENT_GRACE_DAYS + 1)))
            .then_error("INVALID_FIELD");
        given::<Policies>([published("2026-01", &[], 0)])
            .when(PolicyCommand::Publish {
                currency: Currency::USD,
                effective_month: month("2026-02"),
                rates: vec![],
                settlement_grace_days: None,
            })
            .then_error("INVALID_FIELD");
        let too_many: Vec<(String, &str)> = (0..=MAX_PRODUCTS_PER_POLICY).map(|i| (format!("p{i}"), "0.01")).collect();
        let too_many: Vec<(&str, &str)> = too_many.iter().map(|(p, r)| (p.as_str(), *r)).collect();
        given::<Policies>([]).when(publish("2026-07", &too_many, None)).then_error("INVALID_FIELD");
    }

    #[test]
    fn rates_are_stored_as_strings() {
        let (ty, v, data) = crate::encode(&published("2026-07", &[("ecs", "0.035")], 2));
        assert_eq!(ty, "PolicyPublished");
        assert_eq!(data["rates"][0]["rate"], "0.035");
        assert_eq!(data["effective_month"], "2026-07");
        assert_eq!(
            crate::decode::<PolicyEvent>(&ty, v, &data.to_string()).unwrap(),
            published("2026-07", &[("ecs", "0.035")], 2)
        );
    }
}
