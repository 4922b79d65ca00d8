//! `arrears learn` and the nightly learn job: read the attempts of the lookback window
//! (`store::read_attempt_facts`), fit the contact model (`crate::learn`), store it
//! (`store::save_model`), and print what was learned. No fitting math here; the clock comes in
//! as `as_of`.

use super::{Settings, connect};
use crate::learn::{ContactModel, Fitter, SegmentSummary};
use crate::store::{self, StoreError};
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use sea_orm::ConnectionTrait;
use std::io::Write;

/// The default lookback of a training, in days.
pub const DEFAULT_LOOKBACK_DAYS: u32 = 90;

/// What one training learned and stored.
#[derive(Debug, Clone)]
pub struct LearnReport {
    /// The stored version.
    pub version: i64,
    /// The lookback, in days.
    pub lookback_days: u32,
    /// Attempts learned from.
    pub attempts: u64,
    /// The model as stored (its `version` filled in).
    pub model: ContactModel,
}

/// Fits the contact model on the attempts of the `lookback_days` days before `as_of` and
/// stores it as a new version.
pub async fn learn(
    db: &impl ConnectionTrait,
    as_of: DateTime<Utc>,
    lookback_days: u32,
) -> Result<LearnReport, StoreError> {
    let from = as_of - Duration::days(i64::from(lookback_days));
    let mut fitter = Fitter::new();
    let attempts = store::read_attempt_facts(db, from, as_of, |fact| fitter.add(fact)).await?;
    let mut model = fitter.finish(from, as_of);
    let version = store::save_model(db, &model, lookback_days, attempts, as_of).await?;
    model.version = version;
    Ok(LearnReport { version, lookback_days, attempts, model })
}

/// `arrears learn`: trains, stores and prints the report.
pub async fn learn_command(
    settings: &Settings,
    as_of: DateTime<Utc>,
    lookback_days: u32,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let report = learn(&db, as_of, lookback_days).await.context("cannot learn the contact model")?;
    write_report(&report, out)?;
    Ok(())
}

/// Prints the version, the window, the attempts, and per segment the overall rate and the best
/// and worst 3 local hours (rate, attempts behind each).
pub fn write_report(report: &LearnReport, out: &mut impl Write) -> std::io::Result<()> {
    let model = &report.model;
    writeln!(
        out,
        "contact model v{}: {} attempts from {} to {} ({} days)",
        report.version,
        report.attempts,
        model.trained_from.to_rfc3339(),
        model.trained_to.to_rfc3339(),
        report.lookback_days
    )?;
    let summaries = model.summaries();
    if summaries.is_empty() {
        writeln!(out, "no attempts in the window: every posterior is the uniform prior")?;
    }
    for segment in &summaries {
        write_segment(segment, out)?;
    }
    Ok(())
}

fn write_segment(segment: &SegmentSummary, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}/{}/{}: {} attempts, {} contacts, rate {:.3}",
        segment.stage, segment.channel, segment.product, segment.attempts, segment.contacts, segment.rate
    )?;
    let hours = |list: &mut dyn Iterator<Item = &crate::learn::HourRate>| {
        list.map(|hour| format!("{:02}:00 {:.3} (n={})", hour.hour, hour.rate, hour.attempts))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "  best:  {}", hours(&mut segment.hours.iter().take(3)))?;
    writeln!(out, "  worst: {}", hours(&mut segment.hours.iter().rev().take(3)))?;
    Ok(())
}
