//! `arrears experiments [NAME]` and `GET /v1/experiments[/{name}]`: the designs from the
//! strategies in force (and the experiments that only their stored entries still name), each
//! read as of `now` from its entries and outcomes (`crate::experiment::reading`), and the text
//! managers read. No statistic is computed here.

use super::{Settings, connect};
use crate::experiment::reading::{self, Design, ExperimentReading, Role};
use crate::store::{self, StoreError};
use crate::strategy::StrategySet;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::io::Write;

/// The horizon of an experiment that the strategies no longer define.
const RETIRED_HORIZON_DAYS: u32 = crate::strategy::DEFAULT_HORIZON_DAYS;

/// Every experiment's design: those of the strategies in force, by strategy then file order,
/// then those only stored entries name (no arms: no sample-ratio check).
pub async fn designs(db: &impl ConnectionTrait, strategies: &StrategySet) -> Result<Vec<Design>, StoreError> {
    let mut designs: Vec<Design> = strategies
        .strategies
        .iter()
        .flat_map(|strategy| {
            strategy.experiments.iter().map(|experiment| Design {
                name: experiment.name.to_string(),
                strategy: strategy.name.to_string(),
                stage: strategy.stages[experiment.stage].name.to_string(),
                arms: experiment.arms.iter().map(|(name, weight)| (name.to_string(), *weight)).collect(),
                holdout: experiment.holdout,
                horizon_days: experiment.horizon_days,
            })
        })
        .collect();
    for (name, strategy, stage) in store::entered_experiments(db).await? {
        if !designs.iter().any(|design| design.name == name) {
            designs.push(Design {
                name,
                strategy,
                stage,
                arms: Vec::new(),
                holdout: None,
                horizon_days: RETIRED_HORIZON_DAYS,
            });
        }
    }
    Ok(designs)
}

/// One design read as of `now`.
pub async fn read(
    db: &impl ConnectionTrait,
    design: &Design,
    now: DateTime<Utc>,
) -> Result<ExperimentReading, StoreError> {
    let entries = store::entries_of(db, &design.name, now).await?;
    let outcomes = store::outcomes_of(db, &design.name, now).await?;
    Ok(reading::read(design, &entries, &outcomes, now))
}

/// Every experiment read as of `now`.
pub async fn read_all(
    db: &impl ConnectionTrait,
    strategies: &StrategySet,
    now: DateTime<Utc>,
) -> Result<Vec<ExperimentReading>, StoreError> {
    let mut readings = Vec::new();
    for design in designs(db, strategies).await? {
        readings.push(read(db, &design, now).await?);
    }
    Ok(readings)
}

/// The experiment named `name` read as of `now`; none when no strategy or entry names it.
pub async fn read_one(
    db: &impl ConnectionTrait,
    strategies: &StrategySet,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<ExperimentReading>, StoreError> {
    match designs(db, strategies).await?.into_iter().find(|design| design.name == name) {
        Some(design) => Ok(Some(read(db, &design, now).await?)),
        None => Ok(None),
    }
}

/// `arrears experiments [NAME]`: the readings as text or JSON.
pub async fn experiments_command(
    settings: &Settings,
    name: Option<&str>,
    format: super::report::ReportFormat,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let strategies = super::load_strategies(settings, &settings.strategies_dir)
        .map_err(|errors| anyhow::anyhow!("the strategies are invalid:\n{errors}"))?;
    let db = connect(settings).await?;
    let readings = match name {
        Some(name) => match read_one(&db, &strategies, name, now).await.context("cannot read the experiment")? {
            Some(reading) => vec![reading],
            None => anyhow::bail!("no experiment is named `{name}` (see `arrears experiments`)"),
        },
        None => read_all(&db, &strategies, now).await.context("cannot read the experiments")?,
    };
    match format {
        super::report::ReportFormat::Text => {
            if readings.is_empty() {
                writeln!(out, "No experiment is defined in the strategies, and none has entries.")?;
            }
            for reading in &readings {
                write_text(reading, out)?;
            }
        }
        super::report::ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &readings)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// One reading for people: the summary, the arms with each metric's estimate and interval,
/// the sample-ratio check and each comparison's verdict in words.
pub fn write_text(reading: &ExperimentReading, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Experiment {} (strategy {}, stage {}, outcomes read {} days after entering){}",
        reading.name,
        reading.strategy,
        reading.stage,
        reading.horizon_days,
        if reading.running { "" } else { " — no longer in the strategies" }
    )?;
    writeln!(out, "as of {}", reading.as_of.format("%Y-%m-%d %H:%M UTC"))?;
    writeln!(out)?;
    writeln!(out, "{}", reading.summary)?;
    writeln!(out)?;
    let Some(first) = reading.arms.first() else {
        return writeln!(out);
    };
    let mut lines: Vec<Vec<String>> = vec![
        ["arm", "role", "weight", "entered", "matured"]
            .into_iter()
            .map(String::from)
            .chain(first.metrics.iter().map(|metric| metric.label.clone()))
            .collect(),
    ];
    for arm in &reading.arms {
        let role = match arm.role {
            Role::Champion => "champion",
            Role::Challenger => "challenger",
            Role::Holdout => "holdout",
            Role::Retired => "retired",
        };
        let mut line = vec![
            arm.name.clone(),
            role.into(),
            arm.weight.to_string(),
            arm.entered.to_string(),
            arm.matured.to_string(),
        ];
        for metric in &arm.metrics {
            let rate = metric.metric == "cured" || metric.metric == "right_party_contact";
            line.push(metric.estimate.map_or_else(
                || "-".to_string(),
                |estimate| {
                    if rate {
                        format!(
                            "{:.1}% [{:.1}, {:.1}]",
                            estimate.mean * 100.0,
                            estimate.low * 100.0,
                            estimate.high * 100.0
                        )
                    } else {
                        format!("{:.2} [{:.2}, {:.2}]", estimate.mean, estimate.low, estimate.high)
                    }
                },
            ));
        }
        lines.push(line);
    }
    crate::report::text::write_aligned(out, &lines, 2, None)?;
    writeln!(out, "(each estimate: mean per matured account [95 % interval])")?;
    match &reading.srm {
        Some(srm) => writeln!(
            out,
            "Sample ratio: chi-squared {:.2} on {} degrees of freedom, p = {:.4}: {}",
            srm.chi_squared,
            srm.degrees_of_freedom,
            srm.p_value,
            match srm.status {
                crate::experiment::stats::SrmStatus::Ok => "ok",
                crate::experiment::stats::SrmStatus::Warn => "WARNING (p < 0.01)",
                crate::experiment::stats::SrmStatus::Alarm => "ALARM (p < 0.001)",
            }
        )?,
        None => writeln!(out, "Sample ratio: not checked (no entries, or the design is gone)")?,
    }
    for comparison in &reading.comparisons {
        writeln!(out)?;
        writeln!(out, "{} vs {}:", comparison.arm, comparison.baseline)?;
        for metric in &comparison.metrics {
            writeln!(out, "  - {}", metric.explanation)?;
        }
    }
    writeln!(out)
}
