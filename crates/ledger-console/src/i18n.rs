//! Chinese and English. The language follows the `lang` cookie (the switch in the page
//! header), else the browser's `Accept-Language`; Chinese when neither names one we have.
//! Each text is written in both languages where it is used (`lang.t(zh, en)`), so no key
//! can lack a translation; error codes and statuses, which come from the ledger, are
//! translated in the tables below.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s == "zh" || s.starts_with("zh-") {
            Some(Lang::Zh)
        } else if s == "en" || s.starts_with("en-") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The language of the highest-weighted tag we have (`zh-CN,zh;q=0.9,en;q=0.8`).
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, item) in header.split(',').enumerate() {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::parse) else { continue };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            // Higher weight wins; among equal weights, the first listed.
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l)
    }
}

/// What an error code means, in words (docs/DOMAIN.md, docs/API.md).
pub fn error_meaning(lang: Lang, code: &str) -> &'static str {
    let (zh, en) = match code {
        "CERTIFICATION_INCOMPLETE" => (
            "认证未完成：申请激励前需要完成实名认证和商业信息认证（银行账号、开票税务信息）。",
            "Certification incomplete: both the real-name authentication and the business-information certification (bank account, tax information) are needed before applying for an incentive.",
        ),
        "ALREADY_REQUESTED" => (
            "本季度已提交付款申请（且未被驳回）。",
            "A payment for this quarter has already been requested and is not rejected.",
        ),
        "MONTH_NOT_CLOSED" => (
            "本季度有月份仍在累计中，尚未关账。",
            "A month of the quarter has accruals and is not closed yet.",
        ),
        "MONTHS_STILL_APPLICABLE" => (
            "本季度内仍有月份可申请激励：请先提交激励申请，初审结束后再申请付款；若不想申请这些月份，可于下季度1号发起付款申请。",
            "Months of the quarter can still be applied for: apply for them first and request the payment after the review; if you do not want them, request the payment on the 1st of the next quarter.",
        ),
        "REVIEW_PENDING" => (
            "本季度内有月度激励仍在初审中，初审结束后才能申请付款。",
            "A monthly incentive of the quarter is still under preliminary review: request the payment once the review is over.",
        ),
        "NO_APPROVED_INCENTIVE" => (
            "本季度申请的月度激励都未初审通过。",
            "No monthly incentive of the quarter has passed the preliminary review.",
        ),
        "NOT_FINALIZED" => (
            "本季度有已初审通过的激励尚未定稿；季度内激励全部定稿后才能申请付款。",
            "A month of the quarter passed review but is not finalized; a payment needs all of the quarter's incentives finalized.",
        ),
        "NOTHING_PAYABLE" => (
            "可付金额为零或负数（退款冲回），没有可付款项；负数将结转到下一次付款中扣减。",
            "Nothing is payable: the amount is zero or negative (refund clawbacks); a negative total is deducted from the next payment.",
        ),
        "ACCOUNT_NAME_MISMATCH" => (
            "收款账号名称必须与实名认证的名称一致（同一实名主体）。",
            "The bank account holder's name must be the partner's real-name-authenticated name.",
        ),
        "INSUFFICIENT_BALANCE" => ("余额不足：金额超过可用余额。", "Insufficient balance: the amount exceeds what is available."),
        "SWITCH_TOO_FREQUENT" => (
            "同一客户的关联类型3个月内只能切换（或解除）一次。",
            "A customer's association may be switched (or ended) at most once in 3 months.",
        ),
        "NOT_RESALE_CUSTOMER" => (
            "只能给代售类子客户发放或回收优惠券。",
            "Coupons are issued to and reclaimed from resale customers only.",
        ),
        "NOT_YOUR_CUSTOMER" => ("该客户不是您的客户。", "This customer is not yours."),
        "NO_ASSOCIATION" => ("该客户没有关联的合作伙伴。", "The customer has no association."),
        "COUPON_NOT_FOUND" => ("找不到该优惠券。", "No such coupon."),
        "COUPON_USED_UP" => ("优惠券已用完。", "The coupon is used up."),
        "COUPON_EXPIRED" => ("优惠券已过期。", "The coupon has expired."),
        "OFFERING_IN_USE" => (
            "该 offering 正在用于其他机会点的激励申请。",
            "This offering already backs another opportunity's pending or passed application.",
        ),
        "OPPORTUNITY_NOT_APPLICABLE" => (
            "机会点需具备核心标签并已交付完成，且从交付结束后一天起才能申请激励（交付结束当天不可申请）。",
            "An opportunity may be applied for only with the core tag, once delivered, and from the day after the delivery end date.",
        ),
        "INVALID_STATE" => ("当前状态下不能执行此操作。", "This step is not possible in the current status."),
        "INVALID_AMOUNT" => (
            "金额无效：须大于0，最多两位小数。",
            "Invalid amount: it must be above 0 with at most 2 decimal places.",
        ),
        "INVALID_MONTH" => ("月份无效，格式为 2026-07。", "Invalid month: write it like 2026-07."),
        "INVALID_QUARTER" => ("季度无效，格式为 2026Q3。", "Invalid quarter: write it like 2026Q3."),
        "INVALID_CURRENCY" => ("币种无效（CNY 或 USD）。", "Invalid currency (CNY or USD)."),
        "INVALID_FIELD" => ("输入有误。", "A field is not valid."),
        "INVALID_TIME" => ("时间无效。", "Invalid time."),
        "INVALID_LAB_POINTS" => (
            "实验点数须为 10、20、50、100、250 或 500。",
            "Lab points come in 10, 20, 50, 100, 250 or 500.",
        ),
        "CALENDAR_UNKNOWN" => (
            "工作日历未包含所需年份，无法计算到账日期。",
            "The working-day calendar does not hold the year needed for the date.",
        ),
        "CURRENCY_MISMATCH" => ("币种不一致。", "The currencies do not match."),
        "NOT_ELIGIBLE" => ("不满足条件。", "Not eligible."),
        "ALREADY_EXISTS" => ("已存在。", "It already exists."),
        "DUPLICATE_RECORD_CONFLICT" => (
            "同一记录编号的内容不同。",
            "A record with this id exists with other content.",
        ),
        "CONCURRENCY_CONFLICT" => (
            "数据已被同时修改，请刷新后重试。",
            "Someone changed this at the same time: reload and try again.",
        ),
        "IDEMPOTENCY_CONFLICT" => (
            "同一请求编号已用于不同的内容。",
            "This request id was already used for something else.",
        ),
        "UNAUTHENTICATED" => ("未登录或令牌无效。", "Not signed in, or the token is not valid."),
        "FORBIDDEN" => ("无权访问：不是您的数据。", "Forbidden: this is not yours."),
        "NOT_FOUND" => ("找不到。", "Not found."),
        "PROJECTION_LAGGING" => ("数据仍在更新，请稍后刷新。", "The read models are catching up: reload in a moment."),
        "CSRF" => (
            "表单已过期或来源不明，未执行任何操作。请重新提交。",
            "The form expired or did not come from this console: nothing was done. Submit it again.",
        ),
        _ => ("操作被拒绝。", "The request was refused."),
    };
    lang.t(zh, en)
}

/// A status of a month, payment, withdrawal, coupon, opportunity or lab-point application.
pub fn status(lang: Lang, status: &str) -> &'static str {
    let (zh, en) = match status {
        "accruing" => ("累计中", "accruing"),
        "open" => ("待申请", "open"),
        "under_review" => ("初审中", "under review"),
        "closed_empty" => ("无激励", "closed (empty)"),
        "passed" => ("初审通过", "passed"),
        "finalized" => ("已定稿", "finalized"),
        "forfeited" => ("已放弃", "forfeited"),
        "paid" => ("已付款", "paid"),
        "requested" => ("已申请", "requested"),
        "approved" => ("已审批", "approved"),
        "rejected" => ("已驳回", "rejected"),
        "invoice_list_issued" => ("已出开票清单", "invoice list issued"),
        "invoice_received" => ("已收发票", "invoice received"),
        "failed" => ("付款失败", "failed"),
        "active" => ("可用", "active"),
        "used_up" => ("已用完", "used up"),
        "expired" => ("已过期", "expired"),
        "reclaimed" => ("已回收", "reclaimed"),
        "shared" => ("已共享", "shared"),
        "accepted" => ("已接受", "accepted"),
        "granted" => ("已发放", "granted"),
        "pending" => ("待审核", "pending"),
        "allocate" => ("拨款", "allocate"),
        "reclaim" => ("回收", "reclaim"),
        "unbind_reclaim" => ("解绑回收", "unbind reclaim"),
        "resale" => ("代售", "resale"),
        "referral" => ("推荐", "referral"),
        "PRODUCT_NOT_ELIGIBLE" => ("该产品不产生激励", "the product earns no incentive"),
        "COUNTED_IN_OTHER_MONTH" => ("计入其他月份", "counted in another month"),
        "REFUNDED" => ("已退款", "refunded"),
        _ => return "",
    };
    lang.t(zh, en)
}

/// The status in words, or the raw text when the table has none.
pub fn status_or(lang: Lang, s: &str) -> String {
    let words = status(lang, s);
    if words.is_empty() {
        s.to_string()
    } else {
        words.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_weightiest_known_tag() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("fr-FR, en;q=0.5, zh;q=0.7"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("de, fr"), None);
        assert_eq!(Lang::from_accept_language("zh;q=0, en;q=0.1"), Some(Lang::En));
    }

    #[test]
    fn every_blocker_and_rule_code_has_its_meaning_in_both_languages() {
        let fallback = error_meaning(Lang::En, "SOMETHING_ELSE");
        for code in [
            "CERTIFICATION_INCOMPLETE",
            "ALREADY_REQUESTED",
            "MONTH_NOT_CLOSED",
            "MONTHS_STILL_APPLICABLE",
            "REVIEW_PENDING",
            "NO_APPROVED_INCENTIVE",
            "NOT_FINALIZED",
            "NOTHING_PAYABLE",
            "ACCOUNT_NAME_MISMATCH",
            "INSUFFICIENT_BALANCE",
            "SWITCH_TOO_FREQUENT",
            "NOT_RESALE_CUSTOMER",
            "OFFERING_IN_USE",
            "COUPON_EXPIRED",
            "INVALID_LAB_POINTS",
        ] {
            assert_ne!(error_meaning(Lang::En, code), fallback, "{code}");
            assert_ne!(error_meaning(Lang::Zh, code), error_meaning(Lang::En, code), "{code}");
        }
    }
}
