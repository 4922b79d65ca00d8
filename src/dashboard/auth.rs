//! Who may see the dashboard, and the session cookie. `GET /dashboard/login` shows the sign-in
//! form; `POST /dashboard/login` checks the token pasted into it (a `manager` or `admin`
//! token) and sets `arrears_session=<token>` (HttpOnly, SameSite=Strict, Path=/, 12 hours;
//! Secure when `public_url` is https); `POST /dashboard/logout` clears it. The [`Viewer`]
//! extractor admits a page's request with that cookie or an `Authorization: Bearer` header
//! (for scripts): without either, or with an unknown token, it redirects (303) to the sign-in
//! page; a token of another role gets a 403 page.
//!
//! Tokens are checked by `ops::tokens` (through the state's token cache); this module keeps no
//! session store of its own (the cookie holds the token, as the bearer header does) and never
//! shows a token back.

use super::render::{self, Chrome};
use crate::http::AppState;
use crate::ops::tokens::{Principal, Role};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "arrears_session";

/// How long a session cookie lives: 12 hours.
pub const SESSION_SECONDS: i64 = 12 * 60 * 60;

/// The roles that may open the dashboard: managers and admins every page, a funder only its
/// own share on the funder page.
pub const DASHBOARD_ROLES: &[Role] = &[Role::Manager, Role::Admin, Role::Funder];

/// The dashboard path a funder token may open (its own share); `/dashboard` sends it there.
pub const FUNDER_PAGE: &str = "/dashboard/funder";

/// The token in the request's session cookie, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|cookie| cookie.value().trim().to_string())
        .filter(|token| !token.is_empty())
}

/// The token of an `Authorization: Bearer <token>` header (`None` when there is no such
/// header; an empty string when the header is malformed, which no token matches).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, token) = text.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
        })
        .unwrap_or_default();
    Some(token)
}

/// Someone allowed to see the dashboard: a manager or an admin.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// What the token proves.
    pub principal: Principal,
    /// Whether it came from the session cookie (the page then offers to sign out).
    pub session: bool,
}

impl Viewer {
    /// The page chrome for this viewer (a funder's navigation holds its page only).
    pub fn chrome(&self, key: &str, title: &str, period_query: &str) -> Chrome {
        let mut chrome = Chrome::new(key, title, period_query);
        if self.principal.role == Role::Funder {
            chrome.nav.retain(|item| item.href.starts_with(FUNDER_PAGE));
        }
        chrome.role = Some(self.principal.role.code().to_string());
        chrome.session = self.session;
        chrome
    }
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The sign-in page's URL that comes back to `next` afterwards.
fn login_url(next: &str) -> String {
    if next == "/dashboard" {
        "/dashboard/login".to_string()
    } else {
        format!("/dashboard/login?{}", super::query::encode(&[("next", next)]))
    }
}

/// Whether `next` is a dashboard page to come back to (never another site).
fn safe_next(next: &str) -> bool {
    next.starts_with("/dashboard")
        && !next.starts_with("/dashboard/login")
        && !next.contains("//")
        && !next.contains('\\')
        && next.chars().all(|character| !character.is_control())
}

/// A 403 page for a token that may not see the dashboard.
fn forbidden(role: Role) -> Response {
    let mut chrome = Chrome::new("", "Not allowed", "");
    chrome.nav.clear();
    chrome.role = Some(role.code().to_string());
    render::error_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!("A token of role {role} may not open the dashboard: it is for manager, admin and funder tokens."),
        &chrome,
        true,
    )
}

/// A 403 page for a funder token on a page other than its own share.
fn forbidden_to_funder() -> Response {
    let mut chrome = Chrome::new("", "Not allowed", "");
    chrome.nav.retain(|item| item.href.starts_with(FUNDER_PAGE));
    chrome.role = Some(Role::Funder.code().to_string());
    render::error_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "A funder token sees its own share on the funder page, and no other page.",
        &chrome,
        false,
    )
}

/// A page answering a store failure (503 when the store was busy, else 500; logged).
pub fn store_failure(error: crate::store::StoreError) -> Response {
    let busy = error.is_busy();
    if busy {
        tracing::warn!(%error, "dashboard: store busy");
    } else {
        tracing::error!(%error, "dashboard: a page failed");
    }
    let mut chrome = Chrome::new("", "Error", "");
    chrome.nav.clear();
    let (status, message) = if busy {
        (StatusCode::SERVICE_UNAVAILABLE, "The database is busy; load the page again in a moment.")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "The page could not be read from the database; see the server log.")
    };
    render::error_page(status, "Error", message, &chrome, false)
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let here = parts.uri.path_and_query().map_or("/dashboard", |path| path.as_str()).to_string();
        let (token, session) = match bearer_token(&parts.headers) {
            Some(token) => (Some(token), false),
            None => (session_token(&parts.headers), true),
        };
        let Some(token) = token.filter(|token| !token.is_empty()) else {
            return Err(see_other(&login_url(&here)));
        };
        match state.tokens.authenticate(&state.db, &token).await {
            Ok(Some(principal)) if principal.role == Role::Funder => {
                // A funder sees its own share and nothing else: no other page, no CSV file.
                let path = parts.uri.path();
                if path == "/dashboard" {
                    Err(see_other(FUNDER_PAGE))
                } else if path == FUNDER_PAGE {
                    Ok(Viewer { principal, session })
                } else {
                    Err(forbidden_to_funder())
                }
            }
            Ok(Some(principal)) if principal.has_role(DASHBOARD_ROLES) => Ok(Viewer { principal, session }),
            Ok(Some(principal)) => Err(forbidden(principal.role)),
            Ok(None) => Err(see_other(&login_url(&here))),
            Err(error) => Err(store_failure(error)),
        }
    }
}

#[derive(Serialize)]
struct LoginData<'a> {
    error: Option<&'a str>,
    next: &'a str,
}

fn login_page(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let mut chrome = Chrome::new("login", "Sign in", "");
    chrome.nav.clear();
    render::page(status, "login", &LoginData { error, next }, &chrome)
}

/// `GET /dashboard/login`: the sign-in form (`?next=` names the page to open afterwards).
pub async fn login_form(RawQuery(query): RawQuery) -> Response {
    let next = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "next")
        .map(|(_, value)| value.into_owned())
        .filter(|next| safe_next(next))
        .unwrap_or_else(|| "/dashboard".to_string());
    login_page(StatusCode::OK, None, &next)
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The API token (`arrears token create --role manager`).
    #[serde(default)]
    token: String,
    /// The dashboard page to open afterwards.
    #[serde(default)]
    next: String,
}

/// The session cookie for `token` (Secure when the server's public URL is https).
fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    let secure = state.settings.config.public_url.as_deref().is_some_and(|url| url.trim().starts_with("https://"));
    Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(SESSION_SECONDS))
        .secure(secure)
        .build()
}

/// `POST /dashboard/login` (form field `token`): a manager or admin token sets the session
/// cookie and redirects (303) to the dashboard; an unknown token shows the form again with an
/// error (401), a token of another role too (403).
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            Some("The form could not be read: send the field `token`."),
            "/dashboard",
        );
    };
    let next = if safe_next(&form.next) { form.next.as_str() } else { "/dashboard" };
    let token = form.token.trim().to_string();
    if token.is_empty() {
        return login_page(StatusCode::UNAUTHORIZED, Some("Paste a manager or admin token."), next);
    }
    match state.tokens.authenticate(&state.db, &token).await {
        Ok(Some(principal)) if principal.has_role(DASHBOARD_ROLES) => {
            tracing::info!(token_id = principal.token_id, role = %principal.role, "dashboard: signed in");
            let jar = jar.add(session_cookie(&state, token));
            (jar, see_other(next)).into_response()
        }
        Ok(Some(principal)) => login_page(
            StatusCode::FORBIDDEN,
            Some(&format!(
                "A token of role {} may not open the dashboard: use a manager or admin token.",
                principal.role
            )),
            next,
        ),
        Ok(None) => login_page(StatusCode::UNAUTHORIZED, Some("Unknown or revoked token."), next),
        Err(error) => store_failure(error),
    }
}

/// `POST /dashboard/logout`: clears the session cookie and redirects (303) to the sign-in page.
pub async fn logout(jar: CookieJar) -> Response {
    let jar = jar.remove(Cookie::build((SESSION_COOKIE, "")).path("/").build());
    (jar, see_other("/dashboard/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_pages_are_come_back_to() {
        assert!(safe_next("/dashboard/operations?from=2026-11-01"));
        assert!(!safe_next("https://example.com/dashboard"));
        assert!(!safe_next("//example.com"));
        assert!(!safe_next("/dashboard//example.com"));
        assert!(!safe_next("/dashboard/login"));
        assert!(!safe_next("/v1/accounts"));
        assert_eq!(login_url("/dashboard"), "/dashboard/login");
        assert_eq!(login_url("/dashboard/timing?from=a"), "/dashboard/login?next=%2Fdashboard%2Ftiming%3Ffrom%3Da");
    }

    #[test]
    fn the_session_cookie_is_read_from_the_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("other=1; arrears_session=arr_abc"));
        assert_eq!(session_token(&headers).as_deref(), Some("arr_abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer_token(&headers).as_deref(), Some(""), "a malformed header matches no token");
    }
}
