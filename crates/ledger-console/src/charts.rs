//! SVG charts drawn on the server: grouped bars (incentive accrued, finalized and paid per
//! month) and a line (a fund pool over time). No script, no style attribute (the page's
//! policy forbids inline styles): only SVG presentation attributes. Amounts come as exact
//! decimals and are turned into pixels only here.

use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

pub const COLORS: [&str; 3] = ["#0b5cad", "#f0a500", "#1b6e3a"];
const W: f64 = 800.0;
const H: f64 = 300.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

pub struct Series {
    pub name: String,
    pub values: Vec<Decimal>,
}

/// The range the axis spans: from min(0, lowest) to max(0, highest), never empty.
fn range(series: &[Series]) -> (f64, f64) {
    let all = series.iter().flat_map(|s| s.values.iter()).filter_map(|v| v.to_f64());
    let (lo, hi) = all.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if (hi - lo).abs() < f64::EPSILON {
        (lo, lo + 1.0)
    } else {
        (lo, hi)
    }
}

/// The y pixel of `v` on an axis spanning `lo..hi`.
fn y_of(v: f64, lo: f64, hi: f64) -> f64 {
    TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM)
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..=4).map(|i| lo + (hi - lo) * f64::from(i) / 4.0).collect()
}

fn tick_label(v: f64) -> String {
    crate::group_digits(&format!("{v:.0}"))
}

fn axes(lo: f64, hi: f64) -> Markup {
    html! {
        @for t in ticks(lo, hi) {
            line x1=(LEFT) x2=(W - RIGHT) y1=(y_of(t, lo, hi)) y2=(y_of(t, lo, hi)) stroke="#d6dbe3" {}
            text x=(LEFT - 6.0) y=(y_of(t, lo, hi) + 4.0) text-anchor="end" font-size="11" fill="#5b6575" { (tick_label(t)) }
        }
        line x1=(LEFT) x2=(W - RIGHT) y1=(y_of(0.0, lo, hi)) y2=(y_of(0.0, lo, hi)) stroke="#1d2430" {}
    }
}

/// Bars grouped by label, one colour per series, with a `<title>` on each bar (its exact
/// amount) for hover and screen readers.
pub fn bars(title: &str, labels: &[String], series: &[Series]) -> Markup {
    let (lo, hi) = range(series);
    let group = (W - LEFT - RIGHT) / labels.len().max(1) as f64;
    let bar = (group * 0.8) / series.len().max(1) as f64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) {
            title { (title) }
            (axes(lo, hi))
            @for (i, label) in labels.iter().enumerate() {
                @let x0 = LEFT + group * i as f64 + group * 0.1;
                @for (k, s) in series.iter().enumerate() {
                    @let v = s.values.get(i).copied().unwrap_or_default();
                    @let f = v.to_f64().unwrap_or(0.0);
                    @let (ya, yb) = (y_of(f.max(0.0), lo, hi), y_of(f.min(0.0), lo, hi));
                    rect x=(x0 + bar * k as f64) y=(ya) width=(bar.max(1.0) - 1.0) height=((yb - ya).max(0.0)) fill=(COLORS[k % COLORS.len()]) data-series=(s.name) data-label=(label) data-value=(v) {
                        title { (s.name) " " (label) ": " (crate::group_digits(&v.round_dp(2).to_string())) }
                    }
                }
                text x=(x0 + group * 0.4) y=(H - BOTTOM + 16.0) text-anchor="middle" font-size="11" fill="#1d2430" { (label) }
            }
        }
    }
}

/// A line through the points, with a dot and a `<title>` at each.
pub fn line(title: &str, labels: &[String], series: &Series) -> Markup {
    let (lo, hi) = range(std::slice::from_ref(series));
    let step = (W - LEFT - RIGHT) / labels.len().max(1) as f64;
    let x_of = |i: usize| LEFT + step * i as f64 + step / 2.0;
    let points: Vec<(f64, f64, Decimal)> =
        series.values.iter().enumerate().map(|(i, v)| (x_of(i), y_of(v.to_f64().unwrap_or(0.0), lo, hi), *v)).collect();
    let path = points.iter().map(|(x, y, _)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(title) {
            title { (title) }
            (axes(lo, hi))
            polyline points=(path) fill="none" stroke=(COLORS[0]) stroke-width="2" {}
            @for (i, (x, y, v)) in points.iter().enumerate() {
                circle cx=(x) cy=(y) r="4" fill=(COLORS[0]) data-value=(v) {
                    title { (labels.get(i).map(String::as_str).unwrap_or_default()) ": " (crate::group_digits(&v.round_dp(2).to_string())) }
                }
            }
            @for (i, label) in labels.iter().enumerate() {
                text x=(x_of(i)) y=(H - BOTTOM + 16.0) text-anchor="middle" font-size="11" fill="#1d2430" { (label) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn bars_are_as_tall_as_their_amounts_and_negatives_hang_below_zero() {
        let labels = vec!["2026-07".to_string(), "2026-08".to_string()];
        let series = vec![Series { name: "accrued".into(), values: vec![d("100"), d("-50")] }];
        let svg = bars("t", &labels, &series).into_string();
        let (lo, hi) = range(&series);
        assert_eq!((lo, hi), (-50.0, 100.0));
        let zero = y_of(0.0, lo, hi);
        let full = H - TOP - BOTTOM;
        // 100 of a 150 span is 2/3 of the plot's height, above the zero line.
        assert!((zero - y_of(100.0, lo, hi) - full * 2.0 / 3.0).abs() < 1e-9);
        assert!(svg.contains(&format!("y=\"{}\"", zero)), "the negative bar starts at the zero line");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("data-value=\"-50\""));
    }

    #[test]
    fn an_all_zero_chart_still_has_an_axis() {
        let series = vec![Series { name: "x".into(), values: vec![Decimal::ZERO] }];
        assert_eq!(range(&series), (0.0, 1.0));
        let svg = line("t", &["a".to_string()], &series[0]).into_string();
        assert!(svg.contains("<polyline") && svg.contains("<circle"));
    }
}
