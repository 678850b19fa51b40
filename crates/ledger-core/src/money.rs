//! Money: a `Decimal` amount with a currency. Amounts from outside are parsed from decimal
//! strings by [`parse_amount`], which accepts only plain positive numbers with at most two
//! decimal places; a direction always comes from the event type, never from a sign.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// The largest amount accepted from outside: 10^12 in the currency's major unit.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);
/// Money is stored with two decimal places.
pub const MONEY_SCALE: u32 = 2;
/// Rates have at most six decimal places.
pub const RATE_SCALE: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Currency {
    CNY,
    USD,
}

impl Currency {
    pub const ALL: [Currency; 2] = [Currency::CNY, Currency::USD];

    pub fn as_str(self) -> &'static str {
        match self {
            Currency::CNY => "CNY",
            Currency::USD => "USD",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s {
            "CNY" => Ok(Currency::CNY),
            "USD" => Ok(Currency::USD),
            _ => Err(CoreError::InvalidCurrency(s.to_string())),
        }
    }
}

/// An amount in one currency. Internally an amount may be zero or negative (a balance, a
/// clawback line); amounts *from outside* go through [`Money::parse_positive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[serde(serialize_with = "with_cents")]
    pub amount: Decimal,
    pub currency: Currency,
}

/// An amount is written with at least two decimal places ("0.00", "12.50", never "0"):
/// what a finance reader and a client parsing cents expect. An amount kept at full
/// precision (a line's incentive) keeps all its digits.
fn with_cents<S: serde::Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let mut shown = *amount;
    if shown.scale() < MONEY_SCALE {
        shown.rescale(MONEY_SCALE);
    }
    rust_decimal::serde::str::serialize(&shown, s)
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money { amount: Decimal::ZERO, currency }
    }

    /// Parses an amount and currency as they come from a request.
    pub fn parse_positive(amount: &str, currency: &str) -> Result<Self, CoreError> {
        Ok(Money { amount: parse_amount(amount)?, currency: currency.parse()? })
    }

    /// Like [`Money::parse_positive`], 0 allowed: the one amount from outside that may be
    /// zero is a month's final amount (docs/DOMAIN.md §5: "a month may be finalized at 0").
    pub fn parse_final(amount: &str, currency: &str) -> Result<Self, CoreError> {
        Ok(Money { amount: parse_amount_or_zero(amount)?, currency: currency.parse()? })
    }

    pub fn checked_add(self, other: Money) -> Result<Money, CoreError> {
        self.same_currency(other)?;
        Ok(Money::new(self.amount + other.amount, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, CoreError> {
        self.same_currency(other)?;
        Ok(Money::new(self.amount - other.amount, self.currency))
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: Money) -> Result<(), CoreError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(CoreError::CurrencyMismatch(self.currency.to_string(), other.currency.to_string()))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount.round_dp(MONEY_SCALE), self.currency)
    }
}

/// Parses an amount from outside: digits with an optional `.` and at most two decimals,
/// greater than zero and at most [`MAX_AMOUNT`]. Signs, exponents, whitespace, `NaN`,
/// `inf` and anything else are refused with a reason.
pub fn parse_amount(s: &str) -> Result<Decimal, CoreError> {
    let d = parse_amount_or_zero(s)?;
    if d.is_zero() {
        return Err(CoreError::InvalidAmount { value: truncate(s), reason: "must be greater than zero" });
    }
    Ok(d)
}

/// [`parse_amount`] with 0 allowed (a month's final amount).
pub fn parse_amount_or_zero(s: &str) -> Result<Decimal, CoreError> {
    let bad = |reason| CoreError::InvalidAmount { value: truncate(s), reason };
    let d = parse_plain_decimal(s, MONEY_SCALE).map_err(bad)?;
    if d > MAX_AMOUNT {
        return Err(bad("must be at most 1000000000000"));
    }
    Ok(d)
}

/// Rounds a money amount half away from zero to two places: the one rounding point that
/// each rule names (docs/DOMAIN.md, Conventions).
pub fn round_money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// An incentive rate: a fraction between 0 and 1 with at most six decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Rate(Decimal);

impl Rate {
    pub fn value(self) -> Decimal {
        self.0
    }

    pub fn parse(s: &str) -> Result<Rate, CoreError> {
        let bad = |reason| CoreError::InvalidRate { value: truncate(s), reason };
        let d = parse_plain_decimal(s, RATE_SCALE).map_err(bad)?;
        Rate::try_from(d)
    }
}

impl TryFrom<Decimal> for Rate {
    type Error = CoreError;
    fn try_from(d: Decimal) -> Result<Rate, CoreError> {
        let bad = |reason| CoreError::InvalidRate { value: d.to_string(), reason };
        if d.is_sign_negative() && !d.is_zero() {
            return Err(bad("must not be negative"));
        }
        if d > Decimal::ONE {
            return Err(bad("must be at most 1"));
        }
        if d.normalize().scale() > RATE_SCALE {
            return Err(bad("at most 6 decimal places"));
        }
        Ok(Rate(d.normalize()))
    }
}

impl schemars::JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^(0(\\.[0-9]{1,6})?|1(\\.0{1,6})?)$"})
    }
}

impl From<Rate> for Decimal {
    fn from(r: Rate) -> Decimal {
        r.0
    }
}

/// Accepts `123`, `123.4`, `0.05`; refuses a sign, exponent, whitespace, empty parts and
/// more than `max_scale` decimals.
fn parse_plain_decimal(s: &str, max_scale: u32) -> Result<Decimal, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if s.len() > 32 {
        return Err("too long");
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a plain decimal number such as \"123.45\"");
    }
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a plain decimal number such as \"123.45\"");
        }
        if f.len() as u32 > max_scale {
            return Err(if max_scale == MONEY_SCALE { "at most 2 decimal places" } else { "at most 6 decimal places" });
        }
    }
    Decimal::from_str_exact(s).map_err(|_| "out of range")
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn money_is_written_with_cents_and_full_precision_is_kept() {
        let json = |a: &str| serde_json::to_value(Money::new(d(a), Currency::CNY)).unwrap()["amount"].clone();
        assert_eq!(json("0"), "0.00");
        assert_eq!(json("7"), "7.00");
        assert_eq!(json("12.5"), "12.50");
        assert_eq!(json("-3"), "-3.00");
        assert_eq!(json("50.0000"), "50.0000");
        assert_eq!(json("0.1234"), "0.1234");
        let back: Money = serde_json::from_value(serde_json::json!({"amount": "0.00", "currency": "CNY"})).unwrap();
        assert_eq!(back, Money::zero(Currency::CNY));
    }

    #[test]
    fn accepts_plain_positive_amounts() {
        assert_eq!(parse_amount("123.45").unwrap(), d("123.45"));
        assert_eq!(parse_amount("0.01").unwrap(), d("0.01"));
        assert_eq!(parse_amount("7").unwrap(), d("7"));
        assert_eq!(parse_amount("1000000000000").unwrap(), MAX_AMOUNT);
        assert_eq!(parse_amount_or_zero("0").unwrap(), Decimal::ZERO);
        assert_eq!(parse_amount_or_zero("0.00").unwrap(), Decimal::ZERO);
        for bad in ["-0", "-1", "0.001", "1000000000000.01"] {
            assert_eq!(parse_amount_or_zero(bad).unwrap_err().code(), "INVALID_AMOUNT", "{bad}");
        }
    }

    #[test]
    fn refuses_every_malformed_amount_with_a_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("-1.00", "plain decimal"),
            ("+1.00", "plain decimal"),
            ("0", "greater than zero"),
            ("0.00", "greater than zero"),
            ("1.234", "2 decimal places"),
            ("1000000000000.01", "at most 1000000000000"),
            ("NaN", "plain decimal"),
            ("inf", "plain decimal"),
            ("1e5", "plain decimal"),
            ("1E5", "plain decimal"),
            (" 1.00", "plain decimal"),
            ("1.00 ", "plain decimal"),
            ("1,00", "plain decimal"),
            (".5", "plain decimal"),
            ("5.", "plain decimal"),
            ("0x10", "plain decimal"),
            ("１２", "plain decimal"),
        ] {
            let err = parse_amount(input).unwrap_err();
            assert_eq!(err.code(), "INVALID_AMOUNT", "{input:?}");
            assert!(err.to_string().contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_money(d("0.005")), d("0.01"));
        assert_eq!(round_money(d("0.0049999")), d("0.00"));
        assert_eq!(round_money(d("-0.005")), d("-0.01"));
        assert_eq!(round_money(d("2.675")), d("2.68"));
    }

    #[test]
    fn rates_have_at_most_six_places_and_lie_in_0_to_1() {
        assert_eq!(Rate::parse("0.035").unwrap().value(), d("0.035"));
        assert_eq!(Rate::parse("0").unwrap().value(), d("0"));
        assert_eq!(Rate::parse("0.1234567").unwrap_err().code(), "INVALID_RATE");
        assert_eq!(Rate::parse("1.5").unwrap_err().code(), "INVALID_RATE");
        assert_eq!(Rate::parse("-0.1").unwrap_err().code(), "INVALID_RATE");
    }

    #[test]
    fn currencies_never_mix() {
        let a = Money::new(d("1"), Currency::CNY);
        let b = Money::new(d("1"), Currency::USD);
        assert_eq!(a.checked_add(b).unwrap_err().code(), "CURRENCY_MISMATCH");
        assert_eq!("EUR".parse::<Currency>().unwrap_err().code(), "INVALID_CURRENCY");
    }

    #[test]
    fn money_serialises_amount_as_a_string() {
        let m = Money::new(d("123.45"), Currency::CNY);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, r#"{"amount":"123.45","currency":"CNY"}"#);
        assert_eq!(serde_json::from_str::<Money>(&j).unwrap(), m);
    }

    proptest! {
        #[test]
        fn every_two_place_amount_round_trips(cents in 1u64..=100_000_000_000_000u64) {
            let s = format!("{}.{:02}", cents / 100, cents % 100);
            let parsed = parse_amount(&s).unwrap();
            prop_assert_eq!(parsed, Decimal::new(cents as i64, 2));
            prop_assert_eq!(round_money(parsed), parsed);
        }
    }
}
