//! The overview page (`/dashboard`): accounts and balance by stage now (the funnel, per
//! currency, filtered by product), the period's roll matrix (`KpiReport.roll`) whose cells open
//! their 8-week trend (`/dashboard/roll`), the money collected per day and currency, promises
//! made → due → kept or broken, and the latest broken promises. Reads through the cache; writes
//! nothing; defines no KPI (see `docs/kpis.md`).

use super::auth::Viewer;
use super::cache::Cached;
use super::query::{self, BadParameter, Params};
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, kpi_input, kpis_link, period_pairs, period_view};
use crate::domain::Money;
use crate::http::AppState;
use crate::report::roll::RollRow;
use crate::report::{self, GroupBy, KpiReport, Period, RollMatrix, StageOrder};
use crate::store::dashboard::{self as reads, BrokenPromise, PromisesDue, StageBalance};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Broken promises listed at most.
const BROKEN_LISTED: u64 = 10;

/// Weeks in a roll cell's trend.
pub const TREND_WEEKS: i64 = 8;

/// The label of accounts in no stage.
const NO_STAGE: &str = "(no stage)";

/// What the overview shows, as read (cached per period).
pub(super) struct OverviewData {
    period: Period,
    report: KpiReport,
    funnel: Vec<StageBalance>,
    collected: BTreeMap<(NaiveDate, String), (u64, Money)>,
    due: PromisesDue,
    broken: Vec<BrokenPromise>,
    /// When the KPI rows were read (they may be older than the rest).
    input_as_of: DateTime<Utc>,
}

/// The first and last local day of a period (the days the promises falling due are counted on).
fn days_of(period: Period, zone: Tz) -> (NaiveDate, NaiveDate) {
    let first = period.from.with_timezone(&zone).date_naive();
    let last = (period.to - Duration::nanoseconds(1)).with_timezone(&zone).date_naive();
    (first, last.max(first))
}

async fn compute(state: &AppState, params: &Params, zone: Tz, now: DateTime<Utc>) -> Result<OverviewData, PageError> {
    let period = params.period(zone, now)?;
    let db = &state.db;
    let (first, last) = days_of(period, zone);
    let (input, funnel, payments, due, broken) = tokio::try_join!(
        kpi_input(state, params, zone, now),
        async { reads::stage_balances(db).await.map_err(PageError::from) },
        async { reads::payments_at(db, period).await.map_err(PageError::from) },
        async { reads::promises_due(db, first, last).await.map_err(PageError::from) },
        async { reads::latest_broken_promises(db, period, BROKEN_LISTED).await.map_err(PageError::from) },
    )?;
    let order = StageOrder::of(&state.strategies.current());
    let (input_period, rows) = &*input.value;
    let report = report::aggregate(rows, *input_period, GroupBy::Stage, &order, zone);
    let mut collected: BTreeMap<(NaiveDate, String), (u64, Money)> = BTreeMap::new();
    for payment in payments {
        let day = payment.paid_at.with_timezone(&zone).date_naive();
        let entry = collected.entry((day, payment.currency)).or_default();
        entry.0 += 1;
        entry.1 += payment.amount;
    }
    Ok(OverviewData { period, report, funnel, collected, due, broken, input_as_of: input.as_of })
}

/// The overview's aggregates for these parameters, from the cache.
pub(super) async fn data(state: &AppState, params: &Params) -> Result<(Cached<OverviewData>, Tz), PageError> {
    cached_page!(state, params, Params { others: BTreeMap::new(), ..params.clone() }.cache_key("overview"), compute)
}

#[derive(Serialize)]
struct Amount {
    currency: String,
    amount: String,
}

#[derive(Serialize)]
struct FunnelRow {
    stage: String,
    accounts: String,
    balances: Vec<String>,
}

#[derive(Serialize)]
struct ProductOption {
    name: String,
    selected: bool,
}

#[derive(Serialize)]
struct Funnel {
    csv: String,
    product: String,
    products: Vec<ProductOption>,
    currencies: Vec<String>,
    rows: Vec<FunnelRow>,
    total_accounts: String,
    total_balances: Vec<String>,
    charts: Vec<Chart>,
}

#[derive(Serialize)]
struct CellView {
    text: String,
    href: String,
}

#[derive(Serialize)]
struct RollRowView {
    from: String,
    accounts: String,
    cells: Vec<CellView>,
    roll_rate: String,
    cure_rate: String,
    balance_roll: Vec<Amount>,
}

#[derive(Serialize)]
struct RollView {
    kpis: String,
    states: Vec<String>,
    rows: Vec<RollRowView>,
    empty: bool,
}

#[derive(Serialize)]
struct CurrencyTotal {
    currency: String,
    collected: String,
    payments: String,
}

/// `1 payment`, `3 payments`.
fn payments_text(count: u64) -> String {
    format!("{} payment{}", render::count(count), if count == 1 { "" } else { "s" })
}

#[derive(Serialize)]
struct Collected {
    csv: String,
    kpis: String,
    totals: Vec<CurrencyTotal>,
    charts: Vec<Chart>,
}

#[derive(Serialize)]
struct Promises {
    kpis: String,
    csv: String,
    made: String,
    due: String,
    due_kept: String,
    due_broken: String,
    due_open: String,
    kept: String,
    broken: String,
    kept_rate: String,
    chart: Chart,
}

#[derive(Serialize)]
struct BrokenView {
    account_id: String,
    explain: String,
    name: String,
    amount: String,
    currency: String,
    due_on: String,
    resolved_at: String,
}

#[derive(Serialize)]
struct OverviewView {
    funnel: Funnel,
    roll: RollView,
    collected: Collected,
    promises: Promises,
    broken: Vec<BrokenView>,
    broken_csv: String,
}

/// Where a stage sorts in the funnel (see [`stage_rank`]).
type StageKey = (u8, (u8, i64, String));

/// One funnel line while it is summed: its label, accounts and balance per currency.
type StageSum<'a> = (String, u64, BTreeMap<&'a str, Money>);

/// The stages in the order "worse" means (`current` first), then any the strategies no longer
/// define, then accounts in no stage.
fn stage_rank(order: &StageOrder, stage: Option<&str>) -> StageKey {
    match stage {
        Some(stage) => (0, order.rank(stage)),
        None => (1, (0, 0, String::new())),
    }
}

fn to_f64(amount: Money) -> Option<f64> {
    amount.to_f64()
}

fn funnel_view(data: &OverviewData, params: &Params, order: &StageOrder) -> Result<Funnel, BadParameter> {
    let products: BTreeSet<&str> = data.funnel.iter().map(|row| row.product.as_str()).collect();
    let product = params.get("product");
    if let Some(product) = product
        && !products.contains(product)
    {
        let known: Vec<&str> = products.iter().copied().collect();
        return Err(BadParameter::new(
            "product",
            format!("no account of product `{product}` (the book has: {})", known.join(", ")),
        ));
    }
    let rows: Vec<&StageBalance> = data.funnel.iter().filter(|row| product.is_none_or(|p| row.product == p)).collect();
    let currencies: Vec<String> =
        rows.iter().map(|row| row.currency.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut by_stage: BTreeMap<StageKey, StageSum> = BTreeMap::new();
    for row in &rows {
        let key = stage_rank(order, row.stage.as_deref());
        let label = row.stage.clone().unwrap_or_else(|| NO_STAGE.to_string());
        let entry = by_stage.entry(key).or_insert_with(|| (label, 0, BTreeMap::new()));
        entry.1 += row.accounts;
        *entry.2.entry(row.currency.as_str()).or_default() += row.balance;
    }
    let mut total_accounts = 0;
    let mut total_balance: BTreeMap<&str, Money> = BTreeMap::new();
    let mut views = Vec::new();
    for (label, accounts, balances) in by_stage.values() {
        total_accounts += accounts;
        for (currency, amount) in balances {
            *total_balance.entry(currency).or_default() += *amount;
        }
        views.push(FunnelRow {
            stage: label.clone(),
            accounts: render::count(*accounts),
            balances: currencies
                .iter()
                .map(|currency| balances.get(currency.as_str()).map_or_else(|| "–".to_string(), |m| render::money(*m)))
                .collect(),
        });
    }
    let staged: Vec<&StageSum> = by_stage.iter().filter(|(key, _)| key.0 == 0).map(|(_, row)| row).collect();
    let labels: Vec<String> = staged.iter().map(|row| row.0.clone()).collect();
    let mut charts = vec![Chart::new(
        "funnel-accounts",
        "Accounts by stage now",
        &ChartSpec {
            kind: "bar",
            labels: labels.clone(),
            series: vec![Series {
                label: "accounts".into(),
                data: staged.iter().map(|row| Some(row.1 as f64)).collect(),
                kind: "bar",
                axis: "y",
            }],
            horizontal: true,
            y_title: String::new(),
            y2_title: String::new(),
            percent: false,
        },
    )];
    for currency in &currencies {
        charts.push(Chart::new(
            render::chart_id("funnel-balance", currency),
            format!("Balance by stage now, {currency}"),
            &ChartSpec {
                kind: "bar",
                labels: labels.clone(),
                series: vec![Series {
                    label: currency.clone(),
                    data: staged.iter().map(|row| row.2.get(currency.as_str()).copied().and_then(to_f64)).collect(),
                    kind: "bar",
                    axis: "y",
                }],
                horizontal: true,
                y_title: String::new(),
                y2_title: String::new(),
                percent: false,
            },
        ));
    }
    Ok(Funnel {
        csv: query::link("/dashboard/data/funnel.csv", &[("product", product.unwrap_or(""))]),
        product: product.unwrap_or("").to_string(),
        products: products
            .iter()
            .map(|name| ProductOption { name: name.to_string(), selected: Some(*name) == product })
            .collect(),
        total_accounts: render::count(total_accounts),
        total_balances: currencies
            .iter()
            .map(|currency| total_balance.get(currency.as_str()).map_or_else(|| "–".into(), |m| render::money(*m)))
            .collect(),
        currencies,
        rows: views,
        charts,
    })
}

fn roll_row(row: &RollRow, states: &[String], params: &Params) -> RollRowView {
    let to = params.to.as_deref().unwrap_or("");
    RollRowView {
        from: row.from.clone(),
        accounts: render::count(row.accounts),
        cells: states
            .iter()
            .map(|state| match row.cells.iter().find(|cell| &cell.to == state) {
                Some(cell) => CellView {
                    text: format!("{} ({})", render::count(cell.accounts), render::percent(Some(cell.share))),
                    href: query::link("/dashboard/roll", &[("from_state", &row.from), ("to_state", state), ("to", to)]),
                },
                None => CellView { text: "·".into(), href: String::new() },
            })
            .collect(),
        roll_rate: render::percent(row.roll_rate),
        cure_rate: render::percent(row.cure_rate),
        balance_roll: row
            .balance_roll_rate
            .iter()
            .map(|amount| Amount { currency: amount.currency.clone(), amount: render::percent(amount.share) })
            .collect(),
    }
}

fn roll_view(roll: &RollMatrix, period: Period, params: &Params) -> RollView {
    let mut rows: Vec<RollRowView> = roll.rows.iter().map(|row| roll_row(row, &roll.states, params)).collect();
    rows.extend(roll.entered.iter().map(|row| roll_row(row, &roll.states, params)));
    RollView { kpis: kpis_link(period, "stage"), states: roll.states.clone(), empty: rows.is_empty(), rows }
}

fn collected_view(data: &OverviewData, zone: Tz) -> Collected {
    let (from, to) = period_pairs(data.period);
    let (first, last) = days_of(data.period, zone);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|day| *day <= last).collect();
    let currencies: BTreeSet<&str> = data.collected.keys().map(|(_, currency)| currency.as_str()).collect();
    let mut totals = Vec::new();
    let mut charts = Vec::new();
    for currency in currencies {
        let (mut payments, mut sum) = (0u64, Money::ZERO);
        let values: Vec<Option<f64>> = days
            .iter()
            .map(|day| match data.collected.get(&(*day, currency.to_string())) {
                Some((count, amount)) => {
                    payments += count;
                    sum += *amount;
                    to_f64(*amount)
                }
                None => Some(0.0),
            })
            .collect();
        totals.push(CurrencyTotal {
            currency: currency.to_string(),
            collected: render::money(sum),
            payments: payments_text(payments),
        });
        charts.push(Chart::new(
            render::chart_id("collected", currency),
            format!("Collected per day, {currency}"),
            &ChartSpec {
                kind: "bar",
                labels: days.iter().map(|day| day.format("%m-%d").to_string()).collect(),
                series: vec![Series { label: currency.to_string(), data: values, kind: "bar", axis: "y" }],
                horizontal: false,
                y_title: currency.to_string(),
                y2_title: String::new(),
                percent: false,
            },
        ));
    }
    Collected {
        csv: query::link("/dashboard/data/collected.csv", &[("from", &from), ("to", &to)]),
        kpis: kpis_link(data.period, "stage"),
        totals,
        charts,
    }
}

fn promises_view(data: &OverviewData) -> Promises {
    let total = &data.report.total;
    let (from, to) = period_pairs(data.period);
    let values = [total.promises_made, data.due.due, total.promises_kept, total.promises_broken];
    Promises {
        kpis: kpis_link(data.period, "stage"),
        csv: query::link("/dashboard/data/promises_due.csv", &[("from", &from), ("to", &to)]),
        made: render::count(total.promises_made),
        due: render::count(data.due.due),
        due_kept: render::count(data.due.kept),
        due_broken: render::count(data.due.broken),
        due_open: render::count(data.due.open),
        kept: render::count(total.promises_kept),
        broken: render::count(total.promises_broken),
        kept_rate: render::percent(total.kept_rate),
        chart: Chart::new(
            "promises",
            "Promises in the period",
            &ChartSpec {
                kind: "bar",
                labels: vec!["made".into(), "falling due".into(), "kept".into(), "broken".into()],
                series: vec![Series {
                    label: "promises".into(),
                    data: values.iter().map(|value| Some(*value as f64)).collect(),
                    kind: "bar",
                    axis: "y",
                }],
                horizontal: false,
                y_title: String::new(),
                y2_title: String::new(),
                percent: false,
            },
        ),
    }
}

/// `/v1/accounts/{id}/explain` of an account (the id percent-encoded as a path segment).
pub(super) fn explain_link(account_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(account_id.as_bytes()).collect();
    format!("/v1/accounts/{}/explain", encoded.replace('+', "%20"))
}

fn view(data: &OverviewData, params: &Params, zone: Tz, order: &StageOrder) -> Result<OverviewView, BadParameter> {
    let (from, to) = period_pairs(data.period);
    Ok(OverviewView {
        funnel: funnel_view(data, params, order)?,
        roll: roll_view(&data.report.roll, data.period, params),
        collected: collected_view(data, zone),
        promises: promises_view(data),
        broken: data
            .broken
            .iter()
            .map(|promise| BrokenView {
                explain: explain_link(&promise.account_id),
                account_id: promise.account_id.clone(),
                name: promise.borrower_name.clone(),
                amount: render::money(promise.amount),
                currency: promise.currency.clone(),
                due_on: promise.due_on.to_string(),
                resolved_at: render::local_time(promise.resolved_at, zone),
            })
            .collect(),
        broken_csv: query::link("/dashboard/data/broken_promises.csv", &[("from", &from), ("to", &to)]),
    })
}

/// `GET /dashboard`: the overview (`from`, `to`, `product`).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "overview"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &["product"])?;
    let (cached, zone) = data(state, &params).await?;
    let data = &*cached.value;
    let order = StageOrder::of(&state.strategies.current());
    let view = view(data, &params, zone, &order)?;
    let mut chrome = viewer.chrome("overview", "Overview", &params.period_query());
    chrome.period = Some(period_view(&params, data.period, zone, "/dashboard"));
    chrome.as_of = Some(render::as_of(cached.as_of.min(data.input_as_of), zone));
    Ok(render::page(StatusCode::OK, "overview", &view, &chrome))
}

/// The overview's CSV files (`funnel`, `collected`, `promises_due`, `broken_promises`), from
/// the same cached aggregates as the page.
pub(super) async fn csv(state: &AppState, params: &Params, file: &str) -> Result<Option<String>, PageError> {
    let (cached, zone) = data(state, params).await?;
    let data = &*cached.value;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, row: &[String]| out.write_record(row).ok();
    match file {
        "funnel" => {
            let product = params.get("product");
            write(&mut out, &["product", "stage", "currency", "accounts", "balance"].map(String::from));
            for row in data.funnel.iter().filter(|row| product.is_none_or(|p| row.product == p)) {
                write(
                    &mut out,
                    &[
                        row.product.clone(),
                        row.stage.clone().unwrap_or_default(),
                        row.currency.clone(),
                        row.accounts.to_string(),
                        row.balance.to_string(),
                    ],
                );
            }
        }
        "collected" => {
            write(&mut out, &["day", "currency", "payments", "collected"].map(String::from));
            for ((day, currency), (payments, amount)) in &data.collected {
                write(&mut out, &[day.to_string(), currency.clone(), payments.to_string(), amount.to_string()]);
            }
        }
        "promises_due" => {
            let (first, last) = days_of(data.period, zone);
            write(&mut out, &["first_day", "last_day", "due", "kept", "broken", "open"].map(String::from));
            let due = data.due;
            write(
                &mut out,
                &[
                    first.to_string(),
                    last.to_string(),
                    due.due.to_string(),
                    due.kept.to_string(),
                    due.broken.to_string(),
                    due.open.to_string(),
                ],
            );
        }
        "broken_promises" => {
            write(
                &mut out,
                &["account_id", "borrower_name", "amount", "currency", "due_on", "resolved_at"].map(String::from),
            );
            for promise in &data.broken {
                write(
                    &mut out,
                    &[
                        promise.account_id.clone(),
                        promise.borrower_name.clone(),
                        promise.amount.to_string(),
                        promise.currency.clone(),
                        promise.due_on.to_string(),
                        promise.resolved_at.to_rfc3339(),
                    ],
                );
            }
        }
        _ => return Ok(None),
    }
    Ok(out.into_inner().ok().and_then(|bytes| String::from_utf8(bytes).ok()))
}

/// The roll matrices of the [`TREND_WEEKS`] weeks that end at `to`, oldest first: one
/// `ops::report::rolls` over the book for all of them.
async fn weekly_rolls(
    state: &AppState,
    params: &Params,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<(Period, RollMatrix)>, PageError> {
    let end = params.period(zone, now)?.to;
    let order = StageOrder::of(&state.strategies.current());
    let periods: Vec<Period> = (0..TREND_WEEKS)
        .rev()
        .map(|back| {
            let to = end - Duration::days(7 * back);
            Period { from: to - Duration::days(7), to }
        })
        .collect();
    let rolls = crate::ops::report::rolls(&state.db, &periods, &order, zone, &crate::report::FunderScope::All).await?;
    Ok(periods.into_iter().zip(rolls).collect())
}

/// The weekly roll matrices behind every cell's trend, from the cache (keyed by `to` only:
/// one computation serves every cell).
pub(super) async fn trend_data(
    state: &AppState,
    params: &Params,
) -> Result<(Cached<Vec<(Period, RollMatrix)>>, Tz), PageError> {
    cached_page!(
        state,
        params,
        Params { from: None, to: params.to.clone(), others: BTreeMap::new() }.cache_key("roll-trend"),
        weekly_rolls
    )
}

#[derive(Serialize)]
struct TrendWeek {
    week: String,
    row_accounts: String,
    accounts: String,
    share: String,
    kpis: String,
}

#[derive(Serialize)]
struct TrendView {
    from_state: String,
    to_state: String,
    weeks: Vec<TrendWeek>,
    chart: Chart,
    back: String,
}

/// `GET /dashboard/roll?from_state=&to_state=` (and `to`): the share of one roll-matrix cell in
/// each of the last 8 weeks ending at `to` (default now), with each week's report behind it.
pub async fn roll_trend(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_trend(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "overview"),
    }
}

async fn render_trend(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &["from_state", "to_state"])?;
    let from_state = params
        .get("from_state")
        .ok_or_else(|| BadParameter::new("from_state", "required: the cell's row"))?
        .to_string();
    let to_state =
        params.get("to_state").ok_or_else(|| BadParameter::new("to_state", "required: the cell's column"))?.to_string();
    let (cached, zone) = trend_data(state, &params).await?;
    let period = params.period(zone, state.clock.now())?;
    let mut weeks = Vec::new();
    let mut shares = Vec::new();
    let mut labels = Vec::new();
    for (week, roll) in cached.value.iter() {
        let row = if from_state == "(entered)" {
            roll.entered.as_ref()
        } else {
            roll.rows.iter().find(|row| row.from == from_state)
        };
        let cell = row.and_then(|row| row.cells.iter().find(|cell| cell.to == to_state));
        let share = row.map(|row| if row.accounts > 0 { cell.map_or(0.0, |cell| cell.share) } else { 0.0 });
        labels.push(week.to.with_timezone(&zone).format("%m-%d").to_string());
        shares.push(share);
        weeks.push(TrendWeek {
            week: format!("{} – {}", render::local_time(week.from, zone), render::local_time(week.to, zone)),
            row_accounts: row.map_or_else(|| "0".into(), |row| render::count(row.accounts)),
            accounts: render::count(cell.map_or(0, |cell| cell.accounts)),
            share: render::percent(share),
            kpis: kpis_link(*week, "stage"),
        });
    }
    let view = TrendView {
        chart: Chart::new(
            "roll-trend",
            format!("{from_state} → {to_state}, share of the row, by week"),
            &ChartSpec {
                kind: "line",
                labels,
                series: vec![Series {
                    label: format!("{from_state} → {to_state}"),
                    data: shares,
                    kind: "line",
                    axis: "y",
                }],
                horizontal: false,
                y_title: "share of the row".into(),
                y2_title: String::new(),
                percent: true,
            },
        ),
        back: if params.period_query().is_empty() {
            "/dashboard".into()
        } else {
            format!("/dashboard?{}", params.period_query())
        },
        from_state,
        to_state,
        weeks,
    };
    let mut chrome = viewer.chrome("overview", "Roll trend", &params.period_query());
    let span = Period { from: period.to - Duration::days(7 * TREND_WEEKS), to: period.to };
    chrome.period = Some(period_view(&params, span, zone, "/dashboard/roll"));
    chrome.as_of = Some(render::as_of(cached.as_of, zone));
    Ok(render::page(StatusCode::OK, "roll", &view, &chrome))
}
