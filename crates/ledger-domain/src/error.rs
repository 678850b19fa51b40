//! Every business-rule error of docs/DOMAIN.md, each with its stable code. A variant carries
//! what an operator needs to understand the refusal; `code()` is what clients match on.

use ledger_core::CoreError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Bad input (amount, month, id, text...). HTTP 400.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The thing named does not exist. HTTP 404.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The thing exists already (a create with an id in use). HTTP 409.
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    /// The command does not fit the current state of the thing (e.g. approve a paid
    /// withdrawal). HTTP 409.
    #[error("{0}")]
    InvalidState(String),
    #[error("certification incomplete: {missing}")]
    CertificationIncomplete { missing: String },
    #[error("insufficient balance: requested {requested}, available {available}")]
    InsufficientBalance { requested: String, available: String },
    #[error("record {record_id} was already stored with different content")]
    DuplicateRecordConflict { record_id: String },
    #[error("customer {customer_id} has no association at that time")]
    NoAssociation { customer_id: String },
    #[error("the association with customer {customer_id} was switched less than 3 months ago")]
    SwitchTooFrequent { customer_id: String },
    #[error("customer {customer_id} is not a resale customer")]
    NotResaleCustomer { customer_id: String },
    #[error("customer {customer_id} is not yours")]
    NotYourCustomer { customer_id: String },
    #[error("coupon {coupon_id} not found")]
    CouponNotFound { coupon_id: String },
    #[error("coupon {coupon_id} is used up")]
    CouponUsedUp { coupon_id: String },
    #[error("coupon {coupon_id} has expired")]
    CouponExpired { coupon_id: String },
    #[error("offering {offering} already backs another opportunity application")]
    OfferingInUse { offering: String },
    #[error("opportunity {opportunity_id} is not applicable: {reason}")]
    OpportunityNotApplicable { opportunity_id: String, reason: String },
    #[error("bank account holder does not match the real-name-authenticated name")]
    AccountNameMismatch,
    #[error("{points} is not a lab point denomination (10, 20, 50, 100, 250, 500)")]
    InvalidLabPoints { points: u32 },
    /// A quarterly payment request refused; every blocker that holds, first one first.
    #[error("quarterly payment not eligible: {}", .0.iter().map(|b| b.code.as_str()).collect::<Vec<_>>().join(", "))]
    PaymentBlocked(Vec<Blocker>),
}

/// One reason a quarterly payment cannot be requested, with the months it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Blocker {
    pub code: String,
    pub months: Vec<ledger_core::Month>,
}

impl DomainError {
    /// The stable error code of docs/DOMAIN.md / docs/API.md.
    pub fn code(&self) -> &str {
        match self {
            DomainError::Invalid(e) => e.code(),
            DomainError::NotFound { .. } => "NOT_FOUND",
            DomainError::AlreadyExists { .. } => "ALREADY_EXISTS",
            DomainError::InvalidState(_) => "INVALID_STATE",
            DomainError::CertificationIncomplete { .. } => "CERTIFICATION_INCOMPLETE",
            DomainError::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            DomainError::DuplicateRecordConflict { .. } => "DUPLICATE_RECORD_CONFLICT",
            DomainError::NoAssociation { .. } => "NO_ASSOCIATION",
            DomainError::SwitchTooFrequent { .. } => "SWITCH_TOO_FREQUENT",
            DomainError::NotResaleCustomer { .. } => "NOT_RESALE_CUSTOMER",
            DomainError::NotYourCustomer { .. } => "NOT_YOUR_CUSTOMER",
            DomainError::CouponNotFound { .. } => "COUPON_NOT_FOUND",
            DomainError::CouponUsedUp { .. } => "COUPON_USED_UP",
            DomainError::CouponExpired { .. } => "COUPON_EXPIRED",
            DomainError::OfferingInUse { .. } => "OFFERING_IN_USE",
            DomainError::OpportunityNotApplicable { .. } => "OPPORTUNITY_NOT_APPLICABLE",
            DomainError::AccountNameMismatch => "ACCOUNT_NAME_MISMATCH",
            DomainError::InvalidLabPoints { .. } => "INVALID_LAB_POINTS",
            DomainError::PaymentBlocked(blockers) => {
                blockers.first().map(|b| b.code.as_str()).unwrap_or("NOT_ELIGIBLE")
            }
        }
    }
}
