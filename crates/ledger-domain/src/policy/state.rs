//! The book of policy versions, and the policy in force for a month.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use ledger_core::{Currency, Month, Rate};

use super::PolicyEvent;

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

pub(super) fn evolve(mut state: PolicyBook, event: &PolicyEvent) -> PolicyBook {
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
