//! From a stored event to its postings, whatever its aggregate: the input of the journal
//! projection and of the trial balance. Events that move no money have none.

use crate::coupons::{self, Coupons};
use crate::event::{decode, DecodeError};
use crate::funds::{self, Funds};
use crate::incentives::{self, Incentives};
use crate::postings::Posting;
use crate::rebate::{self, Rebate};
use crate::Decider;

/// The incentive events that move money; the other types of the family post nothing and
/// are not decoded (most of the log is consumption lines, which post nothing). The test
/// below fails if a type that posts is missing here.
const INCENTIVE_TYPES_THAT_POST: [&str; 3] =
    ["IncentiveMonthFinalized", "OpportunityFinalized", "QuarterlyPaymentPaid"];

/// The postings of the event `(event_type, version, data)` stored in `stream`.
pub fn postings_of(stream: &str, event_type: &str, version: u32, data: &str) -> Result<Vec<Posting>, DecodeError> {
    Ok(match crate::event::stream_family(stream) {
        Incentives::FAMILY if !INCENTIVE_TYPES_THAT_POST.contains(&event_type) => vec![],
        Incentives::FAMILY => incentives::postings(&decode(event_type, version, data)?),
        Funds::FAMILY => funds::postings(&decode(event_type, version, data)?),
        Coupons::FAMILY => coupons::postings(&decode(event_type, version, data)?),
        Rebate::FAMILY => rebate::postings(&decode(event_type, version, data)?),
        // Partners, customers, policies, lab points and credentials move no money.
        _ => vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{encode, EventFamily};
    use crate::postings::is_balanced;

    fn check<E: EventFamily>(stream: &str, examples: Vec<E>, postings: fn(&E) -> Vec<Posting>) -> usize {
        let mut moving = 0;
        for e in examples {
            let (ty, version, payload) = encode(&e);
            let got = postings_of(stream, &ty, version, &payload.to_string()).unwrap();
            assert_eq!(got, postings(&e), "{ty}");
            assert!(got.is_empty() || is_balanced(&got), "{ty} does not balance");
            moving += usize::from(!got.is_empty());
        }
        moving
    }

    #[test]
    fn every_money_family_is_routed_by_its_stream() {
        assert!(check("incentives-P1", incentives::examples(), incentives::postings) > 0);
        assert!(check("funds-D1", funds::examples(), funds::postings) > 0);
        assert!(check("coupons-P1", coupons::examples(), coupons::postings) > 0);
        assert!(check("rebate-P1", rebate::examples(), rebate::postings) > 0);
        assert!(postings_of("partner-P1", "PartnerRegistered", 1, "{}").unwrap().is_empty());
    }
}
