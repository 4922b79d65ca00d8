//! `arrears learn` end to end on a small book: accounts and attempts imported by CSV, the model
//! fitted and stored by `ops::learn::learn`, loaded back with `store::load_latest_model`, on
//! SQLite and (when `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL.

mod common;

use arrears::domain::Channel;
use arrears::import::{ImportKind, import_file_at};
use arrears::ops::learn::{learn, write_report};
use arrears::store::load_latest_model;
use chrono::{DateTime, Datelike as _, Duration, TimeZone as _, Timelike as _, Utc, Weekday};
use common::all_dbs;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,due_date,tags,flags,consent_robot";

/// 20 borrowers in Shanghai, 30 days of robot calls at 10:00 and 19:00 local: 19:00 answers
/// two days in three, 10:00 one day in ten.
fn book() -> (String, String) {
    let mut accounts = String::from(HEADER);
    let mut attempts = String::from("account_id,channel,phone,at,outcome");
    let first = Utc.with_ymd_and_hms(2026, 10, 20, 0, 0, 0).unwrap();
    for i in 0..20 {
        let _ = write!(
            accounts,
            "\nA-{i},B-{i},Borrower {i},+86138001380{i:02},,Asia/Shanghai,cash,CNY,100,100,2026-10-01,,,true"
        );
        for day in 0..30i64 {
            let date = first + Duration::days(day);
            // 02:00Z is 10:00 in Shanghai, 11:00Z is 19:00.
            let morning = if (day + i) % 10 == 0 { "rpc" } else { "no_answer" };
            let evening = if (day + i) % 3 != 0 { "promise" } else { "voicemail" };
            for (hours, outcome) in [(2, morning), (11, evening)] {
                let at = (date + Duration::hours(hours)).to_rfc3339();
                let _ = write!(attempts, "\nA-{i},robot,+86138001380{i:02},{at},{outcome}");
            }
        }
    }
    accounts.push('\n');
    attempts.push('\n');
    (accounts, attempts)
}

fn as_of() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap()
}

#[tokio::test]
async fn learn_ranks_the_hour_that_answered_most_first_and_versions_each_training() {
    let dir = tempfile::tempdir().unwrap();
    let (accounts, attempts) = book();
    let (accounts_path, attempts_path) = (dir.path().join("accounts.csv"), dir.path().join("attempts.csv"));
    std::fs::write(&accounts_path, accounts).unwrap();
    std::fs::write(&attempts_path, attempts).unwrap();
    for db in all_dbs().await {
        let backend = db.backend;
        import_file_at(&db, ImportKind::Accounts, &accounts_path, as_of()).await.unwrap();
        import_file_at(&db, ImportKind::Attempts, &attempts_path, as_of()).await.unwrap();
        assert!(load_latest_model(&*db).await.unwrap().is_none(), "{backend}: no model before learning");

        let first = learn(&*db, as_of(), 90).await.unwrap();
        assert_eq!((first.version, first.attempts), (1, 1_200), "{backend}");
        let model = load_latest_model(&*db).await.unwrap().unwrap();
        assert_eq!(model.version, 1, "{backend}");
        assert_eq!((model.trained_from, model.trained_to), (as_of() - Duration::days(90), as_of()), "{backend}");
        // No task, no stage history, no stored stage: the stage reads `unknown`.
        let segment = model.segment("unknown", Channel::Robot, "cash");
        assert!(segment.is_known(), "{backend}");
        for weekday in [Weekday::Mon, Weekday::Thu, Weekday::Sun] {
            let evening = model.posterior(segment, "B-3", weekday, 19);
            let morning = model.posterior(segment, "B-3", weekday, 10);
            assert!(evening.mean() > morning.mean() + 0.3, "{backend} {weekday}: {evening:?} vs {morning:?}");
        }
        let unseen = model.segment("M1", Channel::Robot, "cash");
        assert!(
            model.posterior(unseen, "B-3", Weekday::Mon, 19).mean()
                > model.posterior(unseen, "B-3", Weekday::Mon, 10).mean()
        );

        let mut text = Vec::new();
        write_report(&first, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("contact model v1: 1200 attempts from 2026-08-24T00:00:00+00:00"), "{text}");
        assert!(text.contains("unknown/robot/cash: 1200 attempts"), "{text}");
        assert!(text.contains("best:  19:00"), "{text}");
        assert!(text.contains("worst: 10:00"), "{text}");

        // A later training: version 2, the latest; a window with nothing in it learns nothing.
        let second = learn(&*db, as_of() + Duration::days(400), 30).await.unwrap();
        assert_eq!((second.version, second.attempts), (2, 0), "{backend}");
        let latest = load_latest_model(&*db).await.unwrap().unwrap();
        assert_eq!((latest.version, latest.attempts()), (2, 0), "{backend}");
        assert_eq!(as_of().weekday(), Weekday::Sun);
    }
}

/// What a manager does, with the release binary's commands: a history of robot calls at every
/// hour of the windows imported by CSV (19:00 answers two calls in three, 11:00 one in two, the
/// other hours one in ten), then
/// `arrears learn`, then `arrears plan --dry-run --format jsonl`: a `timing = "learned"` rule
/// with two attempts a day puts them at 19:00 and 11:00, each line carrying `p_contact`.
#[test]
fn imported_history_then_learn_then_plan_puts_robot_attempts_at_the_hours_that_answered_most() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let strategies = dir.path().join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    std::fs::write(
        strategies.join("cash.toml"),
        r#"name = "cash"
policy = "cn-gbt-45251"
[stages]
M1 = { dpd = [1, 90] }

[[rule]]
name = "m1 robot"
stage = "M1"
channel = "robot"
template = "robot/m1"
windows = ["09:00-12:00", "14:00-20:00"]
attempts_per_day = 2
min_gap = "3h"
timing = "learned"
"#,
    )
    .unwrap();
    let mut accounts = String::from(HEADER);
    let mut attempts = String::from("account_id,channel,phone,at,outcome");
    let first = Utc.with_ymd_and_hms(2026, 10, 20, 0, 0, 0).unwrap();
    for i in 0..40 {
        let _ = write!(
            accounts,
            "\nA-{i},B-{i},Borrower {i},+86138001381{i:02},,Asia/Shanghai,cash,CNY,100,100,2026-11-01,,,true"
        );
        for day in 0..30i64 {
            let date = first + Duration::days(day);
            // A spread history: every hour of the windows called. 19:00 answers two calls in
            // three, 11:00 one in two, every other hour one in ten.
            for local_hour in [9, 10, 11, 14, 15, 16, 17, 18, 19] {
                let answered = match local_hour {
                    19 => (day + i) % 3 != 0,
                    11 => (day + i) % 2 == 0,
                    _ => (day + i + local_hour) % 10 == 0,
                };
                let outcome = if answered { "rpc" } else { "no_answer" };
                // Shanghai is UTC+8.
                let at = (date + Duration::hours(local_hour - 8)).to_rfc3339();
                let _ = write!(attempts, "\nA-{i},robot,+86138001381{i:02},{at},{outcome}");
            }
        }
    }
    std::fs::write(dir.path().join("accounts.csv"), accounts + "\n").unwrap();
    std::fs::write(dir.path().join("attempts.csv"), attempts + "\n").unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("arrears.db").display());
    let arrears = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_arrears"))
            .arg("--database-url")
            .arg(&database)
            .arg("--strategies")
            .arg(&strategies)
            .arg("--templates")
            .arg(root.join("templates"))
            .args(args)
            .current_dir(dir.path())
            .env("ARREARS_LOG", "error")
            .output()
            .unwrap();
        assert!(output.status.success(), "arrears {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    arrears(&["migrate"]);
    arrears(&["import", "accounts", "accounts.csv"]);
    arrears(&["import", "attempts", "attempts.csv"]);
    // 08:00 in Shanghai on 22 November: the whole day is ahead.
    let learned = arrears(&["learn", "--as-of", "2026-11-22T00:00:00Z"]);
    assert!(learned.contains("best:  19:00"), "{learned}");
    let lines = arrears(&["plan", "--dry-run", "--format", "jsonl", "--as-of", "2026-11-22T00:00:00Z"]);
    let mut hours: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in lines.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["kind"], "task", "{line}");
        assert!(value["p_contact"].as_f64().is_some_and(|p| p > 0.0 && p < 1.0), "{line}");
        let start = DateTime::parse_from_rfc3339(value["not_before"].as_str().unwrap()).unwrap();
        hours.entry(value["account_id"].as_str().unwrap().to_string()).or_default().push(start.hour());
    }
    assert_eq!(hours.len(), 40);
    let best = hours.values().filter(|hours| hours.as_slice() == [11, 19]).count();
    // Thompson sampling explores a little: nearly every account, not necessarily all.
    assert!(best >= 36, "{best} of 40 accounts got 11:00 and 19:00: {hours:?}");

    // `explain` shows the account's learned curve and why each hour was (not) taken.
    let (account, _) = hours.iter().find(|(_, hours)| hours.as_slice() == [11, 19]).unwrap();
    let explained = arrears(&["explain", account, "--as-of", "2026-11-22T00:00:00Z"]);
    assert!(explained.contains("learned contact curve today"), "{explained}");
    let line = |hour: &str| explained.lines().find(|line| line.trim_start().starts_with(hour)).unwrap_or_default();
    assert!(line("19:00").contains("● chosen") && line("11:00").contains("● chosen"), "{explained}");
    assert!(line("15:00").contains("drawn lower") || line("15:00").contains("min_gap"), "{explained}");
    let json: serde_json::Value =
        serde_json::from_str(&arrears(&["explain", account, "--as-of", "2026-11-22T00:00:00Z", "--json"])).unwrap();
    let chosen: Vec<u64> = json["explanation"]["hours"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|hour| hour["fate"] == "chosen")
        .map(|hour| hour["local_hour"].as_u64().unwrap())
        .collect();
    assert_eq!(chosen, [11, 19]);
}
