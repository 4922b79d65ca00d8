//! `arrears import`: the CSV contracts, their error messages, all-or-nothing writes and
//! idempotence, on SQLite and (when configured) PostgreSQL.

mod common;

use arrears::domain::{Channel, ContactKind, Flag};
use arrears::import::{ImportError, ImportKind, ImportReport, import_file_at};
use arrears::store;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{TestDb, all_dbs, snapshot};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tempfile::TempDir;

const HEADER: &str = "account_id,borrower_id,name,phones,email,timezones,product,currency,amount_due,balance,\
                      due_date,tags,flags,consent_robot,score.loss,attr.branch,opt_outs";
const ROW_1: &str = "A-1,B-1,Ada Lovelace,+8613800138000;+8613800138001,ada@example.com,Asia/Shanghai,cash,CNY,\
                     1200.50,5000.00,2026-11-01,vip;new,,true,0.25,north,sms:+8613800138001";
const ROW_2: &str = "A-2,B-1,Ada King,+8613800138000;+8613800138002,,Asia/Shanghai;Asia/Urumqi,card,CNY,300,300,\
                     2026-10-15,,do_not_call,false,,south,";
const ROW_3: &str = "A-3,B-2,\"Hopper, Grace\",+15551234567,grace@example.com,America/New_York,cash,USD,99.99,1000,\
                     2026-11-20,,,true,0.9,,email:grace@example.com";

fn accounts_csv(rows: &[&str]) -> String {
    let mut text = String::from(HEADER);
    for row in rows {
        text.push('\n');
        text.push_str(row);
    }
    text.push('\n');
    text
}

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, hour, 0, 0).unwrap()
}

fn money(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

/// CSV files written into a temporary directory.
struct Files(TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

async fn import(db: &TestDb, kind: ImportKind, path: &Path, now: DateTime<Utc>) -> Result<ImportReport, ImportError> {
    import_file_at(db, kind, path, now).await
}

async fn import_ok(db: &TestDb, kind: ImportKind, path: &Path, now: DateTime<Utc>) -> ImportReport {
    import(db, kind, path, now).await.unwrap_or_else(|error| panic!("{}: import failed: {error}", db.backend))
}

/// A store holding the three base accounts.
async fn with_base(db: &TestDb, files: &Files) {
    let report =
        import_ok(db, ImportKind::Accounts, &files.write("base.csv", &accounts_csv(&[ROW_1, ROW_2, ROW_3])), at(1))
            .await;
    assert_eq!((report.rows, report.inserted), (3, 3), "{}", db.backend);
}

/// Imports `content` as `kind` on top of the base accounts and checks that it fails with an
/// error containing every `expected` fragment, and that nothing at all was written.
async fn assert_rejected(kind: ImportKind, content: &str, expected: &[&str]) {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let before = snapshot(&db).await;
        let path = files.write(&format!("{kind}.csv"), content);
        let error = import(&db, kind, &path, at(2)).await.expect_err("the import must fail");
        let text = error.to_string();
        assert!(matches!(error, ImportError::Invalid { .. }), "{}: {text}", db.backend);
        assert!(text.contains(&path.display().to_string()), "{}: the error names the file: {text}", db.backend);
        for fragment in expected {
            assert!(text.contains(fragment), "{}: expected `{fragment}` in:\n{text}", db.backend);
        }
        assert_eq!(snapshot(&db).await, before, "{}: a rejected file writes nothing", db.backend);
    }
}

/// A bad third row in an accounts file that also changes A-1 and adds A-4.
fn accounts_with_bad_row_3(bad_row: &str) -> String {
    let changed_1 = ROW_1.replace("1200.50", "999.00");
    let new_4 = ROW_3.replace("A-3", "A-4");
    accounts_csv(&[&changed_1, ROW_2, bad_row, &new_4])
}

#[tokio::test]
async fn accounts_load_back_into_the_domain() {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let book = store::load_portfolio(&*db).await.unwrap();
        let ids: Vec<&str> = book.accounts.iter().map(|account| account.id.as_str()).collect();
        assert_eq!(ids, ["A-1", "A-2", "A-3"], "{}", db.backend);

        let a1 = &book.accounts[0];
        assert_eq!(a1.amount_due, money("1200.50"), "{}", db.backend);
        assert_eq!(a1.balance, money("5000"), "{}", db.backend);
        assert_eq!(a1.due_date, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(a1.tags, ["vip", "new"]);
        assert_eq!(a1.scores, [("loss".to_string(), 0.25)]);
        assert_eq!(a1.attrs, [("branch".to_string(), "north".to_string())]);
        assert!(a1.flags.is_empty());
        assert!(book.accounts[1].flags.contains(Flag::DoNotCall));
        assert_eq!(book.accounts[2].amount_due, money("99.99"), "{}", db.backend);

        // Borrower fields: the last row wins; contact points: the union.
        let ada = &book.borrowers["B-1"];
        assert_eq!(ada.name, "Ada King");
        assert_eq!(ada.timezones, [chrono_tz::Asia::Shanghai, chrono_tz::Asia::Urumqi]);
        assert!(!ada.consent_robot);
        let addresses: Vec<&str> = ada.contact_points.iter().map(|point| point.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["+8613800138000", "+8613800138001", "ada@example.com", "+8613800138002"],
            "{}",
            db.backend
        );
        let opted = &ada.contact_points[1];
        assert_eq!(opted.opted_out, [Channel::Sms]);
        assert!(!opted.usable_for(Channel::Sms) && opted.usable_for(Channel::Robot));
        let grace = &book.borrowers["B-2"];
        assert_eq!(grace.name, "Hopper, Grace");
        let email = grace.contact_points.iter().find(|point| point.kind == ContactKind::Email).unwrap();
        assert_eq!(email.opted_out, [Channel::Email]);
    }
}

#[tokio::test]
async fn importing_the_same_file_twice_changes_nothing() {
    for db in all_dbs().await {
        let files = Files::new();
        let accounts = files.write("accounts.csv", &accounts_csv(&[ROW_1, ROW_2, ROW_3]));
        let payments = files
            .write("payments.csv", "account_id,amount,paid_at,reference\nA-1,200.50,2026-11-21T10:00:00+08:00,P-1\n");
        let attempts = files.write(
            "attempts.csv",
            "account_id,channel,phone,at,outcome\nA-1,robot,+8613800138000,2026-11-21T09:00:00.123456+08:00,no_answer\n",
        );
        let promises =
            files.write("promises.csv", "account_id,amount,due_on,made_at\nA-2,100,2026-11-30,2026-11-21T11:00:00Z\n");
        let files = [
            (ImportKind::Accounts, &accounts),
            (ImportKind::Payments, &payments),
            (ImportKind::Attempts, &attempts),
            (ImportKind::Promises, &promises),
        ];
        for (kind, path) in files {
            let first = import_ok(&db, kind, path, at(1)).await;
            assert_eq!((first.inserted, first.unchanged), (first.rows, 0), "{} {kind}", db.backend);
            let before = snapshot(&db).await;
            // Later, with another clock: nothing changes, `updated_at` included.
            let again = import_ok(&db, kind, path, at(5)).await;
            assert_eq!(
                (again.rows, again.inserted, again.updated, again.unchanged),
                (first.rows, 0, 0, first.rows),
                "{} {kind}",
                db.backend
            );
            assert_eq!(snapshot(&db).await, before, "{} {kind}", db.backend);
        }
        assert_eq!(snapshot(&db).await.counts(), [2, 6, 3, 1, 1, 1], "{}", db.backend);
    }
}

#[tokio::test]
async fn changed_and_new_accounts_are_counted_and_stamped() {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        // A-1 owes less, A-4 is new; the opt_outs column is gone: stored opt-outs stay.
        let header = HEADER.trim_end_matches(",opt_outs");
        let strip = |row: &str| row.rsplit_once(',').unwrap().0.to_string();
        let text = format!(
            "{header}\n{}\n{}\n{}\n{}\n",
            strip(&ROW_1.replace("1200.50", "1000")),
            strip(ROW_2),
            strip(ROW_3),
            strip(&ROW_3.replace("A-3", "A-4"))
        );
        let report = import_ok(&db, ImportKind::Accounts, &files.write("update.csv", &text), at(3)).await;
        assert_eq!(
            (report.rows, report.inserted, report.updated, report.unchanged),
            (4, 1, 1, 2),
            "{}: {report}",
            db.backend
        );
        let rows = snapshot(&db).await;
        let stamp = |id: &str| rows.accounts.iter().find(|account| account.id == id).unwrap().updated_at;
        assert_eq!((stamp("A-1"), stamp("A-2"), stamp("A-4")), (at(3), at(1), at(3)), "{}", db.backend);
        let book = store::load_portfolio(&*db).await.unwrap();
        assert_eq!(book.accounts[0].amount_due, money("1000"));
        assert_eq!(book.borrowers["B-1"].contact_points[1].opted_out, [Channel::Sms], "{}", db.backend);
    }
}

#[tokio::test]
async fn payments_lower_what_is_owed_once() {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let path = files.write(
            "payments.csv",
            "account_id,amount,paid_at,reference\n\
             A-1,200.50,2026-11-21T10:00:00+08:00,P-1\n\
             A-3,150,2026-11-21T10:00:00Z,P-2\n\
             A-2,100.25,2026-11-21T10:00:00Z,P-3\n\
             A-2,0.75,2026-11-21T11:00:00Z,P-4\n",
        );
        let report = import_ok(&db, ImportKind::Payments, &path, at(2)).await;
        assert_eq!((report.rows, report.inserted, report.unchanged), (4, 4, 0), "{}", db.backend);
        let owed = |book: &arrears::domain::Portfolio| {
            book.accounts.iter().map(|account| (account.amount_due, account.balance)).collect::<Vec<_>>()
        };
        let expected = vec![
            (money("1000.00"), money("4799.50")),
            (money("199"), money("199")),
            // Paid more than was due: nothing is due, never a negative amount.
            (money("0"), money("850")),
        ];
        assert_eq!(owed(&store::load_portfolio(&*db).await.unwrap()), expected, "{}", db.backend);

        // The same file again: idempotent by reference, amounts untouched.
        let again = import_ok(&db, ImportKind::Payments, &path, at(4)).await;
        assert_eq!((again.inserted, again.unchanged), (0, 4), "{}", db.backend);
        assert_eq!(owed(&store::load_portfolio(&*db).await.unwrap()), expected, "{}", db.backend);
    }
}

#[tokio::test]
async fn a_reference_reused_for_another_payment_is_rejected() {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let first = files.write("p1.csv", "account_id,amount,paid_at,reference\nA-1,10,2026-11-21T10:00:00Z,P-1\n");
        import_ok(&db, ImportKind::Payments, &first, at(2)).await;
        let before = snapshot(&db).await;
        let second = files.write(
            "p2.csv",
            "account_id,amount,paid_at,reference\nA-2,5,2026-11-21T10:00:00Z,P-9\nA-1,11,2026-11-21T10:00:00Z,P-1\n",
        );
        let text = import(&db, ImportKind::Payments, &second, at(3)).await.unwrap_err().to_string();
        for fragment in
            ["row 2 (line 3)", "column reference", "\"P-1\"", "already recorded in the store for account A-1"]
        {
            assert!(text.contains(fragment), "{}: `{fragment}` in {text}", db.backend);
        }
        assert_eq!(snapshot(&db).await, before, "{}: nothing written", db.backend);
    }
}

#[tokio::test]
async fn attempts_and_promises_feed_the_history() {
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let attempts = files.write(
            "attempts.csv",
            "account_id,channel,phone,at,outcome\n\
             A-2,robot,+8613800138002,2026-11-20T09:00:00Z,wrong_number\n\
             A-1,human,+8613800138000,2026-11-21T09:00:00Z,rpc\n\
             A-1,sms,+8613800138000,2026-11-19T09:00:00Z,delivered\n\
             A-3,email,grace@example.com,2026-11-21T10:00:00Z,delivered\n\
             A-1,robot,,2026-11-01T09:00:00Z,refused\n",
        );
        let report = import_ok(&db, ImportKind::Attempts, &attempts, at(2)).await;
        assert_eq!((report.rows, report.inserted), (5, 5), "{}", db.backend);
        let promises =
            files.write("promises.csv", "account_id,amount,due_on,made_at\nA-1,300,2026-11-30,2026-11-21T09:05:00Z\n");
        import_ok(&db, ImportKind::Promises, &promises, at(2)).await;

        let since = Utc.with_ymd_and_hms(2026, 11, 14, 0, 0, 0).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let history = store::load_history(&*db, store::HistoryScope::Book, since, Some(day..=day)).await.unwrap();
        let ada: Vec<(&str, Channel)> =
            history.attempts_of("B-1").iter().map(|attempt| (attempt.account_id.as_str(), attempt.channel)).collect();
        // Oldest first; the attempt of 1 November is outside the window.
        assert_eq!(ada, [("A-1", Channel::Sms), ("A-2", Channel::Robot), ("A-1", Channel::Human)], "{}", db.backend);
        assert_eq!(history.attempts_of("B-2").len(), 1);
        assert_eq!(history.last_conversation["A-1"], Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap());
        assert!(!history.last_conversation.contains_key("A-2"), "a wrong number is no conversation");
        assert_eq!(history.open_promises["A-1"].amount, money("300"), "{}", db.backend);

        // The wrong number is marked on the borrower's contact point.
        let book = store::load_portfolio(&*db).await.unwrap();
        let marked: Vec<&str> = book.borrowers["B-1"]
            .contact_points
            .iter()
            .filter(|point| point.wrong_number)
            .map(|point| point.address.as_str())
            .collect();
        assert_eq!(marked, ["+8613800138002"], "{}", db.backend);
    }
}

#[tokio::test]
async fn rejects_an_unknown_column() {
    let text = accounts_csv(&[ROW_1]).replacen("attr.branch", "colour", 1);
    assert_rejected(ImportKind::Accounts, &text, &["line 1 (header), column \"colour\"", "is not a known column"])
        .await;
}

#[tokio::test]
async fn rejects_a_missing_column() {
    let text = accounts_csv(&[]).replacen("due_date,", "", 1);
    assert_rejected(ImportKind::Accounts, &text, &["line 1 (header)", "missing column \"due_date\""]).await;
}

#[tokio::test]
async fn rejects_an_unknown_flag() {
    let bad = ROW_3.replace("2026-11-20,,,", "2026-11-20,,deceased;vip,");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column flags: \"vip\" is not a known flag (expected one of: cease_contact"],
    )
    .await;
}

#[tokio::test]
async fn rejects_an_unknown_time_zone() {
    let bad = ROW_3.replace("America/New_York", "America/New_York;Mars/Olympus");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column timezones: \"Mars/Olympus\" is not an IANA time zone"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_date() {
    let bad = ROW_3.replace("2026-11-20", "2026-13-01");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column due_date: \"2026-13-01\" is not a date (YYYY-MM-DD)"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_amount() {
    let bad = ROW_3.replace(",99.99,", ",\"99,99\",");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column amount_due: \"99,99\" is not a decimal amount"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_phone() {
    let bad = ROW_3.replace("+15551234567", "5551234567");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column phones: \"5551234567\" is not an E.164 phone number"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_boolean() {
    let bad = ROW_3.replace(",,,true,", ",,,yes,");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column consent_robot: \"yes\" is not a boolean (true or false)"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_score() {
    let bad = ROW_3.replace(",0.9,", ",high,");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column score.loss: \"high\" is not a number"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_bad_currency() {
    let bad = ROW_3.replace(",USD,", ",usd,");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column currency: \"usd\" is not an ISO 4217 currency code"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_repeated_account() {
    let bad = ROW_3.replace("A-3,B-2", "A-1,B-2");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column account_id: \"A-1\" repeats row 1"],
    )
    .await;
}

#[tokio::test]
async fn rejects_an_opt_out_for_an_address_the_borrower_does_not_have() {
    let bad = ROW_3.replace("email:grace@example.com", "sms:+15550000000");
    assert_rejected(
        ImportKind::Accounts,
        &accounts_with_bad_row_3(&bad),
        &["row 3 (line 4), column opt_outs: \"sms:+15550000000\" names phone number +15550000000"],
    )
    .await;
}

#[tokio::test]
async fn rejects_a_row_with_missing_fields_and_reports_every_error_in_order() {
    let text = format!(
        "{}A-9,B-9,short row\n",
        accounts_with_bad_row_3(&ROW_3.replace("2026-11-20", "2026-02-30").replace(",USD,", ",US,"))
    );
    assert_rejected(
        ImportKind::Accounts,
        &text,
        &[
            "3 errors; nothing was imported",
            "row 3 (line 4), column currency: \"US\"",
            "row 3 (line 4), column due_date: \"2026-02-30\"",
            "row 5 (line 6): has 3 fields, the header has 17",
        ],
    )
    .await;
}

#[tokio::test]
async fn stops_after_twenty_errors() {
    let rows: Vec<String> =
        (0..30).map(|n| ROW_3.replace("A-3", &format!("A-{}", n + 10)).replace(",USD,", ",??,")).collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    assert_rejected(ImportKind::Accounts, &accounts_csv(&rows), &["20 errors (stopped there", "row 20 (line 21)"])
        .await;
}

#[tokio::test]
async fn rejects_events_of_unknown_accounts() {
    assert_rejected(
        ImportKind::Payments,
        "account_id,amount,paid_at,reference\nA-1,10,2026-11-21T10:00:00Z,P-1\nA-404,10,2026-11-21T10:00:00Z,P-2\n",
        &["row 2 (line 3), column account_id: \"A-404\" is not a known account"],
    )
    .await;
    assert_rejected(
        ImportKind::Attempts,
        "account_id,channel,phone,at,outcome\nA-404,sms,+8613800138000,2026-11-21T10:00:00Z,delivered\n",
        &["row 1 (line 2), column account_id: \"A-404\" is not a known account"],
    )
    .await;
    assert_rejected(
        ImportKind::Promises,
        "account_id,amount,due_on,made_at\nA-1,10,2026-11-30,2026-11-21T10:00:00Z\nA-405,10,2026-11-30,2026-11-21T10:00:00Z\n",
        &["row 2 (line 3), column account_id: \"A-405\" is not a known account"],
    )
    .await;
}

#[tokio::test]
async fn rejects_bad_outcomes_channels_and_times() {
    assert_rejected(
        ImportKind::Attempts,
        "account_id,channel,phone,at,outcome\n\
         A-1,fax,+8613800138000,2026-11-21T10:00:00Z,delivered\n\
         A-1,sms,+8613800138000,2026-11-21T10:00:00Z,hung_up\n\
         A-1,sms,+8613800138000,yesterday,delivered\n",
        &[
            "row 1 (line 2), column channel: \"fax\" is not a known channel (expected one of: sms, email, robot, human)",
            "row 2 (line 3), column outcome: \"hung_up\" is not a known outcome",
            "row 3 (line 4), column at: \"yesterday\" is not an RFC 3339 date and time",
        ],
    )
    .await;
    assert_rejected(
        ImportKind::Payments,
        "account_id,amount,paid_at,reference\nA-1,-5,2026-11-21T10:00:00Z,P-1\n",
        &["row 1 (line 2), column amount: \"-5\" is negative"],
    )
    .await;
    assert_rejected(
        ImportKind::Promises,
        "account_id,amount,made_at\nA-1,10,2026-11-21T10:00:00Z\n",
        &["missing column \"due_on\""],
    )
    .await;
}

#[test]
fn import_kinds_parse_from_their_names() {
    assert_eq!("payments".parse::<ImportKind>(), Ok(ImportKind::Payments));
    assert!("loans".parse::<ImportKind>().unwrap_err().contains("accounts, payments, attempts, promises"));
}

#[tokio::test]
async fn a_payment_in_full_from_csv_cancels_the_open_tasks() {
    use sea_orm::EntityTrait;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = arrears::policy::PolicySettings::default();
    let options = arrears::strategy::LoadOptions {
        templates_dir: &root.join("templates"),
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    let strategies = arrears::strategy::load_dir(&root.join("strategies"), &options).unwrap();
    for db in all_dbs().await {
        let files = Files::new();
        with_base(&db, &files).await;
        let (_, plan) = arrears::ops::plan_collect(&db, &strategies, at(1), false).await.unwrap();
        let planned = plan.tasks.iter().filter(|task| &*task.account_id == "A-1").count();
        assert!(planned > 0, "{}: A-1 has tasks", db.backend);

        let path =
            files.write("payments.csv", "account_id,amount,paid_at,reference\nA-1,1200.50,2026-11-22T02:00:00Z,P-1\n");
        import_ok(&db, ImportKind::Payments, &path, at(3)).await;
        let tasks = store::tasks_for_account(&*db, "A-1").await.unwrap();
        assert_eq!(tasks.len(), planned, "{}", db.backend);
        for task in &tasks {
            assert_eq!(task.state, "cancelled", "{}", db.backend);
            assert_eq!(task.state_reason.as_deref(), Some("paid_in_full"), "{}", db.backend);
            assert_eq!(task.state_changed_at, Some(at(3)), "{}", db.backend);
        }
        let others = store::tasks_for_account(&*db, "A-3").await.unwrap();
        assert!(others.iter().all(|task| task.state == "planned"), "{}: A-3 was not paid", db.backend);
        let audit = entity::audit_log::Entity::find().all(&db.db).await.unwrap();
        let paid: Vec<_> = audit.iter().filter(|row| row.action == "account.paid_in_full").collect();
        assert_eq!(paid.len(), 1, "{}", db.backend);
        assert_eq!((paid[0].entity_id.as_str(), paid[0].actor.as_str()), ("A-1", "import"), "{}", db.backend);
    }
}
