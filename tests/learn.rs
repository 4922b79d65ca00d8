//! `arrears learn` end to end on a small book: accounts and attempts imported by CSV, the model
//! fitted and stored by `ops::learn::learn`, loaded back with `store::load_latest_model`, on
//! SQLite and (when `ARREARS_TEST_DATABASE_URL` is set) PostgreSQL.

mod common;

use arrears::domain::Channel;
use arrears::import::{ImportKind, import_file_at};
use arrears::ops::learn::{learn, write_report};
use arrears::store::load_latest_model;
use chrono::{DateTime, Datelike as _, Duration, TimeZone as _, Utc, Weekday};
use common::all_dbs;
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
