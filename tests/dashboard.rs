//! The manager dashboard over real HTTP on loopback, on SQLite and (when
//! `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL: signing in sets an HttpOnly, SameSite=Strict
//! session cookie that opens every page; without it a page redirects to the sign-in form; a
//! bearer header works for scripts; only manager and admin tokens see the dashboard, and a
//! manager token only reads; bad filters are 400 pages naming the parameter; a borrower's name
//! stays text; the numbers agree with the KPI API and are kept a minute.

mod common;

use common::app::{TestApp, spawn_app};
use common::dashboard::{SCRIPT_NAME, seed};
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

/// Every page a manager opens, by path.
const PAGES: &[&str] = &[
    "/dashboard",
    "/dashboard/strategies",
    "/dashboard/experiments",
    "/dashboard/timing",
    "/dashboard/operations",
    "/dashboard/roll?from_state=M1-early&to_state=M1",
];

/// A client that does not follow redirects (the tests look at them).
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn seeded_apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in common::all_dbs().await {
        let app = spawn_app(db).await;
        seed(&app).await;
        apps.push(app);
    }
    apps
}

/// Signs in through the form with `token`; returns the answer.
async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    client().post(app.url("/dashboard/login")).form(&[("token", token)]).send().await.unwrap()
}

/// The session cookie pair (`arrears_session=...`) of a sign-in answer.
fn session_of(response: &reqwest::Response) -> String {
    let set_cookie = response.headers().get(SET_COOKIE).expect("Set-Cookie").to_str().unwrap();
    set_cookie.split(';').next().unwrap().trim().to_string()
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    client().get(app.url(path)).header(COOKIE, cookie).send().await.unwrap()
}

async fn get_with_bearer(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    client().get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// A 200 HTML page with the dashboard's headers; returns its body.
async fn html(response: reqwest::Response, what: &str) -> String {
    assert_eq!(response.status(), StatusCode::OK, "{what}");
    let headers = response.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8", "{what}");
    assert_eq!(headers[CONTENT_SECURITY_POLICY], "default-src 'self'", "{what}");
    let body = response.text().await.unwrap();
    assert!(body.starts_with("<!doctype html>"), "{what}: {body}");
    assert!(!body.contains("<script>") && !body.contains("style="), "{what}: no inline script or style");
    body
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_opens_every_page() {
    for app in seeded_apps().await {
        let b = app.backend();
        let form = html(client().get(app.url("/dashboard/login")).send().await.unwrap(), b).await;
        assert!(form.contains(r#"name="token""#), "{b}: {form}");

        let response = sign_in(&app, &app.tokens.manager).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{b}");
        assert_eq!(response.headers()[LOCATION], "/dashboard", "{b}");
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
        assert!(set_cookie.starts_with(&format!("arrears_session={}", app.tokens.manager)), "{b}: {set_cookie}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set_cookie.split("; ").any(|part| part == attribute), "{b}: {attribute} in {set_cookie}");
        }
        assert!(!set_cookie.contains("Secure"), "{b}: no https public_url, no Secure: {set_cookie}");
        let cookie = session_of(&response);

        for path in PAGES {
            let body = html(get_with_cookie(&app, path, &cookie).await, &format!("{b} {path}")).await;
            assert!(body.contains("as of 01:00 (UTC"), "{b} {path}: the aggregates' time in the portfolio zone");
            assert!(body.contains("Sign out"), "{b} {path}");
        }
        let overview = html(get_with_cookie(&app, "/dashboard", &cookie).await, b).await;
        for expected in ["M1-early", "M1", "B1", "CNY", "USD", "1,500.00", "100.00", "50,000.00"] {
            assert!(overview.contains(expected), "{b}: {expected} on the overview:\n{overview}");
        }
        assert!(overview.contains(r#"href="/dashboard/roll?from_state=M1-early&amp;to_state=M1""#), "{b}: {overview}");
        assert!(
            overview.contains("/v1/reports/kpis?from=2026-11-15T01%3A00%3A00Z&amp;to=2026-11-22T01%3A00%3A00Z"),
            "{b}"
        );
        let strategies = html(get_with_cookie(&app, "/dashboard/strategies", &cookie).await, b).await;
        assert!(strategies.contains("consumer-cash/vip to senior agents"), "{b}: {strategies}");
        let experiments = html(get_with_cookie(&app, "/dashboard/experiments", &cookie).await, b).await;
        assert!(
            experiments.contains("m1-robot-vs-human") && experiments.contains("Sample ratio check"),
            "{b}: {experiments}"
        );
        assert!(experiments.contains(r#"href="/v1/experiments/m1-robot-vs-human""#), "{b}");
        let timing = html(get_with_cookie(&app, "/dashboard/timing", &cookie).await, b).await;
        assert!(timing.contains("Latest contact model") && !timing.contains("No contact model"), "{b}: {timing}");
        let operations = html(get_with_cookie(&app, "/dashboard/operations", &cookie).await, b).await;
        assert!(operations.contains("senior") && operations.contains("agent-7"), "{b}: {operations}");

        // The CSV behind the numbers, and the assets.
        let csv = get_with_cookie(&app, "/dashboard/data/funnel.csv?product=cash", &cookie).await;
        assert_eq!(csv.status(), StatusCode::OK, "{b}");
        assert_eq!(csv.headers()[CONTENT_TYPE], "text/csv; charset=utf-8", "{b}");
        let csv = csv.text().await.unwrap();
        assert!(csv.starts_with("product,stage,currency,accounts,balance\n"), "{b}: {csv}");
        assert!(
            csv.contains("cash,M1,CNY,2,50000") && !csv.contains("card"),
            "{b}: exact balance, product filter: {csv}"
        );
        for (asset, kind) in [
            ("/dashboard/assets/vendor/chart.js/chart.umd.min.js", "text/javascript; charset=utf-8"),
            ("/dashboard/assets/dashboard.js", "text/javascript; charset=utf-8"),
            ("/dashboard/assets/dashboard.css", "text/css; charset=utf-8"),
        ] {
            let response = client().get(app.url(asset)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{b}: {asset}");
            assert_eq!(response.headers()[CONTENT_TYPE], kind, "{b}: {asset}");
            assert!(response.headers()[CACHE_CONTROL].to_str().unwrap().contains("max-age="), "{b}: {asset}");
        }

        // The session cookie reads the API's reports the pages link to, and nothing else.
        let kpis = get_with_cookie(&app, "/v1/reports/kpis?by=rule", &cookie).await;
        assert_eq!(kpis.status(), StatusCode::OK, "{b}: the link from a page opens in the browser");
        let lease = client().post(app.url("/v1/queues/senior/lease")).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(lease.status(), StatusCode::UNAUTHORIZED, "{b}: a cookie never authorises a change");

        // Signing out clears the cookie.
        let response = client().post(app.url("/dashboard/logout")).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{b}");
        assert_eq!(response.headers()[LOCATION], "/dashboard/login", "{b}");
        let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
        assert!(cleared.starts_with("arrears_session=;") && cleared.contains("Max-Age=0"), "{b}: {cleared}");
    }
}

#[tokio::test]
async fn without_a_valid_session_pages_redirect_to_the_sign_in_form() {
    for app in seeded_apps().await {
        let b = app.backend();
        for path in PAGES {
            let response = client().get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{b} {path}");
            let location = response.headers()[LOCATION].to_str().unwrap();
            assert!(location.starts_with("/dashboard/login"), "{b} {path}: {location}");
        }
        let response = client().get(app.url("/dashboard/timing")).send().await.unwrap();
        assert_eq!(response.headers()[LOCATION], "/dashboard/login?next=%2Fdashboard%2Ftiming", "{b}");
        let forged = "arrears_session=arr_0000000000000000000000000000000000000000000000000000000000000000";
        let response = get_with_cookie(&app, "/dashboard", forged).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{b}: an unknown token in the cookie");

        let response = sign_in(&app, "arr_not_a_token").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{b}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{b}");
        let body = response.text().await.unwrap();
        assert!(body.contains("Unknown or revoked token") && body.contains(r#"name="token""#), "{b}: {body}");
        let response = sign_in(&app, &app.tokens.agent).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{b}: an agent token cannot sign in");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{b}");

        // After signing in, the page asked for first opens.
        let response = client()
            .post(app.url("/dashboard/login"))
            .form(&[("token", app.tokens.admin.as_str()), ("next", "/dashboard/timing")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{b}");
        assert_eq!(response.headers()[LOCATION], "/dashboard/timing", "{b}");
        let response = client()
            .post(app.url("/dashboard/login"))
            .form(&[("token", app.tokens.admin.as_str()), ("next", "https://example.com/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()[LOCATION], "/dashboard", "{b}: never another site");
    }
}

#[tokio::test]
async fn only_manager_and_admin_tokens_see_it_and_a_manager_only_reads() {
    for app in seeded_apps().await {
        let b = app.backend();
        let tokens = &app.tokens;
        for token in [&tokens.manager, &tokens.admin] {
            html(get_with_bearer(&app, "/dashboard/operations", token).await, b).await;
        }
        for (role, token) in [("agent", &tokens.agent), ("dialler", &tokens.dialler), ("ingest", &tokens.ingest)] {
            let response = get_with_bearer(&app, "/dashboard", token).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{b}: {role}");
            assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8", "{b}: {role}");
            let body = response.text().await.unwrap();
            assert!(body.contains(&format!("role {role} may not open the dashboard")), "{b}: {body}");
        }

        let manager = &tokens.manager;
        let response = get_with_bearer(&app, "/v1/reports/kpis?by=rule", manager).await;
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        let response = get_with_bearer(&app, "/v1/accounts/C1/explain", manager).await;
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        let response = get_with_bearer(&app, "/v1/accounts/C1", manager).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{b}: an account's data is for ingest and admin");

        let task = arrears::store::tasks_for_account(&app.db.db, "C1").await.unwrap().last().unwrap().id;
        let attempt = serde_json::json!({"outcome": "no_answer", "at": "2026-11-22T01:00:00Z"});
        let account = serde_json::json!([{
            "account_id": "X1", "borrower_id": "BX1", "name": "Ada", "phones": ["+8613800138000"], "email": null,
            "timezones": ["Asia/Shanghai"], "product": "cash", "currency": "CNY", "amount_due": "100",
            "balance": "1000", "due_date": "2026-11-17", "tags": [], "flags": [], "consent_robot": true
        }]);
        let refused = [
            (
                "POST /v1/queues/senior/lease",
                app.post_json("/v1/queues/senior/lease", Some(manager), &serde_json::json!({})).await,
            ),
            (
                "POST /v1/tasks/{id}/attempts",
                app.post_json(&format!("/v1/tasks/{task}/attempts"), Some(manager), &attempt).await,
            ),
            ("POST /v1/accounts", app.post_json("/v1/accounts", Some(manager), &account).await),
            ("POST /v1/payments", app.post_json("/v1/payments", Some(manager), &serde_json::json!([])).await),
            (
                "POST /v1/strategies/reload",
                app.post_json("/v1/strategies/reload", Some(manager), &serde_json::json!({})).await,
            ),
            ("GET /v1/deliveries", app.get("/v1/deliveries", Some(manager)).await),
        ];
        for (what, response) in refused {
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{b}: a manager token may not {what}");
        }
        assert_eq!(arrears::store::tasks_for_account(&app.db.db, "C1").await.unwrap().last().unwrap().state, "planned");
    }
}

#[tokio::test]
async fn bad_filters_are_400_pages_naming_the_parameter() {
    for app in seeded_apps().await {
        let b = app.backend();
        let manager = &app.tokens.manager;
        for (path, parameter) in [
            ("/dashboard?from=yesterday", "from"),
            ("/dashboard/strategies?to=2026-13-01", "to"),
            ("/dashboard/operations?from=2026-11-20&to=2026-11-19", "from"),
            ("/dashboard/timing?form=2026-11-01", "form"),
            ("/dashboard?product=boat", "product"),
            ("/dashboard/strategies?strategy=nope", "strategy"),
            ("/dashboard/experiments?from=%3Cb%3E", "from"),
            ("/dashboard/roll?from_state=M1", "to_state"),
            ("/dashboard/data/agents.csv?from=x", "from"),
        ] {
            let response = get_with_bearer(&app, path, manager).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{b}: {path}");
            assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8", "{b}: {path}");
            let body = response.text().await.unwrap();
            assert!(body.contains(&format!("The query parameter “{parameter}” is wrong")), "{b}: {path}: {body}");
            assert!(!body.contains("<b>"), "{b}: {path}: the value is escaped");
        }
        let response = get_with_bearer(&app, "/dashboard/nowhere", manager).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{b}");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8", "{b}");
        let response = get_with_bearer(&app, "/dashboard/data/secrets.csv", manager).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{b}");
        // Filters that are fine.
        for path in
            ["/dashboard?product=cash&from=2026-11-15", "/dashboard/strategies?strategy=consumer-cash&from=&to="]
        {
            html(get_with_bearer(&app, path, manager).await, &format!("{b} {path}")).await;
        }
    }
}

#[tokio::test]
async fn a_borrower_named_like_a_script_stays_text() {
    for app in seeded_apps().await {
        let b = app.backend();
        let body = html(get_with_bearer(&app, "/dashboard", &app.tokens.manager).await, b).await;
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{b}: the latest broken promise is C1's:\n{body}"
        );
        assert!(!body.contains(SCRIPT_NAME), "{b}: never raw");
        assert!(body.contains(r#"<a href="/v1/accounts/C1/explain">C1</a>"#), "{b}");
        let csv = get_with_bearer(&app, "/dashboard/data/broken_promises.csv", &app.tokens.manager).await;
        let csv = csv.text().await.unwrap();
        assert!(csv.contains(&format!("C1,{SCRIPT_NAME},1000,CNY,2026-11-18,")), "{b}: {csv}");
    }
}

#[tokio::test]
async fn the_numbers_are_the_kpi_reports_and_are_kept_a_minute() {
    for app in seeded_apps().await {
        let b = app.backend();
        let manager = &app.tokens.manager;
        let report: serde_json::Value =
            get_with_bearer(&app, "/v1/reports/kpis?by=rule", manager).await.json().await.unwrap();
        let vip = report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["group"] == "consumer-cash/vip to senior agents")
            .unwrap_or_else(|| panic!("{b}: {report}"));
        assert_eq!((vip["attempts"].as_u64(), vip["right_party_contacts"].as_u64()), (Some(4), Some(3)), "{b}: {vip}");
        let page = html(get_with_bearer(&app, "/dashboard/strategies", manager).await, b).await;
        let row = page.split("consumer-cash/vip to senior agents</th>").nth(1).unwrap();
        let row = row.split("</tr>").next().unwrap();
        let cells: Vec<&str> = row.split("</a>").filter_map(|piece| piece.rsplit('>').next()).collect();
        assert_eq!(
            &cells[..6],
            ["3", "4", "3", "75.0%", "2", "66.7%"],
            "{b}: accounts, attempts, RPC, rate, promises, rate"
        );

        // Roll matrix: M1-early at the start; C1 and C2 in M1 at the end, C3 current.
        let overview = html(get_with_bearer(&app, "/dashboard", manager).await, b).await;
        assert!(overview.contains(">2 (66.7%)</a>") && overview.contains(">1 (33.3%)</a>"), "{b}: {overview}");
        let trend =
            html(get_with_bearer(&app, "/dashboard/roll?from_state=M1-early&to_state=M1", manager).await, b).await;
        assert!(trend.contains(">66.7%</a>"), "{b}: the last week's share:\n{trend}");
        assert_eq!(trend.matches("<tr><td>").count(), 8, "{b}: 8 weeks");

        // Kept a minute: a new payment shows only after the cache expired and refreshed.
        let line = "U1,250,2026-11-21T15:00:00Z,late-ref";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payments.csv");
        std::fs::write(&path, format!("account_id,amount,paid_at,reference\n{line}\n")).unwrap();
        arrears::import::import_file_at(&app.db.db, arrears::import::ImportKind::Payments, &path, app.clock.now())
            .await
            .unwrap();
        let cached = html(get_with_bearer(&app, "/dashboard", manager).await, b).await;
        assert!(cached.contains("100.00</strong> USD") && !cached.contains("350.00"), "{b}: still the cached figures");
        app.clock.advance(chrono::Duration::seconds(61));
        let stale = html(get_with_bearer(&app, "/dashboard", manager).await, b).await;
        assert!(stale.contains("100.00</strong> USD"), "{b}: the stale page is served while it refreshes");
        app.state.dashboard.settle().await;
        let fresh = html(get_with_bearer(&app, "/dashboard", manager).await, b).await;
        assert!(fresh.contains("350.00</strong> USD"), "{b}: refreshed:\n{fresh}");
        assert!(fresh.contains("as of 01:01 (UTC"), "{b}");
    }
}

#[tokio::test]
async fn warming_at_start_answers_every_default_view_from_the_cache() {
    for app in seeded_apps().await {
        let b = app.backend();
        let manager = &app.tokens.manager;
        app.clock.advance(chrono::Duration::seconds(45));
        arrears::dashboard::warm(&app.state).await.unwrap_or_else(|error| panic!("{b}: {error}"));
        app.clock.advance(chrono::Duration::seconds(30));
        // A payment after the warm-up: every default view still shows what was warmed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("payments.csv");
        std::fs::write(&path, "account_id,amount,paid_at,reference\nU1,250,2026-11-21T15:00:00Z,after-warm\n").unwrap();
        arrears::import::import_file_at(&app.db.db, arrears::import::ImportKind::Payments, &path, app.clock.now())
            .await
            .unwrap();
        let overview = html(get_with_bearer(&app, "/dashboard", manager).await, b).await;
        assert!(
            overview.contains("100.00</strong> USD") && !overview.contains("350.00"),
            "{b}: the overview was computed by the warm-up, not now"
        );
        // 01:01:15 now: every page says when the warm-up read its figures.
        for path in PAGES {
            let page = html(get_with_bearer(&app, path, manager).await, b).await;
            assert!(page.contains("as of 01:00 (UTC"), "{b} {path}: the warmed figures:\n{page}");
        }
    }
}
