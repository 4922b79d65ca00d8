//! The API's one error type and the extractors that turn every bad request into it.
//!
//! Every error answers `{"error": {"code", "message", "details"}}`. A bad request is a 4xx that
//! says what is wrong; a server fault is logged in full and answered with a 500 that reveals
//! nothing internal. Handlers never build error bodies by hand: they return [`ApiError`].

use crate::ops::ingest::IngestError;
use crate::ops::serve::ReloadError;
use crate::store::StoreError;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Bytes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `malformed_json`, `unsupported_media_type`, `invalid_body`, `invalid_path`,
    /// `validation_failed`, `conflict`, `strategies_invalid`, `payload_too_large`,
    /// `unavailable`, `internal`.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Every individual problem, one line each (for example `[3].timezones: ...` or
    /// `strategies/x.toml:12:5: ...`); empty when there is nothing more to say.
    pub details: Vec<String>,
}

/// An error answer: status, stable code, message and details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// One line per problem.
    pub details: Vec<String>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: Vec::new() }
    }

    /// Adds the list of individual problems.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// 401: no, malformed, unknown or revoked token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token whose role may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 with every problem in `details`.
    pub fn validation(message: impl Into<String>, details: Vec<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).with_details(details)
    }

    /// 409 with every problem in `details`.
    pub fn conflict(message: impl Into<String>, details: Vec<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message).with_details(details)
    }

    /// 503 with `Retry-After`: the store is busy (see [`StoreError::is_busy`]); nothing was
    /// written and the same request may be sent again.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A store error: 503 when the store was busy (retry), else 500.
    pub fn store(error: StoreError) -> Self {
        if error.is_busy() {
            tracing::warn!(%error, "store busy: answered 503");
            Self::unavailable(format!(
                "the database is busy; nothing was written: send the same request again in {RETRY_AFTER_SECONDS} s"
            ))
        } else {
            Self::internal(error)
        }
    }

    /// 500: logs the real error, answers a generic message.
    pub fn internal(error: impl Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.into(), message: self.message, details: self.details } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// The `Retry-After` of a 503 (seconds).
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::store(error)
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Invalid(details) => ApiError::validation(
                format!("{} problem(s) in the request; nothing was written", details.len()),
                details,
            ),
            IngestError::Conflict(details) => {
                ApiError::conflict("payment references already name other payments; nothing was written", details)
            }
            IngestError::Store(error) => ApiError::store(error),
        }
    }
}

impl From<ReloadError> for ApiError {
    fn from(error: ReloadError) -> Self {
        match error {
            ReloadError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "strategies_invalid",
                format!("{} error(s) in the strategy files; the running strategies are kept", errors.0.len()),
            )
            .with_details(errors.0.iter().map(ToString::to_string).collect()),
            ReloadError::Store(error) => ApiError::store(error),
            other => ApiError::internal(other),
        }
    }
}

/// A JSON request body. Unlike `axum::Json`, every rejection is an [`ApiError`]: 415 when the
/// body is not declared `application/json`, 400 for JSON that does not parse, 422 naming the
/// path (`[3].consent_robot: invalid type: ...`) for values of the wrong shape, 413 when too big.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

fn is_json(parts: &axum::http::HeaderMap) -> bool {
    let Some(value) = parts.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(bytes_rejection)?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "the JSON does not have the expected shape",
                )
                .with_details(vec![format!("{path}: {inner}")]),
                _ => malformed(&inner),
            }
        })?;
        deserializer.end().map_err(|error| malformed(&error))?;
        Ok(ApiJson(value))
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {error}"))
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large; send smaller batches")
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("cannot read the body: {}", rejection.body_text()),
        )
    }
}

/// Path parameters whose rejection (such as a task id that is not a number) is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(error) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", format!("bad path parameter: {}", error.body_text()))
        }
        other => ApiError::internal(other.body_text()),
    }
}

/// The answer to a path no route matches.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/dashboard") {
        return crate::dashboard::render::not_found(uri.path());
    }
    ApiError::not_found(format!("no such endpoint: {}", uri.path())).into_response()
}

/// The answer to a known path with a method it does not take (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
