//! Rendering the dashboard's HTML: the handlebars templates of `templates/dashboard/`, embedded
//! in the binary (`include_str!`, so `serve` works from any directory), the page chrome (the
//! layout with its navigation, the period filter and "as of"), the error pages, chart data
//! blocks, and the formatting of numbers, rates and money for people.
//!
//! Every text from the store goes through handlebars' HTML escaping; the only unescaped
//! outputs are the rendered page body (already escaped) and chart data serialised by
//! [`json_script`] (with `<` written `\u003c`, so it cannot close its `<script>` block). No
//! query and no access decision here: pages hand over what they show.

use crate::domain::Money;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::Handlebars;
use serde::Serialize;
use std::sync::OnceLock;

/// The `Content-Security-Policy` of every page: scripts, styles, images and fetches from this
/// server only (no inline script or style).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'";

/// The templates, by name, as embedded (each is a partial too: `{{> chart}}`).
const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/dashboard/layout.hbs")),
    ("login", include_str!("../../templates/dashboard/login.hbs")),
    ("error", include_str!("../../templates/dashboard/error.hbs")),
    ("overview", include_str!("../../templates/dashboard/overview.hbs")),
    ("roll", include_str!("../../templates/dashboard/roll.hbs")),
    ("strategies", include_str!("../../templates/dashboard/strategies.hbs")),
    ("experiments", include_str!("../../templates/dashboard/experiments.hbs")),
    ("timing", include_str!("../../templates/dashboard/timing.hbs")),
    ("operations", include_str!("../../templates/dashboard/operations.hbs")),
    ("funder", include_str!("../../templates/dashboard/funder.hbs")),
    ("chart", include_str!("../../templates/dashboard/chart.hbs")),
    ("kpi_table", include_str!("../../templates/dashboard/kpi_table.hbs")),
];

/// The registry of the embedded templates, compiled once; an error names the template.
fn registry() -> Result<&'static Handlebars<'static>, &'static str> {
    static REGISTRY: OnceLock<Result<Handlebars<'static>, String>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut handlebars = Handlebars::new();
            handlebars.set_strict_mode(false);
            handlebars.register_escape_fn(escape_html);
            for (name, text) in TEMPLATES {
                handlebars.register_template_string(name, text).map_err(|error| format!("{name}: {error}"))?;
            }
            Ok(handlebars)
        })
        .as_ref()
        .map_err(String::as_str)
}

/// HTML escaping for text and quoted attribute values: `&`, `<`, `>`, `"` and `'` (handlebars'
/// default also writes `=` and `` ` `` as entities, which only makes the links unreadable).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

/// Checks that every embedded template compiles (a test and `serve`'s first page call it).
pub fn check_templates() -> Result<(), String> {
    registry().map(|_| ()).map_err(str::to_string)
}

/// Renders one template with `data`.
fn render(template: &str, data: &impl Serialize) -> Result<String, String> {
    let registry = registry().map_err(str::to_string)?;
    registry.render(template, data).map_err(|error| format!("{template}: {error}"))
}

/// One entry of the navigation.
#[derive(Debug, Clone, Serialize)]
pub struct NavItem {
    /// The label.
    pub label: &'static str,
    /// Where it leads (with the period kept).
    pub href: String,
    /// Whether it is the page shown.
    pub active: bool,
}

/// The pages of the navigation: `(key, label, path)`.
pub const PAGES: &[(&str, &str, &str)] = &[
    ("overview", "Overview", "/dashboard"),
    ("strategies", "Strategies & rules", "/dashboard/strategies"),
    ("experiments", "Experiments", "/dashboard/experiments"),
    ("timing", "Contact timing", "/dashboard/timing"),
    ("operations", "Operations", "/dashboard/operations"),
    ("funder", "Funders", "/dashboard/funder"),
];

/// A hidden field of the period form (the page's other filters, kept when the period changes).
#[derive(Debug, Clone, Serialize)]
pub struct Hidden {
    /// The parameter.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// The period as the filter form shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodView {
    /// The form's action (the page's path).
    pub action: String,
    /// `from` as given (empty for the default).
    pub from: String,
    /// `to` as given (empty for the default).
    pub to: String,
    /// The period resolved, for people: `2026-11-15 09:00 – 2026-11-22 09:00 (Asia/Shanghai)`.
    pub text: String,
    /// The page's other filters.
    pub hidden: Vec<Hidden>,
}

/// What the layout shows around a page's body.
#[derive(Debug, Clone, Serialize)]
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The navigation.
    pub nav: Vec<NavItem>,
    /// The period filter, on the pages that have one.
    pub period: Option<PeriodView>,
    /// "as of HH:MM" of the aggregates shown, with how long they are kept.
    pub as_of: Option<String>,
    /// Who is signed in (`manager`, `admin`), when someone is.
    pub role: Option<String>,
    /// Whether the sign-out button is shown (a session cookie, not a bearer header).
    pub session: bool,
    /// The assets' version, so that their URLs change with their content.
    pub asset_version: &'static str,
}

impl Chrome {
    /// The chrome of page `key` with the period query `period_query` kept in the links.
    pub fn new(key: &str, title: impl Into<String>, period_query: &str) -> Chrome {
        let nav = PAGES
            .iter()
            .map(|(page, label, path)| NavItem {
                label,
                href: if period_query.is_empty() { path.to_string() } else { format!("{path}?{period_query}") },
                active: *page == key,
            })
            .collect();
        Chrome {
            title: title.into(),
            nav,
            period: None,
            as_of: None,
            role: None,
            session: false,
            asset_version: super::assets::version(),
        }
    }
}

#[derive(Serialize)]
struct LayoutData<'a> {
    #[serde(flatten)]
    chrome: &'a Chrome,
    body: String,
}

/// The headers of every HTML answer.
fn html_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

/// A whole page: `template` rendered with `data`, inside the layout with `chrome`.
pub fn page(status: StatusCode, template: &str, data: &impl Serialize, chrome: &Chrome) -> Response {
    let rendered = render(template, data).and_then(|body| render("layout", &LayoutData { chrome, body }));
    match rendered {
        Ok(html) => {
            let mut response = (status, html).into_response();
            html_headers(&mut response);
            response
        }
        Err(error) => {
            tracing::error!(%error, "dashboard: a template failed");
            plain_error()
        }
    }
}

/// The last resort when a template fails: a fixed 500 page.
fn plain_error() -> Response {
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        "<!doctype html><title>Error</title><p>The page could not be rendered; see the server log.</p>",
    )
        .into_response();
    html_headers(&mut response);
    response
}

#[derive(Serialize)]
struct ErrorData<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
    login: bool,
}

/// An error page: the status, a heading and a message (escaped), with a link to the sign-in
/// page when `login`.
pub fn error_page(status: StatusCode, heading: &str, message: &str, chrome: &Chrome, login: bool) -> Response {
    page(status, "error", &ErrorData { status: status.as_u16(), heading, message, login }, chrome)
}

/// The HTML 404 page of a dashboard path that does not exist (the API's are JSON).
pub fn not_found(path: &str) -> Response {
    let mut chrome = Chrome::new("", "Not found", "");
    chrome.nav.retain(|item| item.label == "Overview");
    error_page(StatusCode::NOT_FOUND, "Not found", &format!("There is no dashboard page {path}."), &chrome, false)
}

/// The JSON text of a chart's data for a `<script type="application/json">` block: `<`, `>` and
/// `&` are written as `\u003c`, `\u003e`, `\u0026` (still the same JSON), so no text in it can
/// end the block or open a comment.
pub fn json_script(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// One series of a chart.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// One value per label of the chart (`None`: no value).
    pub data: Vec<Option<f64>>,
    /// `bar` or `line` (a chart may mix them).
    pub kind: &'static str,
    /// `y` (left) or `y2` (right) axis.
    pub axis: &'static str,
}

/// What the page script draws in one chart container (`assets/dashboard.js` reads it).
#[derive(Debug, Clone, Serialize)]
pub struct ChartSpec {
    /// `bar` or `line`: the chart's base type.
    pub kind: &'static str,
    /// The categories (x axis; y axis for horizontal bars).
    pub labels: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Bars drawn horizontally (the stage funnel).
    pub horizontal: bool,
    /// The left axis' title.
    pub y_title: String,
    /// The right axis' title (empty: no right axis).
    pub y2_title: String,
    /// The left axis shows fractions as percentages.
    pub percent: bool,
}

/// A chart container on a page: its id, an accessible title, and its data block.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// The container's id; the data block's is `<id>-data`.
    pub id: String,
    /// The chart's title (shown above it).
    pub title: String,
    /// The data, serialised by [`json_script`].
    pub json: String,
}

impl Chart {
    /// A chart `id` titled `title` drawing `spec`.
    pub fn new(id: impl Into<String>, title: impl Into<String>, spec: &ChartSpec) -> Chart {
        Chart { id: id.into(), title: title.into(), json: json_script(spec) }
    }
}

/// A chart id made of safe characters only (`[A-Za-z0-9-]`), from a name such as a currency.
pub fn chart_id(prefix: &str, name: &str) -> String {
    let mut id = String::from(prefix);
    id.push('-');
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            id.push(character.to_ascii_lowercase());
        } else {
            id.push('-');
        }
    }
    id
}

/// A count with thousands separators: `1,234,567`.
pub fn count(value: u64) -> String {
    group_digits(&value.to_string())
}

fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A fraction as a percentage with one decimal (`37.5%`), or `–` without a value.
pub fn percent(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{:.1}%", value * 100.0),
        _ => "–".to_string(),
    }
}

/// A plain number with at most one decimal, or `–`.
pub fn number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => {
            if (value - value.round()).abs() < 1e-9 {
                group_digits(&format!("{value:.0}"))
            } else {
                format!("{value:.1}")
            }
        }
        _ => "–".to_string(),
    }
}

/// An amount of money rounded to cents, with thousands separators: `12,345.60` (the exact
/// amount is in the CSV and the API behind the link).
pub fn money(amount: Money) -> String {
    let rounded = amount.round_dp(2);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let text = format!("{:.2}", rounded.abs());
    let (whole, cents) = text.split_once('.').unwrap_or((text.as_str(), "00"));
    format!("{}{}.{cents}", if negative { "-" } else { "" }, group_digits(whole))
}

/// An instant in the portfolio zone: `2026-11-22 09:00`.
pub fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

/// "as of HH:MM": when the aggregates shown were read, in the portfolio zone.
pub fn as_of(at: DateTime<Utc>, zone: Tz) -> String {
    format!(
        "as of {} ({}; figures are kept up to {} s)",
        at.with_timezone(&zone).format("%H:%M"),
        zone.name(),
        super::cache::CACHE_TTL.num_seconds()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        check_templates().unwrap();
    }

    #[test]
    fn chart_data_cannot_close_its_script_block() {
        let text = json_script(&serde_json::json!({"label": "</script><script>alert(1)</script> & <!--"}));
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["label"], "</script><script>alert(1)</script> & <!--");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(percent(Some(0.375)), "37.5%");
        assert_eq!(percent(None), "–");
        assert_eq!(money("1234567.005".parse().unwrap()), "1,234,567.00");
        assert_eq!(money("-0.5".parse().unwrap()), "-0.50");
        assert_eq!(money("999".parse().unwrap()), "999.00");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(Some(2.25)), "2.2");
        assert_eq!(chart_id("collected", "US$"), "collected-us-");
    }
}
