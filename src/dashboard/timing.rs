//! The contact timing page (`/dashboard/timing`): the latest learned contact model's
//! probability of a right-party contact by local hour, per segment (stage, channel, product),
//! drawn against the local hours at which the period's planned tasks open (a histogram of
//! their `not_before` in each borrower's primary zone); or, before any training, says so. Reads
//! through the cache; fits nothing (that is `crate::learn`) and writes nothing.

use super::auth::Viewer;
use super::cache::Cached;
use super::query::{self, Params};
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, period_pairs, period_view};
use crate::http::AppState;
use crate::learn::SegmentCurve;
use crate::report::Period;
use crate::store::dashboard as reads;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Segments drawn per channel at most (those learned from the most attempts).
const SEGMENTS_DRAWN: usize = 6;

/// The latest model, as the page shows it.
pub(super) struct ModelView {
    version: i64,
    created_at: DateTime<Utc>,
    trained_from: DateTime<Utc>,
    trained_to: DateTime<Utc>,
    attempts: u64,
    curves: Vec<SegmentCurve>,
}

/// What the page shows, as read (cached per period).
pub(super) struct TimingData {
    period: Period,
    model: Option<ModelView>,
    /// Planned tasks by channel and local hour.
    task_hours: BTreeMap<String, [u64; 24]>,
}

async fn compute(state: &AppState, params: &Params, zone: Tz, now: DateTime<Utc>) -> Result<TimingData, PageError> {
    let period = params.period(zone, now)?;
    let (model, hours) =
        tokio::try_join!(async { reads::latest_model_curves(&state.db).await.map_err(PageError::from) }, async {
            reads::planned_task_hours(&state.db, period).await.map_err(PageError::from)
        },)?;
    let mut task_hours: BTreeMap<String, [u64; 24]> = BTreeMap::new();
    for hour in hours {
        task_hours.entry(hour.channel).or_insert([0; 24])[hour.hour.min(23) as usize] += hour.tasks;
    }
    Ok(TimingData {
        period,
        model: model.map(|(version, created_at, curves)| ModelView {
            version,
            created_at,
            trained_from: curves.trained_from,
            trained_to: curves.trained_to,
            attempts: curves.attempts(),
            curves: curves.curves(),
        }),
        task_hours,
    })
}

pub(super) async fn data(state: &AppState, params: &Params) -> Result<(Cached<TimingData>, Tz), PageError> {
    cached_page!(state, params, params.cache_key("timing"), compute)
}

#[derive(Serialize)]
struct SegmentRow {
    stage: String,
    channel: String,
    product: String,
    attempts: String,
    contacts: String,
    rate: String,
    best_hours: String,
}

#[derive(Serialize)]
struct ModelSummary {
    version: i64,
    created_at: String,
    trained: String,
    attempts: String,
}

#[derive(Serialize)]
struct TimingView {
    model: Option<ModelSummary>,
    segments: Vec<SegmentRow>,
    charts: Vec<Chart>,
    no_tasks: bool,
    curves_csv: String,
    hours_csv: String,
}

/// The three best local hours among those with attempts, best first: `10:00 (21.0%)`.
fn best_hours(curve: &SegmentCurve) -> String {
    let mut hours: Vec<_> = curve.hours.iter().filter(|hour| hour.attempts > 0).collect();
    hours.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.hour.cmp(&b.hour)));
    let best: Vec<String> = hours
        .iter()
        .take(3)
        .map(|hour| format!("{:02}:00 ({})", hour.hour, render::percent(Some(hour.rate))))
        .collect();
    if best.is_empty() { "–".into() } else { best.join(", ") }
}

fn view(data: &TimingData, zone: Tz) -> TimingView {
    let (from, to) = period_pairs(data.period);
    let curves: &[SegmentCurve] = data.model.as_ref().map_or(&[], |model| &model.curves);
    let mut channels: BTreeSet<String> = data.task_hours.keys().cloned().collect();
    channels.extend(curves.iter().map(|curve| curve.channel.code().to_string()));
    let labels: Vec<String> = (0..24).map(|hour| format!("{hour:02}")).collect();
    let charts = channels
        .iter()
        .map(|channel| {
            let mut series = Vec::new();
            if let Some(hours) = data.task_hours.get(channel) {
                series.push(Series {
                    label: "planned tasks".into(),
                    data: hours.iter().map(|tasks| Some(*tasks as f64)).collect(),
                    kind: "bar",
                    axis: "y2",
                });
            }
            let mut drawn: Vec<&SegmentCurve> = curves.iter().filter(|curve| curve.channel.code() == channel).collect();
            drawn.sort_by_key(|curve| std::cmp::Reverse(curve.attempts));
            for curve in drawn.into_iter().take(SEGMENTS_DRAWN) {
                series.push(Series {
                    label: format!("{} / {}", curve.stage, curve.product),
                    data: curve.hours.iter().map(|hour| Some(hour.rate)).collect(),
                    kind: "line",
                    axis: "y",
                });
            }
            Chart::new(
                render::chart_id("timing", channel),
                format!("{channel}: P(right-party contact) by local hour, and the hours planned tasks open"),
                &ChartSpec {
                    kind: "bar",
                    labels: labels.clone(),
                    series,
                    horizontal: false,
                    y_title: "P(contact)".into(),
                    y2_title: "planned tasks".into(),
                    percent: true,
                },
            )
        })
        .collect();
    TimingView {
        model: data.model.as_ref().map(|model| ModelSummary {
            version: model.version,
            created_at: render::local_time(model.created_at, zone),
            trained: format!(
                "{} – {}",
                render::local_time(model.trained_from, zone),
                render::local_time(model.trained_to, zone)
            ),
            attempts: render::count(model.attempts),
        }),
        segments: curves
            .iter()
            .map(|curve| SegmentRow {
                stage: curve.stage.clone(),
                channel: curve.channel.code().to_string(),
                product: curve.product.clone(),
                attempts: render::count(curve.attempts),
                contacts: render::count(curve.contacts),
                rate: render::percent(Some(curve.rate)),
                best_hours: best_hours(curve),
            })
            .collect(),
        no_tasks: data.task_hours.is_empty(),
        charts,
        curves_csv: "/dashboard/data/contact_curves.csv".into(),
        hours_csv: query::link("/dashboard/data/task_hours.csv", &[("from", &from), ("to", &to)]),
    }
}

/// `GET /dashboard/timing`: the contact model against the planned hours (`from`, `to`).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "timing"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &[])?;
    let (cached, zone) = data(state, &params).await?;
    let data = &*cached.value;
    let view = view(data, zone);
    let mut chrome = viewer.chrome("timing", "Contact timing", &params.period_query());
    chrome.period = Some(period_view(&params, data.period, zone, "/dashboard/timing"));
    chrome.as_of = Some(render::as_of(cached.as_of, zone));
    Ok(render::page(StatusCode::OK, "timing", &view, &chrome))
}

/// The page's CSV files (`contact_curves`, `task_hours`).
pub(super) async fn csv(state: &AppState, params: &Params, file: &str) -> Result<Option<String>, PageError> {
    let (cached, _) = data(state, params).await?;
    let data = &*cached.value;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |row: &[String]| out.write_record(row).ok();
    match file {
        "contact_curves" => {
            write(&["model_version", "stage", "channel", "product", "hour", "rate", "attempts"].map(String::from));
            if let Some(model) = &data.model {
                for curve in &model.curves {
                    for hour in &curve.hours {
                        write(&[
                            model.version.to_string(),
                            curve.stage.clone(),
                            curve.channel.code().to_string(),
                            curve.product.clone(),
                            hour.hour.to_string(),
                            hour.rate.to_string(),
                            hour.attempts.to_string(),
                        ]);
                    }
                }
            }
        }
        "task_hours" => {
            write(&["channel", "local_hour", "tasks"].map(String::from));
            for (channel, hours) in &data.task_hours {
                for (hour, tasks) in hours.iter().enumerate() {
                    write(&[channel.clone(), hour.to_string(), tasks.to_string()]);
                }
            }
        }
        _ => return Ok(None),
    }
    Ok(out.into_inner().ok().and_then(|bytes| String::from_utf8(bytes).ok()))
}
