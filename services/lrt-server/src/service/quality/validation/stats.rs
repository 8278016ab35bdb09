//! The statistics of a validation: a proportion with its 95 % Wilson score interval, a 2×2 table
//! and its four proportions, and a summary of lead times (median, interquartile range, range).
//!
//! * **Wilson score interval** (Wilson 1927; method 3 of Newcombe 1998, without continuity
//!   correction), z = 1.959964 (the 97.5th percentile of the standard normal):
//!   `(p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)`. It stays inside [0, 1] and is
//!   informative at 0/n and n/n, where the Wald interval collapses.
//! * A proportion whose denominator is 0 is **undefined**: value and interval are absent
//!   (`null`), never 0 or NaN.
//! * **Quantiles** are linear interpolations between order statistics (Hyndman & Fan type 7,
//!   the default of R and NumPy). The quartiles are given from 4 values on; below that only the
//!   median, minimum and maximum.

use serde::Serialize;

/// The 97.5th percentile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A two-sided 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The Wilson score interval of `successes` out of `n` (None when `n` is 0).
pub fn wilson(successes: u64, n: u64) -> Option<Interval> {
    if n == 0 || successes > n {
        return None;
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z_95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denominator;
    Some(Interval {
        // At 0/n and n/n the bound is exactly 0 or 1 (the formula gives it up to rounding).
        low: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        high: if successes == n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    })
}

/// A proportion: numerator, denominator, value and 95 % Wilson interval (value and interval
/// absent when the denominator is 0: undefined).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub numerator: u64,
    pub denominator: u64,
    pub value: Option<f64>,
    pub ci95: Option<Interval>,
}

impl Proportion {
    pub fn of(numerator: u64, denominator: u64) -> Proportion {
        Proportion {
            numerator,
            denominator,
            value: (denominator > 0).then(|| numerator as f64 / denominator as f64),
            ci95: wilson(numerator, denominator),
        }
    }

    /// `4/5  0.800 (95% CI 0.376–0.964)`, or `0/0  undefined`.
    pub fn text(&self) -> String {
        match (self.value, self.ci95) {
            (Some(v), Some(ci)) => format!(
                "{}/{}  {v:.3}  (95% CI {:.3}–{:.3})",
                self.numerator, self.denominator, ci.low, ci.high
            ),
            _ => format!(
                "{}/{}  undefined (no case in the denominator)",
                self.numerator, self.denominator
            ),
        }
    }
}

/// A 2×2 table of system call against the adjudicated truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TwoByTwo {
    /// System positive, adjudicated positive.
    pub tp: u64,
    /// System positive, adjudicated negative.
    pub fp: u64,
    /// System negative, adjudicated positive.
    pub r#fn: u64,
    /// System negative, adjudicated negative.
    pub tn: u64,
}

/// A cell of a [`TwoByTwo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    Tp,
    Fp,
    Fn,
    Tn,
}

impl Cell {
    pub fn of(system_positive: bool, adjudicated_positive: bool) -> Cell {
        match (system_positive, adjudicated_positive) {
            (true, true) => Cell::Tp,
            (true, false) => Cell::Fp,
            (false, true) => Cell::Fn,
            (false, false) => Cell::Tn,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cell::Tp => "TP",
            Cell::Fp => "FP",
            Cell::Fn => "FN",
            Cell::Tn => "TN",
        }
    }
}

impl TwoByTwo {
    pub fn add(&mut self, cell: Cell) {
        match cell {
            Cell::Tp => self.tp += 1,
            Cell::Fp => self.fp += 1,
            Cell::Fn => self.r#fn += 1,
            Cell::Tn => self.tn += 1,
        }
    }

    /// TP / (TP + FN): of the adjudicated positives, the share the system called positive.
    pub fn sensitivity(&self) -> Proportion {
        Proportion::of(self.tp, self.tp + self.r#fn)
    }

    /// TN / (TN + FP).
    pub fn specificity(&self) -> Proportion {
        Proportion::of(self.tn, self.tn + self.fp)
    }

    /// TP / (TP + FP): of the system's positive calls, the share adjudicated positive.
    pub fn ppv(&self) -> Proportion {
        Proportion::of(self.tp, self.tp + self.fp)
    }

    /// TN / (TN + FN).
    pub fn npv(&self) -> Proportion {
        Proportion::of(self.tn, self.tn + self.r#fn)
    }
}

/// Lead times in hours: how many, median, quartiles (from 4 values on) and range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub median: Option<f64>,
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The fewest values for which quartiles are given.
pub const QUARTILES_FROM: usize = 4;

impl Summary {
    pub fn of(values: &[f64]) -> Summary {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let quartile = |p| (sorted.len() >= QUARTILES_FROM).then(|| quantile(&sorted, p));
        Summary {
            n: sorted.len(),
            median: (!sorted.is_empty()).then(|| quantile(&sorted, 0.5)),
            q1: quartile(0.25),
            q3: quartile(0.75),
            min: sorted.first().copied(),
            max: sorted.last().copied(),
        }
    }

    /// `n 4, median 5.0 h, IQR 2.5–7.5 h, range 1.0–9.0 h`, or `none`.
    pub fn text(&self) -> String {
        let (Some(median), Some(min), Some(max)) = (self.median, self.min, self.max) else {
            return "none".into();
        };
        let iqr = match (self.q1, self.q3) {
            (Some(q1), Some(q3)) => format!(", IQR {q1:.1}–{q3:.1} h"),
            _ => String::new(),
        };
        format!(
            "n {}, median {median:.1} h{iqr}, range {min:.1}–{max:.1} h",
            self.n
        )
    }
}

/// The type-7 quantile `p` of sorted, non-empty `values`.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let below = h.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    sorted[below] + (h - below as f64) * (sorted[above] - sorted[below])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    fn assert_interval(successes: u64, n: u64, low: f64, high: f64) {
        let ci = wilson(successes, n).unwrap();
        assert!(
            close(ci.low, low, 5e-4) && close(ci.high, high, 5e-4),
            "{successes}/{n}: {ci:?}, published {low}–{high}"
        );
    }

    /// Published values of the Wilson score interval (no continuity correction).
    #[test]
    fn wilson_intervals_match_published_values() {
        // 8/10: 0.490–0.943 (e.g. Brown, Cai & DasGupta 2001; Agresti & Coull 1998).
        assert_interval(8, 10, 0.490, 0.943);
        // Newcombe (1998), Table I, method 3.
        assert_interval(81, 263, 0.2553, 0.3662);
        assert_interval(15, 148, 0.0624, 0.1605);
        assert_interval(0, 20, 0.0, 0.1611);
        assert_interval(1, 29, 0.0061, 0.1718);
        // All successes: the upper bound is exactly 1, the lower one mirrors 0/20.
        assert_interval(20, 20, 1.0 - 0.1611, 1.0);
    }

    #[test]
    fn a_zero_denominator_is_undefined_not_zero() {
        assert_eq!(wilson(0, 0), None);
        let p = Proportion::of(0, 0);
        assert_eq!(p.value, None);
        assert_eq!(p.ci95, None);
        assert!(p.text().contains("undefined"));
        let json = serde_json::to_value(p).unwrap();
        assert_eq!(json["value"], serde_json::Value::Null);
        assert_eq!(json["ci95"], serde_json::Value::Null);
    }

    #[test]
    fn a_table_gives_its_four_proportions() {
        let mut t = TwoByTwo::default();
        for cell in [
            Cell::Tp,
            Cell::Tp,
            Cell::Tp,
            Cell::Fp,
            Cell::Fn,
            Cell::Tn,
            Cell::Tn,
        ] {
            t.add(cell);
        }
        assert_eq!((t.tp, t.fp, t.r#fn, t.tn), (3, 1, 1, 2));
        assert_eq!(
            (t.sensitivity().numerator, t.sensitivity().denominator),
            (3, 4)
        );
        assert_eq!(
            (t.specificity().numerator, t.specificity().denominator),
            (2, 3)
        );
        assert_eq!((t.ppv().numerator, t.ppv().denominator), (3, 4));
        assert_eq!((t.npv().numerator, t.npv().denominator), (2, 3));
        // No adjudicated negative: specificity undefined, the others defined.
        let only_positive = TwoByTwo {
            tp: 2,
            r#fn: 1,
            ..TwoByTwo::default()
        };
        assert_eq!(only_positive.specificity().value, None);
        assert_eq!(only_positive.ppv().value, Some(1.0));
        assert_eq!(only_positive.npv().value, Some(0.0));
    }

    #[test]
    fn lead_time_median_and_quartiles() {
        // Type 7: sorted 1, 2, 4, 8, 10 → median 4; Q1 at h = 1 → 2; Q3 at h = 3 → 8.
        let s = Summary::of(&[10.0, 1.0, 8.0, 2.0, 4.0]);
        assert_eq!(
            (s.n, s.median, s.q1, s.q3),
            (5, Some(4.0), Some(2.0), Some(8.0))
        );
        assert_eq!((s.min, s.max), (Some(1.0), Some(10.0)));
        // Even count: 1, 2, 4, 8 → median 3; Q1 at h = 0.75 → 1.75; Q3 at h = 2.25 → 5.
        let s = Summary::of(&[8.0, 4.0, 2.0, 1.0]);
        assert_eq!((s.median, s.q1, s.q3), (Some(3.0), Some(1.75), Some(5.0)));
        // Few values: median and range only.
        let s = Summary::of(&[6.0, 2.0]);
        assert_eq!(
            (s.median, s.q1, s.q3, s.min, s.max),
            (Some(4.0), None, None, Some(2.0), Some(6.0))
        );
        assert!(s.text().contains("median 4.0 h") && !s.text().contains("IQR"));
        let s = Summary::of(&[]);
        assert_eq!((s.n, s.median, s.min), (0, None, None));
        assert_eq!(s.text(), "none");
    }
}
