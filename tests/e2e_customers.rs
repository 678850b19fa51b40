//! A customer's association ended through HTTP (docs/DOMAIN.md: a partner may switch or end it,
//! at most once in 3 months), and what follows from it: the customer belongs to nobody, may
//! be associated with another partner, and the first partner can no longer reclaim the
//! coupon it issued to that customer (`NOT_YOUR_CUSTOMER`); the 3-month rule counts an end
//! as a switch.

mod support;

use serde_json::{json, Value};
use support::flows::*;
use support::{Server, ADMIN_TOKEN};

fn end(s: &Server, token: &str, customer: &str) -> (u16, Value) {
    s.call("POST", &format!("/v1/customers/{customer}/end-association"), Some(token), Some(json!({})))
}

#[test]
fn an_ended_association_frees_the_customer_and_its_coupon_is_no_longer_the_partners() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let first = certified_partner(&s, "E1", "distributor", None);
    let second = certified_partner(&s, "E2", "distributor", None);
    associate_now(&s, "EC1", "E1", "resale");
    created(
        &s,
        "POST",
        "/v1/partners/E1/coupon-quota",
        ADMIN_TOKEN,
        Some(json!({"amount": "100.00", "currency": "CNY"})),
    );
    created(
        &s,
        "POST",
        "/v1/coupons",
        &first,
        Some(
            json!({"coupon_id": "EC-CP1", "customer_id": "EC1", "amount": "40.00", "currency": "CNY", "expires_at": "2099-12-31T16:00:00Z"}),
        ),
    );

    // Another partner cannot end it, nor learn that the customer exists.
    expect(end(&s, &second, "EC1"), 403, Some("FORBIDDEN"));
    expect(end(&s, &second, "NO-SUCH-CUSTOMER"), 403, Some("FORBIDDEN"));
    expect(end(&s, ADMIN_TOKEN, "NO-SUCH-CUSTOMER"), 404, Some("NOT_FOUND"));

    // Its partner ends it: the customer belongs to nobody now.
    let (status, ended) = end(&s, &first, "EC1");
    assert_eq!(status, 201, "{ended}");
    assert!(ended["partner_id"].is_null(), "{ended}");
    assert!(pos(&ended) > 0);

    // A coupon of a customer that is no longer the partner's cannot be reclaimed by it; the
    // failed item stores nothing.
    let reclaim = |token: &str| {
        s.call(
            "POST",
            "/v2/promotions/benefits/partner-coupons/reclaim",
            Some(token),
            Some(json!({"coupon_ids": ["EC-CP1"]})),
        )
    };
    let before = s.events_total();
    let (status, answer) = reclaim(&first);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], "failed", "{answer}");
    assert_eq!(answer["results"][0]["error_code"], "NOT_YOUR_CUSTOMER", "{answer}");
    assert_eq!(s.events_total(), before);

    // Another partner may take the customer on; still not the first partner's to reclaim.
    associate_now(&s, "EC1", "E2", "resale");
    let (_, answer) = reclaim(&first);
    assert_eq!(answer["results"][0]["error_code"], "NOT_YOUR_CUSTOMER", "{answer}");
    // The first partner cannot end the second's association; the second, having switched
    // the type once, cannot end it within 3 months (ending counts as a switch).
    expect(end(&s, &first, "EC1"), 403, Some("FORBIDDEN"));
    created(&s, "POST", "/v1/customers/EC1/association-type", &second, Some(json!({"association_type": "referral"})));
    expect(end(&s, &second, "EC1"), 409, Some("SWITCH_TOO_FREQUENT"));
}
