//! A small loan book for tests of the hand-offs: a strategy written from its rules (with the
//! SMS, e-mail and robot templates it may name), CSV rows imported through the real importer,
//! a plan saved at a chosen instant, the release loop, and webhook endpoints for a config.

use arrears::config::Config;
use arrears::import::ImportKind;
use arrears::ops::release::{ReleaseReport, release_due};
use arrears::ops::work::Rules;
use arrears::policy::{Policy, PolicySettings};
use arrears::strategy::{LoadOptions, MessageTemplates, StrategySet};
use chrono::{DateTime, Utc};
use entity::tasks;
use sea_orm::DatabaseConnection;
use std::sync::{Arc, Mutex};

/// The accounts.csv header the rows below follow.
pub const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

/// A strategy `test` under `policy` (one stage: DPD 1 to 365) with `rules`, its templates,
/// and the policy itself (for tasks whose strategy is gone).
pub struct Fixture {
    pub strategies: StrategySet,
    pub templates: MessageTemplates,
    pub policy: Policy,
    /// The templates' directory.
    pub templates_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(policy: &str, rules: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        for (name, text) in
            [("sms/t", "Dear {{borrower.name}}"), ("email/t", "Hello"), ("robot/t", "Robot {{account.id}}")]
        {
            let path = templates.join(format!("{name}.hbs"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let strategies_dir = dir.path().join("strategies");
        std::fs::create_dir_all(&strategies_dir).unwrap();
        let text = format!("name = \"test\"\npolicy = \"{policy}\"\n[stages]\nlate = {{ dpd = [1, 365] }}\n{rules}");
        std::fs::write(strategies_dir.join("test.toml"), text).unwrap();
        let settings = PolicySettings::default();
        let options = LoadOptions {
            templates_dir: &templates,
            default_policy: policy,
            settings: &settings,
            capacities: &Default::default(),
        };
        let strategies =
            arrears::strategy::load_dir(&strategies_dir, &options).unwrap_or_else(|errors| panic!("{errors}"));
        let templates = MessageTemplates::load(&templates, &strategies).unwrap();
        let policy = Policy::builtin(policy, &settings).unwrap();
        Fixture { strategies, templates, policy, templates_dir: dir.path().join("templates"), _dir: dir }
    }

    /// The work rules with the default bounds.
    pub fn rules(&self) -> Rules<'_> {
        Rules::new(&self.strategies, &self.policy)
    }

    /// Saves a plan as of `now`.
    pub async fn plan(&self, db: &DatabaseConnection, now: DateTime<Utc>) {
        arrears::ops::plan_and_persist(db, &self.strategies, now, false).await.unwrap();
    }

    /// One release step at `now` with `config`'s endpoints.
    pub async fn release(&self, db: &DatabaseConnection, config: &Config, now: DateTime<Utc>) -> ReleaseReport {
        release_due(db, &self.strategies, &self.policy, &self.templates, config, now).await.unwrap()
    }
}

/// One accounts.csv row: product `loan`, due 2026-11-01, balance ten times the amount due,
/// phones `;`-joined, robot consent given.
pub fn row(account: &str, borrower: &str, phones: &[&str], zone: &str, tags: &str, amount_due: u32) -> String {
    format!(
        "{account},{borrower},Name {borrower},{},,{zone},loan,USD,{amount_due},{},2026-11-01,{tags},,true",
        phones.join(";"),
        amount_due * 10
    )
}

/// Imports a CSV file of `kind` made of `lines` (header first) at `now`.
pub async fn import(db: &DatabaseConnection, kind: ImportKind, lines: &[String], now: DateTime<Utc>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(db, kind, &path, now).await.unwrap_or_else(|error| panic!("{kind:?}: {error}"));
}

/// Imports accounts.csv rows at `now`.
pub async fn import_accounts(db: &DatabaseConnection, rows: &[String], now: DateTime<Utc>) {
    let mut lines = vec![HEADER.to_string()];
    lines.extend(rows.iter().cloned());
    import(db, ImportKind::Accounts, &lines, now).await;
}

/// Webhook endpoints for robot, SMS, e-mail and human, all at `url`.
pub fn endpoints(url: &str) -> Config {
    let secret = arrears::dispatch::SigningSecret::generate();
    let mut text = String::new();
    for name in ["robot", "sms", "email", "human"] {
        text.push_str(&format!("[endpoints.{name}]\nurl = \"{url}\"\nsecret = \"{secret}\"\n"));
    }
    toml::from_str(&text).unwrap()
}

/// The tasks of an account, by day, attempt and id.
pub async fn tasks_of(db: &DatabaseConnection, account: &str) -> Vec<tasks::Model> {
    arrears::store::tasks_for_account(db, account).await.unwrap()
}

/// Parses an RFC 3339 instant.
pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A receiver on a fresh loopback port that records `(webhook-id, body)` of every request.
pub async fn receiver() -> (Arc<Mutex<Vec<(String, String)>>>, String) {
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                state.lock().unwrap().push((id, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, url)
}
