//! `explain`: the rules tried and why they failed, the decision, and the stored tasks of one
//! account, read through the store on SQLite and (when configured) PostgreSQL.

mod common;

use arrears::import::{ImportKind, import_file_at};
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, StrategySet};
use chrono::{DateTime, Utc};
use std::path::Path;

const STRATEGY: &str = r#"
name = "cash"
applies_to = { products = ["cash"] }
policy = "cn-gbt-45251"

[stages]
M1 = { dpd = [1, 30] }

[[rule]]
name = "big balances to people"
stage = "M1"
when = { balance = { min = "20000" } }
channel = "human"
queue = "senior"

[[rule]]
name = "reminder"
stage = "M1"
channel = "sms"
template = "sms/reminder"
windows = ["10:00-12:00"]
"#;

const ACCOUNTS: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,\
due_date,tags,flags,consent_robot
A-small,B-1,Ada,+8613800138000,,Asia/Shanghai,cash,CNY,300,500,2026-11-12,,,true
A-disputed,B-2,Grace,+8613800138001,,Asia/Shanghai,cash,CNY,300,50000,2026-11-12,,dispute,true
";

fn strategies(dir: &Path) -> StrategySet {
    std::fs::write(dir.join("cash.toml"), STRATEGY).unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: &templates,
        default_policy: "cn-gbt-45251",
        settings: &settings,
        capacities: &Default::default(),
    };
    arrears::strategy::load_dir(dir, &options).unwrap_or_else(|errors| panic!("{errors}"))
}

#[tokio::test]
async fn explain_names_the_failed_condition_the_decision_and_the_stored_tasks() {
    // 09:00 in Shanghai: before the reminder's window, inside the policy's hours.
    let now: DateTime<Utc> = "2026-11-22T01:00:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let strategies = strategies(dir.path());
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, ACCOUNTS).unwrap();
    for db in common::all_dbs().await {
        import_file_at(&db, ImportKind::Accounts, &csv, now).await.unwrap();
        arrears::ops::plan_and_persist(&db, &strategies, now, false).await.unwrap();

        let small = arrears::ops::explain_account(&*db, &strategies, "A-small", now).await.unwrap().unwrap();
        let e = &small.explanation;
        assert_eq!(e.dpd, Some(10), "{}", db.backend);
        assert_eq!(e.stage.as_deref(), Some("M1"));
        assert_eq!(e.rules.len(), 2, "{}: tried up to the first match", db.backend);
        assert!(!e.rules[0].matched);
        assert_eq!(e.rules[0].failed.as_deref(), Some("balance (the account has 500)"));
        assert!(e.rules[1].matched && e.rules[1].failed.is_none());
        // Planned and saved already: a second look says so, and shows the stored task.
        assert_eq!(e.decision.reason.as_deref(), Some("already_planned"), "{}", db.backend);
        assert_eq!(small.tasks.len(), 1);
        assert_eq!((small.tasks[0].channel.as_str(), small.tasks[0].state.as_str()), ("sms", "planned"));
        assert_eq!(small.stored_stage.as_deref(), Some("M1"));

        // Before anything is saved for the day, the same account gets its reminder at 10:00 local.
        let tomorrow = now + chrono::Duration::days(1);
        let fresh = arrears::ops::explain_account(&*db, &strategies, "A-small", tomorrow).await.unwrap().unwrap();
        assert_eq!(fresh.explanation.decision.kind, "tasks", "{}", db.backend);
        assert_eq!(fresh.explanation.decision.tasks[0].not_before.to_rfc3339(), "2026-11-23T10:00:00+08:00");

        let disputed = arrears::ops::explain_account(&*db, &strategies, "A-disputed", now).await.unwrap().unwrap();
        assert_eq!(disputed.explanation.decision.reason.as_deref(), Some("flag:dispute"), "{}", db.backend);
        assert!(disputed.tasks.is_empty());

        assert!(arrears::ops::explain_account(&*db, &strategies, "A-unknown", now).await.unwrap().is_none());
    }
}
