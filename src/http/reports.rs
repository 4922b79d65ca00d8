//! `GET /v1/reports/kpis`: the KPI report of a period (admin, ingest and manager tokens; a
//! funder token reads its own share only). Thin: parses the query, reads the clock for the
//! default period, calls `ops::report::kpis`.

use super::AppState;
use super::auth::{Principal, Role};
use super::error::{ApiError, ErrorBody};
use crate::report::{FunderScope, GroupBy, KpiReport, Period, ReportError};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_kpis))
}

fn bad_query(error: &ReportError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_query", error.to_string()).with_details(vec![error.to_string()])
}

/// KPIs of the period `[from, to)` by stage, strategy, rule or experiment arm, with a total
/// row and the stage roll rates. `from`/`to` are RFC 3339 instants or `YYYY-MM-DD` dates in the
/// portfolio time zone (`to` as a date includes that day); by default the 7 days before now.
/// Every KPI is defined in docs/operations.md ("Reports").
#[utoipa::path(
    get,
    path = "/v1/reports/kpis",
    tag = "reports",
    security(("bearer" = [])),
    params(
        ("from" = Option<String>, Query, description = "Start (RFC 3339, or YYYY-MM-DD in the portfolio zone); default 7 days before `to`"),
        ("to" = Option<String>, Query, description = "End, excluded (RFC 3339, or YYYY-MM-DD included); default now"),
        ("by" = Option<GroupBy>, Query, description = "stage (default), strategy, rule or arm"),
        ("funder" = Option<String>, Query, description = "A co-lending funder's share (`(none)`: the accounts no funder holds a share of); a funder token reads its own share whatever it asks, and asking for another funder's is 403"),
    ),
    responses(
        (status = 200, description = "The report", body = KpiReport),
        (status = 400, description = "A query parameter is invalid or unknown; the message names it", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "Not an admin, ingest, manager or funder token, or a funder token asking for another funder", body = ErrorBody),
    )
)]
async fn get_kpis(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<KpiReport>, ApiError> {
    principal.require(&[Role::Ingest, Role::Manager, Role::Funder])?;
    let (mut from, mut to, mut by, mut scope) = (None, None, GroupBy::default(), FunderScope::All);
    for (key, value) in super::accounts::url_pairs(query.as_deref().unwrap_or("")) {
        match key.as_str() {
            "from" => from = Some(value),
            "to" => to = Some(value),
            "by" => by = value.parse().map_err(|error| bad_query(&error))?,
            "funder" => scope = FunderScope::parse(&value).map_err(|error| bad_query(&error))?,
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("{other}: unknown query parameter (expected from, to, by, funder)"),
                ));
            }
        }
    }
    let scope = funder_scope(&principal, scope)?;
    let zone = crate::domain::parse_timezone(&state.settings.config.timezone).map_err(ApiError::internal)?;
    let period =
        Period::parse(from.as_deref(), to.as_deref(), zone, state.clock.now()).map_err(|error| bad_query(&error))?;
    let order = crate::report::StageOrder::of(&state.strategies.current());
    Ok(Json(crate::ops::report::kpis(&state.db, period, by, &order, zone, &scope).await?))
}

/// The scope a principal reads: a funder token its own funder's share, whatever it asked (and
/// 403 when it asked for another's); the other roles what they asked.
pub fn funder_scope(principal: &Principal, asked: FunderScope) -> Result<FunderScope, ApiError> {
    if principal.role != Role::Funder {
        return Ok(asked);
    }
    let own = principal.funder.clone().ok_or_else(|| ApiError::forbidden("this funder token names no funder"))?;
    match asked {
        FunderScope::All => Ok(FunderScope::Funder(own)),
        FunderScope::Funder(name) if name == own => Ok(FunderScope::Funder(own)),
        other => Err(ApiError::forbidden(format!("a token of funder {own} may not read the report of {other}"))),
    }
}
