//! The experiments page (`/dashboard/experiments`): one card per experiment reading, showing
//! whatever generic fields a reading has — `name`, `verdict`, `explanation`, `srm.status`, and
//! `arms[]` with `name`, `accounts` and every metric estimate (`{mean, low, high}`) — or "No
//! experiments are running". The readings come from [`readings`] only; this module computes no
//! statistic and reads no experiment table itself.

use super::auth::Viewer;
use super::query::Params;
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, period_view, portfolio_zone};
use crate::http::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

/// The experiments' readings to show, one JSON object each (the shape of
/// `GET /v1/experiments`). Empty until the experiment reader is wired here
/// (`ops::experiments::read_all`).
pub async fn readings(state: &AppState) -> Vec<Value> {
    let _ = state;
    Vec::new()
}

#[derive(Serialize)]
struct Field {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct ArmView {
    name: String,
    accounts: String,
    estimates: Vec<String>,
}

#[derive(Serialize)]
struct ReadingView {
    name: String,
    verdict: String,
    explanation: String,
    srm: String,
    metrics: Vec<String>,
    arms: Vec<ArmView>,
    fields: Vec<Field>,
    chart: Option<Chart>,
}

#[derive(Serialize)]
struct ExperimentsView {
    readings: Vec<ReadingView>,
    empty: bool,
}

/// A JSON value as short text.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "–".into(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(value) if number.is_f64() => format!("{value:.4}").trim_end_matches('0').trim_end_matches('.').into(),
            _ => number.to_string(),
        },
        Value::Bool(flag) => flag.to_string(),
        other => other.to_string(),
    }
}

/// `{mean, low, high}` as `mean [low, high]`.
fn estimate(value: &Value) -> Option<(String, f64)> {
    let mean = value.get("mean")?;
    let mut shown = text(mean);
    if let (Some(low), Some(high)) = (value.get("low"), value.get("high")) {
        shown = format!("{shown} [{}, {}]", text(low), text(high));
    }
    Some((shown, mean.as_f64().unwrap_or(f64::NAN)))
}

/// The metric estimates of an arm: its fields (and those of a `metrics` object) that are
/// `{mean, ...}` objects, and the entries of a `metrics` array with a `name`.
fn arm_estimates(arm: &Value) -> Vec<(String, String, f64)> {
    let mut found = Vec::new();
    let mut scan = |object: &serde_json::Map<String, Value>| {
        for (key, value) in object {
            if let Some((shown, mean)) = estimate(value) {
                found.push((key.clone(), shown, mean));
            }
        }
    };
    if let Some(object) = arm.as_object() {
        scan(object);
    }
    match arm.get("metrics") {
        Some(Value::Object(object)) => scan(object),
        Some(Value::Array(items)) => {
            for item in items {
                if let (Some(name), Some((shown, mean))) = (item.get("name").and_then(Value::as_str), estimate(item)) {
                    found.push((name.to_string(), shown, mean));
                }
            }
        }
        _ => {}
    }
    found
}

fn reading_view(index: usize, reading: &Value) -> ReadingView {
    let name = reading.get("name").map_or_else(|| format!("experiment {}", index + 1), text);
    let arms: Vec<&Value> =
        reading.get("arms").and_then(Value::as_array).map(|arms| arms.iter().collect()).unwrap_or_default();
    let mut metrics: Vec<String> = Vec::new();
    let estimates: Vec<Vec<(String, String, f64)>> = arms.iter().map(|arm| arm_estimates(arm)).collect();
    for found in &estimates {
        for (metric, _, _) in found {
            if !metrics.contains(metric) {
                metrics.push(metric.clone());
            }
        }
    }
    let arm_views = arms
        .iter()
        .zip(&estimates)
        .enumerate()
        .map(|(position, (arm, found))| ArmView {
            name: arm.get("name").map_or_else(|| format!("arm {}", position + 1), text),
            accounts: arm.get("accounts").map_or_else(|| "–".into(), text),
            estimates: metrics
                .iter()
                .map(|metric| {
                    found
                        .iter()
                        .find(|(name, _, _)| name == metric)
                        .map_or_else(|| "–".into(), |(_, shown, _)| shown.clone())
                })
                .collect(),
        })
        .collect();
    let chart = metrics.first().map(|metric| {
        Chart::new(
            render::chart_id("experiment", &format!("{index}-{metric}")),
            format!("{name}: {metric} by arm"),
            &ChartSpec {
                kind: "bar",
                labels: arms
                    .iter()
                    .enumerate()
                    .map(|(i, arm)| arm.get("name").map_or(format!("arm {}", i + 1), text))
                    .collect(),
                series: vec![Series {
                    label: metric.clone(),
                    data: estimates
                        .iter()
                        .map(|found| {
                            found
                                .iter()
                                .find(|(name, _, _)| name == metric)
                                .map(|(_, _, mean)| *mean)
                                .filter(|v| v.is_finite())
                        })
                        .collect(),
                    kind: "bar",
                    axis: "y",
                }],
                horizontal: false,
                y_title: metric.clone(),
                y2_title: String::new(),
                percent: false,
            },
        )
    });
    let known = ["name", "arms", "verdict", "explanation", "srm"];
    let fields = reading
        .as_object()
        .map(|object| {
            object
                .iter()
                .filter(|(key, value)| !known.contains(&key.as_str()) && !value.is_object() && !value.is_array())
                .map(|(key, value)| Field { name: key.clone(), value: text(value) })
                .collect()
        })
        .unwrap_or_default();
    ReadingView {
        name,
        verdict: reading.get("verdict").map_or_else(String::new, text),
        explanation: reading.get("explanation").map_or_else(String::new, text),
        srm: reading.pointer("/srm/status").map_or_else(String::new, text),
        metrics,
        arms: arm_views,
        fields,
        chart,
    }
}

/// `GET /dashboard/experiments`: the experiments' readings (`from`, `to` are accepted and
/// checked; readings are taken at fixed horizons after each account's entry, not in a period).
pub async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    match render_page(&state, &viewer, raw.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.response(&viewer, "experiments"),
    }
}

async fn render_page(state: &AppState, viewer: &Viewer, raw: Option<&str>) -> Result<Response, PageError> {
    let params = Params::parse(raw, &[])?;
    let zone = portfolio_zone(state)?;
    let now = state.clock.now();
    let period = params.period(zone, now)?;
    let readings = readings(state).await;
    let view = ExperimentsView {
        empty: readings.is_empty(),
        readings: readings.iter().enumerate().map(|(index, reading)| reading_view(index, reading)).collect(),
    };
    let mut chrome = viewer.chrome("experiments", "Experiments", &params.period_query());
    chrome.period = Some(period_view(&params, period, zone, "/dashboard/experiments"));
    chrome.as_of = Some(render::as_of(now, zone));
    Ok(render::page(StatusCode::OK, "experiments", &view, &chrome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_shows_its_generic_fields() {
        let reading = serde_json::json!({
            "name": "m1-robot-vs-human",
            "verdict": "challenger better",
            "explanation": "human-first cures more",
            "srm": {"status": "ok", "p": 0.4},
            "started": "2026-11-01",
            "arms": [
                {"name": "champion", "accounts": 800, "cure_rate": {"mean": 0.1, "low": 0.08, "high": 0.12}},
                {"name": "human-first", "accounts": 200, "metrics": [{"name": "cure_rate", "mean": 0.15, "low": 0.1, "high": 0.2}]}
            ]
        });
        let view = reading_view(0, &reading);
        assert_eq!(
            (view.name.as_str(), view.verdict.as_str(), view.srm.as_str()),
            ("m1-robot-vs-human", "challenger better", "ok")
        );
        assert_eq!(view.metrics, ["cure_rate"]);
        assert_eq!(view.arms[0].estimates, ["0.1 [0.08, 0.12]"]);
        assert_eq!(view.arms[1].estimates, ["0.15 [0.1, 0.2]"]);
        assert_eq!(view.arms[1].accounts, "200");
        assert_eq!(view.fields.len(), 1, "started");
        assert!(view.chart.is_some());
        let bare = reading_view(2, &serde_json::json!({}));
        assert_eq!(bare.name, "experiment 3");
        assert!(bare.arms.is_empty() && bare.chart.is_none());
    }
}
