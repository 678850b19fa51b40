//! # ledger-demo
//!
//! A realistic generated history, through the same use cases as the HTTP API: distributors
//! with resellers and customers, consumption with late settlements and refunds, fund
//! allocations and reclaims, coupons, month closes, reviews (some rejected, then passed),
//! finalizations with adjustments, quarterly payments by both methods, withdrawals, lab
//! points. Business time moves forward month by month (each command runs "then"), so
//! month cut-offs, eligibility and statements behave as they would have.
//!
//! Deterministic for a given [`DemoPlan`]: the same plan gives the same commands.
//!
//! Used by `ledger demo seed`, `ledger serve --demo`, the replay benchmark and the tests; it
//! is not part of the production application layer, and it knows only `ledger-app`'s public
//! use cases.

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use ledger_core::{Actor, CommandMeta, Currency, Money, Month, Quarter, Rate, Role};
use ledger_domain::coupons::{IssueCoupon, UseCoupon};
use ledger_domain::customer::{AssociateCustomer, AssociationType};
use ledger_domain::funds::Counterparty;
use ledger_domain::incentives::{
    ApprovePayment, ConfirmInvoiceReceived, FinalizeMonth, MonthStatus, PayQuarterlyPayment, PaymentMethod,
    RefundConsumption, ReviewDecision, ReviewMonth,
};
use ledger_domain::lab_points::{GrantLabPoints, LabPointsCommand, RejectLabPoints};
use ledger_domain::partner::{
    BankAccount, CertifyBusinessInfo, CertifyRealName, PartnerCommand, PartnerKind, PartnerLevel, RegisterPartner,
};
use ledger_domain::policy::{PolicyCommand, ProductRate, PublishPolicy};
use ledger_domain::rebate::{ApproveWithdrawal, MarkWithdrawalFailed, MarkWithdrawalPaid, RebateCommand};
use rust_decimal::Decimal;

use ledger_app::funds::{Adjust, AdjustmentDirection};
use ledger_app::incentives::{ConsumptionInput, InvoiceList, PaymentStep};
use ledger_app::{AppError, CommandContext, Ledger};

/// Most partners one plan may generate.
pub const MAX_PARTNERS: usize = 100_000;
/// Most months one plan may span.
pub const MAX_MONTHS: u32 = 120;

#[derive(Debug, Clone)]
pub struct DemoPlan {
    pub partners: usize,
    /// Months of history, ending with the month before `until`'s month.
    pub months: u32,
    /// Consumption lines per customer and month.
    pub lines_per_customer: usize,
    pub customers_per_partner: usize,
    /// The history ends before this time's month.
    pub until: DateTime<Utc>,
    pub seed: u64,
}

impl DemoPlan {
    pub fn new(partners: usize, months: u32, until: DateTime<Utc>) -> DemoPlan {
        DemoPlan { partners, months, lines_per_customer: 4, customers_per_partner: 3, until, seed: 7 }
    }
}

/// What the seeding did, for the progress line and the README.
#[derive(Debug, Default, Clone)]
pub struct DemoSummary {
    pub partners: Vec<String>,
    pub commands: u64,
    pub refused: u64,
}

/// A small deterministic generator (SplitMix64): no dependency, same plan → same history.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// An amount in cents between `lo` and `hi` yuan.
    fn amount(&mut self, lo: u64, hi: u64) -> Decimal {
        Decimal::new((lo * 100 + self.below((hi - lo) * 100)) as i64, 2)
    }
}

#[derive(Debug, Clone)]
struct DemoPartner {
    id: String,
    kind: PartnerKind,
    parent: Option<String>,
    legal_name: String,
    certified: bool,
    customers: Vec<(String, AssociationType)>,
}

const PRODUCTS: [(&str, &str); 4] = [("ECS", "0.05"), ("RDS", "0.08"), ("OSS", "0.03"), ("CDN", "")];

fn ctx_at(now: DateTime<Utc>, role: Role, principal: &str) -> CommandContext {
    CommandContext { meta: CommandMeta::new(Actor { principal: principal.to_string(), role }), now, idempotency: None }
}

fn operator(now: DateTime<Utc>) -> CommandContext {
    ctx_at(now, Role::Admin, "demo-operator")
}

fn as_partner(now: DateTime<Utc>, p: &str) -> CommandContext {
    ctx_at(now, Role::Partner, p)
}

fn cny(amount: Decimal) -> Money {
    Money::new(amount, Currency::CNY)
}

/// Counts a command; a business refusal (e.g. a reclaim above what is unspent) is part of
/// a realistic history and only counted, any other failure stops the seeding.
fn tally<T>(summary: &mut DemoSummary, r: Result<T, AppError>) -> Result<Option<T>, AppError> {
    summary.commands += 1;
    match r {
        Ok(v) => Ok(Some(v)),
        Err(AppError::Domain(_)) => {
            summary.refused += 1;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Seeds the history; `progress(done_months, total_months)` after each month.
pub async fn seed(
    ledger: &Ledger,
    plan: &DemoPlan,
    mut progress: impl FnMut(u32, u32),
) -> Result<DemoSummary, AppError> {
    assert!(plan.partners <= MAX_PARTNERS && plan.months <= MAX_MONTHS, "plan within limits");
    let mut dice = Dice(plan.seed);
    let mut summary = DemoSummary::default();
    let last = Month::of(plan.until).prev();
    let mut first = last;
    for _ in 1..plan.months {
        first = first.prev();
    }
    let start = first.start();

    // The policy: three products with rates, CDN not listed (earns nothing), 3 grace days.
    let rates = PRODUCTS
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(p, r)| ProductRate { product: p.to_string(), rate: Rate::parse(r).expect("valid rate") })
        .collect();
    let publish = PolicyCommand::PublishPolicy(PublishPolicy {
        currency: Currency::CNY,
        effective_month: first,
        rates,
        settlement_grace_days: Some(3),
    });
    tally(&mut summary, ledger.publish_policy(&operator(start), publish).await)?;

    // Partners: every fifth a distributor, the next two its resellers, the rest solution
    // providers; one in eight lacks the business-information certification.
    let mut partners: Vec<DemoPartner> = vec![];
    let mut distributor: Option<String> = None;
    for i in 0..plan.partners {
        let id = format!("P{:05}", i + 1);
        let (kind, parent) = match (i % 5, &distributor) {
            (0, _) => (PartnerKind::Distributor, None),
            (1 | 2, Some(d)) => (PartnerKind::Reseller, Some(d.clone())),
            _ => (PartnerKind::SolutionProvider, None),
        };
        if kind == PartnerKind::Distributor {
            distributor = Some(id.clone());
        }
        let customers = (0..plan.customers_per_partner)
            .map(|c| {
                let ty = if c % 3 == 2 { AssociationType::Referral } else { AssociationType::Resale };
                (format!("C{:05}-{}", i + 1, c + 1), ty)
            })
            .collect();
        partners.push(DemoPartner {
            legal_name: format!("Galaxy Cloud {} Co., Ltd.", i + 1),
            certified: i % 8 != 7,
            id,
            kind,
            parent,
            customers,
        });
    }
    for p in &partners {
        let now = start + Duration::hours(1);
        let level = Some(
            [PartnerLevel::Standard, PartnerLevel::Preferred, PartnerLevel::Leading, PartnerLevel::Core]
                [dice.below(4) as usize],
        );
        tally(
            &mut summary,
            ledger
                .register_partner(
                    &operator(now),
                    RegisterPartner {
                        partner_id: p.id.clone(),
                        name: format!("{} Partner", p.id),
                        kind: p.kind,
                        parent_id: p.parent.clone(),
                        parent_kind: None,
                        level,
                    },
                )
                .await,
        )?;
        let real_name = PartnerCommand::CertifyRealName(CertifyRealName { legal_name: p.legal_name.clone() });
        tally(&mut summary, ledger.change_partner(&operator(now), &p.id, real_name).await)?;
        if p.certified {
            let bank = BankAccount {
                holder_name: p.legal_name.clone(),
                number: format!("6222{:012}", dice.below(1_000_000_000_000)),
                bank: "ICBC Hangzhou".into(),
            };
            let info = PartnerCommand::CertifyBusinessInfo(CertifyBusinessInfo {
                bank_account: bank,
                tax_id: format!("91330100MA{:08}", dice.below(100_000_000)),
            });
            tally(&mut summary, ledger.change_partner(&operator(now), &p.id, info).await)?;
        }
        for (c, ty) in &p.customers {
            tally(
                &mut summary,
                ledger
                    .associate_customer(
                        &operator(now),
                        AssociateCustomer {
                            customer_id: c.clone(),
                            partner_id: p.id.clone(),
                            association_type: *ty,
                            effective_at: None,
                        },
                    )
                    .await,
            )?;
        }
        if p.kind == PartnerKind::Distributor {
            tally(&mut summary, ledger.credit_funds(&operator(now), &p.id, cny(Decimal::new(50_000_000, 2))).await)?;
        }
        tally(
            &mut summary,
            ledger.grant_coupon_quota(&operator(now), &p.id, cny(Decimal::new(2_000_000, 2))).await.map(|(_, o)| o),
        )?;
    }

    let mut month = first;
    let mut done = 0;
    loop {
        seed_month(ledger, plan, &partners, month, month == first, &mut dice, &mut summary).await?;
        done += 1;
        progress(done, plan.months);
        if month == last {
            break;
        }
        month = month.next();
    }
    summary.partners = partners.into_iter().map(|p| p.id).collect();
    Ok(summary)
}

/// One month of activity, then the close of the month before and, at a quarter's turn,
/// the quarterly payments of the quarter that ended.
async fn seed_month(
    ledger: &Ledger,
    plan: &DemoPlan,
    partners: &[DemoPartner],
    month: Month,
    is_first: bool,
    dice: &mut Dice,
    summary: &mut DemoSummary,
) -> Result<(), AppError> {
    let day = |d: i64, h: i64| month.start() + Duration::days(d) + Duration::hours(h);
    // Allocations early in the month: distributors to resellers and resale customers,
    // resellers to their own resale customers; now and then a reclaim.
    for p in partners {
        let now = day(1, 2);
        let mut targets: Vec<Counterparty> = p
            .customers
            .iter()
            .filter(|(_, t)| *t == AssociationType::Resale)
            .map(|(c, _)| Counterparty::customer(c.clone()))
            .collect();
        if p.kind == PartnerKind::Distributor {
            targets.extend(
                partners
                    .iter()
                    .filter(|r| r.parent.as_deref() == Some(&p.id))
                    .map(|r| Counterparty::reseller(r.id.clone())),
            );
        }
        if p.kind == PartnerKind::SolutionProvider {
            continue;
        }
        for t in targets {
            let amount = cny(dice.amount(500, 3_000));
            let r = ledger
                .adjust(
                    &as_partner(now, &p.id),
                    Adjust {
                        direction: AdjustmentDirection::Allocate,
                        operator: p.id.clone(),
                        counterparty: t.clone(),
                        amount,
                        remark: Some("monthly allocation".into()),
                    },
                )
                .await;
            tally(summary, r)?;
            if dice.chance(15) {
                let back = cny(dice.amount(100, 800));
                let r = ledger
                    .adjust(
                        &as_partner(day(10, 3), &p.id),
                        Adjust {
                            direction: AdjustmentDirection::Reclaim,
                            operator: p.id.clone(),
                            counterparty: t,
                            amount: back,
                            remark: Some("unused, reclaimed".into()),
                        },
                    )
                    .await;
                tally(summary, r)?;
            }
        }
    }

    // Consumption: every partner's customers, concurrently across partners (one task per
    // partner: group commit batches their appends). About one line in ten settles after
    // the cut-off and rolls into the next month; one in twenty is refunded later.
    let mut plans_by_partner = vec![];
    for p in partners {
        let mut lines = vec![];
        for (c, _) in &p.customers {
            for n in 0..plan.lines_per_customer {
                let (product, _) = PRODUCTS[dice.below(PRODUCTS.len() as u64) as usize];
                let consumed_at = day(dice.below(27) as i64, dice.below(20) as i64);
                let late = dice.chance(10);
                let settled_at = if late {
                    month.end() + Duration::days(4 + dice.below(5) as i64)
                } else {
                    consumed_at + Duration::hours(6)
                };
                let refund = dice.chance(5).then(|| dice.amount(1, 20));
                lines.push((
                    ConsumptionInput {
                        record_id: format!("R-{month}-{c}-{n}"),
                        customer_id: c.clone(),
                        product: product.to_string(),
                        amount: cny(dice.amount(50, 2_000)),
                        consumed_at,
                        settled_at,
                    },
                    refund,
                ));
            }
        }
        plans_by_partner.push(lines);
    }
    let results = join_all(plans_by_partner.into_iter().map(|lines| async move {
        let mut s = DemoSummary::default();
        for (line, refund) in lines {
            let now = line.settled_at.max(line.consumed_at) + Duration::minutes(5);
            let record_id = line.record_id.clone();
            let stored = tally(&mut s, ledger.record_consumption(&operator(now), line).await)?;
            if let (Some(ledger_app::incentives::LineOutcome::Stored { partner_id, .. }), Some(amount)) =
                (stored, refund)
            {
                let r = ledger
                    .refund_consumption(
                        &operator(now + Duration::days(2)),
                        &partner_id,
                        RefundConsumption {
                            refund_id: format!("RF-{record_id}"),
                            record_id,
                            amount: cny(amount),
                            settled_at: now + Duration::days(2),
                            settled_line: None,
                        },
                    )
                    .await;
                tally(&mut s, r)?;
            }
        }
        Ok::<_, AppError>(s)
    }))
    .await;
    for r in results {
        let s = r?;
        summary.commands += s.commands;
        summary.refused += s.refused;
    }

    // Coupons to resale customers, some used, a few reclaimed in a batch.
    for p in partners {
        let now = day(5, 4);
        let mut issued = vec![];
        for (c, t) in &p.customers {
            if *t != AssociationType::Resale || !dice.chance(50) {
                continue;
            }
            let id = format!("CP-{month}-{c}");
            let r = ledger
                .issue_coupon(
                    &as_partner(now, &p.id),
                    IssueCoupon {
                        partner_id: p.id.clone(),
                        coupon_id: id.clone(),
                        customer_id: c.clone(),
                        amount: cny(dice.amount(50, 300)),
                        expires_at: now + Duration::days(60),
                        association: None,
                    },
                )
                .await;
            if tally(summary, r)?.is_some() {
                if dice.chance(60) {
                    let r = ledger
                        .use_coupon(
                            &operator(day(12, 1)),
                            &p.id,
                            UseCoupon {
                                coupon_id: id.clone(),
                                usage_id: format!("U-{id}"),
                                amount: cny(dice.amount(10, 50)),
                                used_at: day(12, 1),
                            },
                        )
                        .await;
                    tally(summary, r)?;
                }
                issued.push(id);
            }
        }
        if !issued.is_empty() && dice.chance(30) {
            issued.push(format!("CP-unknown-{month}"));
            tally(summary, ledger.reclaim_coupons(&as_partner(day(20, 2), &p.id), &p.id, issued).await)?;
        }
    }

    // The previous month closes after its cut-off (3 grace days), then is applied for,
    // reviewed (one in six rejected first), and finalized (one in ten adjusted).
    let prev = month.prev();
    if !is_first {
        close_and_finalize(ledger, partners, prev, day(5, 1), dice, summary).await?;
    }
    // A quarter's turn: request, approve, invoice, pay the quarter that ended.
    if month.number() % 3 == 1 && !is_first {
        pay_quarter(ledger, partners, prev.quarter(), day(14, 2), dice, summary).await?;
    }
    // Lab points now and then.
    for p in partners {
        if !dice.chance(5) {
            continue;
        }
        let r = ledger
            .apply_lab_points(&as_partner(day(8, 1), &p.id), &p.id, [10, 20, 50, 100][dice.below(4) as usize])
            .await;
        if let Some((id, _)) = tally(summary, r)? {
            let grant = if dice.chance(80) {
                LabPointsCommand::GrantLabPoints(GrantLabPoints { application_id: id, comment: None })
            } else {
                LabPointsCommand::RejectLabPoints(RejectLabPoints {
                    application_id: id,
                    comment: Some("please describe the lab".into()),
                })
            };
            tally(summary, ledger.lab_points_step(&operator(day(9, 1)), &p.id, grant).await)?;
        }
    }
    Ok(())
}

async fn close_and_finalize(
    ledger: &Ledger,
    partners: &[DemoPartner],
    month: Month,
    now: DateTime<Utc>,
    dice: &mut Dice,
    summary: &mut DemoSummary,
) -> Result<(), AppError> {
    for p in partners {
        tally(summary, ledger.close_month(&operator(now), &p.id, month).await)?;
        let state = ledger.incentives(&p.id).await?;
        if state.month_status(month, Currency::CNY) != MonthStatus::Open {
            continue;
        }
        // Now and then a month is left open (it is forfeited at the quarter's request).
        if dice.chance(10) {
            continue;
        }
        let applied = tally(
            summary,
            ledger.apply_for_month(&as_partner(now + Duration::hours(2), &p.id), &p.id, month, Currency::CNY).await,
        )?;
        if applied.is_none() {
            continue;
        }
        if dice.chance(15) {
            let r = ledger
                .review_month(
                    &operator(now + Duration::days(1)),
                    &p.id,
                    ReviewMonth { month, currency: Currency::CNY, decision: ReviewDecision::Reject, comment: None },
                )
                .await;
            tally(summary, r)?;
            tally(
                summary,
                ledger.apply_for_month(&as_partner(now + Duration::days(2), &p.id), &p.id, month, Currency::CNY).await,
            )?;
        }
        tally(
            summary,
            ledger
                .review_month(
                    &operator(now + Duration::days(3)),
                    &p.id,
                    ReviewMonth {
                        month,
                        currency: Currency::CNY,
                        decision: ReviewDecision::Pass,
                        comment: Some("checked".into()),
                    },
                )
                .await,
        )?;
        let accrued =
            ledger.incentives(&p.id).await?.month(month, Currency::CNY).map(|m| m.accrued().amount).unwrap_or_default();
        let (amount, reason) = if dice.chance(10) && accrued > Decimal::ONE {
            (Some(cny((accrued * Decimal::new(95, 2)).round_dp(2))), Some("5% withheld: disputed lines".to_string()))
        } else {
            (None, None)
        };
        tally(
            summary,
            ledger
                .finalize_month(
                    &operator(now + Duration::days(4)),
                    &p.id,
                    FinalizeMonth { month, currency: Currency::CNY, amount, reason },
                )
                .await,
        )?;
    }
    Ok(())
}

async fn pay_quarter(
    ledger: &Ledger,
    partners: &[DemoPartner],
    quarter: Quarter,
    now: DateTime<Utc>,
    dice: &mut Dice,
    summary: &mut DemoSummary,
) -> Result<(), AppError> {
    for p in partners {
        let Some((payment_id, _)) =
            tally(summary, ledger.request_payment(&as_partner(now, &p.id), &p.id, quarter, Currency::CNY).await)?
        else {
            continue;
        };
        let op = |h| operator(now + Duration::hours(h));
        let id = || payment_id.clone();
        let approve = PaymentStep::Approve(ApprovePayment { payment_id: id() });
        tally(summary, ledger.payment_step(&op(24), &p.id, approve).await)?;
        let invoice_list = PaymentStep::IssueInvoiceList(InvoiceList { payment_id: id() });
        tally(summary, ledger.payment_step(&op(26), &p.id, invoice_list).await)?;
        let received = PaymentStep::InvoiceReceived(ConfirmInvoiceReceived { payment_id: id() });
        tally(summary, ledger.payment_step(&op(24 * 5), &p.id, received).await)?;
        let method = if dice.chance(50) { PaymentMethod::CloudAccountCredit } else { PaymentMethod::BankTransfer };
        tally(
            summary,
            ledger
                .payment_step(&op(24 * 7), &p.id, PaymentStep::Pay(PayQuarterlyPayment { payment_id: id(), method }))
                .await,
        )?;
        if method == PaymentMethod::CloudAccountCredit {
            let at = now + Duration::days(8);
            let available = ledger.withdrawable(&p.id, Currency::CNY).await?;
            if available.amount > Decimal::ONE {
                let amount = cny((available.amount / Decimal::TWO).round_dp(2));
                let bank = BankAccount {
                    holder_name: p.legal_name.clone(),
                    number: "6222000011112222".into(),
                    bank: "ICBC Hangzhou".into(),
                };
                if let Some((wid, _)) =
                    tally(summary, ledger.request_withdrawal(&as_partner(at, &p.id), &p.id, amount, bank).await)?
                {
                    tally(
                        summary,
                        ledger
                            .withdrawal_step(
                                &operator(at + Duration::days(1)),
                                &p.id,
                                RebateCommand::ApproveWithdrawal(ApproveWithdrawal {
                                    withdrawal_id: wid.clone(),
                                    calendar: ledger.calendar.clone(),
                                }),
                            )
                            .await,
                    )?;
                    let last = if dice.chance(10) {
                        RebateCommand::MarkWithdrawalFailed(MarkWithdrawalFailed {
                            withdrawal_id: wid.clone(),
                            reason: Some("bank returned: account closed".into()),
                        })
                    } else {
                        RebateCommand::MarkWithdrawalPaid(MarkWithdrawalPaid { withdrawal_id: wid.clone() })
                    };
                    tally(summary, ledger.withdrawal_step(&operator(at + Duration::days(9)), &p.id, last).await)?;
                }
            }
        }
    }
    Ok(())
}
