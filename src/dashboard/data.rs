//! `GET /dashboard/data/{file}.csv`: the rows behind the dashboard's numbers that the KPI API
//! does not serve (the funnel, collected per day, promises falling due, broken promises,
//! contact curves, task hours, queues, agents, outbox, dead letters, plan runs), as CSV, from
//! the same cached aggregates as the pages — so a file always agrees with the page that links
//! to it. Same access and filters as the pages; money is written exact.

use super::auth::Viewer;
use super::query::{BadParameter, Params};
use super::{PageError, operations, overview, timing};
use crate::http::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Which page's aggregates a file comes from, and the parameters it takes besides the period.
fn source(file: &str) -> Option<(&'static str, &'static [&'static str])> {
    match file {
        "funnel" => Some(("overview", &["product"])),
        "collected" | "promises_due" | "broken_promises" => Some(("overview", &[])),
        "contact_curves" | "task_hours" => Some(("timing", &[])),
        "queues" | "agents" | "outbox" | "dead_letters" | "plan_runs" => Some(("operations", &[])),
        _ => None,
    }
}

/// `GET /dashboard/data/{file}`: one CSV file (`text/csv`, UTF-8, a header row).
pub async fn file(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let name = file.strip_suffix(".csv").unwrap_or("");
    let Some((page, allowed)) = source(name) else {
        let error = BadParameter::new("file", format!("no data file `{file}`"));
        let mut response = PageError::Bad(error).response(&viewer, "");
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let params = match Params::parse(raw.as_deref(), allowed) {
        Ok(params) => params,
        Err(error) => return PageError::Bad(error).response(&viewer, page),
    };
    let text = match page {
        "overview" => overview::csv(&state, &params, name).await,
        "timing" => timing::csv(&state, &params, name).await,
        _ => operations::csv(&state, &params, name).await,
    };
    match text {
        Ok(Some(text)) => {
            let mut response = text.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{name}.csv\"")) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => error.response(&viewer, page),
    }
}
