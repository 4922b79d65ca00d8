//! The operations page (`/dashboard/operations`): the open human tasks of each queue against
//! its capacity (`[queues.<name>]`), agents' productivity in the period (attempts, right-party
//! contacts and promises per hour of activity), the webhook outbox (pending, retrying, dead
//! letters), the last plan runs, and the strategy reloads this server refused. Reads through
//! the cache (the refusals are read live from the running set); changes nothing — replaying
//! dead letters and reloading stay with admins on the API.

use super::auth::Viewer;
use super::cache::Cached;
use super::query::{self, Params};
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, period_pairs, period_view};
use crate::domain::{Outcome, TaskState};
use crate::http::AppState;
use crate::report::Period;
use crate::store::dashboard::{self as reads, AgentHour, DeadLetter, OutboxCount};
use crate::store::{self, TaskCount};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Plan runs listed.
const PLAN_RUNS: u64 = 10;
/// Dead letters listed.
const DEAD_LETTERS: u64 = 10;
/// Agents drawn in the chart at most (the busiest).
const AGENTS_DRAWN: usize = 20;

/// What the page shows, as read (cached per period).
pub(super) struct OperationsData {
    period: Period,
    queues: Vec<TaskCount>,
    agents: Vec<AgentHour>,
    outbox: Vec<OutboxCount>,
    dead: Vec<DeadLetter>,
    runs: Vec<entity::plan_runs::Model>,
}

async fn compute(state: &AppState, params: &Params, zone: Tz, now: DateTime<Utc>) -> Result<OperationsData, PageError> {
    let period = params.period(zone, now)?;
    let db = &state.db;
    let (queues, agents, outbox, dead, runs) = tokio::try_join!(
        async { store::live_task_counts(db).await.map_err(PageError::from) },
        async { reads::agent_hours(db, period).await.map_err(PageError::from) },
        async { reads::outbox_counts(db).await.map_err(PageError::from) },
        async { reads::latest_dead_letters(db, DEAD_LETTERS).await.map_err(PageError::from) },
        async { reads::latest_plan_runs(db, PLAN_RUNS).await.map_err(PageError::from) },
    )?;
    let queues = queues.into_iter().filter(|count| count.channel == "human").collect();
    Ok(OperationsData { period, queues, agents, outbox, dead, runs })
}

pub(super) async fn data(state: &AppState, params: &Params) -> Result<(Cached<OperationsData>, Tz), PageError> {
    cached_page!(state, params, params.cache_key("operations"), compute)
}

#[derive(Serialize)]
struct QueueRow {
    queue: String,
    planned: String,
    ready: String,
    leased: String,
    open: String,
    capacity: String,
    agents_now: String,
    calls_per_agent_hour: String,
}

/// One agent's work in the period.
#[derive(Default)]
struct AgentTotals {
    attempts: u64,
    rpc: u64,
    promises: u64,
    hours: BTreeSet<DateTime<Utc>>,
}

#[derive(Serialize)]
struct AgentRow {
    agent: String,
    attempts: String,
    rpc: String,
    promises: String,
    hours: String,
    attempts_per_hour: String,
    rpc_per_hour: String,
    promises_per_hour: String,
}

#[derive(Serialize)]
struct OutboxRow {
    endpoint: String,
    pending: String,
    retrying: String,
    dead: String,
    next: String,
}

#[derive(Serialize)]
struct DeadRow {
    id: i64,
    endpoint: String,
    event: String,
    task: String,
    tries: i32,
    status: String,
    error: String,
    created_at: String,
}

#[derive(Serialize)]
struct RunRow {
    id: i64,
    as_of: String,
    started: String,
    duration: String,
    accounts: String,
    tasks: String,
    skips: String,
    top_skips: String,
}

#[derive(Serialize)]
struct Refusal {
    at: String,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct OperationsView {
    queues: Vec<QueueRow>,
    queues_csv: String,
    agents: Vec<AgentRow>,
    agents_csv: String,
    outbox: Vec<OutboxRow>,
    outbox_total: OutboxRow,
    outbox_csv: String,
    dead: Vec<DeadRow>,
    dead_csv: String,
    runs: Vec<RunRow>,
    runs_csv: String,
    refusals: String,
    refusal: Option<Refusal>,
    loaded_at: String,
    admin: bool,
    charts: Vec<Chart>,
}

/// Each queue's open tasks by state, and its capacity: `(queue, planned, ready, leased)`.
fn queue_counts(
    data: &OperationsData,
    capacities: &BTreeMap<String, crate::domain::QueueCapacity>,
) -> Vec<(String, [u64; 3])> {
    let mut by_queue: BTreeMap<String, [u64; 3]> = capacities.keys().map(|name| (name.clone(), [0; 3])).collect();
    for count in &data.queues {
        let entry = by_queue.entry(count.queue.clone().unwrap_or_else(|| "(none)".into())).or_default();
        match count.state.parse::<TaskState>() {
            Ok(TaskState::Planned) => entry[0] += count.count,
            Ok(TaskState::Ready) => entry[1] += count.count,
            Ok(TaskState::Leased) => entry[2] += count.count,
            _ => {}
        }
    }
    by_queue.into_iter().collect()
}

fn agent_totals(data: &OperationsData) -> Vec<(String, AgentTotals)> {
    let mut agents: BTreeMap<String, AgentTotals> = BTreeMap::new();
    for hour in &data.agents {
        let totals = agents.entry(hour.agent.clone()).or_default();
        totals.attempts += hour.attempts;
        let outcome = hour.outcome.parse::<Outcome>().ok();
        if outcome.is_some_and(Outcome::is_right_party) {
            totals.rpc += hour.attempts;
        }
        if outcome == Some(Outcome::Promise) {
            totals.promises += hour.attempts;
        }
        totals.hours.insert(hour.hour);
    }
    let mut agents: Vec<(String, AgentTotals)> = agents.into_iter().collect();
    agents.sort_by(|a, b| b.1.attempts.cmp(&a.1.attempts).then(a.0.cmp(&b.0)));
    agents
}

fn per_hour(count: u64, hours: usize) -> Option<f64> {
    (hours > 0).then(|| count as f64 / hours as f64)
}

fn outbox_rows(data: &OperationsData, zone: Tz) -> (Vec<OutboxRow>, OutboxRow) {
    let mut by_endpoint: BTreeMap<&str, ([u64; 3], Option<DateTime<Utc>>)> = BTreeMap::new();
    let mut total = ([0u64; 3], None::<DateTime<Utc>>);
    for count in &data.outbox {
        let index = match (count.state.as_str(), count.tried) {
            ("pending", false) => 0,
            ("pending", true) => 1,
            _ => 2,
        };
        let entry = by_endpoint.entry(&count.endpoint).or_default();
        entry.0[index] += count.count;
        total.0[index] += count.count;
        if index < 2 {
            for next in [&mut entry.1, &mut total.1] {
                *next = match (*next, count.next_attempt_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    let row = |endpoint: &str, counts: [u64; 3], next: Option<DateTime<Utc>>| OutboxRow {
        endpoint: endpoint.to_string(),
        pending: render::count(counts[0]),
        retrying: render::count(counts[1]),
        dead: render::count(counts[2]),
        next: next.map_or_else(|| "–".into(), |at| render::local_time(at, zone)),
    };
    let rows = by_endpoint.iter().map(|(endpoint, (counts, next))| row(endpoint, *counts, *next)).collect();
    (rows, row("total", total.0, total.1))
}

/// The three most frequent skip reasons of a run's `skip_counts` JSON.
fn top_skips(skip_counts: &str) -> String {
    let counts: BTreeMap<String, u64> = serde_json::from_str(skip_counts).unwrap_or_default();
    let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> =
        counts.iter().take(3).map(|(reason, count)| format!("{reason} {}", render::count(*count))).collect();
    if top.is_empty() { "–".into() } else { top.join(", ") }
}

fn view(data: &OperationsData, state: &AppState, viewer: &Viewer, zone: Tz, now: DateTime<Utc>) -> OperationsView {
    let (from, to) = period_pairs(data.period);
    let strategies = state.strategies.current();
    let capacities = &strategies.capacities;
    let queues = queue_counts(data, capacities);
    let queue_rows: Vec<QueueRow> = queues
        .iter()
        .map(|(queue, [planned, ready, leased])| {
            let capacity = capacities.get(queue);
            QueueRow {
                queue: queue.clone(),
                planned: render::count(*planned),
                ready: render::count(*ready),
                leased: render::count(*leased),
                open: render::count(planned + ready + leased),
                capacity: capacity.map_or_else(|| "not limited".into(), |c| render::count(c.calls_per_day())),
                agents_now: capacity.map_or_else(|| "–".into(), |c| render::count(u64::from(c.agents_at(now)))),
                calls_per_agent_hour: capacity
                    .map_or_else(|| "–".into(), |c| render::number(Some(c.calls_per_agent_hour))),
            }
        })
        .collect();
    let queue_chart = ChartSpec {
        kind: "bar",
        labels: queues.iter().map(|(queue, _)| queue.clone()).collect(),
        series: vec![
            Series {
                label: "open tasks".into(),
                data: queues.iter().map(|(_, counts)| Some(counts.iter().sum::<u64>() as f64)).collect(),
                kind: "bar",
                axis: "y",
            },
            Series {
                label: "calls per day (capacity)".into(),
                data: queues.iter().map(|(queue, _)| capacities.get(queue).map(|c| c.calls_per_day() as f64)).collect(),
                kind: "bar",
                axis: "y",
            },
        ],
        horizontal: false,
        y_title: "tasks".into(),
        y2_title: String::new(),
        percent: false,
    };
    let agents = agent_totals(data);
    let agent_rows = agents
        .iter()
        .map(|(agent, totals)| {
            let hours = totals.hours.len();
            AgentRow {
                agent: agent.clone(),
                attempts: render::count(totals.attempts),
                rpc: render::count(totals.rpc),
                promises: render::count(totals.promises),
                hours: render::count(hours as u64),
                attempts_per_hour: render::number(per_hour(totals.attempts, hours)),
                rpc_per_hour: render::number(per_hour(totals.rpc, hours)),
                promises_per_hour: render::number(per_hour(totals.promises, hours)),
            }
        })
        .collect();
    let drawn: Vec<&(String, AgentTotals)> = agents.iter().take(AGENTS_DRAWN).collect();
    let agent_chart = ChartSpec {
        kind: "bar",
        labels: drawn.iter().map(|(agent, _)| agent.clone()).collect(),
        series: vec![
            Series {
                label: "attempts per active hour".into(),
                data: drawn.iter().map(|(_, t)| per_hour(t.attempts, t.hours.len())).collect(),
                kind: "bar",
                axis: "y",
            },
            Series {
                label: "right-party contacts per active hour".into(),
                data: drawn.iter().map(|(_, t)| per_hour(t.rpc, t.hours.len())).collect(),
                kind: "bar",
                axis: "y",
            },
        ],
        horizontal: false,
        y_title: "per hour".into(),
        y2_title: String::new(),
        percent: false,
    };
    let (outbox, outbox_total) = outbox_rows(data, zone);
    let refusal = state
        .strategies
        .last_refusal()
        .map(|refusal| Refusal { at: render::local_time(refusal.at, zone), errors: refusal.errors });
    OperationsView {
        queues: queue_rows,
        queues_csv: "/dashboard/data/queues.csv".into(),
        agents: agent_rows,
        agents_csv: query::link("/dashboard/data/agents.csv", &[("from", &from), ("to", &to)]),
        outbox,
        outbox_total,
        outbox_csv: "/dashboard/data/outbox.csv".into(),
        dead: data
            .dead
            .iter()
            .map(|letter| DeadRow {
                id: letter.id,
                endpoint: letter.endpoint.clone(),
                event: letter.event.clone(),
                task: letter.task_id.map_or_else(|| "–".into(), |id| id.to_string()),
                tries: letter.tries,
                status: letter.last_status.map_or_else(|| "–".into(), |status| status.to_string()),
                error: letter.last_error.clone().unwrap_or_default(),
                created_at: render::local_time(letter.created_at, zone),
            })
            .collect(),
        dead_csv: "/dashboard/data/dead_letters.csv".into(),
        runs: data
            .runs
            .iter()
            .map(|run| RunRow {
                id: run.id,
                as_of: render::local_time(run.as_of, zone),
                started: render::local_time(run.started_at, zone),
                duration: run.finished_at.map_or_else(
                    || "not finished".into(),
                    |finished| format!("{:.1} s", (finished - run.started_at).num_milliseconds() as f64 / 1000.0),
                ),
                accounts: render::count(u64::try_from(run.accounts).unwrap_or(0)),
                tasks: render::count(u64::try_from(run.tasks).unwrap_or(0)),
                skips: render::count(u64::try_from(run.skips).unwrap_or(0)),
                top_skips: top_skips(&run.skip_counts),
            })
            .collect(),
        runs_csv: "/dashboard/data/plan_runs.csv".into(),
        refusals: render::count(state.strategies.refusals()),
        refusal,
        loaded_at: render::local_time(state.strategies.loaded_at(), zone),
        admin: viewer.principal.role == crate::ops::tokens::Role::Admin,
        charts: vec![
            Chart::new("queues", "Open human tasks and daily capacity by queue", &queue_chart),
            Chart::new("agents", "Agents' attempts and right-party contacts per active hour", &agent_chart),
        ],
    }
}

/// `GET /dashboard/operations`: queues, agents, outbox, plan runs, refused reloads (`from`, `to`).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "operations"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &[])?;
    let (cached, zone) = data(state, &params).await?;
    let data = &*cached.value;
    let view = view(data, state, viewer, zone, state.clock.now());
    let mut chrome = viewer.chrome("operations", "Operations", &params.period_query());
    chrome.period = Some(period_view(&params, data.period, zone, "/dashboard/operations"));
    chrome.as_of = Some(render::as_of(cached.as_of, zone));
    Ok(render::page(StatusCode::OK, "operations", &view, &chrome))
}

/// The page's CSV files (`queues`, `agents`, `outbox`, `dead_letters`, `plan_runs`).
pub(super) async fn csv(state: &AppState, params: &Params, file: &str) -> Result<Option<String>, PageError> {
    let (cached, _) = data(state, params).await?;
    let data = &*cached.value;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |row: &[String]| out.write_record(row).ok();
    match file {
        "queues" => {
            let strategies = state.strategies.current();
            write(&["queue", "planned", "ready", "leased", "calls_per_day"].map(String::from));
            for (queue, [planned, ready, leased]) in queue_counts(data, &strategies.capacities) {
                let capacity =
                    strategies.capacities.get(&queue).map(|c| c.calls_per_day().to_string()).unwrap_or_default();
                write(&[queue, planned.to_string(), ready.to_string(), leased.to_string(), capacity]);
            }
        }
        "agents" => {
            write(&["agent", "attempts", "right_party_contacts", "promises", "active_hours"].map(String::from));
            for (agent, totals) in agent_totals(data) {
                write(&[
                    agent,
                    totals.attempts.to_string(),
                    totals.rpc.to_string(),
                    totals.promises.to_string(),
                    totals.hours.len().to_string(),
                ]);
            }
        }
        "outbox" => {
            write(&["endpoint", "state", "tried", "count", "next_attempt_at"].map(String::from));
            for count in &data.outbox {
                write(&[
                    count.endpoint.clone(),
                    count.state.clone(),
                    count.tried.to_string(),
                    count.count.to_string(),
                    count.next_attempt_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
                ]);
            }
        }
        "dead_letters" => {
            write(
                &["id", "endpoint", "event", "task_id", "tries", "last_status", "last_error", "created_at"]
                    .map(String::from),
            );
            for letter in &data.dead {
                write(&[
                    letter.id.to_string(),
                    letter.endpoint.clone(),
                    letter.event.clone(),
                    letter.task_id.map(|id| id.to_string()).unwrap_or_default(),
                    letter.tries.to_string(),
                    letter.last_status.map(|status| status.to_string()).unwrap_or_default(),
                    letter.last_error.clone().unwrap_or_default(),
                    letter.created_at.to_rfc3339(),
                ]);
            }
        }
        "plan_runs" => {
            write(
                &["id", "as_of", "started_at", "finished_at", "accounts", "tasks", "skips", "skip_counts"]
                    .map(String::from),
            );
            for run in &data.runs {
                write(&[
                    run.id.to_string(),
                    run.as_of.to_rfc3339(),
                    run.started_at.to_rfc3339(),
                    run.finished_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
                    run.accounts.to_string(),
                    run.tasks.to_string(),
                    run.skips.to_string(),
                    run.skip_counts.clone(),
                ]);
            }
        }
        _ => return Ok(None),
    }
    Ok(out.into_inner().ok().and_then(|bytes| String::from_utf8(bytes).ok()))
}
