//! One look at an experiment: from its design (arms, weights, holdout, horizon), its stored
//! entries and the outcomes after them, the per-arm estimates of each metric at the horizon
//! (only accounts whose horizon has passed), the sample-ratio check over all entries, the
//! always-valid comparison of each challenger with the champion (and of the champion with the
//! holdout), a verdict per metric and a summary in plain words.
//!
//! Pure: no I/O, no clock (`as_of` comes in). The metrics are defined here and in
//! `docs/experiments.md`; the statistics are `super::stats`'.

use super::stats::{self, Decision, Estimate, Observation, Sequential, Srm, Verdict};
use crate::domain::Money;
use chrono::{DateTime, Duration, Utc};
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use utoipa::ToSchema;

/// What an experiment is, as its strategy defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// The experiment's name.
    pub name: String,
    /// Its strategy.
    pub strategy: String,
    /// The stage it splits.
    pub stage: String,
    /// Arms and weights; the first is the champion. Empty when the experiment is no longer in
    /// the strategies (its stored entries are still read; no sample-ratio check).
    pub arms: Vec<(String, u32)>,
    /// The holdout arm's index.
    pub holdout: Option<usize>,
    /// Days after entering at which outcomes are read.
    pub horizon_days: u32,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRow {
    /// The account.
    pub account_id: String,
    /// Its borrower (the unit of assignment).
    pub borrower_id: String,
    /// Its arm.
    pub arm: String,
    /// When it entered.
    pub entered_at: DateTime<Utc>,
    /// Days past due at entry.
    pub dpd: i32,
    /// Balance at entry.
    pub balance: Money,
    /// Currency.
    pub currency: String,
}

/// What happened to the entered accounts after entering, by account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcomes {
    /// Paid-in-full instants.
    pub cures: HashMap<String, Vec<DateTime<Utc>>>,
    /// Payments: instant and amount.
    pub payments: HashMap<String, Vec<(DateTime<Utc>, Money)>>,
    /// Attempts: instant and whether it reached the right party.
    pub attempts: HashMap<String, Vec<(DateTime<Utc>, bool)>>,
}

/// A metric of an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Paid in full within the horizon (0/1).
    Cured,
    /// At least one right-party contact within the horizon (0/1).
    RightPartyContact,
    /// Collected within the horizon, for the accounts of one currency.
    Collected(String),
    /// Attempts made within the horizon (a cost: lower is better).
    Attempts,
}

impl Metric {
    /// The metric's code in JSON (`cured`, `right_party_contact`, `collected:CNY`, `attempts`).
    pub fn code(&self) -> String {
        match self {
            Metric::Cured => "cured".into(),
            Metric::RightPartyContact => "right_party_contact".into(),
            Metric::Collected(currency) => format!("collected:{currency}"),
            Metric::Attempts => "attempts".into(),
        }
    }

    /// Its name for people, with the horizon.
    pub fn label(&self, horizon_days: u32) -> String {
        match self {
            Metric::Cured => format!("cure rate within {horizon_days} days"),
            Metric::RightPartyContact => format!("right-party contact rate within {horizon_days} days"),
            Metric::Collected(currency) => format!("{currency} collected per account within {horizon_days} days"),
            Metric::Attempts => format!("attempts per account within {horizon_days} days"),
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Metric::Attempts)
    }

    /// The smallest difference worth acting on: 3 points of cure rate, 5 points of contact
    /// rate, one attempt per account, 10 % of the champion's mean collected (at least 1 unit).
    fn mde(&self, champion_mean: Option<f64>) -> f64 {
        match self {
            Metric::Cured => 0.03,
            Metric::RightPartyContact => 0.05,
            Metric::Attempts => 1.0,
            Metric::Collected(_) => champion_mean.map_or(1.0, |mean| (mean.abs() * 0.1).max(1.0)),
        }
    }
}

/// The role of an arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The first arm: what the others are compared with.
    Champion,
    /// A treatment under test.
    Challenger,
    /// Business as usual or a minimal treatment: the champion's lift is measured against it.
    Holdout,
    /// An arm found in the entries that the strategy no longer defines.
    Retired,
}

/// One metric's estimate in one arm.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricEstimate {
    /// The metric's code.
    pub metric: String,
    /// Its name for people.
    pub label: String,
    /// Mean per matured account with its 95 % interval; null without matured accounts.
    pub estimate: Option<Estimate>,
}

/// One arm at this look.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ArmReading {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its weight in the design (0 for a retired arm).
    pub weight: u32,
    /// Accounts entered.
    pub entered: u64,
    /// Entered accounts whose horizon has passed: the ones the metrics are read on.
    pub matured: u64,
    /// The metrics.
    pub metrics: Vec<MetricEstimate>,
}

/// One metric of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricComparison {
    /// The metric's code.
    pub metric: String,
    /// Its name for people.
    pub label: String,
    /// Whether larger is better.
    pub higher_is_better: bool,
    /// The always-valid comparison (arm minus baseline); null until both have at least two
    /// matured accounts with some spread.
    pub result: Option<Sequential>,
    /// The verdict and, while running, the accounts per arm still needed.
    pub decision: Decision,
    /// The verdict in plain words.
    pub explanation: String,
}

/// One arm compared with its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// The arm under test (a challenger, or the champion against the holdout).
    pub arm: String,
    /// What it is compared with (the champion, or the holdout).
    pub baseline: String,
    /// Per metric.
    pub metrics: Vec<MetricComparison>,
}

/// An experiment at one look.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ExperimentReading {
    /// The experiment.
    pub name: String,
    /// Its strategy.
    pub strategy: String,
    /// The stage it splits.
    pub stage: String,
    /// Whether the strategies in force still define it.
    pub running: bool,
    /// The horizon, days.
    pub horizon_days: u32,
    /// The look's instant.
    pub as_of: DateTime<Utc>,
    /// First entry (null before any).
    pub first_entry: Option<DateTime<Utc>>,
    /// The arms.
    pub arms: Vec<ArmReading>,
    /// The sample-ratio check of all entries against the weights (null when not running or
    /// before any entry).
    pub srm: Option<Srm>,
    /// Each challenger against the champion, then the champion against the holdout.
    pub comparisons: Vec<Comparison>,
    /// The experiment's state in plain words (the primary metric is the cure rate).
    pub summary: String,
}

/// Reads the experiment as of `as_of`.
pub fn read(design: &Design, entries: &[EntryRow], outcomes: &Outcomes, as_of: DateTime<Utc>) -> ExperimentReading {
    let horizon = Duration::days(i64::from(design.horizon_days));
    // Arms: the design's in order, then any retired arm found in the entries.
    let mut names: Vec<String> = design.arms.iter().map(|(name, _)| name.clone()).collect();
    let retired: BTreeSet<&str> =
        entries.iter().map(|entry| entry.arm.as_str()).filter(|arm| !names.iter().any(|name| name == arm)).collect();
    names.extend(retired.iter().map(|arm| arm.to_string()));
    let index_of: HashMap<&str, usize> = names.iter().enumerate().map(|(index, name)| (name.as_str(), index)).collect();

    let currencies: BTreeSet<&str> = entries.iter().map(|entry| entry.currency.as_str()).collect();
    let mut metrics = vec![Metric::Cured, Metric::RightPartyContact];
    metrics.extend(currencies.iter().map(|currency| Metric::Collected(currency.to_string())));
    metrics.push(Metric::Attempts);

    // Per arm: entered count, and per metric the matured observations.
    let mut entered = vec![0u64; names.len()];
    let mut observed: Vec<Vec<Vec<Observation>>> = vec![vec![Vec::new(); metrics.len()]; names.len()];
    let mut matured = vec![0u64; names.len()];
    let mut first_entry: Option<DateTime<Utc>> = None;
    for entry in entries {
        let arm = index_of[entry.arm.as_str()];
        entered[arm] += 1;
        first_entry = Some(first_entry.map_or(entry.entered_at, |first| first.min(entry.entered_at)));
        let end = entry.entered_at + horizon;
        if end > as_of {
            continue;
        }
        matured[arm] += 1;
        let within = |at: &DateTime<Utc>| *at >= entry.entered_at && *at < end;
        let covariates = [f64::from(entry.dpd), entry.balance.to_f64().unwrap_or(0.0)];
        let cured = outcomes.cures.get(&entry.account_id).is_some_and(|times| times.iter().any(within));
        let attempts = outcomes.attempts.get(&entry.account_id);
        let reached = attempts.is_some_and(|rows| rows.iter().any(|(at, rpc)| *rpc && within(at)));
        let attempted = attempts.map_or(0, |rows| rows.iter().filter(|(at, _)| within(at)).count());
        let collected: Money = outcomes
            .payments
            .get(&entry.account_id)
            .map(|rows| rows.iter().filter(|(at, _)| within(at)).map(|(_, amount)| *amount).sum())
            .unwrap_or_default();
        for (index, metric) in metrics.iter().enumerate() {
            let value = match metric {
                Metric::Cured => f64::from(u8::from(cured)),
                Metric::RightPartyContact => f64::from(u8::from(reached)),
                Metric::Collected(currency) if *currency == entry.currency => collected.to_f64().unwrap_or(0.0),
                Metric::Collected(_) => continue,
                Metric::Attempts => attempted as f64,
            };
            observed[arm][index].push(Observation { value, covariates });
        }
    }

    let role_of = |index: usize| {
        if index >= design.arms.len() {
            Role::Retired
        } else if index == 0 {
            Role::Champion
        } else if design.holdout == Some(index) {
            Role::Holdout
        } else {
            Role::Challenger
        }
    };
    let arms: Vec<ArmReading> = names
        .iter()
        .enumerate()
        .map(|(index, name)| ArmReading {
            name: name.clone(),
            role: role_of(index),
            weight: design.arms.get(index).map_or(0, |(_, weight)| *weight),
            entered: entered[index],
            matured: matured[index],
            metrics: metrics
                .iter()
                .enumerate()
                .map(|(m, metric)| MetricEstimate {
                    metric: metric.code(),
                    label: metric.label(design.horizon_days),
                    estimate: stats::estimate(&observed[index][m].iter().map(|o| o.value).collect::<Vec<_>>()),
                })
                .collect(),
        })
        .collect();

    let srm = if design.arms.len() >= 2 && entries.iter().any(|entry| index_of[entry.arm.as_str()] < design.arms.len())
    {
        let counts: Vec<u64> = entered[..design.arms.len()].to_vec();
        let weights: Vec<f64> = design.arms.iter().map(|(_, weight)| f64::from(*weight)).collect();
        stats::srm(&counts, &weights)
    } else {
        None
    };

    let compare = |arm: usize, baseline: usize| Comparison {
        arm: names[arm].clone(),
        baseline: names[baseline].clone(),
        metrics: metrics
            .iter()
            .enumerate()
            .map(|(m, metric)| {
                let base = &observed[baseline][m];
                let base_mean = stats::estimate(&base.iter().map(|o| o.value).collect::<Vec<_>>()).map(|e| e.mean);
                let label = metric.label(design.horizon_days);
                let result = stats::sequential(base, &observed[arm][m], metric.mde(base_mean));
                let (decision, explanation) = match &result {
                    Some(result) => {
                        let decision = stats::decide(result, metric.higher_is_better());
                        (decision, stats::explain(&label, result, &decision))
                    }
                    None => (
                        Decision { verdict: Verdict::KeepRunning, accounts_per_arm_needed: None },
                        stats::explain_no_comparison(&label),
                    ),
                };
                MetricComparison {
                    metric: metric.code(),
                    label,
                    higher_is_better: metric.higher_is_better(),
                    result,
                    decision,
                    explanation,
                }
            })
            .collect(),
    };
    let mut comparisons: Vec<Comparison> =
        (1..design.arms.len()).filter(|index| design.holdout != Some(*index)).map(|arm| compare(arm, 0)).collect();
    if let Some(holdout) = design.holdout.filter(|index| *index < design.arms.len()) {
        comparisons.push(compare(0, holdout));
    }

    let summary = summarise(design, &arms, srm.as_ref(), &comparisons, first_entry);
    ExperimentReading {
        name: design.name.clone(),
        strategy: design.strategy.clone(),
        stage: design.stage.clone(),
        running: !design.arms.is_empty(),
        horizon_days: design.horizon_days,
        as_of,
        first_entry,
        arms,
        srm,
        comparisons,
        summary,
    }
}

/// The plain-words state: the sample-ratio alarm first (nothing else can be trusted then), then
/// each comparison's verdict on the cure rate.
fn summarise(
    design: &Design,
    arms: &[ArmReading],
    srm: Option<&Srm>,
    comparisons: &[Comparison],
    first_entry: Option<DateTime<Utc>>,
) -> String {
    let Some(first_entry) = first_entry else {
        return format!("No account has entered stage {} since the experiment started.", design.stage);
    };
    let entered: u64 = arms.iter().map(|arm| arm.entered).sum();
    let matured: u64 = arms.iter().map(|arm| arm.matured).sum();
    let mut text = format!(
        "{entered} accounts entered since {}; {matured} have reached the {}-day horizon.",
        first_entry.format("%Y-%m-%d"),
        design.horizon_days
    );
    match srm.map(|srm| srm.status) {
        Some(stats::SrmStatus::Alarm) => {
            text.push_str(
                " SAMPLE RATIO MISMATCH: the arms' sizes do not match their weights (p < 0.001). The assignment \
                 or the entries are broken; do not trust any comparison until this is fixed.",
            );
            return text;
        }
        Some(stats::SrmStatus::Warn) => text
            .push_str(" Warning: the arms' sizes are unlikely under their weights (p < 0.01); check the assignment."),
        _ => {}
    }
    for comparison in comparisons {
        if let Some(cured) = comparison.metrics.iter().find(|metric| metric.metric == Metric::Cured.code()) {
            text.push_str(&format!(" {} vs {}: {}", comparison.arm, comparison.baseline, cured.explanation));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn design() -> Design {
        Design {
            name: "m1-test".into(),
            strategy: "s".into(),
            stage: "M1".into(),
            arms: vec![("champion".into(), 50), ("challenger".into(), 50)],
            holdout: None,
            horizon_days: 7,
        }
    }

    fn entry(id: &str, arm: &str, day: &str) -> EntryRow {
        EntryRow {
            account_id: id.into(),
            borrower_id: format!("B{id}"),
            arm: arm.into(),
            entered_at: at(day),
            dpd: 10,
            balance: "100".parse().unwrap(),
            currency: "USD".into(),
        }
    }

    #[test]
    fn only_matured_accounts_are_read_and_only_within_their_horizon() {
        let entries = vec![
            entry("a", "champion", "2026-11-01T06:00:00Z"),
            entry("b", "champion", "2026-11-01T06:00:00Z"),
            entry("c", "challenger", "2026-11-01T06:00:00Z"),
            entry("d", "challenger", "2026-11-01T06:00:00Z"),
            entry("e", "challenger", "2026-11-06T06:00:00Z"),
        ];
        let mut outcomes = Outcomes::default();
        outcomes.cures.insert("a".into(), vec![at("2026-11-09T00:00:00Z")]); // after a's 7 days
        outcomes.cures.insert("c".into(), vec![at("2026-11-03T00:00:00Z")]);
        outcomes.payments.insert("c".into(), vec![(at("2026-11-03T00:00:00Z"), "100".parse().unwrap())]);
        outcomes.attempts.insert(
            "b".into(),
            vec![
                (at("2026-11-01T07:00:00Z"), false),
                (at("2026-11-02T07:00:00Z"), true),
                (at("2026-10-30T07:00:00Z"), true),
            ],
        );
        let reading = read(&design(), &entries, &outcomes, at("2026-11-10T00:00:00Z"));
        let champion = &reading.arms[0];
        assert_eq!((champion.entered, champion.matured), (2, 2));
        let value = |arm: &ArmReading, metric: &str| {
            arm.metrics.iter().find(|m| m.metric == metric).and_then(|m| m.estimate).map(|e| e.mean)
        };
        assert_eq!(value(champion, "cured"), Some(0.0), "a's cure came after its horizon");
        assert_eq!(value(champion, "right_party_contact"), Some(0.5));
        assert_eq!(value(champion, "attempts"), Some(1.0), "b's 2 attempts after entering, over 2 accounts");
        let challenger = &reading.arms[1];
        assert_eq!((challenger.entered, challenger.matured), (3, 2), "e entered 4 days ago");
        assert_eq!(value(challenger, "cured"), Some(0.5));
        assert_eq!(value(challenger, "collected:USD"), Some(50.0));
        assert_eq!(reading.comparisons.len(), 1);
        assert_eq!(reading.comparisons[0].arm, "challenger");
        assert_eq!(reading.srm.unwrap().status, stats::SrmStatus::Ok);
        assert!(
            reading.summary.starts_with("5 accounts entered since 2026-11-01; 4 have reached"),
            "{}",
            reading.summary
        );
    }

    #[test]
    fn a_holdout_is_the_champions_baseline_and_not_a_challenger() {
        let mut design = design();
        design.arms.push(("holdout".into(), 10));
        design.holdout = Some(2);
        let entries =
            vec![entry("a", "champion", "2026-11-01T06:00:00Z"), entry("z", "old-arm", "2026-11-01T06:00:00Z")];
        let reading = read(&design, &entries, &Outcomes::default(), at("2026-11-10T00:00:00Z"));
        let roles: Vec<Role> = reading.arms.iter().map(|arm| arm.role).collect();
        assert_eq!(roles, [Role::Champion, Role::Challenger, Role::Holdout, Role::Retired]);
        let pairs: Vec<(&str, &str)> =
            reading.comparisons.iter().map(|c| (c.arm.as_str(), c.baseline.as_str())).collect();
        assert_eq!(pairs, [("challenger", "champion"), ("champion", "holdout")]);
        assert!(
            reading.comparisons.iter().all(|c| c.metrics.iter().all(|m| m.decision.verdict == Verdict::KeepRunning))
        );
    }

    #[test]
    fn a_sample_ratio_alarm_overrides_every_verdict_in_the_summary() {
        let mut entries = Vec::new();
        for index in 0..1_000 {
            let arm = if index < 430 { "champion" } else { "challenger" };
            entries.push(entry(&format!("a{index}"), arm, "2026-11-01T06:00:00Z"));
        }
        let reading = read(&design(), &entries, &Outcomes::default(), at("2026-11-10T00:00:00Z"));
        assert_eq!(reading.srm.unwrap().status, stats::SrmStatus::Alarm);
        assert!(reading.summary.contains("SAMPLE RATIO MISMATCH"), "{}", reading.summary);
    }

    #[test]
    fn nothing_entered_says_so() {
        let reading = read(&design(), &[], &Outcomes::default(), at("2026-11-10T00:00:00Z"));
        assert!(reading.srm.is_none() && reading.first_entry.is_none());
        assert_eq!(reading.summary, "No account has entered stage M1 since the experiment started.");
    }
}
