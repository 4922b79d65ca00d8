//! Table-driven tests of the pure planner and its policy checks: time zones, daylight saving,
//! caps' rolling windows, cool-downs, flags, opt-outs, consent, promises and rule order.

use arrears::domain::{
    Account, AttemptRecord, Borrower, Channel, ContactKind, ContactPoint, Flags, History, Outcome, Portfolio,
    PromiseRecord,
};
use arrears::plan::{Decision, Planner, Task};
use arrears::policy::PolicySettings;
use arrears::strategy::{LoadOptions, SourceFile, StrategySet, load_sources};
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

fn strategies(policy: &str, rules: &str) -> StrategySet {
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(templates.path().join("sms")).unwrap();
    std::fs::write(templates.path().join("sms/t.hbs"), "Hi {{borrower.name}}").unwrap();
    std::fs::create_dir_all(templates.path().join("robot")).unwrap();
    std::fs::write(templates.path().join("robot/t.hbs"), "Hello {{borrower.name}}").unwrap();
    let text = format!(
        "name = \"test\"\npolicy = \"{policy}\"\n[stages]\npre = {{ dpd = [-5, -1] }}\nearly = {{ dpd = [1, 30] }}\nlate = {{ dpd = [31, 365] }}\n{rules}"
    );
    let settings = PolicySettings::default();
    let options = LoadOptions {
        templates_dir: templates.path(),
        default_policy: policy,
        settings: &settings,
        capacities: &Default::default(),
    };
    load_sources(&[SourceFile { name: "test.toml".into(), text }], &options).unwrap_or_else(|e| panic!("{e}"))
}

const ROBOT: &str = r#"
[[rule]]
name = "robot"
channel = "robot"
template = "robot/t"
attempts_per_day = 3
min_gap = "2h"
"#;

fn borrower(zones: &[Tz]) -> Borrower {
    Borrower {
        id: "B1".into(),
        name: "Ann".into(),
        timezones: zones.to_vec(),
        contact_points: vec![
            ContactPoint {
                kind: ContactKind::Phone,
                address: "+15550000001".into(),
                opted_out: vec![],
                wrong_number: false,
                retired: false,
            },
            ContactPoint {
                kind: ContactKind::Email,
                address: "ann@example.com".into(),
                opted_out: vec![],
                wrong_number: false,
                retired: false,
            },
        ],
        consent_robot: true,
    }
}

fn account(due_date: &str) -> Account {
    Account {
        id: "A1".into(),
        borrower_id: "B1".into(),
        product: "card".into(),
        currency: "USD".into(),
        amount_due: "100".parse().unwrap(),
        balance: "1000".parse().unwrap(),
        due_date: due_date.parse().unwrap(),
        tags: vec![],
        flags: Flags::NONE,
        scores: vec![],
        attrs: vec![],
        broken_promises: 0,
        funders: None,
        hold_until: None,
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn decide(set: &StrategySet, history: &History, account: &Account, borrower: &Borrower, now: &str) -> Decision {
    Planner::new(history, set, utc(now)).decide(account, Some(borrower))
}

fn tasks(decision: Decision) -> Vec<Task> {
    match decision {
        Decision::Tasks(tasks) => tasks,
        Decision::Skip(skip) => panic!("expected tasks, got skip {} ({})", skip.reason, skip.detail),
    }
}

fn reason(decision: Decision) -> String {
    match decision {
        Decision::Skip(skip) => skip.reason.to_string(),
        Decision::Tasks(tasks) => panic!("expected a skip, got {} tasks", tasks.len()),
    }
}

/// Every minute of every task window is inside `hours` in every zone of the borrower.
fn assert_inside_hours(tasks: &[Task], zones: &[Tz], first_hour: u32, end_hour: u32) {
    for task in tasks {
        let mut instant = task.not_before.to_utc();
        while instant < task.not_after.to_utc() {
            for zone in zones {
                let local = instant.with_timezone(zone);
                assert!(
                    local.hour() >= first_hour && local.hour() < end_hour,
                    "task {} attempt {} touches {local} in {zone}",
                    task.rule,
                    task.attempt
                );
            }
            instant += Duration::minutes(1);
        }
    }
}

#[test]
fn windows_stay_inside_contact_hours_on_dst_days_and_odd_offsets() {
    use chrono_tz::{America, Asia, Australia, Europe, Pacific};
    struct Case {
        name: &'static str,
        policy: &'static str,
        zones: &'static [Tz],
        now: &'static str,
        hours: (u32, u32),
        first_local: &'static str,
    }
    let cases = [
        Case {
            name: "US spring forward",
            policy: "us-reg-f",
            zones: &[America::New_York],
            now: "2026-03-08T05:00:00Z",
            hours: (8, 21),
            first_local: "2026-03-08T08:00:00-04:00",
        },
        Case {
            name: "US fall back",
            policy: "us-reg-f",
            zones: &[America::New_York],
            now: "2026-11-01T05:00:00Z",
            hours: (8, 21),
            first_local: "2026-11-01T08:00:00-05:00",
        },
        Case {
            name: "UK spring forward",
            policy: "uk-fca",
            zones: &[Europe::London],
            now: "2026-03-29T00:30:00Z",
            hours: (8, 21),
            first_local: "2026-03-29T08:00:00+01:00",
        },
        Case {
            name: "UK fall back",
            policy: "uk-fca",
            zones: &[Europe::London],
            now: "2026-10-25T00:30:00Z",
            hours: (8, 21),
            first_local: "2026-10-25T08:00:00+00:00",
        },
        Case {
            name: "India +05:30",
            policy: "cn-gbt-45251",
            zones: &[Asia::Kolkata],
            now: "2026-11-22T00:00:00Z",
            hours: (8, 22),
            first_local: "2026-11-22T08:00:00+05:30",
        },
        Case {
            name: "Nepal +05:45",
            policy: "cn-gbt-45251",
            zones: &[Asia::Kathmandu],
            now: "2026-11-22T00:00:00Z",
            hours: (8, 22),
            first_local: "2026-11-22T08:00:00+05:45",
        },
        Case {
            name: "Chatham +13:45",
            policy: "uk-fca",
            zones: &[Pacific::Chatham],
            now: "2026-11-21T12:00:00Z",
            hours: (8, 21),
            first_local: "2026-11-22T08:00:00+13:45",
        },
        Case {
            name: "Adelaide DST start +10:30",
            policy: "uk-fca",
            zones: &[Australia::Adelaide],
            now: "2026-10-03T15:00:00Z",
            hours: (8, 21),
            first_local: "2026-10-04T08:00:00+10:30",
        },
        Case {
            name: "New York and Los Angeles",
            policy: "us-reg-f",
            zones: &[America::New_York, America::Los_Angeles],
            now: "2026-03-08T05:00:00Z",
            hours: (8, 21),
            first_local: "2026-03-08T11:00:00-04:00",
        },
        Case {
            name: "Shanghai and Urumqi on UTC+6 time",
            policy: "cn-gbt-45251",
            zones: &[Asia::Shanghai, Asia::Urumqi],
            now: "2026-11-22T00:00:00Z",
            hours: (8, 22),
            first_local: "2026-11-22T10:00:00+08:00",
        },
    ];
    for case in cases {
        let set = strategies(case.policy, ROBOT);
        let borrower = borrower(case.zones);
        let got = tasks(decide(&set, &History::default(), &account("2026-02-20"), &borrower, case.now));
        assert_eq!(got[0].not_before.to_rfc3339(), case.first_local, "{}", case.name);
        assert_eq!(got.len(), 3, "{}", case.name);
        assert_inside_hours(&got, case.zones, case.hours.0, case.hours.1);
        let starts: Vec<_> = got.iter().map(|t| t.not_before).collect();
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= Duration::hours(2)), "{}: min_gap", case.name);
    }
}

#[test]
fn windows_wider_than_the_policy_are_clipped_and_disjoint_zones_get_no_window() {
    let wide = r#"
[[rule]]
name = "wide"
channel = "sms"
template = "sms/t"
windows = ["06:00-23:30"]
"#;
    let set = strategies("us-reg-f", wide);
    let zones = [chrono_tz::America::Chicago];
    let got =
        tasks(decide(&set, &History::default(), &account("2026-11-01"), &borrower(&zones), "2026-11-23T06:00:00Z"));
    assert_eq!(got[0].not_before.to_rfc3339(), "2026-11-23T08:00:00-06:00");
    assert_eq!(got[0].not_after.to_rfc3339(), "2026-11-23T21:00:00-06:00");

    let far = [chrono_tz::Asia::Shanghai, chrono_tz::America::New_York];
    let narrow = strategies("us-reg-f", &wide.replace("06:00-23:30", "09:00-11:00"));
    assert_eq!(
        reason(decide(&narrow, &History::default(), &account("2026-11-01"), &borrower(&far), "2026-11-22T16:00:00Z")),
        "no_window"
    );
}

#[test]
fn the_day_already_over_gives_no_window() {
    let set = strategies("us-reg-f", ROBOT);
    let zones = [chrono_tz::America::New_York];
    assert_eq!(
        reason(decide(&set, &History::default(), &account("2026-11-01"), &borrower(&zones), "2026-11-23T02:30:00Z")),
        "no_window"
    );
}

fn call(at: &str, outcome: Outcome) -> AttemptRecord {
    AttemptRecord::new("A1", utc(at), Channel::Robot, Some("+15550000001"), outcome)
}

fn history_with(attempts: Vec<AttemptRecord>) -> History {
    let mut history = History::default();
    for attempt in attempts {
        history.record_attempt("B1", attempt);
    }
    history
}

#[test]
fn seven_calls_in_seven_days_counts_local_days_at_the_edges() {
    let set = strategies("us-reg-f", ROBOT);
    let zones = [chrono_tz::America::New_York];
    // 7 unanswered calls; the oldest at 23:30 New York time on Nov 16 (04:30Z on Nov 17).
    let mut attempts: Vec<AttemptRecord> =
        (0..6).map(|i| call(&format!("2026-11-{:02}T15:00:00Z", 17 + i), Outcome::NoAnswer)).collect();
    attempts.push(call("2026-11-17T04:30:00Z", Outcome::NoAnswer));
    let history = history_with(attempts);
    // On Nov 22 (local) the window is Nov 16..22: the Nov 16 23:30 call counts, 7 calls, no room.
    assert_eq!(
        reason(decide(&set, &history, &account("2026-11-01"), &borrower(&zones), "2026-11-22T18:00:00Z")),
        "cap:calls_7d"
    );
    // On Nov 23 the Nov 16 call has left the window: 6 calls, room for exactly one.
    let got = tasks(decide(&set, &history, &account("2026-11-01"), &borrower(&zones), "2026-11-23T12:00:00Z"));
    assert_eq!(got.len(), 1);
    // us-ma allows 2 in 7 days.
    let ma = strategies("us-ma", ROBOT);
    let two = history_with(vec![
        call("2026-11-20T15:00:00Z", Outcome::NoAnswer),
        call("2026-11-21T15:00:00Z", Outcome::Busy),
    ]);
    assert_eq!(
        reason(decide(&ma, &two, &account("2026-11-01"), &borrower(&zones), "2026-11-22T12:00:00Z")),
        "cap:calls_7d"
    );
}

#[test]
fn conversation_cooldown_counts_the_conversation_day_as_day_one() {
    let set = strategies("us-reg-f", ROBOT);
    let zones = [chrono_tz::America::New_York];
    // A conversation at 20:00 New York on Nov 10 (01:00Z Nov 11): days 1..7 are Nov 10..16.
    let history = history_with(vec![call("2026-11-11T01:00:00Z", Outcome::Rpc)]);
    for (now, expected) in [("2026-11-16T13:00:00Z", Some("cooldown:conversation")), ("2026-11-17T13:00:00Z", None)] {
        let decision = decide(&set, &history, &account("2026-11-01"), &borrower(&zones), now);
        match expected {
            Some(code) => assert_eq!(reason(decision), code, "{now}"),
            None => assert!(!tasks(decision).is_empty(), "{now}"),
        }
    }
    // SMS is not a call: no cool-down.
    let sms = strategies("us-reg-f", "[[rule]]\nname = \"sms\"\nchannel = \"sms\"\ntemplate = \"sms/t\"\n");
    assert!(
        !tasks(decide(&sms, &history, &account("2026-11-01"), &borrower(&zones), "2026-11-12T13:00:00Z")).is_empty()
    );
}

#[test]
fn cn_caps_connected_calls_per_borrower_and_unanswered_per_number() {
    let set = strategies("cn-gbt-45251", ROBOT);
    let zones = [chrono_tz::Asia::Shanghai];
    let mut other = call("2026-11-22T01:00:00Z", Outcome::Rpc);
    other.account_id = "A2".into();
    let connected = history_with(vec![
        other.clone(),
        call("2026-11-22T02:00:00Z", Outcome::Refused),
        call("2026-11-22T03:00:00Z", Outcome::PaidClaimed),
    ]);
    assert_eq!(
        reason(decide(&set, &connected, &account("2026-11-01"), &borrower(&zones), "2026-11-22T04:00:00Z")),
        "cap:rpc_per_day"
    );
    let unanswered =
        history_with((0..5).map(|i| call(&format!("2026-11-22T0{i}:10:00Z"), Outcome::NoAnswer)).collect());
    let got = tasks(decide(&set, &unanswered, &account("2026-11-01"), &borrower(&zones), "2026-11-22T05:00:00Z"));
    assert_eq!(got.len(), 1, "6 unanswered per number per day, 5 used");
    let six = history_with((0..6).map(|i| call(&format!("2026-11-22T0{i}:10:00Z"), Outcome::NoAnswer)).collect());
    assert_eq!(
        reason(decide(&set, &six, &account("2026-11-01"), &borrower(&zones), "2026-11-22T06:30:00Z")),
        "cap:unanswered_per_number"
    );
}

#[test]
fn flags_opt_outs_consent_and_promises_skip_with_their_codes() {
    let set = strategies("us-reg-f", ROBOT);
    let zones = [chrono_tz::America::New_York];
    let now = "2026-11-23T12:00:00Z";
    let none = History::default();
    for (flags, code) in [
        ("deceased", "flag:deceased"),
        ("breathing_space", "flag:breathing_space"),
        ("do_not_call", "flag:do_not_call"),
        ("dispute;cease_contact", "flag:cease_contact"),
    ] {
        let mut flagged = account("2026-11-01");
        flagged.flags = Flags::parse_list(flags).unwrap();
        assert_eq!(reason(decide(&set, &none, &flagged, &borrower(&zones), now)), code);
    }
    let mut no_consent = borrower(&zones);
    no_consent.consent_robot = false;
    assert_eq!(reason(decide(&set, &none, &account("2026-11-01"), &no_consent, now)), "no_consent");
    let mut opted_out = borrower(&zones);
    opted_out.contact_points[0].opted_out = vec![Channel::Robot];
    assert_eq!(reason(decide(&set, &none, &account("2026-11-01"), &opted_out, now)), "opt_out:robot");
    let mut no_phone = borrower(&zones);
    no_phone.contact_points.remove(0);
    assert_eq!(reason(decide(&set, &none, &account("2026-11-01"), &no_phone, now)), "no_contact_point");

    let mut promised = History::default();
    promised.open_promises.insert(
        "A1".into(),
        PromiseRecord {
            amount: "100".parse().unwrap(),
            due_on: NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
            made_at: utc("2026-11-20T12:00:00Z"),
        },
    );
    assert_eq!(reason(decide(&set, &promised, &account("2026-11-01"), &borrower(&zones), now)), "promise_open");
    assert!(
        !tasks(decide(&set, &promised, &account("2026-11-01"), &borrower(&zones), "2026-11-24T12:00:00Z")).is_empty(),
        "past the grace day the promise no longer holds the account"
    );

    let mut paid = account("2026-11-01");
    paid.amount_due = "0".parse().unwrap();
    assert_eq!(reason(decide(&set, &none, &paid, &borrower(&zones), now)), "not_due");
    assert_eq!(reason(decide(&set, &none, &account("2026-11-23"), &borrower(&zones), now)), "no_stage");
}

#[test]
fn the_first_matching_rule_decides_and_priority_follows_the_field() {
    let rules = r#"
[[rule]]
name = "vip to people"
stage = "early"
when = { tags_any = ["vip"], balance = { min = "500" } }
channel = "human"
queue = "senior"
calls_per_day = 2
priority = "balance"

[[rule]]
name = "high risk robot"
stage = ["early", "late"]
when = { "score.loss" = { min = 0.5 } }
channel = "robot"
template = "robot/t"

[[rule]]
name = "everyone else"
channel = "sms"
template = "sms/t"
"#;
    let set = strategies("us-reg-f", rules);
    let zones = [chrono_tz::America::New_York];
    let now = "2026-11-23T12:00:00Z";
    let none = History::default();
    let mut vip = account("2026-11-01");
    vip.tags = vec!["vip".into()];
    vip.scores = vec![("loss".into(), 0.9)];
    let got = tasks(decide(&set, &none, &vip, &borrower(&zones), now));
    assert_eq!(
        (&*got[0].rule, got[0].channel, got[0].queue.as_deref(), got[0].calls_allowed, got[0].priority),
        ("vip to people", Channel::Human, Some("senior"), 2, 1000.0)
    );
    let mut risky = account("2026-11-01");
    risky.scores = vec![("loss".into(), 0.7)];
    assert_eq!(&*tasks(decide(&set, &none, &risky, &borrower(&zones), now))[0].rule, "high risk robot");
    assert_eq!(&*tasks(decide(&set, &none, &account("2026-11-01"), &borrower(&zones), now))[0].rule, "everyone else");
    let mut no_score = account("2026-11-01");
    no_score.tags = vec!["vip".into()];
    no_score.balance = "100".parse().unwrap();
    assert_eq!(
        &*tasks(decide(&set, &none, &no_score, &borrower(&zones), now))[0].rule,
        "everyone else",
        "a missing score never matches"
    );
}

#[test]
fn experiments_assign_arms_stickily_and_reserve_rules() {
    let rules = r#"
[[rule]]
name = "m1 human"
stage = "early"
channel = "human"
queue = "early"

[[rule]]
name = "robot"
channel = "robot"
template = "robot/t"

[[experiment]]
name = "split"
stage = "early"
arms = [{ name = "champion", weight = 50 }, { name = "human-first", weight = 50, rules = ["m1 human"] }]
"#;
    let set = strategies("us-reg-f", rules);
    let zones = [chrono_tz::America::New_York];
    // 400 borrowers with one account each, and borrower B0 with 20 more accounts.
    let mut portfolio = Portfolio::default();
    for i in 0..400 {
        let mut owner = borrower(&zones);
        owner.id = format!("B{i}");
        portfolio.borrowers.insert(owner.id.clone(), owner);
        let mut account = account("2026-11-01");
        account.id = format!("A{i}");
        account.borrower_id = format!("B{i}");
        portfolio.accounts.push(account);
    }
    for i in 0..20 {
        let mut account = account("2026-11-01");
        account.id = format!("X{i}");
        account.borrower_id = "B0".into();
        portfolio.accounts.push(account);
    }
    let now = utc("2026-11-23T12:00:00Z");
    let first = arrears::plan::plan(&portfolio, &History::default(), &set, now);
    let again = arrears::plan::plan(&portfolio, &History::default(), &set, now);
    assert_eq!(first, again, "assignment is deterministic");
    let human: Vec<&Task> = first.tasks.iter().filter(|t| t.channel == Channel::Human).collect();
    assert!(human.iter().all(|t| t.arm.as_deref() == Some("human-first") && &*t.rule == "m1 human"));
    assert!(first.tasks.iter().filter(|t| t.channel == Channel::Robot).all(|t| t.arm.as_deref() == Some("champion")));
    let singles = human.iter().filter(|t| t.account_id.starts_with('A')).count();
    let share = singles as f64 / 400.0;
    assert!((0.4..0.6).contains(&share), "human-first share {share}");
    let b0: std::collections::HashSet<Option<&str>> =
        first.tasks.iter().filter(|t| &*t.borrower_id == "B0").map(|t| t.arm.as_deref()).collect();
    assert_eq!(b0.len(), 1, "all of a borrower's accounts share an arm: {b0:?}");
}

#[test]
fn every_account_appears_once_as_tasks_or_one_skip_and_replanning_adds_nothing() {
    let set = strategies("us-reg-f", ROBOT);
    let zones = [chrono_tz::America::New_York];
    let mut portfolio = Portfolio::default();
    portfolio.borrowers.insert("B1".into(), borrower(&zones));
    for (i, due) in ["2026-11-01", "2026-11-30", "2026-11-20"].iter().enumerate() {
        let mut account = account(due);
        account.id = format!("A{i}");
        portfolio.accounts.push(account);
    }
    let now = utc("2026-11-23T12:00:00Z");
    let plan = arrears::plan::plan(&portfolio, &History::default(), &set, now);
    let mut seen: Vec<&str> = plan.skips.iter().map(|s| s.account_id.as_str()).collect();
    seen.extend(plan.tasks.iter().filter(|t| t.attempt == 1).map(|t| &*t.account_id));
    seen.sort();
    assert_eq!(seen, ["A0", "A1", "A2"]);
    let mut history = History::default();
    for task in &plan.tasks {
        history.planned_days.insert((task.account_id.to_string(), task.local_date));
    }
    let again = arrears::plan::plan(&portfolio, &history, &set, now);
    assert!(again.tasks.is_empty());
    assert_eq!(again.skips.iter().filter(|s| s.reason == "already_planned").count(), 2);
}

#[test]
fn a_human_task_never_spans_a_gap_between_allowed_intervals() {
    let rules = r#"
[[rule]]
name = "people"
channel = "human"
queue = "q"
windows = ["09:00-12:00", "14:00-20:00"]
"#;
    let set = strategies("cn-gbt-45251", rules);
    let shanghai = [chrono_tz::Asia::Shanghai];
    let got =
        tasks(decide(&set, &History::default(), &account("2026-11-01"), &borrower(&shanghai), "2026-11-22T00:00:00Z"));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].not_before.to_rfc3339().as_str(), got[0].not_after.to_rfc3339().as_str()),
        ("2026-11-22T14:00:00+08:00", "2026-11-22T20:00:00+08:00")
    );
    // Shanghai and New York under 08:00-22:00 overlap twice a day; the task takes one piece.
    let both = [chrono_tz::Asia::Shanghai, chrono_tz::America::New_York];
    let wide = strategies("cn-gbt-45251", "[[rule]]\nname = \"people\"\nchannel = \"human\"\nqueue = \"q\"\n");
    let got =
        tasks(decide(&wide, &History::default(), &account("2026-11-01"), &borrower(&both), "2026-11-21T16:00:00Z"));
    assert_inside_hours(&got, &both, 8, 22);
}

#[test]
fn cn_plans_up_to_the_unanswered_cap_and_explain_names_the_cap_that_cut_the_count() {
    // A rule asking for 8 attempts on a borrower with one phone: cn-gbt-45251 allows 6
    // unanswered calls to a number; the 3 connected calls are enforced at each hand-off.
    let eight = ROBOT.replace("attempts_per_day = 3", "attempts_per_day = 8").replace("min_gap = \"2h\"", "");
    let set = strategies("cn-gbt-45251", &eight);
    let one_phone = borrower(&[chrono_tz::Asia::Shanghai]);
    let now = "2026-11-22T00:30:00Z";
    let got = tasks(decide(&set, &History::default(), &account("2026-11-01"), &one_phone, now));
    assert_eq!(got.len(), 6);
    let explanation =
        arrears::plan::explain(&account("2026-11-01"), Some(&one_phone), &History::default(), &set, None, utc(now));
    assert_eq!(explanation.decision.limited_by.as_deref(), Some("cap:unanswered_per_number: 6 left"));
    // With a second phone, the rule's own 8 decide, and no cap is named.
    let mut both = borrower(&[chrono_tz::Asia::Shanghai]);
    let mut second = both.contact_points[0].clone();
    second.address = "+15550000002".into();
    both.contact_points.push(second);
    assert_eq!(tasks(decide(&set, &History::default(), &account("2026-11-01"), &both, now)).len(), 8);
    let explanation =
        arrears::plan::explain(&account("2026-11-01"), Some(&both), &History::default(), &set, None, utc(now));
    assert_eq!(explanation.decision.limited_by, None);
}

#[test]
fn the_tag_index_finds_the_same_first_rule_as_trying_every_rule_in_order() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut rules = String::new();
    for index in 0..150 {
        let tag = |rng: &mut rand::rngs::SmallRng| format!("\"t{}\"", rng.random_range(0..40));
        let when = match index % 5 {
            0 => format!("when = {{ tags_any = [{}, {}] }}", tag(&mut rng), tag(&mut rng)),
            1 => format!("when = {{ tags_any = [{}], balance = {{ min = \"{}\" }} }}", tag(&mut rng), index * 10),
            2 => format!("when = {{ tags_all = [{}, {}] }}", tag(&mut rng), tag(&mut rng)),
            3 => format!("when = {{ tags_none = [{}], amount_due = {{ max = \"{}\" }} }}", tag(&mut rng), index),
            _ => format!("when = {{ tags_any = [{}], tags_none = [{}] }}", tag(&mut rng), tag(&mut rng)),
        };
        rules.push_str(&format!("\n[[rule]]\nname = \"r{index}\"\nchannel = \"sms\"\ntemplate = \"sms/t\"\n{when}\n"));
    }
    rules.push_str("\n[[rule]]\nname = \"last\"\nchannel = \"sms\"\ntemplate = \"sms/t\"\n");
    let set = strategies("us-reg-f", &rules);
    let strategy = &set.strategies[0];
    let mut facts = set.new_facts();
    let stage = strategy.stage_of(22).unwrap();
    for case in 0..3000 {
        let mut account = account("2026-11-01");
        account.tags = (0..rng.random_range(0..6)).map(|_| format!("t{}", rng.random_range(0..45))).collect();
        account.amount_due = rng.random_range(0..200).into();
        account.balance = rng.random_range(0..2000).into();
        set.fill_facts(&account, 22, 0, None, &mut facts);
        let tried_in_order = strategy
            .candidate_rules(stage, None)
            .find(|(_, rule)| rule.conditions.first_failure(&facts).is_none())
            .map(|(index, _)| index);
        let indexed = strategy.first_match(stage, None, &facts).map(|(index, _)| index);
        assert_eq!(indexed, tried_in_order, "case {case}: tags {:?}", account.tags);
    }
}

/// A model of segment `early/robot/card` in which the borrower's zone answers most at 19:00
/// local and hardly before noon, from 120 attempts in every weekday and hour.
fn evening_model() -> arrears::learn::ContactModel {
    use chrono::Weekday;
    let mut facts = Vec::new();
    for weekday in [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun] {
        for hour in 0..24u32 {
            let contacts = match hour {
                19 => 60,
                17 | 18 | 20 => 36,
                12..=16 => 12,
                _ => 2,
            };
            for index in 0..120 {
                facts.push((weekday, hour, index < contacts));
            }
        }
    }
    arrears::learn::fit(
        facts.iter().map(|&(weekday, hour, contact)| arrears::learn::AttemptFact {
            borrower_id: "others",
            stage: "early",
            channel: Channel::Robot,
            product: "card",
            weekday,
            hour,
            contact,
        }),
        utc("2026-03-01T00:00:00Z"),
        utc("2026-06-01T00:00:00Z"),
    )
}

const LEARNED_ROBOT: &str = r#"
[[rule]]
name = "robot"
channel = "robot"
template = "robot/t"
windows = ["09:00-21:00"]
attempts_per_day = 3
min_gap = "1h"
timing = "learned"
"#;

#[test]
fn learned_timing_puts_attempts_at_the_hours_that_answered_most_and_says_the_estimate() {
    let set = strategies("us-reg-f", LEARNED_ROBOT);
    let model = evening_model();
    let zones = [chrono_tz::America::New_York];
    let history = History::default();
    let now = utc("2026-06-10T11:00:00Z"); // 07:00 in New York
    let planner = || Planner::new(&history, &set, now);
    let learned = tasks(planner().with_model(Some(&model)).decide(&account("2026-06-01"), Some(&borrower(&zones))));
    let hours: Vec<u32> = learned.iter().map(|task| task.not_before.hour()).collect();
    assert_eq!(hours, vec![18, 19, 20], "{learned:#?}");
    assert!(learned.iter().all(|task| task.p_contact.is_some_and(|p| p > 0.25)), "{learned:#?}");
    assert_eq!(learned.iter().map(|task| task.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_inside_hours(&learned, &zones, 9, 21);
    // The same day planned again draws the same hours.
    let again = tasks(planner().with_model(Some(&model)).decide(&account("2026-06-01"), Some(&borrower(&zones))));
    assert_eq!(again, learned);

    // Without a model the rule spreads, and no estimate is claimed.
    let spread = tasks(planner().decide(&account("2026-06-01"), Some(&borrower(&zones))));
    assert_eq!(spread.iter().map(|task| task.not_before.hour()).collect::<Vec<_>>(), vec![9, 13, 17]);
    assert!(spread.iter().all(|task| task.p_contact.is_none()));
}

#[test]
fn min_p_contact_plans_only_the_hours_worth_a_call_or_skips_low_contact_probability() {
    let rules = LEARNED_ROBOT.replace("attempts_per_day = 3", "attempts_per_day = 8\nmin_p_contact = 0.2");
    let set = strategies("us-reg-f", &rules);
    let model = evening_model();
    let zones = [chrono_tz::America::New_York];
    let history = History::default();
    let morning = utc("2026-06-10T11:00:00Z");
    let planned = tasks(
        Planner::new(&history, &set, morning)
            .with_model(Some(&model))
            .decide(&account("2026-06-01"), Some(&borrower(&zones))),
    );
    // Eight asked; only 17:00-21:00 is estimated at 20 % or more.
    assert_eq!(planned.iter().map(|task| task.not_before.hour()).collect::<Vec<_>>(), vec![17, 18, 19, 20]);

    // A rule whose windows end at noon: every hour it has is estimated low.
    let rules =
        rules.replace("[\"09:00-21:00\"]", "[\"09:00-12:00\"]").replace("attempts_per_day = 8", "attempts_per_day = 2");
    let set = strategies("us-reg-f", &rules);
    let decision = Planner::new(&history, &set, morning)
        .with_model(Some(&model))
        .decide(&account("2026-06-01"), Some(&borrower(&zones)));
    assert_eq!(reason(decision), "low_contact_probability");
}

#[test]
fn timing_and_min_p_contact_are_checked_in_the_strategy_file() {
    let settings = PolicySettings::default();
    let templates = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(templates.path().join("robot")).unwrap();
    std::fs::write(templates.path().join("robot/t.hbs"), "Hello").unwrap();
    let options = LoadOptions {
        templates_dir: templates.path(),
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    let errors = |rule: &str| {
        let text = format!("name = \"t\"\n[stages]\nearly = {{ dpd = [1, 30] }}\n{rule}");
        match load_sources(&[SourceFile { name: "t.toml".into(), text }], &options) {
            Ok(_) => String::new(),
            Err(errors) => errors.to_string(),
        }
    };
    let robot = "[[rule]]\nname = \"r\"\nchannel = \"robot\"\ntemplate = \"robot/t\"\n";
    assert_eq!(errors(&format!("{robot}timing = \"learned\"\nmin_p_contact = 0.05\n")), "");
    assert!(
        errors(&format!("{robot}timing = \"sometimes\"\n"))
            .contains("t.toml:8:10: rule `r`: timing `sometimes` is not one of: spread, learned"),
        "{}",
        errors(&format!("{robot}timing = \"sometimes\"\n"))
    );
    assert!(errors(&format!("{robot}min_p_contact = 0.05\n")).contains("min_p_contact needs timing = \"learned\""));
    assert!(
        errors(&format!("{robot}timing = \"learned\"\nmin_p_contact = 1.5\n"))
            .contains("min_p_contact must be between 0 and 1")
    );
    let human = "[[rule]]\nname = \"h\"\nchannel = \"human\"\ntiming = \"learned\"\n";
    assert!(errors(human).contains("timing = \"learned\" is for sms, email and robot rules"), "{}", errors(human));
}
