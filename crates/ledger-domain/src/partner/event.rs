//! The partner's events and the value types they carry.

use chrono::{DateTime, Utc};
use ledger_core::CoreError;
use serde::{Deserialize, Serialize};

use super::{MAX_ACCOUNT_FIELD_CHARS, MAX_NAME_CHARS};
use crate::guard::non_blank;
use crate::EventFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKind {
    /// Tier-1, 一级经销商.
    Distributor,
    /// Tier-2, 二级经销商: belongs to exactly one distributor.
    Reseller,
    SolutionProvider,
}

/// 标准/优选/领先/核心.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartnerLevel {
    #[default]
    Standard,
    Preferred,
    Leading,
    Core,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BankAccount {
    pub holder_name: String,
    pub number: String,
    pub bank: String,
}

impl BankAccount {
    pub fn validate(&self) -> Result<(), CoreError> {
        non_blank("bank_account.holder_name", &self.holder_name, MAX_NAME_CHARS)?;
        non_blank("bank_account.number", &self.number, MAX_ACCOUNT_FIELD_CHARS)?;
        non_blank("bank_account.bank", &self.bank, MAX_ACCOUNT_FIELD_CHARS)
    }
}

/// 商业信息认证: where the vendor pays, and what goes on the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessInfo {
    pub bank_account: BankAccount,
    pub tax_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type")]
pub enum PartnerEvent {
    PartnerRegistered {
        partner_id: String,
        name: String,
        kind: PartnerKind,
        parent_id: Option<String>,
        level: PartnerLevel,
        registered_at: DateTime<Utc>,
    },
    /// 实名认证: gives the legal name. A later one replaces the earlier (a renamed company).
    RealNameCertified {
        partner_id: String,
        legal_name: String,
        certified_at: DateTime<Utc>,
    },
    /// 商业信息认证. A later one replaces the earlier (a new bank account).
    BusinessInfoCertified {
        partner_id: String,
        bank_account: BankAccount,
        tax_id: String,
        certified_at: DateTime<Utc>,
    },
    PartnerLevelChanged {
        partner_id: String,
        from: PartnerLevel,
        to: PartnerLevel,
        changed_at: DateTime<Utc>,
    },
}

impl EventFamily for PartnerEvent {}

/// One example of every event, for the JSON Schema catalogue.
pub fn examples() -> Vec<PartnerEvent> {
    let at = |s: &str| -> DateTime<Utc> { s.parse().expect("a valid timestamp") };
    vec![
        PartnerEvent::PartnerRegistered {
            partner_id: "R1".into(),
            name: "Galaxy Reseller Ltd".into(),
            kind: PartnerKind::Reseller,
            parent_id: Some("D1".into()),
            level: PartnerLevel::Standard,
            registered_at: at("2026-01-05T02:00:00Z"),
        },
        PartnerEvent::RealNameCertified {
            partner_id: "R1".into(),
            legal_name: "银河科技有限公司".into(),
            certified_at: at("2026-01-06T02:00:00Z"),
        },
        PartnerEvent::BusinessInfoCertified {
            partner_id: "R1".into(),
            bank_account: BankAccount {
                holder_name: "银河科技有限公司".into(),
                number: "6222000011112222".into(),
                bank: "ICBC".into(),
            },
            tax_id: "91310000TAX".into(),
            certified_at: at("2026-01-07T02:00:00Z"),
        },
        PartnerEvent::PartnerLevelChanged {
            partner_id: "R1".into(),
            from: PartnerLevel::Standard,
            to: PartnerLevel::Preferred,
            changed_at: at("2026-04-01T02:00:00Z"),
        },
    ]
}
