//! The experiment readings proven on the simulator: one simulated run of a strategy set with
//! an experiment, then [`crate::experiment::validate`] on its stored entries and outcomes —
//! A/A re-randomisations of the champion arm's accounts (they all got the same treatment)
//! peeked daily, the same with a lift planted in one half, and splits imposed at other weights
//! than the design's; plus the real experiment's reading at the end.
//!
//! Runs the simulation on its own throw-away SQLite store; formats nothing (the numbers go to
//! `docs/experiments.md` from the benchmark and the test that call this).

use super::{SimOptions, simulate};
use crate::experiment::reading::{Design, ExperimentReading, read};
use crate::experiment::validate::{self, AaResult, PlantedResult, SplitResult};
use crate::ops::Settings;
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::path::Path;

/// What to validate.
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    /// The experiment (of the strategies) whose champion arm is re-randomised.
    pub experiment: String,
    /// Re-randomised experiments per check.
    pub experiments: usize,
    /// The cure probability planted in one half (of the accounts not cured in time).
    pub lift: f64,
    /// The weights imposed on a 50/50 design.
    pub imposed: [u32; 2],
}

/// What the validation found.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentValidation {
    /// The champion arm's entries the A/A experiments split.
    pub entries: usize,
    /// The daily looks, from the first at which any account had matured to the end.
    pub looks: Vec<DateTime<Utc>>,
    /// A/A: false verdicts.
    pub aa: AaResult,
    /// A lift planted in one half: detections.
    pub planted: PlantedResult,
    /// The imposed split on the 50/50 design.
    pub imposed: SplitResult,
    /// The same entries split 50/50, as designed.
    pub designed: SplitResult,
    /// The real experiment, read at the end.
    pub real: ExperimentReading,
    /// The simulation's violations count (must be 0).
    pub violations: u32,
}

/// Simulates `options` with the strategies of `strategies_dir`, then validates.
pub async fn validate_experiment(
    settings: &Settings,
    strategies_dir: &Path,
    options: &SimOptions,
    validation: &ValidationOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ExperimentValidation> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("validation.db").display());
    let options = SimOptions { store: Some(url.clone()), ..options.clone() };
    let run = simulate(settings, strategies_dir, &options, progress).await?;
    let db = crate::store::connect(&url).await.context("cannot reopen the simulated store")?;
    let strategies = crate::ops::load_strategies(settings, strategies_dir)
        .map_err(|errors| anyhow::anyhow!("{} has invalid strategies:\n{errors}", strategies_dir.display()))?;
    let design = crate::ops::experiments::designs(&db, &strategies)
        .await?
        .into_iter()
        .find(|design| design.name == validation.experiment)
        .ok_or_else(|| anyhow::anyhow!("no experiment is named `{}`", validation.experiment))?;
    let end = run.report.end;
    let entries = crate::store::entries_of(&db, &design.name, end).await?;
    let outcomes = crate::store::outcomes_of(&db, &design.name, end).await?;
    let real = read(&design, &entries, &outcomes, end);

    let champion = design.arms.first().map(|(name, _)| name.clone()).unwrap_or_default();
    let champions: Vec<_> = entries.iter().filter(|entry| entry.arm == champion).cloned().collect();
    let aa_design = Design {
        name: format!("{}-aa", design.name),
        arms: vec![("a".into(), 50), ("b".into(), 50)],
        holdout: None,
        ..design.clone()
    };
    let horizon = Duration::days(i64::from(design.horizon_days));
    let first = champions.iter().map(|entry| entry.entered_at).min().map(|at| at + horizon);
    let mut looks = Vec::new();
    if let Some(first) = first {
        let mut look = end;
        while look >= first {
            looks.push(look);
            look -= Duration::days(1);
        }
        looks.reverse();
    }
    let aa = validate::aa(&aa_design, &champions, &outcomes, &looks, validation.experiments);
    let planted = validate::planted(&aa_design, &champions, &outcomes, &looks, validation.experiments, validation.lift);
    let imposed =
        validate::imposed_split(&aa_design, &champions, &outcomes, end, validation.experiments, &validation.imposed);
    let designed = validate::imposed_split(&aa_design, &champions, &outcomes, end, validation.experiments, &[50, 50]);
    Ok(ExperimentValidation {
        entries: champions.len(),
        looks,
        aa,
        planted,
        imposed,
        designed,
        real,
        violations: run.report.violations.total(),
    })
}
