//! The funder page (`/dashboard/funder`): one co-lending funder's share of the period's KPI
//! report — balances by state at the period's end, the KPIs by stage, the roll matrix — every
//! amount cut to the funder's share per account (`report::funder`), the same numbers as
//! `GET /v1/reports/kpis?funder=`. Aggregates only: no account id, name or number. A `funder`
//! token sees its own funder's share here and no other page; managers and admins pick any
//! funder. Reads through the cache; writes nothing; defines no KPI (`docs/kpis.md`).

use super::auth::Viewer;
use super::query::{self, BadParameter, Params};
use super::render::{self, Chart, ChartSpec, Series};
use super::strategies::{RowView, row_view};
use super::{PageError, period_view, portfolio_zone};
use crate::http::AppState;
use crate::ops::tokens::Role;
use crate::report::{FunderScope, GroupBy, KpiReport, RollMatrix, StageOrder};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

/// The funder a viewer reads: a funder token its own (`Ok(None)` when it asked for another:
/// refused), the other roles the one they asked for (`Some(None)`: none chosen yet).
fn scope_of(viewer: &Viewer, asked: Option<&str>) -> Result<Option<Option<FunderScope>>, BadParameter> {
    let asked =
        asked.map(FunderScope::parse).transpose().map_err(|error| BadParameter::new("funder", error.to_string()))?;
    if viewer.principal.role != Role::Funder {
        return Ok(Some(asked));
    }
    let own = FunderScope::Funder(viewer.principal.funder.clone().unwrap_or_default());
    Ok(match asked {
        Some(other) if other != own => None,
        _ => Some(Some(own)),
    })
}

#[derive(Serialize)]
struct BalanceRow {
    state: String,
    accounts: String,
    balances: Vec<String>,
}

#[derive(Serialize)]
struct RollRowView {
    from: String,
    accounts: String,
    cells: Vec<String>,
    roll_rate: String,
    cure_rate: String,
}

#[derive(Serialize)]
struct FunderOption {
    name: String,
    selected: bool,
}

#[derive(Serialize)]
struct FunderView {
    /// The funder shown (`(none)`: the lender's own accounts).
    funder: String,
    /// Whether the viewer may pick another funder (managers, admins).
    picker: bool,
    funders: Vec<FunderOption>,
    /// `(none)` is the funder shown.
    unfunded: bool,
    chosen: bool,
    currencies: Vec<String>,
    balances: Vec<BalanceRow>,
    charts: Vec<Chart>,
    rows: Vec<RowView>,
    total: RowView,
    states: Vec<String>,
    roll: Vec<RollRowView>,
    api: String,
}

fn roll_rows(roll: &RollMatrix) -> Vec<RollRowView> {
    roll.rows
        .iter()
        .chain(&roll.entered)
        .map(|row| RollRowView {
            from: row.from.clone(),
            accounts: render::count(row.accounts),
            cells: roll
                .states
                .iter()
                .map(|state| match row.cells.iter().find(|cell| &cell.to == state) {
                    Some(cell) => format!("{} ({})", render::count(cell.accounts), render::percent(Some(cell.share))),
                    None => "·".into(),
                })
                .collect(),
            roll_rate: render::percent(row.roll_rate),
            cure_rate: render::percent(row.cure_rate),
        })
        .collect()
}

fn view(report: &KpiReport, funder: String, picker: bool, names: &[String], api: String) -> FunderView {
    let mut currencies: Vec<String> =
        report.balances.iter().flat_map(|state| state.balance.iter().map(|b| b.currency.clone())).collect();
    currencies.sort();
    currencies.dedup();
    let balances = report
        .balances
        .iter()
        .map(|state| BalanceRow {
            state: state.stage.clone(),
            accounts: render::count(state.accounts),
            balances: currencies
                .iter()
                .map(|currency| {
                    state
                        .balance
                        .iter()
                        .find(|b| &b.currency == currency)
                        .map_or("–".into(), |b| render::money(b.amount))
                })
                .collect(),
        })
        .collect();
    let labels: Vec<String> = report.balances.iter().map(|state| state.stage.clone()).collect();
    let charts = currencies
        .iter()
        .map(|currency| {
            Chart::new(
                render::chart_id("funder-balance", currency),
                format!("Balance by state at the period's end, {currency} (this funder's share)"),
                &ChartSpec {
                    kind: "bar",
                    labels: labels.clone(),
                    series: vec![Series {
                        label: currency.clone(),
                        data: report
                            .balances
                            .iter()
                            .map(|state| {
                                state.balance.iter().find(|b| &b.currency == currency).and_then(|b| {
                                    use rust_decimal::prelude::ToPrimitive;
                                    b.amount.to_f64()
                                })
                            })
                            .collect(),
                        kind: "bar",
                        axis: "y",
                    }],
                    horizontal: true,
                    y_title: String::new(),
                    y2_title: String::new(),
                    percent: false,
                },
            )
        })
        .collect();
    FunderView {
        picker,
        funders: names.iter().map(|name| FunderOption { name: name.clone(), selected: *name == funder }).collect(),
        chosen: true,
        unfunded: funder == crate::report::UNFUNDED,
        funder,
        currencies,
        balances,
        charts,
        rows: report.groups.iter().map(|row| row_view(row, row.group.clone())).collect(),
        total: row_view(&report.total, "total".into()),
        states: report.roll.states.clone(),
        roll: roll_rows(&report.roll),
        api,
    }
}

/// `GET /dashboard/funder` (`from`, `to`, `funder`).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "funder"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &["funder"])?;
    let Some(scope) = scope_of(viewer, params.get("funder"))? else {
        let chrome = viewer.chrome("funder", "Not allowed", "");
        let message = "A funder token reads its own share only.";
        return Ok(render::error_page(StatusCode::FORBIDDEN, "Not allowed", message, &chrome, false));
    };
    let zone = portfolio_zone(state)?;
    let now = state.clock.now();
    let period = params.period(zone, now)?;
    let picker = viewer.principal.role != Role::Funder;
    let names = if picker { crate::store::funder_names(&state.db).await? } else { Vec::new() };
    let mut chrome = viewer.chrome("funder", "Funder", &params.period_query());
    chrome.period = Some(period_view(&params, period, zone, "/dashboard/funder"));
    let Some(scope) = scope else {
        let view = FunderView {
            funder: String::new(),
            picker,
            funders: names.iter().map(|name| FunderOption { name: name.clone(), selected: false }).collect(),
            unfunded: false,
            chosen: false,
            currencies: Vec::new(),
            balances: Vec::new(),
            charts: Vec::new(),
            rows: Vec::new(),
            total: row_view(&crate::report::KpiRow::empty("total".into()), "total".into()),
            states: Vec::new(),
            roll: Vec::new(),
            api: String::new(),
        };
        return Ok(render::page(StatusCode::OK, "funder", &view, &chrome));
    };
    let label = scope.label().unwrap_or_default();
    let key = params.cache_key("funder");
    let order = StageOrder::of(&state.strategies.current());
    let cached = state
        .dashboard
        .fresh(&key, now, || async {
            crate::ops::report::kpis(&state.db, period, GroupBy::Stage, &order, zone, &scope)
                .await
                .map_err(PageError::from)
        })
        .await?;
    let (from, to) = super::period_pairs(period);
    let api = query::link("/v1/reports/kpis", &[("from", &from), ("to", &to), ("funder", &label)]);
    chrome.as_of = Some(render::as_of(cached.as_of, zone));
    Ok(render::page(StatusCode::OK, "funder", &view(&cached.value, label, picker, &names, api), &chrome))
}
