//! The strategies and rules page (`/dashboard/strategies`): the period's `KpiReport` by rule
//! (attempts, right-party contacts, promises, cures, money collected per currency, attempts per
//! cure) with one line per strategy above it, filtered by strategy. Reads the KPI rows through
//! the cache (shared with the overview); writes nothing; defines no KPI (see `docs/kpis.md`).

use super::auth::Viewer;
use super::cache::Cached;
use super::query::{BadParameter, Params};
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, kpi_input, kpis_link, period_view};
use crate::http::AppState;
use crate::report::{self, GroupBy, KpiReport, KpiRow, Period, StageOrder};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The reports of a period by rule and by strategy (cached per period).
pub(super) struct StrategiesData {
    period: Period,
    by_rule: KpiReport,
    by_strategy: KpiReport,
    input_as_of: DateTime<Utc>,
}

async fn compute(state: &AppState, params: &Params, zone: Tz, now: DateTime<Utc>) -> Result<StrategiesData, PageError> {
    let input = kpi_input(state, params, zone, now).await?;
    let order = StageOrder::of(&state.strategies.current());
    let (period, rows) = &*input.value;
    Ok(StrategiesData {
        period: *period,
        by_rule: report::aggregate(rows, *period, GroupBy::Rule, &order, zone),
        by_strategy: report::aggregate(rows, *period, GroupBy::Strategy, &order, zone),
        input_as_of: input.as_of,
    })
}

pub(super) async fn data(state: &AppState, params: &Params) -> Result<(Cached<StrategiesData>, Tz), PageError> {
    cached_page!(state, params, Params { others: BTreeMap::new(), ..params.clone() }.cache_key("strategies"), compute)
}

#[derive(Serialize)]
pub(super) struct Amount {
    currency: String,
    collected: String,
}

/// One KPI row as the `kpi_table` partial shows it.
#[derive(Serialize)]
pub(super) struct RowView {
    group: String,
    accounts: String,
    attempts: String,
    rpc: String,
    rpc_rate: String,
    promises: String,
    promise_rate: String,
    kept: String,
    broken: String,
    kept_rate: String,
    cures: String,
    cure_rate: String,
    attempts_per_cure: String,
    collected: Vec<Amount>,
}

/// A KPI row formatted for the `kpi_table` partial.
pub(super) fn row_view(row: &KpiRow, name: String) -> RowView {
    RowView {
        group: name,
        accounts: render::count(row.accounts),
        attempts: render::count(row.attempts),
        rpc: render::count(row.right_party_contacts),
        rpc_rate: render::percent(row.rpc_rate),
        promises: render::count(row.promises_made),
        promise_rate: render::percent(row.promise_rate),
        kept: render::count(row.promises_kept),
        broken: render::count(row.promises_broken),
        kept_rate: render::percent(row.kept_rate),
        cures: render::count(row.cures),
        cure_rate: render::percent(row.cure_rate),
        attempts_per_cure: render::number(row.attempts_per_cure),
        collected: row
            .amounts
            .iter()
            .filter(|amounts| amounts.payments > 0 || !amounts.collected.is_zero())
            .map(|amounts| Amount { currency: amounts.currency.clone(), collected: render::money(amounts.collected) })
            .collect(),
    }
}

#[derive(Serialize)]
struct StrategyOption {
    name: String,
    selected: bool,
}

#[derive(Serialize)]
struct StrategiesView {
    by_rule: String,
    by_strategy: String,
    strategy: String,
    strategies: Vec<StrategyOption>,
    strategy_rows: Vec<RowView>,
    rule_rows: Vec<RowView>,
    total: Option<RowView>,
    empty: bool,
    charts: Vec<Chart>,
}

fn view(data: &StrategiesData, params: &Params, running: &[String]) -> Result<StrategiesView, BadParameter> {
    let mut names: BTreeSet<String> = running.iter().cloned().collect();
    names.extend(data.by_strategy.groups.iter().map(|row| row.group.clone()).filter(|g| g != report::NO_GROUP));
    let chosen = params.get("strategy");
    if let Some(chosen) = chosen
        && !names.contains(chosen)
    {
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        return Err(BadParameter::new(
            "strategy",
            format!("no strategy `{chosen}` runs or has rows in the period (known: {})", known.join(", ")),
        ));
    }
    let strategy_rows: Vec<&KpiRow> =
        data.by_strategy.groups.iter().filter(|row| chosen.is_none_or(|name| row.group == name)).collect();
    let rule_rows: Vec<&KpiRow> = data
        .by_rule
        .groups
        .iter()
        .filter(|row| chosen.is_none_or(|name| row.group.split_once('/').is_some_and(|(strategy, _)| strategy == name)))
        .collect();
    let labels: Vec<String> = rule_rows.iter().map(|row| row.group.clone()).collect();
    let rates = ChartSpec {
        kind: "bar",
        labels: labels.clone(),
        series: vec![
            Series {
                label: "RPC rate".into(),
                data: rule_rows.iter().map(|row| row.rpc_rate).collect(),
                kind: "bar",
                axis: "y",
            },
            Series {
                label: "promise rate".into(),
                data: rule_rows.iter().map(|row| row.promise_rate).collect(),
                kind: "bar",
                axis: "y",
            },
            Series {
                label: "kept rate".into(),
                data: rule_rows.iter().map(|row| row.kept_rate).collect(),
                kind: "bar",
                axis: "y",
            },
        ],
        horizontal: false,
        y_title: String::new(),
        y2_title: String::new(),
        percent: true,
    };
    let cost = ChartSpec {
        kind: "bar",
        labels,
        series: vec![
            Series {
                label: "attempts".into(),
                data: rule_rows.iter().map(|row| Some(row.attempts as f64)).collect(),
                kind: "bar",
                axis: "y",
            },
            Series {
                label: "attempts per cure".into(),
                data: rule_rows.iter().map(|row| row.attempts_per_cure).collect(),
                kind: "line",
                axis: "y2",
            },
        ],
        horizontal: false,
        y_title: "attempts".into(),
        y2_title: "attempts per cure".into(),
        percent: false,
    };
    let total = match chosen {
        Some(_) => None,
        None => Some(row_view(&data.by_rule.total, "total".into())),
    };
    Ok(StrategiesView {
        by_rule: kpis_link(data.period, "rule"),
        by_strategy: kpis_link(data.period, "strategy"),
        strategy: chosen.unwrap_or("").to_string(),
        strategies: names
            .iter()
            .map(|name| StrategyOption { name: name.clone(), selected: Some(name.as_str()) == chosen })
            .collect(),
        empty: rule_rows.is_empty(),
        strategy_rows: strategy_rows.iter().map(|row| row_view(row, row.group.clone())).collect(),
        rule_rows: rule_rows.iter().map(|row| row_view(row, row.group.clone())).collect(),
        total,
        charts: vec![
            Chart::new("rule-rates", "Right-party contact, promise and kept rates by rule", &rates),
            Chart::new("rule-cost", "Attempts and attempts per cure by rule", &cost),
        ],
    })
}

/// `GET /dashboard/strategies`: the KPIs by rule (`from`, `to`, `strategy`).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "strategies"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &["strategy"])?;
    let (cached, zone) = data(state, &params).await?;
    let data = &*cached.value;
    let running: Vec<String> =
        state.strategies.current().strategies.iter().map(|strategy| strategy.name.to_string()).collect();
    let view = view(data, &params, &running)?;
    let mut chrome = viewer.chrome("strategies", "Strategies and rules", &params.period_query());
    chrome.period = Some(period_view(&params, data.period, zone, "/dashboard/strategies"));
    chrome.as_of = Some(render::as_of(cached.as_of.min(data.input_as_of), zone));
    Ok(render::page(StatusCode::OK, "strategies", &view, &chrome))
}
