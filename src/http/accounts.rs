//! `/v1/accounts`: posting accounts from the servicing system (ingest) and reading one account
//! with its borrower, contact points, open promises and tasks. Thin: the work is in
//! `ops::ingest` and `store::account_view`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::domain::{Flag, Money};
use crate::ops::flags::{FlagAction, FlagChange, FlagError};
use crate::ops::ingest::{self, AccountIn, AccountsReport};
use crate::store::{self, AccountView};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_accounts))
        .routes(routes!(get_account))
        .routes(routes!(explain_account))
        .routes(routes!(set_flag))
        .routes(routes!(lift_flag))
}

/// Upserts a batch of accounts with their borrowers and contact points: every item is checked
/// first, and the batch is written whole or not at all. Posting the same batch again changes
/// nothing.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "ingest",
    security(("bearer" = [])),
    request_body = Vec<AccountIn>,
    responses(
        (status = 200, description = "Written", body = AccountsReport),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an ingest or admin token", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "Invalid items, each named `[i].field` in `details`; nothing was written", body = ErrorBody),
    )
)]
async fn post_accounts(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(items): ApiJson<Vec<AccountIn>>,
) -> Result<Json<AccountsReport>, ApiError> {
    principal.require(&[Role::Ingest])?;
    Ok(Json(ingest::ingest_accounts(&state.db, &items, state.clock.now(), &principal.actor()).await?))
}

/// An account, its borrower, contact points, open promises and tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    /// Account id.
    pub id: String,
    /// Borrower id.
    pub borrower_id: String,
    /// Product code.
    pub product: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Amount overdue, a decimal string.
    #[schema(value_type = String, example = "1200.5")]
    pub amount_due: Money,
    /// Outstanding balance, a decimal string.
    #[schema(value_type = String, example = "5000")]
    pub balance: Money,
    /// Oldest unpaid due date.
    pub due_date: NaiveDate,
    /// Tags.
    pub tags: Vec<String>,
    /// The effective hard-stop flags: the servicing system's and the engine's together.
    pub flags: Vec<String>,
    /// The flags the servicing system set (imports); only its next import lifts them.
    pub servicing_flags: Vec<String>,
    /// The flags the engine set (outcomes such as `do_not_call`, operators); imports never
    /// remove them, an admin lifts them (`POST /v1/accounts/{id}/flags/{flag}/lift`).
    pub engine_flags: Vec<String>,
    /// Model scores.
    pub scores: BTreeMap<String, f64>,
    /// Attributes.
    pub attrs: BTreeMap<String, String>,
    /// Promises broken so far.
    pub broken_promises: i32,
    /// Co-lending funding shares (`bank-a:0.7;platform:0.3`); null: wholly the lender's own.
    pub funders: Option<String>,
    /// The stage the last plan put it in.
    pub stage: Option<String>,
    /// Last change by an import.
    pub updated_at: DateTime<Utc>,
    /// The borrower.
    pub borrower: Option<BorrowerOut>,
    /// Open promises to pay.
    pub open_promises: Vec<PromiseOut>,
    /// Every task of the account, by local date and attempt.
    pub tasks: Vec<TaskOut>,
}

/// A borrower and their contact points.
#[derive(Debug, Serialize, ToSchema)]
pub struct BorrowerOut {
    /// Borrower id.
    pub id: String,
    /// Name.
    pub name: String,
    /// IANA zones, the primary one first.
    pub timezones: Vec<String>,
    /// Consent to robot calls.
    pub consent_robot: bool,
    /// Phones and e-mail addresses.
    pub contact_points: Vec<ContactPointOut>,
}

/// A phone or e-mail address.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPointOut {
    /// `phone` or `email`.
    pub kind: String,
    /// The number or address.
    pub address: String,
    /// Channels opted out on it.
    pub opted_out: Vec<String>,
    /// Marked as not the borrower's number.
    pub wrong_number: bool,
    /// Dropped by the servicing system (missing from the borrower's latest import): kept with
    /// its opt-outs and marks, never chosen for a contact.
    pub retired: bool,
    /// When it was retired.
    pub retired_at: Option<DateTime<Utc>>,
}

/// An open promise.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromiseOut {
    /// Promise id.
    pub id: i64,
    /// Amount, a decimal string.
    #[schema(value_type = String)]
    pub amount: Money,
    /// Promised day.
    pub due_on: NaiveDate,
    /// When it was made.
    pub made_at: DateTime<Utc>,
}

/// A task of the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskOut {
    /// Task id.
    pub id: i64,
    /// The borrower's local day it was planned for.
    pub local_date: NaiveDate,
    /// Stage at planning.
    pub stage: String,
    /// Strategy.
    pub strategy: String,
    /// Rule.
    pub rule: String,
    /// Experiment arm.
    pub arm: Option<String>,
    /// `sms`, `email`, `robot` or `human`.
    pub channel: String,
    /// Human queue.
    pub queue: Option<String>,
    /// Attempt number within the day.
    pub attempt: i32,
    /// Calls allowed (human tasks).
    pub calls_allowed: i32,
    /// Window start.
    pub not_before: DateTime<Utc>,
    /// Window end.
    pub not_after: DateTime<Utc>,
    /// `planned`, `ready`, `leased`, `done`, `cancelled`, ...
    pub state: String,
    /// Why it reached its state (`paid_in_full`, ...).
    pub state_reason: Option<String>,
    /// When the state last changed.
    pub state_changed_at: Option<DateTime<Utc>>,
    /// The agent holding its lease.
    pub lease_agent: Option<String>,
    /// When the lease ends.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

fn list(text: &str) -> Vec<String> {
    text.split(';').map(str::trim).filter(|item| !item.is_empty()).map(str::to_string).collect()
}

fn codes(flags: &[Flag]) -> Vec<String> {
    flags.iter().map(|flag| flag.code().to_string()).collect()
}

impl From<AccountView> for AccountOut {
    fn from(view: AccountView) -> Self {
        let contact_points: Vec<ContactPointOut> = view
            .contact_points
            .into_iter()
            .map(|point| ContactPointOut {
                kind: point.kind,
                address: point.address,
                opted_out: list(&point.opted_out),
                wrong_number: point.wrong_number,
                retired: point.retired_at.is_some(),
                retired_at: point.retired_at,
            })
            .collect();
        AccountOut {
            borrower: view.borrower.map(|borrower| BorrowerOut {
                id: borrower.id,
                name: borrower.name,
                timezones: list(&borrower.timezones),
                consent_robot: borrower.consent_robot,
                contact_points,
            }),
            id: view.id,
            borrower_id: view.borrower_id,
            product: view.product,
            currency: view.currency,
            amount_due: view.amount_due,
            balance: view.balance,
            due_date: view.due_date,
            tags: view.tags,
            flags: codes(&view.flags),
            servicing_flags: codes(&view.servicing_flags),
            engine_flags: codes(&view.engine_flags),
            scores: view.scores,
            attrs: view.attrs,
            broken_promises: view.broken_promises,
            funders: view.funders,
            stage: view.stage,
            updated_at: view.updated_at,
            open_promises: view
                .open_promises
                .into_iter()
                .map(|promise| PromiseOut {
                    id: promise.id,
                    amount: promise.amount,
                    due_on: promise.due_on,
                    made_at: promise.made_at,
                })
                .collect(),
            tasks: view
                .tasks
                .into_iter()
                .map(|task| TaskOut {
                    id: task.id,
                    local_date: task.local_date,
                    stage: task.stage,
                    strategy: task.strategy,
                    rule: task.rule,
                    arm: task.arm,
                    channel: task.channel,
                    queue: task.queue,
                    attempt: task.attempt,
                    calls_allowed: task.calls_allowed,
                    not_before: task.not_before,
                    not_after: task.not_after,
                    state: task.state,
                    state_reason: task.state_reason,
                    state_changed_at: task.state_changed_at,
                    lease_agent: task.lease_agent,
                    lease_expires_at: task.lease_expires_at,
                })
                .collect(),
        }
    }
}

/// One account with its borrower, contact points, open promises and tasks. For ingest and
/// admin tokens.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The account id")),
    responses(
        (status = 200, description = "The account", body = AccountOut),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an ingest or admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    )
)]
async fn get_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AccountOut>, ApiError> {
    principal.require(&[Role::Ingest])?;
    match store::account_view(&state.db, &id).await? {
        Some(view) => Ok(Json(view.into())),
        None => Err(ApiError::not_found(format!("no account {id:?}"))),
    }
}

/// Why the account is (or is not) contacted today: the local day and DPD, the stage and
/// experiment arm, the counters the policy reads, each rule tried with the condition that
/// failed, the planner's decision (tasks, or a skip reason code), and its stored tasks with
/// their states. `as_of` (RFC 3339) explains another instant.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/explain",
    tag = "accounts",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Account id"),
        ("as_of" = Option<String>, Query, description = "Explain as of this instant (RFC 3339); default now"),
    ),
    responses(
        (status = 200, description = "The explanation", body = serde_json::Value),
        (status = 400, description = "`as_of` is not RFC 3339", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin, ingest or manager token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    )
)]
async fn explain_account(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<crate::ops::AccountExplanation>, ApiError> {
    principal.require(&[Role::Ingest, Role::Manager])?;
    let mut now = state.clock.now();
    for (key, value) in url_pairs(query.as_deref().unwrap_or("")) {
        if key == "as_of" {
            now = DateTime::parse_from_rfc3339(&value)
                .map_err(|_| {
                    ApiError::new(
                        axum::http::StatusCode::BAD_REQUEST,
                        "bad_query",
                        format!("as_of: `{value}` is not an RFC 3339 instant"),
                    )
                })?
                .with_timezone(&Utc);
        }
    }
    let strategies = state.strategies.current();
    match crate::ops::explain_account(&state.db, &strategies, &id, now).await? {
        Some(report) => Ok(Json(report)),
        None => Err(ApiError::not_found(format!("account {id} not found"))),
    }
}

/// `POST /v1/accounts/{id}/flags`: an operator sets a flag.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagSetIn {
    /// One of `cease_contact, deceased, bankruptcy, attorney, breathing_space, dispute,
    /// do_not_call`.
    #[serde(default)]
    #[schema(example = "do_not_call")]
    pub flag: String,
    /// Why (required; kept in the audit trail).
    #[serde(default)]
    #[schema(example = "borrower asked by letter not to be called")]
    pub reason: String,
}

/// `POST /v1/accounts/{id}/flags/{flag}/lift`: an operator lifts an engine-set flag.
#[derive(Debug, Clone, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagLiftIn {
    /// Why (required; kept in the audit trail).
    #[serde(default)]
    #[schema(example = "complaint resolved; borrower agreed to calls again")]
    pub reason: String,
}

impl From<FlagError> for ApiError {
    fn from(error: FlagError) -> Self {
        match error {
            FlagError::Invalid(details) => ApiError::validation(
                format!("{} problem(s) in the request; nothing was written", details.len()),
                details,
            ),
            FlagError::UnknownAccount(id) => ApiError::not_found(format!("no account {id:?}")),
            FlagError::Conflict(message) => ApiError::conflict(message, Vec::new()),
            FlagError::Store(error) => ApiError::internal(error),
        }
    }
}

/// Sets a hard-stop flag as the engine's (an operator's decision): imports never remove it.
/// Audited (`account.flag_set` with the token, the flag and the reason); the account's open
/// tasks the flag stops are cancelled. Setting a flag the engine already set changes nothing.
/// Admin tokens only.
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/flags",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The account id")),
    request_body = FlagSetIn,
    responses(
        (status = 200, description = "Set (or already set)", body = FlagChange),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "Unknown flag or no reason, named in `details` (`flag: ...`, `reason: ...`)", body = ErrorBody),
    )
)]
async fn set_flag(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<FlagSetIn>,
) -> Result<Json<FlagChange>, ApiError> {
    principal.require(&[])?;
    let now = state.clock.now();
    let actor = principal.actor();
    Ok(Json(
        crate::ops::flags::change_flag(&state.db, FlagAction::Set, &id, &body.flag, &body.reason, &actor, now).await?,
    ))
}

/// Lifts a flag the engine set (an outcome or an operator). Audited (`account.flag_lifted` with
/// the token, the flag and the reason). A flag only the servicing system set is a 409: the
/// servicing system owns it and lifts it by sending the account without it. Admin tokens only.
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/flags/{flag}/lift",
    tag = "accounts",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The account id"),
        ("flag" = String, Path, description = "The flag to lift"),
    ),
    request_body = FlagLiftIn,
    responses(
        (status = 200, description = "Lifted", body = FlagChange),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The flag is the servicing system's, or not set", body = ErrorBody),
        (status = 422, description = "Unknown flag or no reason, named in `details`", body = ErrorBody),
    )
)]
async fn lift_flag(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, flag)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<FlagLiftIn>,
) -> Result<Json<FlagChange>, ApiError> {
    principal.require(&[])?;
    let now = state.clock.now();
    let actor = principal.actor();
    Ok(Json(crate::ops::flags::change_flag(&state.db, FlagAction::Lift, &id, &flag, &body.reason, &actor, now).await?))
}

/// `key=value` pairs of a query string, percent-decoded.
pub(super) fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .map(|url| url.query_pairs().map(|(key, value)| (key.into_owned(), value.into_owned())).collect())
        .unwrap_or_default()
}
