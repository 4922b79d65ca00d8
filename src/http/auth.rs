//! Bearer-token authentication: `Authorization: Bearer <token>` becomes a [`Principal`]
//! extractor; [`Principal::require`] checks the role. 401 without a token or with an unknown or
//! revoked one, 403 for the wrong role; `admin` may do everything.
//!
//! On `GET` and `HEAD` only, a request without an `Authorization` header may instead carry the
//! dashboard's session cookie (`arrears_session`, HttpOnly and SameSite=Strict, set by
//! `POST /dashboard/login`), so that the links of the dashboard to the API's reports open in
//! the browser. A request that changes something always needs the header.
//!
//! This module does not decide which endpoint needs which role: each handler says so.

use super::AppState;
use super::error::ApiError;
pub use crate::ops::tokens::{Principal, Role};
use axum::extract::FromRequestParts;
use axum::http::{Method, header, request::Parts};

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            let reads = parts.method == Method::GET || parts.method == Method::HEAD;
            if let Some(token) = crate::dashboard::auth::session_token(&parts.headers).filter(|_| reads) {
                return state
                    .tokens
                    .authenticate(&state.db, &token)
                    .await?
                    .ok_or_else(|| ApiError::unauthorized("unknown or revoked token in the session cookie"));
            }
            return Err(ApiError::unauthorized("missing Authorization: Bearer <token> header"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|text| {
                let (scheme, token) = text.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        state
            .tokens
            .authenticate(&state.db, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))
    }
}

impl Principal {
    /// `Ok` when the principal's role is one of `roles` (or `admin`), else 403.
    pub fn require(&self, roles: &[Role]) -> Result<&Self, ApiError> {
        if self.has_role(roles) {
            return Ok(self);
        }
        let allowed: Vec<&str> = roles.iter().map(|role| role.code()).chain(["admin"]).collect();
        Err(ApiError::forbidden(format!(
            "a token of role {} may not do this (allowed: {})",
            self.role,
            allowed.join(", ")
        )))
    }
}
