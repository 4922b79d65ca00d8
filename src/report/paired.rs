//! Paired comparisons of two runs over the same units (the accounts of one book run twice with
//! the same random draws): the difference of two totals and of two ratios of totals, each with
//! a normal-approximation confidence interval built from the per-unit paired differences. Pure
//! arithmetic on `f64`: no I/O, no clock. The formulas are in `docs/simulate.md`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The two-sided normal quantile for a confidence level: `z` with `P(|Z| <= z) = confidence`
/// (1.959964 for 0.95). `None` outside `(0, 1)`.
pub fn z_for(confidence: f64) -> Option<f64> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let standard = Normal::new(0.0, 1.0).ok()?;
    Some(standard.inverse_cdf(1.0 - (1.0 - confidence) / 2.0))
}

/// An estimated difference B − A and its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    /// B − A.
    pub estimate: f64,
    /// The interval's lower end.
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// The sample standard deviation (n − 1 in the denominator); 0 with fewer than two values.
fn sample_sd(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = values.clone().count();
    if n < 2 {
        return 0.0;
    }
    let mean = values.clone().sum::<f64>() / n as f64;
    let squares: f64 = values.map(|value| (value - mean) * (value - mean)).sum();
    (squares / (n - 1) as f64).sqrt()
}

/// The difference of two totals, `Σ b_i − Σ a_i`, with the interval `D ± z · sd(d) · √n` where
/// `d_i = b_i − a_i` are the paired per-unit differences (the standard error of a sum of `n`
/// independent differences). `a` and `b` are the same units in the same order; a unit missing
/// from the shorter slice counts as 0.
pub fn total_difference(a: &[f64], b: &[f64], z: f64) -> Difference {
    let n = a.len().max(b.len());
    let at = |values: &[f64], i: usize| values.get(i).copied().unwrap_or(0.0);
    let differences = (0..n).map(|i| at(b, i) - at(a, i));
    let estimate: f64 = differences.clone().sum();
    let half = z * sample_sd(differences) * (n as f64).sqrt();
    Difference { estimate, low: estimate - half, high: estimate + half }
}

/// The difference of two ratios of totals, `Σ y_b / Σ x_b − Σ y_a / Σ x_a` (say right-party
/// contacts per attempt), with a delta-method interval: each ratio `r = ȳ / x̄` is linearised
/// per unit as `(y_i − r·x_i) / x̄`, the paired difference of those terms `u_i` has the
/// variance of the estimate times `n`, and the interval is `estimate ± z · sd(u) / √n`.
/// `None` when either arm's denominator total is 0 (the ratio is undefined).
pub fn ratio_difference(ya: &[f64], xa: &[f64], yb: &[f64], xb: &[f64], z: f64) -> Option<Difference> {
    let n = ya.len().max(xa.len()).max(yb.len()).max(xb.len());
    if n == 0 {
        return None;
    }
    let at = |values: &[f64], i: usize| values.get(i).copied().unwrap_or(0.0);
    let (sum_xa, sum_xb): (f64, f64) = (xa.iter().sum(), xb.iter().sum());
    if sum_xa <= 0.0 || sum_xb <= 0.0 {
        return None;
    }
    let ra = ya.iter().sum::<f64>() / sum_xa;
    let rb = yb.iter().sum::<f64>() / sum_xb;
    let (mean_xa, mean_xb) = (sum_xa / n as f64, sum_xb / n as f64);
    let terms = (0..n).map(|i| (at(yb, i) - rb * at(xb, i)) / mean_xb - (at(ya, i) - ra * at(xa, i)) / mean_xa);
    let estimate = rb - ra;
    let half = z * sample_sd(terms) / (n as f64).sqrt();
    Some(Difference { estimate, low: estimate - half, high: estimate + half })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn the_95_percent_quantile_is_the_textbook_one() {
        let z = z_for(0.95).unwrap();
        assert!(close(z, 1.959_963_984_540_054, 1e-9), "{z}");
        assert!(close(z_for(0.90).unwrap(), 1.644_853_626_951_472, 1e-9));
        assert_eq!(z_for(1.0), None);
        assert_eq!(z_for(0.0), None);
    }

    #[test]
    fn a_total_difference_uses_the_paired_differences() {
        // d = 1, 2, 3, 4, 5: sum 15, sd = sqrt(2.5) = 1.581139, half width = z * sd * sqrt(5).
        let a = [0.0, 0.0, 0.0, 0.0, 0.0];
        let b = [1.0, 2.0, 3.0, 4.0, 5.0];
        let z = z_for(0.95).unwrap();
        let found = total_difference(&a, &b, z);
        let half = 1.959_963_984_540_054 * 2.5_f64.sqrt() * 5.0_f64.sqrt();
        assert_eq!(found.estimate, 15.0);
        assert!(close(found.low, 15.0 - half, 1e-9) && close(found.high, 15.0 + half, 1e-9), "{found:?}");
        assert!(close(half, 6.929_519_12, 1e-6), "{half}");
        // Pairing removes what the units share: a large common part does not widen the interval.
        let a2: Vec<f64> = a.iter().enumerate().map(|(i, x)| x + 1000.0 * i as f64).collect();
        let b2: Vec<f64> = b.iter().enumerate().map(|(i, x)| x + 1000.0 * i as f64).collect();
        assert_eq!(total_difference(&a2, &b2, z), found);
    }

    #[test]
    fn identical_arms_differ_by_exactly_zero_with_a_zero_width_interval() {
        let a = [3.0, 0.0, 7.0, 1.0];
        let z = z_for(0.95).unwrap();
        assert_eq!(total_difference(&a, &a, z), Difference { estimate: 0.0, low: 0.0, high: 0.0 });
        let x = [4.0, 1.0, 9.0, 2.0];
        assert_eq!(ratio_difference(&a, &x, &a, &x, z), Some(Difference { estimate: 0.0, low: 0.0, high: 0.0 }));
    }

    #[test]
    fn a_ratio_difference_follows_the_delta_method() {
        // A: 1 contact in 4 attempts per unit on two units, 3 in 4 on the other two:
        //   ra = 8/16 = 0.5; B: 2 in 4 on every unit: rb = 0.5 + 0 — a zero estimate whose
        //   spread comes from A's per-unit terms (y − r·x)/x̄ = (1 − 2)/4 = −0.25 and +0.25.
        let (ya, xa) = ([1.0, 1.0, 3.0, 3.0], [4.0; 4]);
        let (yb, xb) = ([2.0; 4], [4.0; 4]);
        let z = z_for(0.95).unwrap();
        let found = ratio_difference(&ya, &xa, &yb, &xb, z).unwrap();
        // u = 0 − (∓0.25) = +0.25, +0.25, −0.25, −0.25; sd = sqrt(4 · 0.0625 / 3).
        let sd = (4.0 * 0.0625 / 3.0_f64).sqrt();
        let half = 1.959_963_984_540_054 * sd / 2.0;
        assert_eq!(found.estimate, 0.0);
        assert!(close(found.high, half, 1e-12) && close(found.low, -half, 1e-12), "{found:?} vs ±{half}");
        // The same against a direct computation on uneven data.
        let (ya, xa) = ([0.0, 2.0, 1.0], [3.0, 5.0, 2.0]);
        let (yb, xb) = ([1.0, 2.0, 2.0], [2.0, 4.0, 3.0]);
        let found = ratio_difference(&ya, &xa, &yb, &xb, z).unwrap();
        let (ra, rb) = (3.0 / 10.0, 5.0 / 9.0);
        let u: Vec<f64> = (0..3).map(|i| (yb[i] - rb * xb[i]) / 3.0 - (ya[i] - ra * xa[i]) / (10.0 / 3.0)).collect();
        let mean = u.iter().sum::<f64>() / 3.0;
        let sd = (u.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!(close(found.estimate, rb - ra, 1e-12));
        assert!(close(found.high - found.estimate, z * sd / 3.0_f64.sqrt(), 1e-12), "{found:?}");
    }

    #[test]
    fn a_ratio_without_attempts_is_undefined() {
        let z = z_for(0.95).unwrap();
        assert_eq!(ratio_difference(&[0.0], &[0.0], &[1.0], &[2.0], z), None);
        assert_eq!(ratio_difference(&[], &[], &[], &[], z), None);
    }
}
