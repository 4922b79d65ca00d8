//! Proof that the experiment readings can be trusted, on the entries and outcomes of one
//! simulated run whose arms got the same treatment (an A/A run): the entries are re-assigned
//! with many salts (each a fresh A/A experiment over the same borrowers, through
//! [`super::assign`]) and each is read every day ([`super::reading::read`]) exactly as
//! `arrears experiments` would read it then. Three checks:
//! - [`aa`]: how many experiments ever showed a "better" or "worse" verdict (false positives);
//! - [`planted`]: the same with a known lift planted in one arm's cure rate (power);
//! - [`imposed_split`]: a split imposed at other weights than the design's (the SRM check).
//!
//! Pure: no I/O, no clock; the simulation that produces the rows is `ops::simulate`'s.

use super::assign;
use super::reading::{Design, EntryRow, Metric, Outcomes, read};
use super::stats::{SrmStatus, Verdict};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// What [`aa`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AaResult {
    /// Re-randomised experiments.
    pub experiments: usize,
    /// Looks per experiment (days).
    pub looks: usize,
    /// Per metric: experiments whose verdict on it was ever better or worse.
    pub false_verdicts: Vec<(String, usize)>,
    /// Experiments with a false verdict on any metric.
    pub any_metric: usize,
}

/// What [`planted`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlantedResult {
    /// Re-randomised experiments.
    pub experiments: usize,
    /// The cure-rate difference planted, as measured over all matured accounts at the last
    /// look (points, as a fraction).
    pub planted_difference: f64,
    /// Experiments whose cure-rate verdict became "challenger better" by the last look.
    pub detected: usize,
    /// Experiments whose cure-rate verdict was ever "challenger worse" (the wrong way).
    pub wrong_way: usize,
    /// The median look (1-based) of first detection among the detected.
    pub median_look: Option<usize>,
}

/// What [`imposed_split`] found: experiments by sample-ratio status at the last look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SplitResult {
    /// Re-randomised experiments.
    pub experiments: usize,
    /// Entries per experiment.
    pub entries: usize,
    /// Status ok.
    pub ok: usize,
    /// Status warn (p < 0.01).
    pub warn: usize,
    /// Status alarm (p < 0.001).
    pub alarm: usize,
}

/// `entries` re-assigned by `salt` at `weights` over the design's arm names.
fn reassign(design: &Design, entries: &[EntryRow], salt: &str, weights: &[u32]) -> Vec<EntryRow> {
    entries
        .iter()
        .map(|entry| {
            let arm = assign(salt, &entry.borrower_id, weights.iter().copied());
            EntryRow { arm: design.arms[arm].0.clone(), ..entry.clone() }
        })
        .collect()
}

/// The entries made before `look`.
fn before(entries: &[EntryRow], look: DateTime<Utc>) -> Vec<EntryRow> {
    entries.iter().filter(|entry| entry.entered_at < look).cloned().collect()
}

fn salt(design: &Design, index: usize) -> String {
    format!("{}#validation-{index}", design.name)
}

/// `experiments` A/A experiments over `entries`, each read at every look: per metric, how many
/// ever gave a better or worse verdict. `design` must have two arms.
pub fn aa(
    design: &Design,
    entries: &[EntryRow],
    outcomes: &Outcomes,
    looks: &[DateTime<Utc>],
    experiments: usize,
) -> AaResult {
    let weights: Vec<u32> = design.arms.iter().map(|(_, weight)| *weight).collect();
    let mut false_verdicts: Vec<(String, usize)> = Vec::new();
    let mut any_metric = 0;
    for index in 0..experiments {
        let assigned = reassign(design, entries, &salt(design, index), &weights);
        let mut fired: Vec<String> = Vec::new();
        for look in looks {
            let reading = read(design, &before(&assigned, *look), outcomes, *look);
            for comparison in &reading.comparisons {
                for metric in &comparison.metrics {
                    if matches!(metric.decision.verdict, Verdict::ChallengerBetter | Verdict::ChallengerWorse)
                        && !fired.contains(&metric.metric)
                    {
                        fired.push(metric.metric.clone());
                    }
                }
            }
        }
        any_metric += usize::from(!fired.is_empty());
        for metric in fired {
            match false_verdicts.iter_mut().find(|(name, _)| *name == metric) {
                Some((_, count)) => *count += 1,
                None => false_verdicts.push((metric, 1)),
            }
        }
    }
    false_verdicts.sort();
    AaResult { experiments, looks: looks.len(), false_verdicts, any_metric }
}

/// Whether the planted lift cures this account: a stable draw per account and salt.
fn planted_cure(account_id: &str, salt: &str, lift: f64) -> bool {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(b"planted");
    hasher.update(salt.as_bytes());
    hasher.update(account_id.as_bytes());
    (hasher.digest() as f64 / u64::MAX as f64) < lift
}

/// Like [`aa`], with a lift planted in the second arm: each of its accounts not cured within
/// its horizon is cured on its first day with probability `lift`.
pub fn planted(
    design: &Design,
    entries: &[EntryRow],
    outcomes: &Outcomes,
    looks: &[DateTime<Utc>],
    experiments: usize,
    lift: f64,
) -> PlantedResult {
    let weights: Vec<u32> = design.arms.iter().map(|(_, weight)| *weight).collect();
    let challenger = design.arms.get(1).map(|(name, _)| name.clone()).unwrap_or_default();
    let horizon = Duration::days(i64::from(design.horizon_days));
    let cured = Metric::Cured.code();
    let mut detected = 0;
    let mut wrong_way = 0;
    let mut first_looks = Vec::new();
    let mut planted_difference = 0.0;
    for index in 0..experiments {
        let salt = salt(design, index);
        let assigned = reassign(design, entries, &salt, &weights);
        let mut planted = outcomes.clone();
        for entry in assigned.iter().filter(|entry| entry.arm == challenger) {
            let end = entry.entered_at + horizon;
            let cured_in_time = outcomes
                .cures
                .get(&entry.account_id)
                .is_some_and(|times| times.iter().any(|at| *at >= entry.entered_at && *at < end));
            if !cured_in_time && planted_cure(&entry.account_id, &salt, lift) {
                planted.cures.entry(entry.account_id.clone()).or_default().push(entry.entered_at + Duration::hours(1));
            }
        }
        let mut first = None;
        let mut worse = false;
        let mut last_verdict = Verdict::KeepRunning;
        for (number, look) in looks.iter().enumerate() {
            let reading = read(design, &before(&assigned, *look), &planted, *look);
            let Some(metric) = reading.comparisons.first().and_then(|c| c.metrics.iter().find(|m| m.metric == cured))
            else {
                continue;
            };
            last_verdict = metric.decision.verdict;
            if last_verdict == Verdict::ChallengerBetter && first.is_none() {
                first = Some(number + 1);
            }
            worse |= last_verdict == Verdict::ChallengerWorse;
            if number + 1 == looks.len() {
                planted_difference += metric.result.map_or(0.0, |result| result.difference);
            }
        }
        if last_verdict == Verdict::ChallengerBetter {
            detected += 1;
        }
        wrong_way += usize::from(worse);
        first_looks.extend(first);
    }
    first_looks.sort_unstable();
    PlantedResult {
        experiments,
        planted_difference: if experiments > 0 { planted_difference / experiments as f64 } else { 0.0 },
        detected,
        wrong_way,
        median_look: first_looks.get(first_looks.len() / 2).copied(),
    }
}

/// `experiments` splits imposed at `imposed` weights (e.g. 45/55) on a design whose weights are
/// its own (e.g. 50/50), read once at `look`: the sample-ratio status of each.
pub fn imposed_split(
    design: &Design,
    entries: &[EntryRow],
    outcomes: &Outcomes,
    look: DateTime<Utc>,
    experiments: usize,
    imposed: &[u32],
) -> SplitResult {
    let mut result = SplitResult { experiments, ..SplitResult::default() };
    for index in 0..experiments {
        let assigned = before(&reassign(design, entries, &salt(design, index), imposed), look);
        result.entries = assigned.len();
        match read(design, &assigned, outcomes, look).srm.map(|srm| srm.status) {
            Some(SrmStatus::Alarm) => result.alarm += 1,
            Some(SrmStatus::Warn) => result.warn += 1,
            _ => result.ok += 1,
        }
    }
    result
}
