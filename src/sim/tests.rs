//! Unit tests of the simulated world: determinism, pairing, the answer curve, fatigue, promises
//! and payments, and the independent violation check on hand-made contact lists.

use super::*;
use crate::domain::{Account, Borrower, Channel, Flags, Money, Outcome, Portfolio};
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap() // a Monday
}

fn account(id: usize, product: &str, tags: &[&str], dpd: i64) -> Account {
    Account {
        id: format!("A{id}"),
        borrower_id: format!("B{id}"),
        product: product.to_string(),
        currency: "USD".to_string(),
        amount_due: Money::from(250),
        balance: Money::from(1000),
        due_date: as_of() - Duration::days(dpd),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        flags: Flags::NONE,
        scores: Vec::new(),
        attrs: Vec::new(),
        broken_promises: 0,
        funders: None,
        hold_until: None,
    }
}

fn borrower(id: usize, zones: &[Tz]) -> Borrower {
    Borrower {
        id: format!("B{id}"),
        name: format!("Borrower {id}"),
        timezones: zones.to_vec(),
        contact_points: Vec::new(),
        consent_robot: true,
    }
}

fn book(count: usize) -> (Vec<Account>, Vec<Borrower>) {
    let products = ["cash", "card", "auto"];
    let tags: [&[&str]; 4] = [&[], &["retired"], &["student"], &["shift"]];
    let accounts = (0..count).map(|i| account(i, products[i % 3], tags[i % 4], (i % 120) as i64 - 5)).collect();
    let borrowers = (0..count).map(|i| borrower(i, &[Tz::America__New_York])).collect();
    (accounts, borrowers)
}

fn world(seed: u64, count: usize) -> World {
    let (accounts, borrowers) = book(count);
    World::from_parts(seed, &accounts, &borrowers, as_of())
}

/// The instant of a New York local time.
fn ny(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    Tz::America__New_York.from_local_datetime(&date.and_hms_opt(hour, minute, 0).unwrap()).unwrap().with_timezone(&Utc)
}

fn answered(outcome: Outcome) -> bool {
    !outcome.is_unanswered()
}

fn script(world: &mut World, count: usize) -> Vec<Contact> {
    let mut contacts = Vec::new();
    for day in 0..5 {
        for i in 0..count {
            let at = ny(as_of() + Duration::days(day), 10 + (i % 10) as u32, 15);
            let channel = [Channel::Robot, Channel::Human, Channel::Sms][i % 3];
            contacts.push(world.contact(&format!("A{i}"), channel, at).unwrap());
        }
    }
    contacts
}

#[test]
fn the_same_seed_gives_the_same_world_and_another_seed_another() {
    let run = |seed| script(&mut world(seed, 60), 60);
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
    let traits = |seed| {
        let world = world(seed, 60);
        (0..60).map(|i| world.truth(&format!("A{i}"), Channel::Human, ny(as_of(), 19, 0)).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(traits(3), traits(3));
    assert_ne!(traits(3), traits(4));
}

#[test]
fn the_same_event_draws_the_same_whatever_else_was_contacted() {
    let mut quiet = world(5, 40);
    let mut busy = world(5, 40);
    let at = ny(as_of(), 18, 30);
    for i in 1..40 {
        busy.contact(&format!("A{i}"), Channel::Robot, at).unwrap();
        busy.contact(&format!("A{i}"), Channel::Human, at - Duration::minutes(5)).unwrap();
    }
    for attempt in 0..3 {
        for channel in [Channel::Robot, Channel::Human, Channel::Email] {
            let at = at + Duration::minutes(attempt * 10);
            assert_eq!(quiet.contact("A0", channel, at).unwrap(), busy.contact("A0", channel, at).unwrap());
        }
    }
}

#[test]
fn an_evening_borrower_answers_at_19_far_more_than_at_10() {
    let (accounts, borrowers) = book(400);
    let probe = World::from_parts(9, &accounts, &borrowers, as_of());
    let evening = (0..400)
        .map(|i| format!("A{i}"))
        .find(|id| {
            probe.borrower_traits(id).unwrap().archetype == Archetype::Evening
                && !probe.borrower_traits(id).unwrap().wrong_number
        })
        .expect("some evening borrower");
    let draws = 5_000;
    let rate = |hour: u32| {
        let mut world = World::from_parts(9, &accounts, &borrowers, as_of());
        let expected = world.truth(&evening, Channel::Human, ny(as_of(), hour, 0)).unwrap()
            / world.borrower_traits(&evening).unwrap().right_party;
        // Weekly calls: the same weekday, never inside the fatigue window of the last one.
        let hits = (0..draws)
            .filter(|week| {
                let at = ny(as_of() + Duration::weeks(*week), hour, 0);
                answered(world.contact(&evening, Channel::Human, at).unwrap().outcome)
            })
            .count();
        (hits as f64 / draws as f64, expected)
    };
    let ((at19, p19), (at10, p10)) = (rate(19), rate(10));
    for (rate, p) in [(at19, p19), (at10, p10)] {
        let sd = (p * (1.0 - p) / draws as f64).sqrt();
        assert!((rate - p).abs() < 4.0 * sd + 1e-9, "observed {rate} vs true {p}");
    }
    assert!(at19 > 1.8 * at10, "19:00 {at19} vs 10:00 {at10}");
    let best = probe.best_hours(&evening, Channel::Human, as_of()).unwrap();
    assert!((17..=21).contains(&best[0]), "best hours {best:?}");
}

#[test]
fn archetypes_peak_where_they_should_on_average() {
    let world = world(21, 600);
    let cases = [(Archetype::Evening, 19, 11), (Archetype::Daytime, 11, 19)];
    for (archetype, peak, off) in cases {
        let ids: Vec<String> = (0..600)
            .map(|i| format!("A{i}"))
            .filter(|id| world.borrower_traits(id).unwrap().archetype == archetype)
            .collect();
        assert!(ids.len() > 30, "{archetype:?}: {}", ids.len());
        let mean = |hour| {
            ids.iter().map(|id| world.truth(id, Channel::Human, ny(as_of(), hour, 0)).unwrap()).sum::<f64>()
                / ids.len() as f64
        };
        assert!(mean(peak) > 1.5 * mean(off), "{archetype:?}: {} vs {}", mean(peak), mean(off));
    }
    // Weekend borrowers answer better on Saturday afternoon than on Monday afternoon.
    let weekend: Vec<String> = (0..600)
        .map(|i| format!("A{i}"))
        .filter(|id| world.borrower_traits(id).unwrap().archetype == Archetype::Weekend)
        .collect();
    let mean = |date| weekend.iter().map(|id| world.truth(id, Channel::Human, ny(date, 13, 0)).unwrap()).sum::<f64>();
    assert!(mean(as_of() + Duration::days(5)) > 1.5 * mean(as_of()));
}

#[test]
fn fatigue_lowers_the_answer_rate() {
    let count = 2_000;
    let mut fresh = world(17, count);
    let mut tired = world(17, count);
    let date = as_of() + Duration::days(1);
    let (mut fresh_hits, mut tired_hits) = (0, 0);
    for i in 0..count {
        let id = format!("A{i}");
        for hour in [12, 13, 14] {
            tired.contact(&id, Channel::Robot, ny(date, hour, 0)).unwrap();
        }
        let at = ny(date, 19, 0);
        assert!(tired.truth(&id, Channel::Human, at).unwrap() <= fresh.truth(&id, Channel::Human, at).unwrap());
        let (a, b) = (fresh.contact(&id, Channel::Human, at).unwrap(), tired.contact(&id, Channel::Human, at).unwrap());
        // Paired draws: a tired borrower who answers would have answered fresh too.
        assert!(!answered(b.outcome) || answered(a.outcome), "{id}: {a:?} / {b:?}");
        fresh_hits += usize::from(answered(a.outcome));
        tired_hits += usize::from(answered(b.outcome));
    }
    assert!((tired_hits as f64) < 0.85 * fresh_hits as f64, "tired {tired_hits} vs fresh {fresh_hits}");
    // Calls older than the fatigue window no longer count.
    let later = ny(date + Duration::days(4), 19, 0);
    assert_eq!(tired.truth("A0", Channel::Human, later).unwrap(), fresh.truth("A0", Channel::Human, later).unwrap());
}

#[test]
fn kept_promises_pay_on_their_due_dates() {
    let count = 600;
    let mut world = world(23, count);
    let mut promises = Vec::new();
    for hour in [18, 19, 20] {
        for i in 0..count {
            let id = format!("A{i}");
            if promises.iter().any(|(other, _): &(String, PromiseTerms)| *other == id) {
                continue;
            }
            let contact = world.contact(&id, Channel::Human, ny(as_of(), hour, 0)).unwrap();
            if contact.outcome == Outcome::Promise {
                let terms = contact.promise.clone().expect("a promise has terms");
                assert!(terms.amount > Money::ZERO && terms.amount <= Money::from(250));
                assert!(terms.due_on > as_of() && terms.due_on <= as_of() + Duration::days(7));
                promises.push((id, terms));
            }
            assert_eq!(contact.promise.is_some(), contact.outcome == Outcome::Promise);
            assert!(contact.handling_minutes.is_some_and(|minutes| minutes > 0.0));
        }
    }
    assert!(promises.len() > 40, "{} promises", promises.len());
    let mut kept = 0;
    for offset in 1..=10 {
        let date = as_of() + Duration::days(offset);
        for payment in world.day(date) {
            assert_eq!(payment.date, date);
            if payment.cause == PaymentCause::PromiseKept {
                let (_, terms) =
                    promises.iter().find(|(id, _)| *id == payment.account_id).expect("a promise behind it");
                assert_eq!(terms.due_on, date, "{}", payment.account_id);
                assert!(payment.amount <= terms.amount);
                kept += 1;
            }
        }
    }
    assert!(kept > promises.len() / 4 && kept < promises.len(), "{kept} of {} kept", promises.len());
    for (id, _) in &promises {
        assert!(world.owed(id).unwrap() <= Money::from(250));
    }
}

#[test]
fn self_cures_happen_and_pay_everything_owed() {
    let count = 500;
    let mut world = world(29, count);
    let mut cured = 0;
    for offset in 0..30 {
        for payment in world.day(as_of() + Duration::days(offset)) {
            assert_eq!(payment.cause, PaymentCause::SelfCure);
            assert_eq!(payment.amount, Money::from(250));
            assert_eq!(world.owed(&payment.account_id).unwrap(), Money::ZERO);
            cured += 1;
        }
    }
    assert!(cured > 5 && cured < count / 2, "{cured} cured");
}

#[test]
fn messages_are_delivered_or_not_and_only_human_calls_take_an_agent() {
    let mut world = world(31, 50);
    for i in 0..50 {
        let id = format!("A{i}");
        let at = ny(as_of(), 12, 0);
        let sms = world.contact(&id, Channel::Sms, at).unwrap();
        assert!(matches!(sms.outcome, Outcome::Delivered | Outcome::Undelivered));
        assert_eq!(sms.handling_minutes, None);
        assert_eq!(world.truth(&id, Channel::Sms, at).unwrap(), 0.0);
        let robot = world.contact(&id, Channel::Robot, at).unwrap();
        assert!(!matches!(robot.outcome, Outcome::Delivered | Outcome::Undelivered));
        assert_eq!(robot.handling_minutes, None);
    }
    assert_eq!(world.contact("nobody", Channel::Human, ny(as_of(), 12, 0)), Err(UnknownAccount("nobody".into())));
    assert!(world.truth("nobody", Channel::Human, ny(as_of(), 12, 0)).is_err());
}

#[test]
fn a_portfolio_builds_the_same_world_as_its_parts() {
    let (accounts, borrowers) = book(30);
    let portfolio = Portfolio {
        accounts: accounts.clone(),
        borrowers: borrowers.iter().map(|borrower| (borrower.id.clone(), borrower.clone())).collect(),
    };
    let mut a = World::new(41, &portfolio, as_of());
    let mut b = World::from_parts(41, &accounts, &borrowers, as_of());
    assert_eq!(script(&mut a, 30), script(&mut b, 30));
}

fn made(
    account: &str,
    borrower: &str,
    zones: &[Tz],
    channel: Channel,
    at: DateTime<Utc>,
    outcome: Outcome,
) -> ContactMade {
    ContactMade {
        account_id: account.to_string(),
        borrower_id: borrower.to_string(),
        zones: zones.to_vec(),
        channel,
        phone: Some(format!("+1212555{}", &borrower[1..])),
        at,
        outcome,
        exempt: false,
    }
}

#[test]
fn violations_are_counted_from_the_policy_table() {
    const NY: Tz = Tz::America__New_York;
    const LA: Tz = Tz::America__Los_Angeles;
    let limits = Limits {
        hours: (8 * 60, 21 * 60),
        calls_per_7_days: Some(7),
        calls_per_day: None,
        rpc_per_day: Some(3),
        unanswered_per_number_per_day: Some(6),
        cooldown_days: None,
    };
    let day = as_of();
    let call = |hour, minute, outcome| made("A1", "B1", &[NY], Channel::Robot, ny(day, hour, minute), outcome);
    let daily = |count: i64, outcome| -> Vec<ContactMade> {
        (0..count)
            .map(|d| made("A1", "B1", &[NY], Channel::Human, ny(day + Duration::days(d), 12, 0), outcome))
            .collect()
    };
    let cases: Vec<(&str, Vec<ContactMade>, Violations)> = vec![
        ("inside hours", vec![call(20, 55, Outcome::NoAnswer)], Violations::default()),
        ("21:05 New York", vec![call(21, 5, Outcome::NoAnswer)], Violations { outside_hours: 1, ..Default::default() }),
        (
            "21:00 is outside",
            vec![call(21, 0, Outcome::NoAnswer)],
            Violations { outside_hours: 1, ..Default::default() },
        ),
        ("07:59", vec![call(7, 59, Outcome::NoAnswer)], Violations { outside_hours: 1, ..Default::default() }),
        (
            "an SMS at 22:00 too",
            vec![made("A1", "B1", &[NY], Channel::Sms, ny(day, 22, 0), Outcome::Delivered)],
            Violations { outside_hours: 1, ..Default::default() },
        ),
        (
            "two zones, one outside",
            vec![made("A1", "B1", &[NY, LA], Channel::Human, ny(day, 8, 30), Outcome::NoAnswer)],
            Violations { outside_hours: 1, ..Default::default() },
        ),
        (
            "two zones, both inside",
            vec![made("A1", "B1", &[NY, LA], Channel::Human, ny(day, 12, 0), Outcome::NoAnswer)],
            Violations::default(),
        ),
        ("7 calls in 7 days", daily(7, Outcome::NoAnswer), Violations::default()),
        (
            "8 calls in 7 days",
            daily(8, Outcome::NoAnswer)[..7].iter().cloned().chain([call(13, 0, Outcome::NoAnswer)]).collect(),
            Violations { calls_7d: 1, ..Default::default() },
        ),
        ("8 calls in 8 days", daily(8, Outcome::NoAnswer), Violations::default()),
        (
            "4 right-party calls in a day across accounts",
            (0..4)
                .map(|i| made(&format!("A{i}"), "B1", &[NY], Channel::Human, ny(day, 10 + i, 0), Outcome::Rpc))
                .collect(),
            Violations { rpc_per_day: 1, ..Default::default() },
        ),
        (
            "7 unanswered on one number in a day",
            (0..7)
                .map(|i| made(&format!("A{i}"), "B1", &[NY], Channel::Robot, ny(day, 9 + i, 0), Outcome::Busy))
                .collect(),
            Violations { unanswered_per_number: 1, ..Default::default() },
        ),
        (
            "a call after do_not_call, an SMS is fine",
            vec![
                call(10, 0, Outcome::DoNotCall),
                made("A1", "B1", &[NY], Channel::Sms, ny(day, 11, 0), Outcome::Delivered),
                call(12, 0, Outcome::NoAnswer),
            ],
            Violations { after_hard_stop: 1, ..Default::default() },
        ),
        (
            "any contact after a dispute",
            vec![
                call(10, 0, Outcome::Dispute),
                made("A1", "B1", &[NY], Channel::Email, ny(day, 11, 0), Outcome::Delivered),
            ],
            Violations { after_hard_stop: 1, ..Default::default() },
        ),
    ];
    for (name, contacts, expected) in cases {
        assert_eq!(violations(&contacts, &limits), expected, "{name}");
        let mut reversed = contacts.clone();
        reversed.reverse();
        assert_eq!(violations(&reversed, &limits), expected, "{name}, in another order");
    }
    let none = Limits {
        calls_per_7_days: None,
        calls_per_day: None,
        rpc_per_day: None,
        unanswered_per_number_per_day: None,
        cooldown_days: None,
        ..limits
    };
    assert_eq!(violations(&daily(8, Outcome::Rpc)[..1], &none).total(), 0);
    let mut many = daily(8, Outcome::NoAnswer)[..7].to_vec();
    many.extend([call(13, 0, Outcome::NoAnswer), call(21, 30, Outcome::NoAnswer)]);
    assert_eq!(violations(&many, &limits), Violations { calls_7d: 2, outside_hours: 1, ..Default::default() });
    assert_eq!(violations(&many, &limits).total(), 3);

    // uk-fca's configured cap of calls per account per local day; callbacks count too.
    let uk = Limits { calls_per_day: Some(2), ..none };
    let mut callback = call(15, 0, Outcome::NoAnswer);
    callback.exempt = true;
    let three = vec![call(9, 0, Outcome::NoAnswer), call(11, 0, Outcome::Busy), callback];
    assert_eq!(violations(&three[..2], &uk), Violations::default(), "two calls are within the cap");
    assert_eq!(violations(&three, &uk), Violations { calls_per_day: 1, ..Default::default() }, "the third is not");
    let text = made("A1", "B1", &[NY], Channel::Sms, ny(day, 16, 0), Outcome::Delivered);
    let next_day = made("A1", "B1", &[NY], Channel::Robot, ny(day + Duration::days(1), 9, 0), Outcome::NoAnswer);
    let spread: Vec<ContactMade> = three[..2].iter().cloned().chain([text, next_day]).collect();
    assert_eq!(violations(&spread, &uk), Violations::default(), "a text is no call; a new day starts again");
}

#[test]
fn a_conversation_starts_the_cool_down_and_a_call_the_borrower_asked_for_is_exempt() {
    const NY: Tz = Tz::America__New_York;
    let limits = Limits {
        hours: (8 * 60, 21 * 60),
        calls_per_7_days: Some(7),
        calls_per_day: None,
        rpc_per_day: None,
        unanswered_per_number_per_day: None,
        cooldown_days: Some(7),
    };
    let day = as_of();
    let on = |days: i64, hour, outcome| {
        made("A1", "B1", &[NY], Channel::Human, ny(day + Duration::days(days), hour, 0), outcome)
    };
    let exempt = |mut contact: ContactMade| {
        contact.exempt = true;
        contact
    };
    let cases: Vec<(&str, Vec<ContactMade>, Violations)> = vec![
        ("a call on day 8 is fine", vec![on(0, 10, Outcome::Rpc), on(7, 10, Outcome::NoAnswer)], Violations::default()),
        (
            "a call on day 7 is not",
            vec![on(0, 10, Outcome::Rpc), on(6, 10, Outcome::NoAnswer)],
            Violations { cooldown: 1, ..Default::default() },
        ),
        (
            "nor later the same day",
            vec![on(0, 10, Outcome::Callback), on(0, 11, Outcome::NoAnswer)],
            Violations { cooldown: 1, ..Default::default() },
        ),
        (
            "a message is no call",
            vec![on(0, 10, Outcome::Rpc), made("A1", "B1", &[NY], Channel::Sms, ny(day, 11, 0), Outcome::Delivered)],
            Violations::default(),
        ),
        (
            "the callback asked for",
            vec![on(0, 10, Outcome::Callback), exempt(on(0, 14, Outcome::NoAnswer))],
            Violations::default(),
        ),
        (
            "an exempt call is left out of 7 in 7",
            (0..7).map(|d| on(d, 12, Outcome::NoAnswer)).chain([exempt(on(6, 15, Outcome::NoAnswer))]).collect(),
            Violations::default(),
        ),
        (
            "a conversation on it still starts the cool-down",
            vec![exempt(on(0, 14, Outcome::Rpc)), on(2, 10, Outcome::NoAnswer)],
            Violations { cooldown: 1, ..Default::default() },
        ),
    ];
    for (name, contacts, expected) in cases {
        assert_eq!(violations(&contacts, &limits), expected, "{name}");
    }
}

#[test]
fn the_oracle_model_reads_the_rested_truth_of_the_planned_day() {
    let count = 50;
    let mut world = world(23, count);
    let date = as_of() + Duration::days(5); // a Saturday: weekend borrowers differ
    // Calls tire the borrower; the oracle does not see fatigue.
    for hour in [9, 10, 11] {
        world.contact("A0", Channel::Robot, ny(date, hour, 0)).unwrap();
    }
    let borrowers: Vec<OracleBorrower> = (0..count)
        .map(|i| OracleBorrower {
            borrower_id: format!("B{i}"),
            account_id: format!("A{i}"),
            zone: Tz::America__New_York,
        })
        .collect();
    let plan_at = ny(date, 3, 0);
    let model = oracle_model(&world, &borrowers, plan_at);
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(3);
    for i in 0..count {
        for channel in [Channel::Robot, Channel::Human] {
            let segment = model.segment("M1", channel, "cash");
            for hour in [8, 11, 13, 19, 21] {
                let at = ny(date, hour, 0);
                let truth = world.truth_rested(&format!("A{i}"), channel, at).unwrap();
                let posterior = model.posterior(segment, &format!("B{i}"), date.weekday(), hour);
                assert!((posterior.mean() - truth.max(1e-4)).abs() < 1e-6, "B{i} {channel} {hour}: {truth}");
                assert!((posterior.sample(&mut rng) - truth).abs() < 1e-3, "a draw is the truth");
            }
        }
    }
    let at = ny(date, 12, 0);
    assert!(world.truth("A0", Channel::Robot, at).unwrap() < world.truth_rested("A0", Channel::Robot, at).unwrap());
}
