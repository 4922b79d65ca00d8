//! Co-lending funders through the real paths, on SQLite and (when `ARREARS_TEST_DATABASE_URL`
//! is set) PostgreSQL: the `funders` column of accounts.csv (a bad share rejects the file,
//! naming row and column), the `funder` strategy condition, each funder's share of the KPI
//! report adding up to the portfolio to the cent on awkward shares (thirds), and a funder token
//! that reads its own share and nothing else.

mod common;

use arrears::import::ImportKind;
use arrears::ops::report::kpis;
use arrears::ops::tokens::{Role, create_token_for};
use arrears::report::{FunderScope, GroupBy, KpiReport, Period, StageOrder};
use chrono::{DateTime, Utc};
use common::book::Fixture;
use rust_decimal::Decimal;
use sea_orm::DatabaseConnection;
use std::collections::BTreeMap;

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot,funders";

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn row(account: &str, amount: &str, funders: &str) -> String {
    let phone = format!("+1555{:07}", account.bytes().map(u64::from).sum::<u64>() * 7);
    format!(
        "{account},B{account},Name {account},{phone},,America/New_York,loan,USD,{amount},{amount},2026-11-01,,,true,{funders}"
    )
}

const THIRDS: &str = "a:0.3333333333;b:0.3333333333;c:0.3333333334";

/// Three accounts with awkward shares, one co-funded 70/30, one the lender's own.
fn book() -> Vec<String> {
    vec![
        row("T1", "100.00", THIRDS),
        row("T2", "0.01", THIRDS),
        row("T3", "333.35", THIRDS),
        row("S1", "1000.03", "a:0.7;b:0.3"),
        row("O1", "250.00", ""),
    ]
}

async fn import_book(db: &DatabaseConnection, lines: &[String], now: DateTime<Utc>) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.csv");
    let mut text = vec![HEADER.to_string()];
    text.extend(lines.iter().cloned());
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(db, ImportKind::Accounts, &path, now).await.map(drop).map_err(|e| e.to_string())
}

const RULES: &str = r#"
[[rule]]
name = "bank b robot"
stage = "late"
when = { funder = "b" }
channel = "robot"
template = "robot/t"

[[rule]]
name = "others sms"
stage = "late"
channel = "sms"
template = "sms/t"
"#;

/// Every amount of a report, by (what, state or group, currency).
fn amounts(report: &KpiReport) -> BTreeMap<(String, String, String), Decimal> {
    let mut sums = BTreeMap::new();
    let mut add = |what: &str, key: &str, currency: &str, amount: Decimal| {
        *sums.entry((what.to_string(), key.to_string(), currency.to_string())).or_insert(Decimal::ZERO) += amount;
    };
    for row in report.groups.iter().chain([&report.total]) {
        for amounts in &row.amounts {
            add("collected", &row.group, &amounts.currency, amounts.collected);
            add("promised_resolved", &row.group, &amounts.currency, amounts.promised_resolved);
        }
    }
    for state in &report.balances {
        for balance in &state.balance {
            add("balance", &state.stage, &balance.currency, balance.amount);
        }
    }
    for roll in report.roll.rows.iter().chain(&report.roll.entered) {
        for balance in &roll.balance {
            add("roll_balance", &roll.from, &balance.currency, balance.amount);
        }
    }
    sums
}

#[tokio::test]
async fn funders_shares_add_up_to_the_portfolio_to_the_cent_and_strategies_condition_on_them() {
    for db in common::all_dbs().await {
        let import_at = at("2026-11-20T12:00:00Z");
        // A bad share rejects the whole file, naming the row and the column.
        let mut bad = book();
        bad.push(row("X1", "10", "a:0.5;b:0.4"));
        let error = import_book(&db.db, &bad, import_at).await.unwrap_err();
        assert!(error.contains("row 6") && error.contains("funders") && error.contains("sum to 0.9"), "{error}");
        assert_eq!(common::snapshot(&db.db).await.counts()[2], 0, "{}: nothing imported", db.backend);

        import_book(&db.db, &book(), import_at).await.unwrap();
        let fixture = Fixture::new("us-reg-f", RULES);
        let plan_at = at("2026-11-23T15:00:00Z");
        fixture.plan(&db.db, plan_at).await;
        // The funder condition: bank b's accounts (T*, S1) get the robot, the others SMS.
        for (account, channel) in [("T1", "robot"), ("S1", "robot"), ("O1", "sms")] {
            let tasks = common::book::tasks_of(&db.db, account).await;
            assert_eq!(tasks.first().map(|task| task.channel.as_str()), Some(channel), "{}: {account}", db.backend);
        }
        // Payments on every account.
        let payments: Vec<String> = [("T1", "33.34"), ("T2", "0.01"), ("T3", "100.00"), ("S1", "0.05"), ("O1", "10")]
            .iter()
            .map(|(account, amount)| format!("{account},{amount},2026-11-24T15:00:00Z,ref-{account}"))
            .collect();
        common::import_lines(&db.db, ImportKind::Payments, "account_id,amount,paid_at,reference", &payments, plan_at)
            .await;

        let period = Period { from: at("2026-11-23T00:00:00Z"), to: at("2026-11-25T00:00:00Z") };
        let order = StageOrder::of(&fixture.strategies);
        let zone = "America/New_York".parse().unwrap();
        let report = |scope: FunderScope| {
            let db = &db.db;
            let order = &order;
            async move { kpis(db, period, GroupBy::Stage, order, zone, &scope).await.unwrap() }
        };
        let portfolio = report(FunderScope::All).await;
        let whole = amounts(&portfolio);
        assert_eq!(whole[&("collected".into(), "total".into(), "USD".into())], "143.40".parse::<Decimal>().unwrap());
        let mut summed: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
        for scope in [
            FunderScope::Funder("a".into()),
            FunderScope::Funder("b".into()),
            FunderScope::Funder("c".into()),
            FunderScope::Unfunded,
        ] {
            let part = report(scope.clone()).await;
            assert_eq!(part.funder, scope.label());
            for (key, amount) in amounts(&part) {
                *summed.entry(key).or_insert(Decimal::ZERO) += amount;
            }
        }
        summed.retain(|_, amount| !amount.is_zero());
        let mut whole_nonzero = whole.clone();
        whole_nonzero.retain(|_, amount| !amount.is_zero());
        assert_eq!(summed, whole_nonzero, "{}: every amount adds up across funders", db.backend);

        // Funder c holds a third of T1..T3 only; its collected is its per-account parts.
        let c = report(FunderScope::Funder("c".into())).await;
        assert_eq!(c.total.accounts, 0, "no attempts in the period");
        let c_collected = c.total.amounts_in("USD").map(|amounts| amounts.collected);
        // 33.34 → 11.12 (c takes the largest remainder), 0.01 → 0.01, 100.00 → 33.34.
        assert_eq!(c_collected, Some("44.47".parse().unwrap()), "{}", db.backend);
        let c_balance: Decimal = c.balances.iter().flat_map(|state| &state.balance).map(|b| b.amount).sum();
        let c_accounts: u64 = c.balances.iter().map(|state| state.accounts).sum();
        assert_eq!(c_accounts, 3, "{}: c's accounts only", db.backend);
        // Balances now: T1 66.66, T2 0, T3 233.35 → c's parts 22.22, 0, 77.79 (largest remainder).
        assert_eq!(c_balance, "100.01".parse::<Decimal>().unwrap(), "{}", db.backend);
    }
}

#[tokio::test]
async fn a_funder_token_reads_its_own_share_and_nothing_else() {
    for db in common::all_dbs().await {
        let app = common::app::spawn_app(db).await;
        let now = app.clock.now();
        let token = create_token_for(&app.state.db, Role::Funder, None, Some("bank-a"), None, now).await.unwrap();
        // Only with --funder, and only for funder tokens.
        assert!(create_token_for(&app.state.db, Role::Funder, None, None, None, now).await.is_err());
        assert!(create_token_for(&app.state.db, Role::Manager, None, Some("bank-a"), None, now).await.is_err());

        let own = app.get("/v1/reports/kpis", Some(&token)).await;
        assert_eq!(own.status(), 200, "{}", app.backend());
        let body: serde_json::Value = own.json().await.unwrap();
        assert_eq!(body["funder"], "bank-a", "its own share, without asking");
        let asked = app.get("/v1/reports/kpis?funder=bank-a", Some(&token)).await;
        assert_eq!(asked.status(), 200);
        for other in ["/v1/reports/kpis?funder=bank-b", "/v1/reports/kpis?funder=(none)"] {
            let response = app.get(other, Some(&token)).await;
            assert_eq!(response.status(), 403, "{other}");
            let error: serde_json::Value = response.json().await.unwrap();
            assert_eq!(error["error"]["code"], "forbidden", "{error}");
        }
        // No borrower's data: accounts, explanations, experiments, strategies.
        for path in ["/v1/accounts/A1", "/v1/accounts/A1/explain", "/v1/experiments", "/v1/strategies"] {
            assert_eq!(app.get(path, Some(&token)).await.status(), 403, "{path}");
        }
        // A manager may ask for any funder's share; a bad name is a 400 naming the parameter.
        let manager = app.get("/v1/reports/kpis?funder=bank-b", Some(&app.tokens.manager)).await;
        assert_eq!(manager.status(), 200);
        let bad = app.get("/v1/reports/kpis?funder=Bank%20B", Some(&app.tokens.manager)).await;
        assert_eq!(bad.status(), 400);
        let error: serde_json::Value = bad.json().await.unwrap();
        assert!(error["error"]["message"].as_str().unwrap().starts_with("funder:"), "{error}");
    }
}

#[tokio::test]
async fn a_funder_sees_its_own_share_on_the_dashboard_and_nothing_else() {
    for db in common::all_dbs().await {
        let app = common::app::spawn_app(db).await;
        let backend = app.backend();
        let now = app.clock.now();
        let account = |id: &str, name: &str, funders: &str| {
            serde_json::json!({
                "account_id": id, "borrower_id": format!("P-{id}"), "name": name,
                "phones": ["+8613800138001"], "timezones": ["Asia/Shanghai"], "product": "cash",
                "currency": "CNY", "amount_due": "100", "balance": "1000", "due_date": "2026-11-12",
                "consent_robot": true, "funders": funders
            })
        };
        let batch = serde_json::json!([
            account("F-1", "Secret Person", "bank-a:0.5;bank-b:0.5"),
            account("F-2", "Other Person", "bank-b:1")
        ]);
        assert_eq!(app.post_json("/v1/accounts", Some(&app.tokens.ingest), &batch).await.status(), 200, "{backend}");
        arrears::ops::plan_and_persist(&app.state.db, &app.state.strategies.current(), now, false).await.unwrap();
        app.clock.advance(chrono::Duration::hours(1));
        let token = create_token_for(&app.state.db, Role::Funder, None, Some("bank-a"), None, now).await.unwrap();
        let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let get = |path: &str, token: &str| client.get(app.url(path)).bearer_auth(token.to_string()).send();

        // The dashboard's home sends a funder to its page, which shows its share only.
        let home = get("/dashboard", &token).await.unwrap();
        assert_eq!(home.status(), 303, "{backend}");
        assert_eq!(home.headers()["location"], "/dashboard/funder");
        let page = get("/dashboard/funder", &token).await.unwrap();
        assert_eq!(page.status(), 200, "{backend}");
        let html = page.text().await.unwrap();
        assert!(html.contains("Balances by state of bank-a"), "{backend}");
        assert!(html.contains("500.00") && !html.contains("1,500.00"), "{backend}: half of F-1 only: {html}");
        for secret in
            ["Secret Person", "Other Person", "F-1", "F-2", "+8613800138001", "bank-b", "Strategies &amp; rules"]
        {
            assert!(!html.contains(secret), "{backend}: the funder page shows {secret:?}");
        }
        // Nothing else: another funder's share, the other pages, their CSV files.
        for path in [
            "/dashboard/funder?funder=bank-b",
            "/dashboard/funder?funder=(none)",
            "/dashboard/strategies",
            "/dashboard/operations",
            "/dashboard/roll",
            "/dashboard/data/funnel.csv",
            "/dashboard/data/broken_promises.csv",
        ] {
            assert_eq!(get(path, &token).await.unwrap().status(), 403, "{backend}: {path}");
        }
        // A manager picks any funder: bank-b holds half of F-1 and all of F-2.
        let manager = get("/dashboard/funder?funder=bank-b", &app.tokens.manager).await.unwrap();
        assert_eq!(manager.status(), 200);
        let html = manager.text().await.unwrap();
        assert!(html.contains("Balances by state of bank-b") && html.contains("1,500.00"), "{backend}");
        assert!(html.contains(r#"<option value="bank-a">bank-a</option>"#), "{backend}: the picker lists the funders");
        let bad = get("/dashboard/funder?funder=Bank%20A", &app.tokens.manager).await.unwrap();
        assert_eq!(bad.status(), 400, "{backend}");
    }
}
