//! Table-driven tests of the one contact gate (`policy::gate`): every reason code it gives,
//! the room it leaves and the cap that limited it, calls in flight counted as connected, the
//! callback exemption, several zones and both daylight-saving changes. Pure: no store.

use arrears::domain::{
    Account, AttemptRecord, Borrower, Cap, Channel, ContactKind, ContactPoint, Flag, Flags, History, InFlight, Outcome,
    PromiseRecord, Reason,
};
use arrears::policy::{Ask, HandOff, Interval, Policy, PolicySettings, gate};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use chrono_tz::{America, Asia, Europe};

const P1: &str = "+15550000001";
const P2: &str = "+15550000002";

/// What a case starts from: one account of one borrower, and their history.
struct World {
    account: Account,
    borrower: Borrower,
    history: History,
}

fn world(zones: &[Tz]) -> World {
    let phone = |address: &str| ContactPoint {
        kind: ContactKind::Phone,
        address: address.into(),
        opted_out: vec![],
        wrong_number: false,
        retired: false,
    };
    let email = ContactPoint { kind: ContactKind::Email, address: "ann@example.com".into(), ..phone("") };
    World {
        account: Account {
            id: "A1".into(),
            borrower_id: "B1".into(),
            product: "card".into(),
            currency: "USD".into(),
            amount_due: "100".parse().unwrap(),
            balance: "1000".parse().unwrap(),
            due_date: "2026-11-01".parse().unwrap(),
            tags: vec![],
            flags: Flags::NONE,
            scores: vec![],
            attrs: vec![],
            broken_promises: 0,
            funders: None,
            hold_until: None,
        },
        borrower: Borrower {
            id: "B1".into(),
            name: "Ann".into(),
            timezones: zones.to_vec(),
            contact_points: vec![phone(P1), phone(P2), email],
            consent_robot: true,
        },
        history: History::default(),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// A reported call on A1 (or another account of B1) to `to`.
fn call(world: &mut World, account: &str, at: &str, to: &str, outcome: Outcome) {
    world.history.record_attempt("B1", AttemptRecord::new(account, utc(at), Channel::Robot, Some(to), outcome));
}

/// A call the borrower placed to us on A1 (an inbound call the robot took).
fn inbound(world: &mut World, at: &str, outcome: Outcome) {
    let mut attempt = AttemptRecord::new("A1", utc(at), Channel::Robot, Some(P1), outcome);
    attempt.inbound = true;
    world.history.record_attempt("B1", attempt);
}

fn flying(world: &mut World, task_id: i64, account: &str, channel: Channel, to: Option<&str>, calls: u32) {
    world.history.record_in_flight(
        "B1",
        InFlight {
            task_id,
            account_id: account.into(),
            channel,
            address: to.map(str::to_string),
            calls_allowed: calls,
        },
    );
}

/// What a case expects: room (calls, the cap that set them), or a refusal (code, wait).
#[derive(Debug, PartialEq)]
enum Expect {
    Room(u32, Option<Cap>),
    Refused(&'static str, bool),
}
use Expect::{Refused, Room};

const ANY: u32 = u32::MAX;

struct Case {
    name: &'static str,
    policy: &'static str,
    zones: &'static [Tz],
    channel: Channel,
    now: &'static str,
    /// `(window start, window end, calls allowed, exempt)`: a hand-off of task 99; none: planning.
    hand_off: Option<(&'static str, &'static str, u32, bool)>,
    setup: fn(&mut World),
    expect: Expect,
}

fn nothing(_: &mut World) {}

fn run(case: &Case) -> Expect {
    let mut world = world(case.zones);
    (case.setup)(&mut world);
    let policy = Policy::builtin(case.policy, &PolicySettings::default()).unwrap();
    let ask = Ask {
        account: &world.account,
        borrower: &world.borrower,
        channel: case.channel,
        policy: &policy,
        min_gap: Duration::hours(2),
        hand_off: case.hand_off.map(|(start, end, calls, exempt)| HandOff {
            task_id: 99,
            window: Interval { start: utc(start), end: utc(end) },
            calls_allowed: calls,
            exempt,
        }),
    };
    match gate::check(&ask, world.history.ledger("B1", "A1"), utc(case.now)) {
        Ok(room) => Room(room.calls, room.limited_by),
        Err(refusal) => {
            let code = Reason::all().into_iter().find(|reason| *reason == refusal.reason).expect("a known code");
            Refused(Box::leak(code.to_string().into_boxed_str()), refusal.wait)
        }
    }
}

// New York: 2026-11-23 15:00Z is 10:00 EST.
const NY: &[Tz] = &[America::New_York];
const SH: &[Tz] = &[Asia::Shanghai];
const NY_DAY: (&str, &str, u32, bool) = ("2026-11-23T14:00:00Z", "2026-11-23T20:00:00Z", 1, false);
const SH_DAY: (&str, &str, u32, bool) = ("2026-11-23T01:00:00Z", "2026-11-23T12:00:00Z", 1, false);

#[test]
fn every_reason_of_the_gate_and_the_room_it_leaves() {
    let cases = [
        // Stops that do not depend on the channel.
        Case {
            name: "nothing due",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| w.account.amount_due = "0".parse().unwrap(),
            expect: Refused("not_due", false),
        },
        Case {
            name: "a hard-stop flag stops SMS too",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| w.account.flags.insert(Flag::BreathingSpace),
            expect: Refused("flag:breathing_space", false),
        },
        Case {
            name: "a reaction's hold, through its last local day",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-24T04:59:00Z",
            hand_off: None,
            setup: |w| w.account.hold_until = Some("2026-11-23".parse().unwrap()),
            expect: Refused("held", false),
        },
        Case {
            name: "the hold ends with its last local day",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-24T15:00:00Z",
            hand_off: None,
            setup: |w| w.account.hold_until = Some("2026-11-23".parse().unwrap()),
            expect: Room(u32::MAX, None),
        },
        Case {
            name: "an open promise, inside its grace day",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                let promise = PromiseRecord {
                    amount: "50".parse().unwrap(),
                    due_on: "2026-11-22".parse().unwrap(),
                    made_at: utc("2026-11-20T15:00:00Z"),
                };
                w.history.open_promises.insert("A1".into(), promise);
            },
            expect: Refused("promise_open", false),
        },
        Case {
            name: "a promise two days past due no longer stops contact",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                let promise = PromiseRecord {
                    amount: "50".parse().unwrap(),
                    due_on: "2026-11-21".parse().unwrap(),
                    made_at: utc("2026-11-20T15:00:00Z"),
                };
                w.history.open_promises.insert("A1".into(), promise);
            },
            expect: Room(ANY, None),
        },
        // The channel's own rules.
        Case {
            name: "do_not_call stops calls",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| w.account.flags.insert(Flag::DoNotCall),
            expect: Refused("flag:do_not_call", false),
        },
        Case {
            name: "do_not_call leaves SMS",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| w.account.flags.insert(Flag::DoNotCall),
            expect: Room(ANY, None),
        },
        Case {
            name: "wrong numbers and retired numbers are no contact point",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                w.borrower.contact_points[0].wrong_number = true;
                w.borrower.contact_points[1].retired = true;
            },
            expect: Refused("no_contact_point", false),
        },
        Case {
            name: "every phone opted out of SMS",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Sms,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                for point in &mut w.borrower.contact_points {
                    point.opted_out.push(Channel::Sms);
                }
            },
            expect: Refused("opt_out:sms", false),
        },
        Case {
            name: "robot calls need consent under Reg F",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| w.borrower.consent_robot = false,
            expect: Refused("no_consent", false),
        },
        Case {
            name: "not under cn-gbt-45251",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T01:00:00Z",
            hand_off: None,
            setup: |w| w.borrower.consent_robot = false,
            expect: Room(12, Some(Cap::UnansweredPerNumber)),
        },
        // Cool-down: the conversation's day is day 1; calls resume on day 8.
        Case {
            name: "cool-down on day 7",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| call(w, "A1", "2026-11-17T15:00:00Z", P1, Outcome::Rpc),
            expect: Refused("cooldown:conversation", false),
        },
        Case {
            name: "calls again on day 8",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            // The Nov 16 call is outside Nov 17..23 too: all seven calls are left.
            setup: |w| call(w, "A1", "2026-11-16T15:00:00Z", P1, Outcome::Rpc),
            expect: Room(7, Some(Cap::Calls7d)),
        },
        // Inbound calls: none counts toward a cap (Reg F counts placed calls), but a
        // conversation on one starts the cool-down.
        Case {
            name: "seven inbound calls leave all seven outbound calls",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                for day in 17..=23 {
                    inbound(w, &format!("2026-11-{day}T14:30:00Z"), Outcome::ThirdParty);
                }
            },
            expect: Room(7, Some(Cap::Calls7d)),
        },
        Case {
            name: "an inbound conversation starts the cool-down",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| inbound(w, "2026-11-22T15:00:00Z", Outcome::Rpc),
            expect: Refused("cooldown:conversation", false),
        },
        // Caps.
        Case {
            name: "seven calls in seven days",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                for day in 17..=23 {
                    call(w, "A1", &format!("2026-11-{day}T14:30:00Z"), P1, Outcome::NoAnswer);
                }
            },
            expect: Refused("cap:calls_7d", false),
        },
        Case {
            name: "us-ma: two in seven days, one left",
            policy: "us-ma",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| call(w, "A1", "2026-11-20T15:00:00Z", P1, Outcome::NoAnswer),
            expect: Room(1, Some(Cap::Calls7d)),
        },
        Case {
            name: "uk-fca: calls per day",
            policy: "uk-fca",
            zones: &[Europe::London],
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: None,
            setup: |w| {
                for hour in 9..12 {
                    call(w, "A1", &format!("2026-11-23T{hour:02}:00:00Z"), P1, Outcome::NoAnswer);
                }
            },
            expect: Refused("cap:calls_per_day", false),
        },
        Case {
            name: "cn: three connected calls across the borrower's accounts",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T08:00:00Z",
            hand_off: None,
            setup: |w| {
                call(w, "A2", "2026-11-23T01:00:00Z", P1, Outcome::Rpc);
                call(w, "A2", "2026-11-23T02:00:00Z", P1, Outcome::Refused);
                call(w, "A1", "2026-11-23T03:00:00Z", P1, Outcome::PaidClaimed);
            },
            expect: Refused("cap:rpc_per_day", false),
        },
        Case {
            name: "cn plans up to six unanswered per number, not three",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T01:00:00Z",
            hand_off: None,
            setup: |w| w.borrower.contact_points[1].retired = true,
            expect: Room(6, Some(Cap::UnansweredPerNumber)),
        },
        Case {
            name: "cn: unanswered calls by a person count per number too",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T08:00:00Z",
            hand_off: None,
            setup: |w| {
                w.borrower.contact_points[1].retired = true;
                for hour in 1..7 {
                    let at = utc(&format!("2026-11-23T{hour:02}:00:00Z"));
                    let channel = if hour % 2 == 0 { Channel::Human } else { Channel::Robot };
                    w.history.record_attempt("B1", AttemptRecord::new("A1", at, channel, Some(P1), Outcome::Busy));
                }
            },
            expect: Refused("cap:unanswered_per_number", false),
        },
        // Calls in flight count as connected at a hand-off.
        Case {
            name: "two connected and one in flight: wait",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T05:00:00Z",
            hand_off: Some(SH_DAY),
            setup: |w| {
                call(w, "A1", "2026-11-23T01:00:00Z", P1, Outcome::Rpc);
                call(w, "A2", "2026-11-23T02:00:00Z", P1, Outcome::Rpc);
                flying(w, 7, "A2", Channel::Human, Some(P2), 2);
            },
            expect: Refused("cap:rpc_per_day", true),
        },
        Case {
            name: "a leased human task's calls left count, its made ones do not twice",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T05:00:00Z",
            hand_off: Some(SH_DAY),
            setup: |w| {
                flying(w, 7, "A2", Channel::Human, Some(P2), 2);
                let mut made =
                    AttemptRecord::new("A2", utc("2026-11-23T04:00:00Z"), Channel::Human, Some(P2), Outcome::Rpc);
                made.task_id = Some(7);
                w.history.record_attempt("B1", made);
            },
            expect: Room(1, Some(Cap::RpcPerDay)),
        },
        Case {
            name: "the task asked about is not in flight against itself",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T05:00:00Z",
            hand_off: Some(SH_DAY),
            setup: |w| flying(w, 99, "A1", Channel::Robot, Some(P1), 1),
            expect: Room(3, Some(Cap::RpcPerDay)),
        },
        Case {
            name: "six unanswered with the number's last call in flight: wait",
            policy: "cn-gbt-45251",
            zones: SH,
            channel: Channel::Robot,
            now: "2026-11-23T08:00:00Z",
            hand_off: Some(SH_DAY),
            setup: |w| {
                w.borrower.contact_points[1].retired = true;
                for hour in 1..6 {
                    call(w, "A1", &format!("2026-11-23T{hour:02}:00:00Z"), P1, Outcome::NoAnswer);
                }
                flying(w, 8, "A2", Channel::Robot, None, 1);
            },
            expect: Refused("cap:unanswered_per_number", true),
        },
        // The callback the borrower asked for (Reg F §1006.14(b)(3)).
        Case {
            name: "a callback is exempt from the cool-down",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: Some(("2026-11-23T15:00:00Z", "2026-11-23T16:00:00Z", 1, true)),
            setup: |w| call(w, "A1", "2026-11-23T14:00:00Z", P1, Outcome::Callback),
            expect: Room(1, None),
        },
        Case {
            name: "and from the 7-in-7 count",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: Some(("2026-11-23T15:00:00Z", "2026-11-23T16:00:00Z", 1, true)),
            setup: |w| {
                for day in 17..=23 {
                    call(w, "A1", &format!("2026-11-{day}T14:30:00Z"), P1, Outcome::NoAnswer);
                }
            },
            expect: Room(1, None),
        },
        Case {
            name: "but the same call not asked for is refused",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: Some(("2026-11-23T15:00:00Z", "2026-11-23T16:00:00Z", 1, false)),
            setup: |w| call(w, "A1", "2026-11-23T14:00:00Z", P1, Outcome::Callback),
            expect: Refused("cooldown:conversation", false),
        },
        Case {
            name: "a callback still keeps the contact hours",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-24T02:30:00Z",
            hand_off: Some(("2026-11-24T02:00:00Z", "2026-11-24T03:00:00Z", 1, true)),
            setup: nothing,
            expect: Refused("hours", true),
        },
        // The hand-off's time rules and calls.
        Case {
            name: "before the window: wait",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T13:30:00Z",
            hand_off: Some(NY_DAY),
            setup: nothing,
            expect: Refused("not_yet", true),
        },
        Case {
            name: "after the window: final",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T20:00:00Z",
            hand_off: Some(NY_DAY),
            setup: nothing,
            expect: Refused("window_closed", false),
        },
        Case {
            name: "inside the window but 21:00 in Los Angeles",
            policy: "us-reg-f",
            zones: &[America::New_York, America::Los_Angeles],
            channel: Channel::Robot,
            now: "2026-11-23T15:30:00Z",
            hand_off: Some(NY_DAY),
            setup: nothing,
            expect: Refused("hours", true),
        },
        Case {
            name: "min_gap since the last attempt on the channel",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-23T15:00:00Z",
            hand_off: Some(NY_DAY),
            setup: |w| call(w, "A1", "2026-11-23T14:00:00Z", P1, Outcome::NoAnswer),
            expect: Refused("min_gap", true),
        },
        Case {
            name: "a human task's calls are used",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Human,
            now: "2026-11-23T15:00:00Z",
            hand_off: Some(("2026-11-23T14:00:00Z", "2026-11-23T20:00:00Z", 2, false)),
            setup: |w| {
                for hour in ["14:10", "14:40"] {
                    let at = utc(&format!("2026-11-23T{hour}:00Z"));
                    let mut made = AttemptRecord::new("A1", at, Channel::Human, Some(P1), Outcome::NoAnswer);
                    made.task_id = Some(99);
                    w.history.record_attempt("B1", made);
                }
            },
            expect: Refused("calls_used", false),
        },
        // Daylight saving: 08:00 local is 12:00Z on the spring-forward day, 13:00Z on fall-back.
        Case {
            name: "spring forward: 07:59 EDT is before the hours",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-03-08T11:59:00Z",
            hand_off: Some(("2026-03-08T11:00:00Z", "2026-03-08T20:00:00Z", 1, false)),
            setup: nothing,
            expect: Refused("hours", true),
        },
        Case {
            name: "spring forward: 08:00 EDT is inside",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-03-08T12:00:00Z",
            hand_off: Some(("2026-03-08T11:00:00Z", "2026-03-08T20:00:00Z", 1, false)),
            setup: nothing,
            expect: Room(7, Some(Cap::Calls7d)),
        },
        Case {
            name: "fall back: 12:30Z is 07:30 EST, before the hours",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-01T12:30:00Z",
            hand_off: Some(("2026-11-01T11:00:00Z", "2026-11-01T20:00:00Z", 1, false)),
            setup: nothing,
            expect: Refused("hours", true),
        },
        Case {
            name: "fall back: 20:59 EST is inside, 21:00 EST is not",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-02T01:59:00Z",
            hand_off: Some(("2026-11-01T13:00:00Z", "2026-11-02T03:00:00Z", 1, false)),
            setup: nothing,
            expect: Room(7, Some(Cap::Calls7d)),
        },
        Case {
            name: "fall back: 21:00 EST",
            policy: "us-reg-f",
            zones: NY,
            channel: Channel::Robot,
            now: "2026-11-02T02:00:00Z",
            hand_off: Some(("2026-11-01T13:00:00Z", "2026-11-02T03:00:00Z", 1, false)),
            setup: nothing,
            expect: Refused("hours", true),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = run(case);
        if got != case.expect {
            failures.push(format!("{}: expected {:?}, got {got:?}", case.name, case.expect));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_hand_off_may_go_on_until_the_window_or_the_hours_end_whichever_is_first() {
    let world = world(&[America::New_York, America::Los_Angeles]);
    let policy = Policy::builtin("us-reg-f", &PolicySettings::default()).unwrap();
    let ask = |end: &str| Ask {
        account: &world.account,
        borrower: &world.borrower,
        channel: Channel::Human,
        policy: &policy,
        min_gap: Duration::zero(),
        hand_off: Some(HandOff {
            task_id: 1,
            window: Interval { start: utc("2026-11-23T17:00:00Z"), end: utc(end) },
            calls_allowed: 2,
            exempt: false,
        }),
    };
    let ledger = world.history.ledger("B1", "A1");
    // 21:00 in New York (02:00Z) comes before 21:00 in Los Angeles.
    let room = gate::check(&ask("2026-11-24T04:00:00Z"), ledger, utc("2026-11-23T20:00:00Z")).unwrap();
    assert_eq!(room.until, Some(utc("2026-11-24T02:00:00Z")));
    let room = gate::check(&ask("2026-11-23T22:00:00Z"), ledger, utc("2026-11-23T20:00:00Z")).unwrap();
    assert_eq!(room.until, Some(utc("2026-11-23T22:00:00Z")));
}

#[test]
fn the_addresses_a_hand_off_may_use_are_those_with_calls_left() {
    let mut world = world(SH);
    for hour in 1..7 {
        call(&mut world, "A1", &format!("2026-11-23T{hour:02}:00:00Z"), P1, Outcome::NoAnswer);
    }
    let policy = Policy::builtin("cn-gbt-45251", &PolicySettings::default()).unwrap();
    let ask = Ask {
        account: &world.account,
        borrower: &world.borrower,
        channel: Channel::Human,
        policy: &policy,
        min_gap: Duration::zero(),
        hand_off: Some(HandOff {
            task_id: 1,
            window: Interval { start: utc(SH_DAY.0), end: utc(SH_DAY.1) },
            calls_allowed: 3,
            exempt: false,
        }),
    };
    let now = utc("2026-11-23T08:00:00Z");
    let left: Vec<(&str, u32)> = gate::addresses(&ask, world.history.ledger("B1", "A1"), now).collect();
    assert_eq!(left, [(P1, 0), (P2, 6)]);
    let room = gate::check(&ask, world.history.ledger("B1", "A1"), now).unwrap();
    assert_eq!((room.calls, room.limited_by), (3, None), "the task's own three calls, then the caps");
}
