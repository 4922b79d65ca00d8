//! Inbound calls: `POST /v1/inbound-calls` (who is calling, and what may happen now),
//! `POST /v1/inbound-calls/{id}/attempts` (what happened on the call) and
//! `POST /v1/inbound-calls/{id}/transfer` (hand the caller to a person). Thin: the work is
//! `ops::work::inbound`, the decisions the contact gate's.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::work::{fallback_policy, rules};
use crate::ops::work::inbound::{
    self, InboundAnswer, InboundAttemptIn, InboundAttemptRecorded, InboundCallIn, TransferIn, Transferred,
};
use axum::Json;
use axum::extract::State;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_call)).routes(routes!(post_attempt)).routes(routes!(post_transfer))
}

/// A borrower calls and the robot answers: records the call and answers who is calling — one
/// borrower, the candidates of a shared number, or nobody (`match`: `single`, `shared`,
/// `unknown`) — with their accounts (amounts, stage, the rule deciding the day and its rendered
/// `inbound_template` script), open promises, open tasks, last attempts and conversations, and
/// per account what the contact gate allows now (`contact_now`: may the call go to a person).
#[utoipa::path(
    post,
    path = "/v1/inbound-calls",
    tag = "work",
    security(("bearer" = [])),
    request_body = InboundCallIn,
    responses(
        (status = 200, description = "The call and its caller", body = InboundAnswer),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not a dialler or admin token", body = ErrorBody),
        (status = 422, description = "`from` (or `to`) is not a phone number", body = ErrorBody),
    )
)]
async fn post_call(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(call): ApiJson<InboundCallIn>,
) -> Result<Json<InboundAnswer>, ApiError> {
    principal.require(&[Role::Dialler])?;
    let strategies = state.strategies.current();
    let fallback = fallback_policy(&state)?;
    let rules = rules(&state, &strategies, &fallback);
    let settings = &state.settings;
    let answer = inbound::lookup(
        &state.db,
        &rules,
        &settings.templates_dir,
        &settings.config.lender_name,
        &call,
        state.clock.now(),
    )
    .await?;
    Ok(Json(answer))
}

/// What happened on the call, as an inbound attempt: it counts toward no call cap (Reg F counts
/// placed calls), but a conversation on it starts the cool-down and ends the account's outbound
/// calls for the day; a promise, a dispute or a `do_not_call` has its usual effects.
#[utoipa::path(
    post,
    path = "/v1/inbound-calls/{id}/attempts",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The call's id")),
    request_body = InboundAttemptIn,
    responses(
        (status = 200, description = "Recorded", body = InboundAttemptRecorded),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not a dialler or admin token", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The call matched nobody, or the attempt is already recorded", body = ErrorBody),
        (status = 422, description = "A field is wrong (named)", body = ErrorBody),
    )
)]
async fn post_attempt(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(report): ApiJson<InboundAttemptIn>,
) -> Result<Json<InboundAttemptRecorded>, ApiError> {
    principal.require(&[Role::Dialler])?;
    let recorded =
        inbound::record_inbound_attempt(&state.db, id, &report, &principal.actor(), state.clock.now()).await?;
    Ok(Json(recorded))
}

/// Hands the caller to a person: a human task (origin `transfer`) in the named queue (default:
/// the deciding rule's escalation queue, its own human queue, or `default`), handed out by the
/// queue's next lease before any planned work, open for 15 minutes, carrying the call, its
/// attempts and the robot's note — created through the same hand-over as an outbound escalation
/// and asked through the contact gate: outside the contact hours, or for an account a flag or
/// a hold stops, it is a 409 naming the reason.
#[utoipa::path(
    post,
    path = "/v1/inbound-calls/{id}/transfer",
    tag = "work",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The call's id")),
    request_body = TransferIn,
    responses(
        (status = 200, description = "The human task", body = Transferred),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not a dialler or admin token", body = ErrorBody),
        (status = 404, description = "No such call", body = ErrorBody),
        (status = 409, description = "The gate refuses, the call matched nobody, or it was already transferred", body = ErrorBody),
        (status = 422, description = "A field is wrong (named)", body = ErrorBody),
    )
)]
async fn post_transfer(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TransferIn>,
) -> Result<Json<Transferred>, ApiError> {
    principal.require(&[Role::Dialler])?;
    let strategies = state.strategies.current();
    let fallback = fallback_policy(&state)?;
    let rules = rules(&state, &strategies, &fallback);
    Ok(Json(inbound::transfer(&state.db, &rules, id, &body, &principal.actor(), state.clock.now()).await?))
}
