//! `arrears report` and `GET /v1/reports/kpis`: load a period's rows (`store::load_kpi_input`)
//! and aggregate them (`crate::report::aggregate`). No KPI is defined here; the definitions are
//! in `crate::report` and `docs/operations.md`.

use super::{Settings, connect};
use crate::report::{self, GroupBy, KpiReport, Period};
use crate::store::{self, StoreError};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use std::io::Write;

/// `report --format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned tables for people.
    #[default]
    Text,
    /// The report as one JSON object (as the HTTP API answers it).
    Json,
}

/// The KPI report of `period`, grouped `by`.
pub async fn kpis(db: &impl ConnectionTrait, period: Period, by: GroupBy) -> Result<KpiReport, StoreError> {
    let input = store::load_kpi_input(db, period).await?;
    Ok(report::aggregate(&input, period, by))
}

/// `arrears report`: the period from `from` and `to` (RFC 3339, or dates in the portfolio zone;
/// by default the 7 days before `now`), printed as text or JSON.
pub async fn report_command(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    by: GroupBy,
    format: ReportFormat,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let zone = crate::domain::parse_timezone(&settings.config.timezone)
        .map_err(|message| anyhow::anyhow!("timezone: {message}"))?;
    let period = Period::parse(from, to, zone, now).map_err(|error| anyhow::anyhow!("--{error}"))?;
    let db = connect(settings).await?;
    let report = kpis(&db, period, by).await.context("cannot read the report's data")?;
    match format {
        ReportFormat::Text => report::write_text(&report, out)?,
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
