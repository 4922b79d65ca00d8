//! Statistics of champion/challenger experiments.
//!
//! This module owns the numbers behind an experiment's verdict:
//!
//! * per-arm estimates ([`estimate`]: Wilson score interval for 0/1 metrics, t/normal interval otherwise);
//! * the sample-ratio-mismatch check ([`srm`]: Pearson chi-squared of the arm counts against the design weights);
//! * CUPED variance reduction with the two pre-entry covariates ([`cuped`]);
//! * the always-valid sequential comparison of challenger minus champion ([`sequential`]: a normal-mixture mSPRT
//!   and its confidence sequence, after Johari, Pekelis & Walsh 2017 "Always valid inference" and Howard et al.
//!   2021 "Time-uniform, nonparametric, nonasymptotic confidence sequences"), which may be looked at every day
//!   without inflating the false-positive rate above [`ALPHA`];
//! * verdicts and the plain-words explanation for a manager ([`decide`], [`explain`]).
//!
//! It must not do I/O, read a clock, keep global state, or know anything about accounts, strategies or stores:
//! callers hand it plain numbers (one outcome value and two covariates per account) and get plain numbers back.
//! Nothing here panics on empty or degenerate input; such input yields `None` or a documented value.
//!
//! The comparison is asymptotic in the usual way (plug-in variances, normal approximation of the difference of
//! means); the Monte Carlo tests at the bottom check that, peeked at daily, its A/A false-positive rate stays
//! below [`ALPHA`] on realistic collections data.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};
use utoipa::ToSchema;

/// The error rate that every interval, confidence sequence and verdict in this module is built for.
pub const ALPHA: f64 = 0.05;

/// SRM p-value below which the split is reported as [`SrmStatus::Warn`].
pub const SRM_WARN_P: f64 = 0.01;

/// SRM p-value below which the split is reported as [`SrmStatus::Alarm`].
pub const SRM_ALARM_P: f64 = 0.001;

/// [`sequential`] uses CUPED-adjusted values only when CUPED removes at least this fraction of the pooled variance.
pub const CUPED_MIN_VARIANCE_REDUCTION: f64 = 0.05;

/// Degrees of freedom from which the t quantile is replaced by the normal one (they differ by < 0.1 % there).
const T_TO_NORMAL_DF: f64 = 1000.0;

/// A standard deviation at or below this fraction of the largest absolute value is treated as exactly zero
/// (it is floating-point noise from computing the mean of identical values).
const RELATIVE_ZERO: f64 = 1e-12;

/// A 2x2 covariate design whose squared correlation exceeds `1 - SINGULAR_TOLERANCE` is treated as singular.
const SINGULAR_TOLERANCE: f64 = 1e-10;

/// One arm's observations of one metric: one value per account, with the account's covariates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The metric read at the fixed horizon after the account entered (0/1 for a rate, an amount otherwise).
    pub value: f64,
    /// Pre-entry covariates, e.g. days past due at entry and balance at entry. They must not be affected by the
    /// arm the account was assigned to, or CUPED would absorb part of the treatment effect.
    pub covariates: [f64; 2],
}

/// A 95 % interval estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Estimate {
    /// Number of values.
    pub n: u64,
    /// Sample mean (for a 0/1 metric, the observed rate).
    pub mean: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end of the 95 % interval.
    pub high: f64,
}

/// Mean with a 95 % interval: Wilson score interval when every value is 0 or 1, else the t interval from the
/// sample variance (normal quantile from 1,000 degrees of freedom on). `None` when `values` is empty or holds a
/// non-finite value. A single non-0/1 value gives the point itself as a zero-width interval (no spread can be
/// estimated from one value; look at `n`), and so do identical values (their sample variance is zero).
pub fn estimate(values: &[f64]) -> Option<Estimate> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len() as f64;
    let z = normal_quantile(1.0 - ALPHA / 2.0);
    if is_binary(values) {
        let successes = values.iter().filter(|&&v| v == 1.0).count() as f64;
        let (low, high) = wilson(successes, n, z);
        return Some(Estimate { n: values.len() as u64, mean: successes / n, low, high });
    }
    let m = moments(values);
    let half = if m.n < 2 { 0.0 } else { t_quantile((m.n - 1) as f64, z) * (m.variance / n).sqrt() };
    Some(Estimate { n: values.len() as u64, mean: m.mean, low: m.mean - half, high: m.mean + half })
}

/// How far the observed split of accounts over arms is from the designed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SrmStatus {
    /// p ≥ 0.01: the split is consistent with the weights.
    Ok,
    /// 0.001 ≤ p < 0.01: suspicious; check the assignment.
    Warn,
    /// p < 0.001: the assignment is broken; results should not be trusted.
    Alarm,
}

/// Sample-ratio mismatch: Pearson chi-squared of the observed counts per arm against the expected shares from
/// the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Srm {
    /// Pearson's statistic Σ (observed − expected)² / expected over the arms with weight > 0. Infinite (JSON
    /// `null`) when an arm of weight 0 received accounts.
    pub chi_squared: f64,
    /// Number of arms with weight > 0, minus one.
    pub degrees_of_freedom: u32,
    /// Upper tail of the chi-squared distribution at `chi_squared`.
    pub p_value: f64,
    /// Warn at p < [`SRM_WARN_P`], alarm at p < [`SRM_ALARM_P`].
    pub status: SrmStatus,
}

/// Sample-ratio-mismatch check. `observed[i]` is the number of accounts in arm `i`, `weights[i]` its design
/// weight (any positive scale: 50/50, 0.45/0.45/0.1, …). `None` when the slices differ in length, a weight is
/// negative or not finite, fewer than 2 arms have weight > 0, or there are no observations at all. Accounts in an
/// arm of weight 0 are an outright mismatch: `Alarm` with p = 0.
pub fn srm(observed: &[u64], weights: &[f64]) -> Option<Srm> {
    if observed.len() != weights.len() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let active: Vec<(f64, f64)> =
        observed.iter().zip(weights).filter(|(_, w)| **w > 0.0).map(|(o, w)| (*o as f64, *w)).collect();
    if active.len() < 2 {
        return None;
    }
    let degrees_of_freedom = u32::try_from(active.len() - 1).unwrap_or(u32::MAX);
    let stray: u64 = observed.iter().zip(weights).filter(|(_, w)| **w == 0.0).map(|(o, _)| *o).sum();
    if stray > 0 {
        return Some(Srm { chi_squared: f64::INFINITY, degrees_of_freedom, p_value: 0.0, status: SrmStatus::Alarm });
    }
    let total: f64 = active.iter().map(|(o, _)| o).sum();
    if total == 0.0 {
        return None;
    }
    let weight_sum: f64 = active.iter().map(|(_, w)| w).sum();
    let chi_squared: f64 = active
        .iter()
        .map(|(o, w)| {
            let expected = total * w / weight_sum;
            (o - expected).powi(2) / expected
        })
        .sum();
    let p_value = ChiSquared::new(f64::from(degrees_of_freedom)).ok()?.sf(chi_squared).clamp(0.0, 1.0);
    let status = if p_value < SRM_ALARM_P {
        SrmStatus::Alarm
    } else if p_value < SRM_WARN_P {
        SrmStatus::Warn
    } else {
        SrmStatus::Ok
    };
    Some(Srm { chi_squared, degrees_of_freedom, p_value, status })
}

/// CUPED-adjusted values of both arms.
#[derive(Debug, Clone, PartialEq)]
pub struct Cuped {
    /// Adjusted values of the control (champion) arm, in input order.
    pub control: Vec<f64>,
    /// Adjusted values of the treatment (challenger) arm, in input order.
    pub treatment: Vec<f64>,
    /// Fraction of the pooled variance of the values removed by the adjustment (the regression's R², in [0, 1]).
    pub variance_reduction: f64,
    /// Regression coefficients on the two centred covariates; a coefficient is 0 for a covariate left out.
    pub theta: [f64; 2],
}

/// CUPED with the two covariates: theta from the pooled (both arms) least-squares regression of value on the
/// centred covariates (2x2 normal equations), falling back to the better single covariate when the design is
/// singular (collinear covariates) or has fewer than 4 accounts, and to no adjustment when no covariate varies,
/// a covariate is not finite, or there are fewer than 3 accounts. Adjusted value = value − theta·(x − pooled mean
/// of x). Because theta and the means are pooled, the adjustment shifts both arms by the same rule and leaves the
/// expected difference of means unchanged when the covariates are pre-entry.
pub fn cuped(control: &[Observation], treatment: &[Observation]) -> Cuped {
    let pooled = || control.iter().chain(treatment);
    let n = control.len() + treatment.len();
    let raw = |arm: &[Observation]| arm.iter().map(|o| o.value).collect::<Vec<f64>>();
    let unadjusted =
        Cuped { control: raw(control), treatment: raw(treatment), variance_reduction: 0.0, theta: [0.0; 2] };
    if n < 3 || pooled().any(|o| !o.value.is_finite()) {
        return unadjusted;
    }
    let nf = n as f64;
    let mean_y = pooled().map(|o| o.value).sum::<f64>() / nf;
    let mut mean_x = [0.0; 2];
    let mut usable = [false; 2];
    for j in 0..2 {
        usable[j] = pooled().all(|o| o.covariates[j].is_finite());
        if usable[j] {
            mean_x[j] = pooled().map(|o| o.covariates[j]).sum::<f64>() / nf;
        }
    }
    // Centred cross-products.
    let mut sxx = [[0.0; 2]; 2];
    let mut sxy = [0.0; 2];
    let mut syy = 0.0;
    for o in pooled() {
        let dy = o.value - mean_y;
        syy += dy * dy;
        let dx = [0, 1].map(|j| if usable[j] { o.covariates[j] - mean_x[j] } else { 0.0 });
        for j in 0..2 {
            sxy[j] += dx[j] * dy;
            for k in 0..2 {
                sxx[j][k] += dx[j] * dx[k];
            }
        }
    }
    let y_scale = pooled().fold(0.0_f64, |m, o| m.max(o.value.abs()));
    if syy <= nf * (RELATIVE_ZERO * y_scale).powi(2) {
        return unadjusted;
    }
    for j in 0..2 {
        let scale = pooled().fold(0.0_f64, |m, o| m.max(o.covariates[j].abs()));
        usable[j] = usable[j] && sxx[j][j] > 0.0 && sxx[j][j] > nf * (RELATIVE_ZERO * scale).powi(2);
    }
    let det = sxx[0][0] * sxx[1][1] - sxx[0][1] * sxx[1][0];
    let theta = if usable[0] && usable[1] && n >= 4 && det > SINGULAR_TOLERANCE * sxx[0][0] * sxx[1][1] {
        [(sxx[1][1] * sxy[0] - sxx[0][1] * sxy[1]) / det, (sxx[0][0] * sxy[1] - sxx[1][0] * sxy[0]) / det]
    } else {
        // Single covariate: keep the one explaining more of the variance (sxy² / sxx).
        let explained = [0, 1].map(|j| if usable[j] { sxy[j] * sxy[j] / sxx[j][j] } else { -1.0 });
        let best = if explained[1] > explained[0] { 1 } else { 0 };
        let mut theta = [0.0; 2];
        if usable[best] {
            theta[best] = sxy[best] / sxx[best][best];
        }
        theta
    };
    if theta == [0.0; 2] || theta.iter().any(|t| !t.is_finite()) {
        return unadjusted;
    }
    let adjust = |o: &Observation| {
        let mut v = o.value;
        for j in 0..2 {
            if theta[j] != 0.0 {
                v -= theta[j] * (o.covariates[j] - mean_x[j]);
            }
        }
        v
    };
    let control: Vec<f64> = control.iter().map(adjust).collect();
    let treatment: Vec<f64> = treatment.iter().map(adjust).collect();
    let ss_res: f64 = control.iter().chain(&treatment).map(|v| (v - mean_y).powi(2)).sum();
    let variance_reduction = (1.0 - ss_res / syy).clamp(0.0, 1.0);
    Cuped { control, treatment, variance_reduction, theta }
}

/// The always-valid comparison of treatment (challenger) minus control (champion), difference of means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Sequential {
    /// mean(treatment) − mean(control) of the values used (CUPED-adjusted when `cuped`; the adjustment changes
    /// the estimate only by noise, not in expectation).
    pub difference: f64,
    /// Lower end of the (1 − [`ALPHA`]) confidence sequence at this look.
    pub low: f64,
    /// Upper end of the (1 − [`ALPHA`]) confidence sequence at this look.
    pub high: f64,
    /// The always-valid p-value at this look, min(1, 1/Λ). It is ≤ ALPHA exactly when the sequence excludes 0.
    pub p_value: f64,
    /// Whether CUPED-adjusted values were used.
    pub cuped: bool,
    /// Fraction of the pooled variance CUPED removed (reported also when below the 5 % threshold and not used).
    pub variance_reduction: f64,
    /// Accounts in the control arm.
    pub n_control: u64,
    /// Accounts in the treatment arm.
    pub n_treatment: u64,
    /// Per-account sample variance of the control values used.
    pub variance_control: f64,
    /// Per-account sample variance of the treatment values used.
    pub variance_treatment: f64,
    /// V = variance_control / n_control + variance_treatment / n_treatment, the variance of `difference`.
    pub variance: f64,
    /// τ², the variance of the normal mixture over effects; see [`mixing_variance`].
    pub tau_squared: f64,
    /// The minimum effect worth detecting this comparison was built for (absolute, in the metric's units).
    pub mde: f64,
    /// Whether every raw value in both arms is 0 or 1 (a rate; [`explain`] then speaks in percentage points).
    pub binary: bool,
}

/// The mixing variance τ² of the normal-mixture mSPRT for a minimum detectable effect `mde`:
/// τ² = mde² · r / (1 + r), where r solves r = ln(1 + r) − 2 ln α (r ≈ 8.21 at α = 0.05, so τ² ≈ 0.89 mde²).
///
/// Why: the half-width of the confidence sequence, h(V)² = V (1 + V/τ²) (ln(1 + τ²/V) − 2 ln α), is increasing
/// in V, and for a fixed V it is smallest at τ² = r·V. At that optimum h(V)² = V + τ², so the τ² above is the one
/// whose sequence first becomes narrower than `mde` — the earliest look at which an effect of size `mde` can be
/// declared — at the largest V, i.e. with the fewest accounts. It is the Howard et al. (2021) "optimise the
/// boundary for the sample size where it matters" choice, with that sample size set by the `mde` rather than
/// guessed, and close to the simpler τ² = mde² (the width is flat around the optimum).
pub fn mixing_variance(mde: f64) -> f64 {
    let c = -2.0 * ALPHA.ln();
    let mut r = c;
    for _ in 0..200 {
        let next = r.ln_1p() + c;
        if (next - r).abs() <= 1e-15 * r {
            r = next;
            break;
        }
        r = next;
    }
    mde * mde * r / (1.0 + r)
}

/// The always-valid comparison. Uses CUPED-adjusted values when CUPED removes at least
/// [`CUPED_MIN_VARIANCE_REDUCTION`] of the pooled variance (and leaves some variance), else the raw values.
/// `mde` is the minimum effect worth detecting (absolute, in the metric's units); it sets τ² through
/// [`mixing_variance`].
///
/// With plug-in variance V = s_c²/n_c + s_t²/n_t and θ̂ = difference:
/// Λ = sqrt(V/(V+τ²)) · exp(θ̂² τ² / (2V(V+τ²))), p = min(1, 1/Λ), and the confidence sequence is
/// θ̂ ± sqrt((V(V+τ²)/τ²) · (ln((V+τ²)/V) − 2 ln α)). The function is stateless; checking it at every look is
/// what it is built for (the chance that any look ever shows p ≤ α under no effect is ≤ α). A caller that wants
/// the running versions keeps the minimum p and the intersection of the sequences over looks.
///
/// `None` when either arm has fewer than 2 accounts, a value is not finite, `mde` is not a positive number, or
/// both arms have zero variance (every account in an arm has the same value, e.g. no cure yet in either arm):
/// with no observed spread the data say nothing about noise, so no calibrated comparison exists yet — the caller
/// should keep running. One constant arm next to a varying one is fine (V > 0).
pub fn sequential(control: &[Observation], treatment: &[Observation], mde: f64) -> Option<Sequential> {
    if control.len() < 2 || treatment.len() < 2 || !mde.is_finite() || mde <= 0.0 {
        return None;
    }
    if control.iter().chain(treatment).any(|o| !o.value.is_finite()) {
        return None;
    }
    let raw_control: Vec<f64> = control.iter().map(|o| o.value).collect();
    let raw_treatment: Vec<f64> = treatment.iter().map(|o| o.value).collect();
    let binary = is_binary(&raw_control) && is_binary(&raw_treatment);
    let adjusted = cuped(control, treatment);
    let (mut mc, mut mt) = (moments(&raw_control), moments(&raw_treatment));
    let mut used_cuped = false;
    if adjusted.variance_reduction >= CUPED_MIN_VARIANCE_REDUCTION {
        let (ac, at) = (moments(&adjusted.control), moments(&adjusted.treatment));
        if ac.variance + at.variance > 0.0 {
            (mc, mt, used_cuped) = (ac, at, true);
        }
    }
    let (nc, nt) = (mc.n as f64, mt.n as f64);
    let variance = mc.variance / nc + mt.variance / nt;
    if variance.is_nan() || variance <= 0.0 {
        return None;
    }
    let tau_squared = mixing_variance(mde);
    let difference = mt.mean - mc.mean;
    let (p_value, half) = msprt(difference, variance, tau_squared);
    Some(Sequential {
        difference,
        low: difference - half,
        high: difference + half,
        p_value,
        cuped: used_cuped,
        variance_reduction: adjusted.variance_reduction,
        n_control: control.len() as u64,
        n_treatment: treatment.len() as u64,
        variance_control: mc.variance,
        variance_treatment: mt.variance,
        variance,
        tau_squared,
        mde,
        binary,
    })
}

/// The verdict of one look at an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The sequence still contains 0 and reaches beyond ±mde: not enough evidence either way.
    KeepRunning,
    /// The sequence excludes 0 on the side the manager wants.
    ChallengerBetter,
    /// The sequence excludes 0 on the side the manager does not want.
    ChallengerWorse,
    /// The sequence contains 0 and lies inside (−mde, +mde): any effect is too small to matter.
    NoDifference,
}

/// A verdict and, while running, how much longer to run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Decision {
    /// The verdict at this look.
    pub verdict: Verdict,
    /// While the verdict is `KeepRunning`: how many more accounts per arm are needed, at the current per-account
    /// variances, before the sequence must decide, i.e. before its half-width is at most mde/2 (then it either
    /// excludes 0 or lies inside ±mde, whatever the estimate). `None` once decided.
    pub accounts_per_arm_needed: Option<u64>,
}

/// Better/worse when the confidence sequence excludes 0 (direction from `higher_is_better`); no difference when it
/// lies inside (−mde, +mde) (mde as given to [`sequential`]); else keep running, with the number of further
/// accounts per arm m at which the half-width h(V(m)) ≤ mde/2, V(m) = s_c²/(n_c+m) + s_t²/(n_t+m), found by
/// bisection (h is monotone in m).
///
/// Why mde/2 and not mde: a sequence narrower than mde can still straddle both 0 and one of ±mde (estimate
/// 0.6·mde, half-width 0.9·mde); at half-width mde/2 a decision is guaranteed. Under a true effect of size mde the
/// sequence usually decides well before that (from half-width ≈ mde on).
pub fn decide(result: &Sequential, higher_is_better: bool) -> Decision {
    if result.low > 0.0 || result.high < 0.0 {
        let up = result.low > 0.0;
        let verdict = if up == higher_is_better { Verdict::ChallengerBetter } else { Verdict::ChallengerWorse };
        return Decision { verdict, accounts_per_arm_needed: None };
    }
    if result.low > -result.mde && result.high < result.mde {
        return Decision { verdict: Verdict::NoDifference, accounts_per_arm_needed: None };
    }
    Decision { verdict: Verdict::KeepRunning, accounts_per_arm_needed: Some(accounts_needed(result)) }
}

/// Plain words for a manager about one look at one metric, e.g. "The challenger is better: cure rate within 30
/// days +2.1 points (confidence sequence +0.4 to +3.8). This result holds however often you look." A 0/1 metric
/// is reported in percentage points, any other in the metric's units with two decimals.
pub fn explain(metric: &str, result: &Sequential, decision: &Decision) -> String {
    let amount = |x: f64| format_signed(x, result.binary);
    let unit = if result.binary { " points" } else { "" };
    let measured = format!(
        "{metric} {}{unit} (confidence sequence {} to {})",
        amount(result.difference),
        amount(result.low),
        amount(result.high)
    );
    let cuped = if result.cuped {
        format!(
            " The comparison is adjusted for the accounts' pre-entry covariates (CUPED), which removed {:.0} % of \
             the noise.",
            result.variance_reduction * 100.0
        )
    } else {
        String::new()
    };
    let holds = "This result holds however often you look.";
    match decision.verdict {
        Verdict::ChallengerBetter => format!("The challenger is better: {measured}. {holds}{cuped}"),
        Verdict::ChallengerWorse => format!("The challenger is worse: {measured}. {holds}{cuped}"),
        Verdict::NoDifference => format!(
            "No difference worth acting on: {measured}, inside ±{}{unit}, the smallest effect that matters. \
             {holds}{cuped}",
            format_unsigned(result.mde, result.binary)
        ),
        Verdict::KeepRunning => {
            let more = match decision.accounts_per_arm_needed {
                Some(0) | None => "The result should settle at the next look.".to_string(),
                Some(m) => format!(
                    "About {} more accounts per arm are needed before the result must settle (at today's noise \
                     level; a real effect usually shows earlier).",
                    format_count(round_up_two_significant(m))
                ),
            };
            format!(
                "Keep running: {measured} so far, not yet conclusive. {more} Checking every day is safe: the \
                 comparison stays valid however often you look.{cuped}"
            )
        }
    }
}

/// Plain words for a manager when [`sequential`] returned `None` (too few accounts, or no spread in either arm).
pub fn explain_no_comparison(metric: &str) -> String {
    format!(
        "Keep running: not enough data yet to compare {metric} (each arm needs at least 2 accounts, and the \
         outcomes must vary in at least one arm)."
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

/// Count, mean and sample variance (n − 1 denominator; 0 for n < 2 and for floating-point noise).
#[derive(Debug, Clone, Copy)]
struct Moments {
    n: usize,
    mean: f64,
    variance: f64,
}

fn moments(values: &[f64]) -> Moments {
    let n = values.len();
    if n == 0 {
        return Moments { n, mean: 0.0, variance: 0.0 };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Moments { n, mean, variance: 0.0 };
    }
    let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    let mut variance = ss / (n - 1) as f64;
    let scale = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if variance <= (RELATIVE_ZERO * scale).powi(2) {
        variance = 0.0;
    }
    Moments { n, mean, variance }
}

fn is_binary(values: &[f64]) -> bool {
    values.iter().all(|&v| v == 0.0 || v == 1.0)
}

fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// Two-sided (1 − ALPHA) t quantile for `df` degrees of freedom; `z` (the normal one) for large or invalid df.
fn t_quantile(df: f64, z: f64) -> f64 {
    if !(1.0..T_TO_NORMAL_DF).contains(&df) {
        return z;
    }
    StudentsT::new(0.0, 1.0, df).map(|t| t.inverse_cdf(1.0 - ALPHA / 2.0)).unwrap_or(z)
}

/// Wilson score interval for `successes` out of `n` (> 0) at normal quantile `z`.
fn wilson(successes: f64, n: f64, z: f64) -> (f64, f64) {
    let p = successes / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// ln(1 + τ²/V), robust to a tiny V.
fn log_one_plus_ratio(variance: f64, tau_squared: f64) -> f64 {
    let r = tau_squared / variance;
    if r.is_finite() { r.ln_1p() } else { (variance + tau_squared).ln() - variance.ln() }
}

/// The normal-mixture mSPRT at one look: (always-valid p-value, half-width of the confidence sequence), for an
/// estimate `difference` with variance `variance` > 0 and mixing variance `tau_squared` > 0.
fn msprt(difference: f64, variance: f64, tau_squared: f64) -> (f64, f64) {
    let log_ratio = log_one_plus_ratio(variance, tau_squared);
    let log_lambda =
        -0.5 * log_ratio + difference * difference / (2.0 * variance) * (tau_squared / (variance + tau_squared));
    let p_value = (-log_lambda).exp().min(1.0);
    (p_value, half_width(variance, tau_squared, log_ratio))
}

fn half_width(variance: f64, tau_squared: f64, log_ratio: f64) -> f64 {
    (variance * (1.0 + variance / tau_squared) * (log_ratio - 2.0 * ALPHA.ln())).sqrt()
}

/// Further accounts per arm m after which the half-width is at most mde/2 at the current per-account variances.
fn accounts_needed(result: &Sequential) -> u64 {
    let target = result.mde / 2.0;
    let (nc, nt) = (result.n_control as f64, result.n_treatment as f64);
    let width_after = |m: u64| {
        let m = m as f64;
        let v = result.variance_control / (nc + m) + result.variance_treatment / (nt + m);
        if v <= 0.0 {
            return 0.0;
        }
        half_width(v, result.tau_squared, log_one_plus_ratio(v, result.tau_squared))
    };
    if target.is_nan() || target <= 0.0 || result.tau_squared.is_nan() || result.tau_squared <= 0.0 {
        return u64::MAX;
    }
    if width_after(0) <= target {
        return 0;
    }
    // Invariant: width_after(low) > target, width_after(high) <= target.
    let mut low = 0_u64;
    let mut high = 1_u64;
    while width_after(high) > target {
        if high >= u64::MAX / 2 {
            return u64::MAX;
        }
        low = high;
        high *= 2;
    }
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if width_after(mid) > target {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

fn format_signed(x: f64, points: bool) -> String {
    let (x, decimals) = if points { (x * 100.0, 1) } else { (x, 2) };
    let factor = 10_f64.powi(decimals);
    let rounded = (x * factor).round() / factor;
    if rounded == 0.0 {
        format!("{:.*}", decimals as usize, 0.0)
    } else {
        format!("{:+.*}", decimals as usize, rounded)
    }
}

fn format_unsigned(x: f64, points: bool) -> String {
    if points { format!("{:.1}", x * 100.0) } else { format!("{x:.2}") }
}

/// Rounds up to two significant digits (1,763 → 1,800), so "about" reads honestly.
fn round_up_two_significant(n: u64) -> u64 {
    if n < 100 {
        return n;
    }
    let mut magnitude = 1_u64;
    while n / magnitude >= 100 {
        magnitude *= 10;
    }
    n.div_ceil(magnitude).saturating_mul(magnitude)
}

fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    fn obs(values: &[f64]) -> Vec<Observation> {
        values.iter().map(|&value| Observation { value, covariates: [0.0, 0.0] }).collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    // 1. Hand-computed values.

    #[test]
    fn wilson_interval_for_30_of_100() {
        let values: Vec<f64> = (0..100).map(|i| if i < 30 { 1.0 } else { 0.0 }).collect();
        let e = estimate(&values).expect("non-empty");
        assert_eq!(e.n, 100);
        assert!(close(e.mean, 0.3, 1e-12));
        // Wilson 95 %: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) = 0.21895, 0.39585.
        assert!(close(e.low, 0.218949, 1e-4), "{e:?}");
        assert!(close(e.high, 0.395849, 1e-4), "{e:?}");
    }

    #[test]
    fn t_interval_for_small_continuous_sample() {
        // mean 3, s² = 2.5, se = sqrt(0.5), t(0.975, 4) = 2.776445 → half-width 1.963243.
        let e = estimate(&[1.0, 2.0, 3.0, 4.0, 5.0]).expect("non-empty");
        assert!(close(e.mean, 3.0, 1e-12));
        assert!(close(e.low, 3.0 - 1.963243, 1e-4), "{e:?}");
        assert!(close(e.high, 3.0 + 1.963243, 1e-4), "{e:?}");
    }

    #[test]
    fn normal_interval_for_large_continuous_sample() {
        // 2,000 values alternating 10 and 20: mean 15, s² = 25·2000/1999, normal quantile 1.959964.
        let values: Vec<f64> = (0..2000).map(|i| if i % 2 == 0 { 10.0 } else { 20.0 }).collect();
        let e = estimate(&values).expect("non-empty");
        let half = 1.959964 * (25.0 * 2000.0 / 1999.0 / 2000.0_f64).sqrt();
        assert!(close(e.low, 15.0 - half, 1e-4) && close(e.high, 15.0 + half, 1e-4), "{e:?}");
    }

    #[test]
    fn srm_hand_computed() {
        let warn = srm(&[450, 550], &[50.0, 50.0]).expect("two arms");
        assert!(close(warn.chi_squared, 10.0, 1e-12));
        assert_eq!(warn.degrees_of_freedom, 1);
        assert!(close(warn.p_value, 0.001565, 1e-5), "{warn:?}");
        assert_eq!(warn.status, SrmStatus::Warn);

        let alarm = srm(&[4500, 5500], &[50.0, 50.0]).expect("two arms");
        assert!(close(alarm.chi_squared, 100.0, 1e-9));
        assert_eq!(alarm.status, SrmStatus::Alarm);

        let ok = srm(&[500, 500], &[50.0, 50.0]).expect("two arms");
        assert_eq!((ok.chi_squared, ok.p_value, ok.status), (0.0, 1.0, SrmStatus::Ok));

        // Three arms, equal weights: E = 333.33, chi² = 7.4, df 2 → p = exp(-3.7) = 0.024724.
        let three = srm(&[300, 330, 370], &[1.0, 1.0, 1.0]).expect("three arms");
        assert!(close(three.chi_squared, 7.4, 1e-9));
        assert_eq!(three.degrees_of_freedom, 2);
        assert!(close(three.p_value, (-3.7_f64).exp(), 1e-6), "{three:?}");
        assert_eq!(three.status, SrmStatus::Ok);

        // Champion/challenger with a 10 % holdout, exactly on plan.
        let holdout = srm(&[450, 450, 100], &[45.0, 45.0, 10.0]).expect("three arms");
        assert_eq!(holdout.status, SrmStatus::Ok);
        assert!(close(holdout.chi_squared, 0.0, 1e-12));
        // Holdout starved: chi² = 50²/450·2 + 100²/100 ≈ 111.1.
        let starved = srm(&[500, 500, 0], &[45.0, 45.0, 10.0]).expect("three arms");
        assert_eq!(starved.status, SrmStatus::Alarm);
    }

    #[test]
    fn msprt_formula_hand_computed() {
        // V = 1, τ² = 1, θ̂ = 2: Λ = sqrt(1/2)·exp(4/(2·2)) = e/√2 → p = √2/e.
        let (p, half) = msprt(2.0, 1.0, 1.0);
        assert!(close(p, 2.0_f64.sqrt() / std::f64::consts::E, 1e-12));
        // half² = (1·2/1)·(ln 2 − 2 ln 0.05).
        assert!(close(half, (2.0 * (2.0_f64.ln() - 2.0 * 0.05_f64.ln())).sqrt(), 1e-12));
        // p ≤ α exactly when the sequence excludes 0.
        for &d in &[0.0, 0.5, 1.0, 3.0, 3.6, 3.7, 4.0, 10.0] {
            let (p, half) = msprt(d, 0.3, 0.7);
            assert_eq!(p <= ALPHA, d.abs() >= half, "d = {d}");
        }
        assert_eq!(msprt(0.0, 1.0, 1.0).0, 1.0);
    }

    #[test]
    fn mixing_variance_minimises_the_width_where_mde_is_resolved() {
        let mde = 0.05;
        let tau2 = mixing_variance(mde);
        let ratio = tau2 / (mde * mde);
        assert!(ratio > 0.88 && ratio < 0.90, "{ratio}");
        // At V* = τ²/r the half-width is exactly mde, and other τ² give a wider sequence there.
        let r = ratio / (1.0 - ratio);
        let v_star = tau2 / r;
        let width = |t: f64| half_width(v_star, t, log_one_plus_ratio(v_star, t));
        assert!(close(width(tau2), mde, 1e-9), "{}", width(tau2));
        assert!(width(tau2 * 1.3) > width(tau2) && width(tau2 / 1.3) > width(tau2));
    }

    // 2. Degenerate input.

    #[test]
    fn degenerate_estimates() {
        assert_eq!(estimate(&[]), None);
        assert_eq!(estimate(&[f64::NAN, 1.0]), None);
        let one = estimate(&[7.5]).expect("n = 1");
        assert_eq!((one.n, one.mean, one.low, one.high), (1, 7.5, 7.5, 7.5));
        let one_binary = estimate(&[1.0]).expect("n = 1");
        assert!(one_binary.low > 0.0 && one_binary.low < 1.0 && one_binary.high == 1.0);
        let same = estimate(&[0.1; 50]).expect("n = 50");
        assert!(close(same.mean, 0.1, 1e-15) && same.low == same.mean && same.high == same.mean);
        let zeros = estimate(&[0.0; 50]).expect("n = 50");
        assert!(zeros.low == 0.0 && zeros.high > 0.0 && zeros.high < 0.1, "{zeros:?}");
    }

    #[test]
    fn degenerate_srm() {
        assert_eq!(srm(&[], &[]), None);
        assert_eq!(srm(&[10], &[1.0]), None);
        assert_eq!(srm(&[0, 0], &[50.0, 50.0]), None);
        assert_eq!(srm(&[10, 10], &[50.0]), None);
        assert_eq!(srm(&[10, 10], &[50.0, -1.0]), None);
        assert_eq!(srm(&[10, 10], &[50.0, f64::NAN]), None);
        assert_eq!(srm(&[10, 10, 0], &[50.0, 0.0, 0.0]), None);
        let stray = srm(&[100, 100, 3], &[50.0, 50.0, 0.0]).expect("two weighted arms");
        assert_eq!((stray.status, stray.p_value, stray.degrees_of_freedom), (SrmStatus::Alarm, 0.0, 1));
        let one_empty = srm(&[0, 40], &[50.0, 50.0]).expect("observations");
        assert_eq!(one_empty.status, SrmStatus::Alarm);
    }

    #[test]
    fn degenerate_cuped() {
        let empty = cuped(&[], &[]);
        assert!(empty.control.is_empty() && empty.treatment.is_empty());
        assert_eq!((empty.variance_reduction, empty.theta), (0.0, [0.0; 2]));

        let one = cuped(&obs(&[3.0]), &[]);
        assert_eq!((one.control, one.variance_reduction), (vec![3.0], 0.0));

        // Singular: every account has the same covariates → no adjustment.
        let flat: Vec<Observation> =
            (0..20).map(|i| Observation { value: f64::from(i % 3), covariates: [30.0, 1200.5] }).collect();
        let c = cuped(&flat[..10], &flat[10..]);
        assert_eq!((c.theta, c.variance_reduction), ([0.0; 2], 0.0));
        assert_eq!(c.control, flat[..10].iter().map(|o| o.value).collect::<Vec<_>>());

        // Collinear covariates (x1 = 2·x0 + 1) → one covariate, same fit as x0 alone.
        let collinear: Vec<Observation> = (0..40)
            .map(|i| {
                let x = f64::from(i);
                Observation { value: 3.0 * x + f64::from(i % 2), covariates: [x, 2.0 * x + 1.0] }
            })
            .collect();
        let c = cuped(&collinear[..20], &collinear[20..]);
        assert!(c.theta[0] == 0.0 || c.theta[1] == 0.0, "{:?}", c.theta);
        assert!(c.variance_reduction > 0.99);

        // Constant values → nothing to explain.
        let constant: Vec<Observation> =
            (0..10).map(|i| Observation { value: 1.0, covariates: [f64::from(i), 0.0] }).collect();
        assert_eq!(cuped(&constant, &constant).variance_reduction, 0.0);

        // Non-finite covariate → that covariate is left out.
        let mut bad = collinear.clone();
        bad[3].covariates[1] = f64::NAN;
        let c = cuped(&bad[..20], &bad[20..]);
        assert!(c.theta[1] == 0.0 && c.theta[0] > 0.0 && c.control.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn degenerate_sequential_and_decide() {
        let varied = obs(&[0.0, 1.0, 1.0, 0.0, 1.0]);
        assert_eq!(sequential(&[], &[], 0.05), None);
        assert_eq!(sequential(&obs(&[1.0]), &varied, 0.05), None);
        assert_eq!(sequential(&varied, &obs(&[1.0]), 0.05), None);
        assert_eq!(sequential(&varied, &varied, 0.0), None);
        assert_eq!(sequential(&varied, &varied, f64::NAN), None);
        assert_eq!(sequential(&varied, &obs(&[1.0, f64::INFINITY]), 0.05), None);
        // Zero variance in both arms, equal or different constants: no calibrated comparison.
        assert_eq!(sequential(&obs(&[0.0; 30]), &obs(&[0.0; 30]), 0.05), None);
        assert_eq!(sequential(&obs(&[0.1; 30]), &obs(&[0.1; 30]), 0.05), None);
        assert_eq!(sequential(&obs(&[0.0; 30]), &obs(&[1.0; 30]), 0.05), None);
        // One constant arm next to a varying one is a valid comparison.
        let s = sequential(&obs(&[0.0; 30]), &varied, 0.05).expect("V > 0");
        assert!(s.variance > 0.0 && s.low < s.high && s.binary);
        let d = decide(&s, true);
        assert_eq!(d.verdict, Verdict::KeepRunning);
        assert!(d.accounts_per_arm_needed.is_some());
        assert!(!explain("cure rate", &s, &d).is_empty());
        assert!(explain_no_comparison("cure rate").starts_with("Keep running"));
        // n = 2 per arm.
        let s = sequential(&obs(&[1.0, 2.0]), &obs(&[2.0, 4.0]), 1.0).expect("n = 2");
        assert!(s.low.is_finite() && s.high.is_finite() && s.p_value > 0.0);
    }

    // 3. CUPED.

    #[test]
    fn cuped_recovers_r_squared_and_narrows_the_sequence() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut draw = |shift: f64| -> Vec<Observation> {
            (0..1000)
                .map(|_| {
                    let x0: f64 = rng.sample(StandardNormal);
                    let x1: f64 = rng.sample(StandardNormal);
                    let noise: f64 = rng.sample(StandardNormal);
                    Observation { value: 2.0 * x0 + noise + shift, covariates: [x0, x1] }
                })
                .collect()
        };
        let (control, treatment) = (draw(0.0), draw(0.1));
        // True R² = 4 / (4 + 1) = 0.8.
        let c = cuped(&control, &treatment);
        assert!(close(c.variance_reduction, 0.8, 0.03), "{}", c.variance_reduction);
        assert!(close(c.theta[0], 2.0, 0.1) && c.theta[1].abs() < 0.1, "{:?}", c.theta);

        let with = sequential(&control, &treatment, 0.2).expect("data");
        let strip =
            |arm: &[Observation]| arm.iter().map(|o| Observation { covariates: [0.0; 2], ..*o }).collect::<Vec<_>>();
        let without = sequential(&strip(&control), &strip(&treatment), 0.2).expect("data");
        assert!(with.cuped && !without.cuped);
        assert!(with.high - with.low < 0.6 * (without.high - without.low), "{with:?} vs {without:?}");
        assert!(with.variance < 0.3 * without.variance);

        // Pure-noise covariates: CUPED removes (almost) nothing and is not used.
        let mut rng = SmallRng::seed_from_u64(4);
        let mut noise = || -> Vec<Observation> {
            (0..1000)
                .map(|_| Observation {
                    value: rng.sample(StandardNormal),
                    covariates: [rng.sample(StandardNormal), rng.random::<f64>() * 1000.0],
                })
                .collect()
        };
        let (control, treatment) = (noise(), noise());
        let s = sequential(&control, &treatment, 0.2).expect("data");
        assert!(!s.cuped && s.variance_reduction < CUPED_MIN_VARIANCE_REDUCTION, "{s:?}");
    }

    // 4.–5. Monte Carlo with daily peeking.

    const EXPERIMENTS: u64 = 200;
    const DAYS: usize = 60;
    const MDE: f64 = 0.05;

    /// One account: a latent risk s drives the covariates (days past due, balance at entry) and the cure
    /// probability; the arm only shifts the base rate, so the covariates are pre-entry as CUPED requires.
    fn account(rng: &mut SmallRng, base_rate: f64) -> Observation {
        let s: f64 = rng.sample(StandardNormal);
        let e0: f64 = rng.sample(StandardNormal);
        let e1: f64 = rng.sample(StandardNormal);
        let days_past_due = 45.0 + 15.0 * s + 5.0 * e0;
        let balance = 3000.0 + 500.0 * s + 1000.0 * e1;
        let p = (base_rate - 0.15 * s).clamp(0.01, 0.99);
        let value = if rng.random::<f64>() < p { 1.0 } else { 0.0 };
        Observation { value, covariates: [days_past_due, balance] }
    }

    #[derive(Debug, Default)]
    struct Run {
        better_day: Option<usize>,
        worse_day: Option<usize>,
        naive_rejected: bool,
        used_cuped: bool,
    }

    fn run_experiment(seed: u64, control_rate: f64, treatment_rate: f64, with_naive: bool) -> Run {
        let mut rng = SmallRng::seed_from_u64(seed);
        let z = normal_quantile(1.0 - ALPHA / 2.0);
        let (mut control, mut treatment) = (Vec::new(), Vec::new());
        let mut run = Run::default();
        for day in 1..=DAYS {
            for _ in 0..rng.random_range(30..=50) {
                control.push(account(&mut rng, control_rate));
            }
            for _ in 0..rng.random_range(30..=50) {
                treatment.push(account(&mut rng, treatment_rate));
            }
            let decided = run.better_day.is_some() || run.worse_day.is_some();
            if !decided && let Some(result) = sequential(&control, &treatment, MDE) {
                run.used_cuped |= result.cuped;
                match decide(&result, true).verdict {
                    Verdict::ChallengerBetter => run.better_day = Some(day),
                    Verdict::ChallengerWorse => run.worse_day = Some(day),
                    Verdict::KeepRunning | Verdict::NoDifference => {}
                }
            }
            if with_naive && !run.naive_rejected {
                // The naive analysis: a fixed-sample z-test on the raw values, re-run at every look.
                let c = moments(&control.iter().map(|o| o.value).collect::<Vec<_>>());
                let t = moments(&treatment.iter().map(|o| o.value).collect::<Vec<_>>());
                let v = c.variance / c.n as f64 + t.variance / t.n as f64;
                run.naive_rejected = v > 0.0 && (t.mean - c.mean).abs() / v.sqrt() > z;
            }
            let decided = run.better_day.is_some() || run.worse_day.is_some();
            if decided && (run.naive_rejected || !with_naive) {
                break;
            }
        }
        run
    }

    #[test]
    fn aa_with_daily_peeking_stays_below_alpha_and_naive_does_not() {
        let runs: Vec<Run> = (0..EXPERIMENTS).map(|seed| run_experiment(1000 + seed, 0.3, 0.3, true)).collect();
        let n = runs.len() as f64;
        let msprt_rate = runs.iter().filter(|r| r.better_day.is_some() || r.worse_day.is_some()).count() as f64 / n;
        let naive_rate = runs.iter().filter(|r| r.naive_rejected).count() as f64 / n;
        let cuped_rate = runs.iter().filter(|r| r.used_cuped).count() as f64 / n;
        println!(
            "A/A, {EXPERIMENTS} experiments x {DAYS} daily looks: mSPRT false-positive rate {:.1} %, naive z-test \
             {:.1} %, CUPED used in {:.0} % of experiments",
            msprt_rate * 100.0,
            naive_rate * 100.0,
            cuped_rate * 100.0
        );
        assert!(msprt_rate <= ALPHA, "mSPRT false-positive rate {msprt_rate}");
        assert!(naive_rate > ALPHA && naive_rate > msprt_rate, "naive {naive_rate} vs mSPRT {msprt_rate}");
        assert!(cuped_rate > 0.9);
    }

    fn power(treatment_rate: f64, seed_base: u64) -> (f64, f64, usize, usize) {
        let runs: Vec<Run> =
            (0..EXPERIMENTS).map(|seed| run_experiment(seed_base + seed, 0.3, treatment_rate, false)).collect();
        let n = runs.len() as f64;
        let better: Vec<usize> = runs.iter().filter_map(|r| r.better_day).collect();
        let worse: Vec<usize> = runs.iter().filter_map(|r| r.worse_day).collect();
        let (right, wrong) = if treatment_rate > 0.3 { (better, worse) } else { (worse, better) };
        let mut days = right.clone();
        days.sort_unstable();
        let median = days.get(days.len() / 2).copied().unwrap_or(0);
        (right.len() as f64 / n, wrong.len() as f64 / n, median, days.last().copied().unwrap_or(0))
    }

    #[test]
    fn planted_difference_is_detected() {
        let (rate, wrong, median, last) = power(0.36, 5000);
        println!(
            "0.36 vs 0.30: ChallengerBetter in {:.1} % by day {DAYS} (median day {median}, last day {last}), wrong \
             direction {:.1} %",
            rate * 100.0,
            wrong * 100.0
        );
        assert!(rate >= 0.8 && wrong <= 0.01, "power {rate}, wrong {wrong}");

        let (rate, wrong, median, last) = power(0.24, 9000);
        println!(
            "0.24 vs 0.30: ChallengerWorse in {:.1} % by day {DAYS} (median day {median}, last day {last}), wrong \
             direction {:.1} %",
            rate * 100.0,
            wrong * 100.0
        );
        assert!(rate >= 0.8 && wrong <= 0.01, "power {rate}, wrong {wrong}");
    }

    // 6. Sample-ratio mismatch.

    #[test]
    fn srm_catches_a_broken_split_and_spares_a_correct_one() {
        // Exactly 45/55 of 2,000 accounts on a 50/50 design: chi² = 20.
        let planted = srm(&[900, 1100], &[50.0, 50.0]).expect("two arms");
        assert_eq!(planted.status, SrmStatus::Alarm);

        let mut rng = SmallRng::seed_from_u64(6);
        let mut draw = |share: f64| {
            let first = (0..2000).filter(|_| rng.random::<f64>() < share).count() as u64;
            srm(&[first, 2000 - first], &[50.0, 50.0]).map(|s| s.status)
        };
        let broken = (0..EXPERIMENTS).filter(|_| draw(0.45) == Some(SrmStatus::Alarm)).count();
        let fine = (0..EXPERIMENTS).filter(|_| draw(0.5) == Some(SrmStatus::Ok)).count();
        println!(
            "SRM, 2,000 accounts: 45/55 assignment alarms in {broken}/{EXPERIMENTS} draws; 50/50 stays Ok in \
             {fine}/{EXPERIMENTS}"
        );
        assert!(broken as f64 >= 0.75 * EXPERIMENTS as f64);
        assert!(fine as f64 >= 0.98 * EXPERIMENTS as f64);
    }

    // 7. Decisions.

    #[test]
    fn decide_no_difference_on_a_large_aa_sample() {
        let mut rng = SmallRng::seed_from_u64(7);
        let control: Vec<Observation> = (0..20_000).map(|_| account(&mut rng, 0.3)).collect();
        let treatment: Vec<Observation> = (0..20_000).map(|_| account(&mut rng, 0.3)).collect();
        let s = sequential(&control, &treatment, MDE).expect("data");
        assert!(s.low > -MDE && s.high < MDE, "{s:?}");
        let d = decide(&s, true);
        assert_eq!(d, Decision { verdict: Verdict::NoDifference, accounts_per_arm_needed: None });
        let text = explain("cure rate within 30 days", &s, &d);
        assert!(text.starts_with("No difference worth acting on: cure rate within 30 days"), "{text}");
        assert!(text.contains("±5.0 points"), "{text}");
    }

    #[test]
    fn decide_keep_running_needs_fewer_accounts_as_n_grows() {
        // Identical arms with a 30 % rate: the estimate is exactly 0, so only the width decides.
        let arm = |n: usize| obs(&(0..n).map(|i| if i % 10 < 3 { 1.0 } else { 0.0 }).collect::<Vec<_>>());
        let mut previous = u64::MAX;
        for n in [100, 200, 400, 800] {
            let s = sequential(&arm(n), &arm(n), MDE).expect("data");
            let d = decide(&s, true);
            assert_eq!(d.verdict, Verdict::KeepRunning, "n = {n}: {s:?}");
            let needed = d.accounts_per_arm_needed.expect("running");
            assert!(needed < previous, "n = {n}: {needed} ≥ {previous}");
            // The answer is the first m at which the half-width reaches mde/2 at today's variances...
            let width = |m: u64| {
                let v = (s.variance_control + s.variance_treatment) / (n as f64 + m as f64);
                half_width(v, s.tau_squared, log_one_plus_ratio(v, s.tau_squared))
            };
            assert!(width(needed) <= MDE / 2.0 && width(needed - 1) > MDE / 2.0);
            // ...and with that many more accounts the sequence does decide.
            let more = needed as usize + needed as usize / 50;
            let later = sequential(&arm(n + more), &arm(n + more), MDE).expect("data");
            assert_eq!(decide(&later, true).verdict, Verdict::NoDifference, "n = {n} + {more}: {later:?}");
            previous = needed;
        }
        let s = sequential(&arm(100), &arm(100), MDE).expect("data");
        let text = explain("cure rate within 30 days", &s, &decide(&s, true));
        assert!(text.starts_with("Keep running") && text.contains("more accounts per arm"), "{text}");
    }

    #[test]
    fn decide_direction_and_explanations() {
        let base = Sequential {
            difference: 0.021,
            low: 0.004,
            high: 0.038,
            p_value: 0.01,
            cuped: false,
            variance_reduction: 0.0,
            n_control: 5000,
            n_treatment: 5000,
            variance_control: 0.21,
            variance_treatment: 0.22,
            variance: 0.43 / 5000.0,
            tau_squared: mixing_variance(0.05),
            mde: 0.05,
            binary: true,
        };
        let better = decide(&base, true);
        assert_eq!(better, Decision { verdict: Verdict::ChallengerBetter, accounts_per_arm_needed: None });
        assert_eq!(decide(&base, false).verdict, Verdict::ChallengerWorse);
        let text = explain("cure rate within 30 days", &base, &better);
        assert_eq!(
            text,
            "The challenger is better: cure rate within 30 days +2.1 points (confidence sequence +0.4 to +3.8). \
             This result holds however often you look."
        );
        let lower = Sequential { difference: -0.021, low: -0.038, high: -0.004, ..base };
        assert_eq!(decide(&lower, true).verdict, Verdict::ChallengerWorse);
        assert_eq!(decide(&lower, false).verdict, Verdict::ChallengerBetter);

        let amount = Sequential {
            difference: -12.5,
            low: -20.0,
            high: -5.0,
            binary: false,
            cuped: true,
            variance_reduction: 0.23,
            mde: 10.0,
            ..base
        };
        let text = explain("amount collected within 30 days", &amount, &decide(&amount, true));
        assert!(
            text.starts_with(
                "The challenger is worse: amount collected within 30 days -12.50 (confidence \
             sequence -20.00 to -5.00)"
            ),
            "{text}"
        );
        assert!(text.contains("removed 23 %"), "{text}");

        assert_eq!(round_up_two_significant(1763), 1800);
        assert_eq!(round_up_two_significant(1800), 1800);
        assert_eq!(round_up_two_significant(87), 87);
        assert_eq!(format_count(1_234_567), "1,234,567");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_signed(-0.0001, true), "0.0");
    }
}
