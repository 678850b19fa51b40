//! What may be asked of a partner stream: one struct per command.

use super::{BankAccount, PartnerKind, PartnerLevel};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnerCommand {
    RegisterPartner(RegisterPartner),
    CertifyRealName(CertifyRealName),
    CertifyBusinessInfo(CertifyBusinessInfo),
    ChangeLevel(ChangeLevel),
}

/// `parent_kind` is looked up by the application layer: the kind of the partner
/// `parent_id` names, `None` when there is no such partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPartner {
    pub partner_id: String,
    pub name: String,
    pub kind: PartnerKind,
    pub parent_id: Option<String>,
    pub parent_kind: Option<PartnerKind>,
    pub level: Option<PartnerLevel>,
}

/// 实名认证.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifyRealName {
    pub legal_name: String,
}

/// 商业信息认证.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifyBusinessInfo {
    pub bank_account: BankAccount,
    pub tax_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeLevel {
    pub level: PartnerLevel,
}
