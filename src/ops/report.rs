//! `arrears report` and `GET /v1/reports/kpis`: load a period's rows (`store::load_kpi_input`)
//! and aggregate them (`crate::report::aggregate`). No KPI is defined here; the definitions are
//! in `crate::report` and `docs/operations.md`.

use super::{Settings, connect};
use crate::report::{self, FunderScope, GroupBy, KpiReport, Period, StageOrder};
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

/// `arrears report --format`: [`ReportFormat`]'s two, and CSV.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KpiFormat {
    /// Aligned tables for people.
    #[default]
    Text,
    /// The report as one JSON object (as `GET /v1/reports/kpis` answers it).
    Json,
    /// One figure per line (`section,group,state,currency,metric,value`): the daily file a
    /// funder loads (`report --funder bank-a --format csv`).
    Csv,
}

/// The KPI report of `period` for the accounts of `scope` (a funder's share, or the whole
/// portfolio), grouped `by`; `order` (the strategies' stages) says which stage is worse, `zone`
/// (the portfolio's) cuts the vintages' weeks.
pub async fn kpis(
    db: &impl ConnectionTrait,
    period: Period,
    by: GroupBy,
    order: &StageOrder,
    zone: chrono_tz::Tz,
    scope: &FunderScope,
) -> Result<KpiReport, StoreError> {
    let input = store::load_kpi_input(db, period, zone, scope).await?;
    Ok(scoped(report::aggregate(&input, period, by, order, zone), scope))
}

/// `report` labelled with the scope its rows were read for.
pub fn scoped(mut report: KpiReport, scope: &FunderScope) -> KpiReport {
    report.funder = scope.label();
    report
}

/// The roll matrices of `periods` alone (`KpiReport.roll` without the rest of the report): the
/// book at their bounds, read in one pass (`store::book_states`), nothing else read; `zone` is
/// the portfolio's. One matrix per period, in their order.
pub async fn rolls(
    db: &impl ConnectionTrait,
    periods: &[Period],
    order: &StageOrder,
    zone: chrono_tz::Tz,
    scope: &FunderScope,
) -> Result<Vec<report::RollMatrix>, StoreError> {
    let books = store::book_states(db, periods, zone, scope, store::STATE_PAGE).await?;
    Ok(books.iter().map(|book| report::roll::roll_matrix(&book.states, order)).collect())
}

/// The portfolio zone, the period `--from`/`--to` in it (by default the 7 days before `now`),
/// and the stage order of the strategies in force: what every `arrears report` reads with.
fn period_and_order(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<(chrono_tz::Tz, Period, StageOrder)> {
    let zone = crate::domain::parse_timezone(&settings.config.timezone)
        .map_err(|message| anyhow::anyhow!("timezone: {message}"))?;
    let period = Period::parse(from, to, zone, now).map_err(|error| anyhow::anyhow!("--{error}"))?;
    let order = super::load_strategies(settings, &settings.strategies_dir)
        .map(|strategies| StageOrder::of(&strategies))
        .map_err(|errors| anyhow::anyhow!("the strategies (which order the stages) are invalid:\n{errors}"))?;
    Ok((zone, period, order))
}

/// `arrears report`: the period from `from` and `to` (RFC 3339, or dates in the portfolio zone;
/// by default the 7 days before `now`) for `funder`'s share (or the whole portfolio), printed
/// as text, JSON or CSV.
#[allow(clippy::too_many_arguments)]
pub async fn report_command(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    by: GroupBy,
    funder: Option<&str>,
    format: KpiFormat,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (zone, period, order) = period_and_order(settings, from, to, now)?;
    let scope = match funder {
        Some(text) => FunderScope::parse(text).map_err(|error| anyhow::anyhow!("--{error}"))?,
        None => FunderScope::All,
    };
    let db = connect(settings).await?;
    let report = kpis(&db, period, by, &order, zone, &scope).await.context("cannot read the report's data")?;
    match format {
        KpiFormat::Text => report::write_text(&report, out)?,
        KpiFormat::Csv => report::csv::write_csv(&report, out)?,
        KpiFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// The reactions report for `period`, with `now` deciding which open cases are overdue (see
/// [`report::reactions`]).
pub async fn reactions(
    db: &impl ConnectionTrait,
    period: Period,
    order: &StageOrder,
    now: DateTime<Utc>,
) -> Result<Vec<report::reactions::ReactionRow>, StoreError> {
    let firings = store::reaction_firings(db, period.from, period.to).await?;
    let ids: Vec<i64> = firings.iter().filter_map(|firing| firing.case_id).collect();
    let cases = store::cases_by_id(db, &ids)
        .await?
        .into_iter()
        .map(|(id, case)| {
            let closed = case.closed_at.zip(case.disposition);
            (id, report::reactions::CaseFacts { due_at: case.due_at, closed })
        })
        .collect();
    let mut accounts: Vec<&str> = firings.iter().map(|firing| firing.account_id.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let moves = store::stage_moves_since(db, &accounts, period.from).await?;
    Ok(report::reactions::reaction_rows(&firings, &cases, &moves, order, now))
}

/// `arrears report --reactions`: the reactions report as a table or JSON.
pub async fn reactions_command(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (_, period, order) = period_and_order(settings, from, to, now)?;
    let db = connect(settings).await?;
    let rows = reactions(&db, period, &order, now).await.context("cannot read the reactions")?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
    } else {
        report::reactions::write_reactions(&rows, period.from, period.to, out)?;
    }
    Ok(())
}
