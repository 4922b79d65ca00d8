//! The experiments page (`/dashboard/experiments`): one card per experiment reading
//! (`ops::experiments::read_all`, the same readings as `arrears experiments` and
//! `GET /v1/experiments`) — the summary in plain words, the sample-ratio check, each arm's
//! entered and matured accounts with every metric's estimate and 95 % interval, each
//! comparison's verdict and explanation, and a chart of the cure rate by arm with its interval.
//! Read through the cache like the other pages. This module formats; it computes no statistic
//! and reads no experiment table itself.

use super::auth::Viewer;
use super::cache::Cached;
use super::query::Params;
use super::render::{self, Chart, ChartSpec, Series};
use super::{PageError, period_view};
use crate::experiment::ExperimentReading;
use crate::experiment::reading::Role;
use crate::experiment::stats::{SrmStatus, Verdict};
use crate::http::AppState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// The experiments' readings as of `now` (they do not depend on the period).
async fn readings(
    state: &AppState,
    _: &Params,
    _: Tz,
    now: DateTime<Utc>,
) -> Result<Vec<ExperimentReading>, PageError> {
    let strategies = state.strategies.current();
    crate::ops::experiments::read_all(&state.db, &strategies, now).await.map_err(PageError::from)
}

/// The readings from the cache (one entry: they are the same for every period).
pub(super) async fn data(state: &AppState, params: &Params) -> Result<(Cached<Vec<ExperimentReading>>, Tz), PageError> {
    cached_page!(state, params, Params::default().cache_key("experiments"), readings)
}

#[derive(Serialize)]
struct ArmView {
    name: String,
    role: &'static str,
    weight: u32,
    entered: u64,
    matured: u64,
    estimates: Vec<String>,
}

#[derive(Serialize)]
struct VerdictView {
    metric: String,
    verdict: &'static str,
    class: &'static str,
    explanation: String,
}

#[derive(Serialize)]
struct ComparisonView {
    title: String,
    verdicts: Vec<VerdictView>,
}

#[derive(Serialize)]
struct ReadingView {
    name: String,
    strategy: String,
    stage: String,
    horizon_days: u32,
    running: bool,
    summary: String,
    srm: String,
    srm_class: &'static str,
    metrics: Vec<String>,
    arms: Vec<ArmView>,
    comparisons: Vec<ComparisonView>,
    json: String,
    chart: Option<Chart>,
}

#[derive(Serialize)]
struct ExperimentsView {
    readings: Vec<ReadingView>,
    empty: bool,
}

fn role(role: Role) -> &'static str {
    match role {
        Role::Champion => "champion",
        Role::Challenger => "challenger",
        Role::Holdout => "holdout",
        Role::Retired => "retired",
    }
}

fn verdict(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::KeepRunning => ("keep running", "neutral"),
        Verdict::ChallengerBetter => ("better", "good"),
        Verdict::ChallengerWorse => ("worse", "bad"),
        Verdict::NoDifference => ("no difference", "neutral"),
    }
}

fn reading_view(index: usize, reading: &ExperimentReading) -> ReadingView {
    let metrics: Vec<String> = reading
        .arms
        .first()
        .map(|arm| arm.metrics.iter().map(|metric| metric.label.clone()).collect())
        .unwrap_or_default();
    let rate = |code: &str| code == "cured" || code == "right_party_contact";
    let arms = reading
        .arms
        .iter()
        .map(|arm| ArmView {
            name: arm.name.clone(),
            role: role(arm.role),
            weight: arm.weight,
            entered: arm.entered,
            matured: arm.matured,
            estimates: arm
                .metrics
                .iter()
                .map(|metric| match metric.estimate {
                    Some(e) if rate(&metric.metric) => {
                        format!("{:.1}% [{:.1}, {:.1}]", e.mean * 100.0, e.low * 100.0, e.high * 100.0)
                    }
                    Some(e) => format!("{:.2} [{:.2}, {:.2}]", e.mean, e.low, e.high),
                    None => "–".into(),
                })
                .collect(),
        })
        .collect();
    let comparisons = reading
        .comparisons
        .iter()
        .map(|comparison| ComparisonView {
            title: format!("{} vs {}", comparison.arm, comparison.baseline),
            verdicts: comparison
                .metrics
                .iter()
                .map(|metric| {
                    let (verdict, class) = verdict(metric.decision.verdict);
                    VerdictView {
                        metric: metric.label.clone(),
                        verdict,
                        class,
                        explanation: metric.explanation.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    let (srm, srm_class) = match &reading.srm {
        Some(srm) => {
            let (word, class) = match srm.status {
                SrmStatus::Ok => ("ok", "good"),
                SrmStatus::Warn => ("warning (p < 0.01)", "neutral"),
                SrmStatus::Alarm => ("ALARM (p < 0.001): do not trust the comparisons", "bad"),
            };
            (format!("{word}: chi-squared {:.2}, p = {:.4}", srm.chi_squared, srm.p_value), class)
        }
        None => ("not checked (no entries yet, or the design is gone)".into(), "neutral"),
    };
    let cured = |arm: &crate::experiment::reading::ArmReading| {
        arm.metrics.iter().find(|metric| metric.metric == "cured").and_then(|metric| metric.estimate)
    };
    let chart = reading.arms.iter().any(|arm| cured(arm).is_some()).then(|| {
        let series = |label: &str, pick: fn(&crate::experiment::stats::Estimate) -> f64, kind: &'static str| Series {
            label: label.into(),
            data: reading.arms.iter().map(|arm| cured(arm).map(|e| pick(&e))).collect(),
            kind,
            axis: "y",
        };
        Chart::new(
            render::chart_id("experiment", &format!("{index}-cured")),
            format!("{}: cure rate within {} days by arm, with its 95 % interval", reading.name, reading.horizon_days),
            &ChartSpec {
                kind: "bar",
                labels: reading.arms.iter().map(|arm| arm.name.clone()).collect(),
                series: vec![
                    series("cure rate", |e| e.mean, "bar"),
                    series("interval low", |e| e.low, "line"),
                    series("interval high", |e| e.high, "line"),
                ],
                horizontal: false,
                y_title: "cure rate".into(),
                y2_title: String::new(),
                percent: true,
            },
        )
    });
    ReadingView {
        name: reading.name.clone(),
        strategy: reading.strategy.clone(),
        stage: reading.stage.clone(),
        horizon_days: reading.horizon_days,
        running: reading.running,
        summary: reading.summary.clone(),
        srm,
        srm_class,
        metrics,
        arms,
        comparisons,
        json: format!("/v1/experiments/{}", reading.name),
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
    let (cached, zone) = data(state, &params).await?;
    let period = params.period(zone, state.clock.now())?;
    let readings = &*cached.value;
    let view = ExperimentsView {
        empty: readings.is_empty(),
        readings: readings.iter().enumerate().map(|(index, reading)| reading_view(index, reading)).collect(),
    };
    let mut chrome = viewer.chrome("experiments", "Experiments", &params.period_query());
    chrome.period = Some(period_view(&params, period, zone, "/dashboard/experiments"));
    chrome.as_of = Some(render::as_of(cached.as_of, zone));
    Ok(render::page(StatusCode::OK, "experiments", &view, &chrome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::reading::{Design, EntryRow, Outcomes, read};

    #[test]
    fn a_reading_shows_its_arms_verdicts_and_sample_ratio() {
        let design = Design {
            name: "m1-test".into(),
            strategy: "s".into(),
            stage: "M1".into(),
            arms: vec![("champion".into(), 50), ("challenger".into(), 50)],
            holdout: None,
            horizon_days: 3,
        };
        let at: chrono::DateTime<chrono::Utc> = "2026-11-01T06:00:00Z".parse().unwrap();
        let entries: Vec<EntryRow> = (0..20)
            .map(|index| EntryRow {
                account_id: format!("A{index}"),
                borrower_id: format!("B{index}"),
                arm: if index % 2 == 0 { "champion".into() } else { "challenger".into() },
                entered_at: at,
                dpd: 10,
                balance: "100".parse().unwrap(),
                currency: "USD".into(),
            })
            .collect();
        let mut outcomes = Outcomes::default();
        outcomes.cures.insert("A1".into(), vec![at + chrono::Duration::hours(5)]);
        let reading = read(&design, &entries, &outcomes, at + chrono::Duration::days(5));
        let view = reading_view(0, &reading);
        assert_eq!(view.arms.len(), 2);
        assert_eq!((view.arms[1].entered, view.arms[1].matured), (10, 10));
        assert_eq!(view.arms[1].estimates[0].split(' ').next(), Some("10.0%"));
        assert!(view.srm.starts_with("ok:"), "{}", view.srm);
        assert_eq!(view.comparisons[0].title, "challenger vs champion");
        assert!(view.chart.is_some());
        assert_eq!(view.json, "/v1/experiments/m1-test");
    }
}
