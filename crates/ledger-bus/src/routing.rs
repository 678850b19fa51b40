//! Where an event goes: its topic (by stream prefix, then type) and its key (the partner).
//!
//! The topic contract: one topic per event family, versioned in its name. A stream the
//! relay does not know stops the relay: a new family must be routed on purpose, never
//! published somewhere by accident.

use ledger_core::RecordedEvent;
use ledger_domain::anchors::Anchors;
use ledger_domain::coupons::Coupons;
use ledger_domain::customer::Customer;
use ledger_domain::funds::Funds;
use ledger_domain::incentives::Incentives;
use ledger_domain::lab_points::LabPoints;
use ledger_domain::partner::Partner;
use ledger_domain::policy::Policies;
use ledger_domain::rebate::Rebate;
use ledger_domain::{split_stream, stream_family, Decider};
use thiserror::Error;

pub const TOPIC_PARTNERS: &str = "ledger.partners.v1";
pub const TOPIC_POLICIES: &str = "ledger.policies.v1";
pub const TOPIC_INCENTIVES: &str = "ledger.incentives.v1";
pub const TOPIC_PAYMENTS: &str = "ledger.payments.v1";
pub const TOPIC_ADJUSTMENTS: &str = "ledger.adjustments.v1";
pub const TOPIC_COUPONS: &str = "ledger.coupons.v1";
pub const TOPIC_WITHDRAWALS: &str = "ledger.withdrawals.v1";
pub const TOPIC_LAB_POINTS: &str = "ledger.lab-points.v1";
/// Signed anchors of the hash chain: a copy kept outside the database for auditors.
pub const TOPIC_ANCHORS: &str = "ledger.anchors.v1";

/// Every topic the relay may produce to (consumers subscribe to these).
pub const ALL_TOPICS: [&str; 9] = [
    TOPIC_PARTNERS,
    TOPIC_POLICIES,
    TOPIC_INCENTIVES,
    TOPIC_PAYMENTS,
    TOPIC_ADJUSTMENTS,
    TOPIC_COUPONS,
    TOPIC_WITHDRAWALS,
    TOPIC_LAB_POINTS,
    TOPIC_ANCHORS,
];

/// The stream that holds credential events (hashed tokens, access keys).
///
/// SECURITY: it is never published. Its events concern who may sign in, not money, and even
/// hashed secrets must not leave the ledger: a topic is read by many systems, kept for days
/// and copied to places the ledger cannot audit. The relay skips these events (they still
/// move its checkpoint) and no configuration can turn that off.
pub const CREDENTIALS_STREAM: &str = "credentials";

/// The stream of billing batch receipts (the answer each batch sent with a request id was
/// given). Not published: it is the ledger's own record of a feed call, and every money fact
/// in it already travels as a `ConsumptionRecorded` on `ledger.incentives.v1`.
pub const BILLING_RECEIPTS_STREAM: &str = ledger_domain::billing::STREAM;

/// Longest Kafka key the relay produces (a partner id is far shorter; this is a sanity
/// bound against a malformed payload).
pub const MAX_KEY_BYTES: usize = 256;

/// What the relay does with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Produce to `topic` with `key`.
    Publish { topic: &'static str, key: String },
    /// Never published (the credentials and billing receipt streams).
    Withheld,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("event at position {position} (stream {stream}, type {event_type}) has no topic: unknown stream family")]
    UnknownStream { position: u64, stream: String, event_type: String },
    #[error("event at position {position} (stream {stream}) has no usable key: {reason}")]
    NoKey { position: u64, stream: String, reason: String },
}

/// The topic of an event of `event_type` in `stream`, or `None` when no family matches.
/// `Some(None)` means the stream is known and never published.
pub fn topic_for(stream: &str, event_type: &str) -> Option<Option<&'static str>> {
    if stream == CREDENTIALS_STREAM || stream == BILLING_RECEIPTS_STREAM {
        return Some(None);
    }
    stream.split_once('-')?;
    let topic = match stream_family(stream) {
        Partner::FAMILY | Customer::FAMILY => TOPIC_PARTNERS,
        Policies::FAMILY => TOPIC_POLICIES,
        Incentives::FAMILY if event_type.starts_with("QuarterlyPayment") => TOPIC_PAYMENTS,
        Incentives::FAMILY => TOPIC_INCENTIVES,
        Funds::FAMILY => TOPIC_ADJUSTMENTS,
        Coupons::FAMILY => TOPIC_COUPONS,
        Rebate::FAMILY if event_type == "RebateCredited" => TOPIC_PAYMENTS,
        Rebate::FAMILY => TOPIC_WITHDRAWALS,
        LabPoints::FAMILY => TOPIC_LAB_POINTS,
        Anchors::FAMILY => TOPIC_ANCHORS,
        _ => return None,
    };
    Some(Some(topic))
}

/// The key: `data.partner_id` when present, else the stream's id (after its family).
/// `data` is the event's payload, already parsed.
pub fn key_for(stream: &str, data: &serde_json::Value) -> Result<String, String> {
    let key = match data.get("partner_id") {
        Some(serde_json::Value::String(p)) => p.clone(),
        Some(other) => return Err(format!("partner_id is not a string: {other}")),
        None => split_stream(stream).1.to_string(),
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!("key must be 1 to {MAX_KEY_BYTES} bytes, found {} bytes", key.len()));
    }
    Ok(key)
}

/// Routes one event whose payload has been parsed into `data`.
pub fn route(event: &RecordedEvent, data: &serde_json::Value) -> Result<Route, RouteError> {
    let topic = match topic_for(&event.stream, &event.event_type) {
        None => {
            return Err(RouteError::UnknownStream {
                position: event.position,
                stream: event.stream.clone(),
                event_type: event.event_type.clone(),
            })
        }
        Some(None) => return Ok(Route::Withheld),
        Some(Some(topic)) => topic,
    };
    let key = key_for(&event.stream, data).map_err(|reason| RouteError::NoKey {
        position: event.position,
        stream: event.stream.clone(),
        reason,
    })?;
    Ok(Route::Publish { topic, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_family_goes_to_its_topic() {
        let cases = [
            ("partner-P1", "PartnerRegistered", TOPIC_PARTNERS),
            ("customer-C1", "CustomerAssociated", TOPIC_PARTNERS),
            ("policies-CNY", "PolicyPublished", TOPIC_POLICIES),
            ("incentives-P1", "ConsumptionRecorded", TOPIC_INCENTIVES),
            ("incentives-P1", "QuarterlyPaymentPaid", TOPIC_PAYMENTS),
            ("incentives-P1", "QuarterlyPaymentRequested", TOPIC_PAYMENTS),
            ("funds-D1", "AllocationMade", TOPIC_ADJUSTMENTS),
            ("coupons-P1", "CouponIssued", TOPIC_COUPONS),
            ("rebate-P1", "WithdrawalRequested", TOPIC_WITHDRAWALS),
            ("rebate-P1", "RebateCredited", TOPIC_PAYMENTS),
            ("lab-points-P1", "LabPointsApplied", TOPIC_LAB_POINTS),
            ("anchors-chain", "ChainAnchored", TOPIC_ANCHORS),
            ("anchors-chain", "AnchorKeyRotated", TOPIC_ANCHORS),
        ];
        for (stream, ty, topic) in cases {
            assert_eq!(topic_for(stream, ty), Some(Some(topic)), "{stream} {ty}");
        }
    }

    #[test]
    fn credentials_are_never_published_and_unknown_streams_have_no_topic() {
        assert_eq!(topic_for("credentials", "CredentialIssued"), Some(None));
        assert_eq!(topic_for("credentials-x", "CredentialIssued"), None);
        assert_eq!(topic_for("orders-1", "OrderPlaced"), None);
        assert_eq!(topic_for("nodash", "Anything"), None);
        assert_eq!(topic_for("lab-1", "LabPointsApplied"), None);
    }

    #[test]
    fn billing_receipts_are_withheld_and_only_their_own_stream_is() {
        assert_eq!(BILLING_RECEIPTS_STREAM, ledger_domain::billing::STREAM);
        assert_eq!(topic_for("billing-batches", "BillingBatchReceived"), Some(None));
        assert_eq!(topic_for("billing-other", "BillingBatchReceived"), None);
    }

    #[test]
    fn the_key_is_the_partner_id_else_the_stream_id() {
        assert_eq!(key_for("incentives-P1", &json!({"partner_id": "P9"})).unwrap(), "P9");
        assert_eq!(key_for("partner-P1-x", &json!({})).unwrap(), "P1-x");
        assert_eq!(key_for("lab-points-P7", &json!({})).unwrap(), "P7");
        // One key for the one anchor stream: its anchors stay in order on one partition.
        assert_eq!(key_for(&ledger_domain::anchors::stream_id(), &json!({})).unwrap(), "chain");
        assert!(key_for("partner-", &json!({})).is_err());
        assert!(key_for("partner-P1", &json!({"partner_id": 3})).is_err());
    }
}
