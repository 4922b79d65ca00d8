//! `POST /v1/events` (risk events from the lender's monitoring), `GET /v1/cases` and
//! `POST /v1/cases/{id}/close` (the team's cases and their dispositions). Thin: checking,
//! reactions and cases are `ops::events`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::domain::CaseState;
use crate::ops::events::{self, CaseView, CloseError, EventIn, EventsError, EventsReport};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_events)).routes(routes!(get_cases)).routes(routes!(close_case))
}

impl From<EventsError> for ApiError {
    fn from(error: EventsError) -> Self {
        match error {
            EventsError::Invalid(details) => ApiError::validation(
                format!("{} problem(s) in the request; nothing was written", details.len()),
                details,
            ),
            EventsError::Conflict(details) => {
                ApiError::conflict("event ids already name other events; nothing was written", details)
            }
            EventsError::Store(error) => ApiError::store(error),
        }
    }
}

impl From<CloseError> for ApiError {
    fn from(error: CloseError) -> Self {
        match error {
            CloseError::NotFound(id) => ApiError::not_found(format!("no case {id}")),
            CloseError::Invalid(field, message) => {
                ApiError::validation(format!("{field}: {message}"), vec![format!("{field}: {message}")])
            }
            closed @ CloseError::Closed(..) => ApiError::conflict(closed.to_string(), Vec::new()),
            CloseError::Store(error) => ApiError::store(error),
        }
    }
}

/// Records risk events and applies the reactions of the accounts' strategies. An event id
/// already recorded with the same content is a duplicate and does nothing again; with other
/// content it is a conflict. An event names one account (`account_id`) or a borrower
/// (`borrower_id`: every account of theirs). The batch is written in one transaction or not
/// at all.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    security(("bearer" = [])),
    request_body = Vec<EventIn>,
    responses(
        (status = 200, description = "Recorded; the reactions that acted", body = EventsReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an ingest or admin token", body = ErrorBody),
        (status = 409, description = "An event id already names another event; nothing was written", body = ErrorBody),
        (status = 422, description = "Invalid events, each named `[i].field`; nothing was written", body = ErrorBody),
    )
)]
async fn post_events(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(items): ApiJson<Vec<EventIn>>,
) -> Result<Json<EventsReport>, ApiError> {
    principal.require(&[Role::Ingest])?;
    let now = state.clock.now();
    let mut checked = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match events::check_event(item, now) {
            Ok(event) => checked.push(event),
            Err(found) => problems.extend(found.into_iter().map(|(field, value, message)| match value {
                Some(value) => format!("[{index}].{field}: {value:?} {message}"),
                None => format!("[{index}].{field}: {message}"),
            })),
        }
    }
    if !problems.is_empty() {
        return Err(EventsError::Invalid(problems).into());
    }
    let labels: Vec<String> = (0..checked.len()).map(|index| format!("[{index}]")).collect();
    let strategies = state.strategies.current();
    Ok(Json(events::apply_events(&state.db, &strategies, &checked, &labels, now, &principal.actor()).await?))
}

/// The cases of a queue (or every queue), oldest deadline first; `state=open` (default),
/// `closed` or `all`. An open case past its deadline is `overdue`.
#[utoipa::path(
    get,
    path = "/v1/cases",
    tag = "work",
    security(("bearer" = [])),
    params(
        ("queue" = Option<String>, Query, description = "The team's queue; default every queue"),
        ("state" = Option<String>, Query, description = "open (default), closed or all"),
    ),
    responses(
        (status = 200, description = "The cases", body = Vec<CaseView>),
        (status = 400, description = "A query parameter is invalid or unknown", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an agent, manager or admin token", body = ErrorBody),
    )
)]
async fn get_cases(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    principal.require(&[Role::Agent, Role::Manager])?;
    let (mut queue, mut case_state) = (None, Some(CaseState::Open));
    for (key, value) in super::accounts::url_pairs(query.as_deref().unwrap_or("")) {
        match key.as_str() {
            "queue" => queue = Some(value),
            "state" if value == "all" => case_state = None,
            "state" => {
                case_state = Some(value.parse().map_err(|error: crate::domain::ParseCodeError| {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", format!("state: {error} (or all)"))
                })?)
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("{other}: unknown query parameter (expected queue, state)"),
                ));
            }
        }
    }
    Ok(Json(events::list_cases(&state.db, queue.as_deref(), case_state, state.clock.now()).await?))
}

/// How a case is closed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseCase {
    /// `confirmed`, `false_alarm`, `resolved` or `escalated` (required).
    #[serde(default)]
    pub disposition: Option<String>,
    /// What the team found.
    #[serde(default)]
    pub note: Option<String>,
}

/// Closes a case with the team's disposition — required: it is the feedback that measures the
/// reaction (`arrears report --reactions`). A case closed after its deadline missed its SLA.
#[utoipa::path(
    post,
    path = "/v1/cases/{id}/close",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Case id")),
    request_body = CloseCase,
    responses(
        (status = 200, description = "Closed", body = CaseView),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an agent or admin token", body = ErrorBody),
        (status = 404, description = "No such case", body = ErrorBody),
        (status = 409, description = "Already closed", body = ErrorBody),
        (status = 422, description = "No or an unknown disposition", body = ErrorBody),
    )
)]
async fn close_case(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CloseCase>,
) -> Result<Json<CaseView>, ApiError> {
    principal.require(&[Role::Agent])?;
    let agent = principal.agent_id.clone().unwrap_or_else(|| format!("admin-{}", principal.token_id));
    let closed =
        events::close_case(&state.db, id, &agent, body.disposition.as_deref(), body.note.as_deref(), state.clock.now())
            .await?;
    Ok(Json(closed))
}
