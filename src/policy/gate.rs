//! The one contact gate: whether a contact may happen — flags, amount due, open promise,
//! addresses, opt-outs, consent, the conversation cool-down, the caps (counting calls in
//! flight as possibly connected), and at a hand-off the task's window, the contact hours in
//! every zone of the borrower and the rule's `min_gap` — and how much room is left: calls, the
//! cap that limited them, the addresses usable now and until when contact may go on.
//!
//! The planner asks it for a local day ([`check`] without a hand-off); every hand-off of a task
//! to a machine or a person (release, outbox claim, lease, heartbeat, attempt acceptance,
//! escalation, callback) asks it about that task now. No second copy of these rules exists.
//! Pure: no I/O, no clock; refusals are data ([`Reason`]), never strings to parse.

use super::counters::{cooldown_from, count_calls, unanswered_on};
use super::{Interval, Policy, allowed_intervals};
use crate::domain::{Account, Borrower, Cap, Channel, ContactKind, Flag, InFlight, Ledger, Money, Reason};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

/// Days a promise stays open after its due date before it counts as broken: the account is not
/// contacted while its promise is open.
pub const PROMISE_GRACE_DAYS: i64 = 1;

/// What is asked: may `channel` contact `account`'s `borrower` under `policy`?
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The account (its flags are the effective set: servicing system's and engine's).
    pub account: &'a Account,
    /// Its borrower, with contact points and zones.
    pub borrower: &'a Borrower,
    /// How.
    pub channel: Channel,
    /// The policy in force (the profile tightened by the strategy).
    pub policy: &'a Policy,
    /// The rule's least time between two attempts on the account by this channel.
    pub min_gap: Duration,
    /// The task being handed off now; `None` when planning a day.
    pub hand_off: Option<HandOff>,
}

/// A task at a hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOff {
    /// The task (not counted among the calls in flight: it is the one asked about).
    pub task_id: i64,
    /// Its window.
    pub window: Interval,
    /// The calls it may place in all (human tasks: the rule's `calls_per_day`; others 1).
    pub calls_allowed: u32,
    /// A call the borrower asked for (Reg F §1006.14(b)(3)): exempt from the 7-in-7 count and
    /// from the conversation cool-down, never from the contact hours or the other caps.
    pub exempt: bool,
}

/// The room a contact has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Calls the caps leave (and, for a human task at a hand-off, the calls it has left);
    /// `u32::MAX` when nothing limits them (SMS, e-mail, no cap).
    pub calls: u32,
    /// The cap that set `calls`, when one did.
    pub limited_by: Option<Cap>,
    /// At a hand-off: the instant contact must stop (the task's window end or the end of the
    /// contact hours in the borrower's zones, whichever is first).
    pub until: Option<DateTime<Utc>>,
}

/// Why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code.
    pub reason: Reason,
    /// Whether it may pass later the same day (outside the hours, before the window, within
    /// `min_gap`, or a cap reached only by calls still in flight): the task waits.
    pub wait: bool,
    /// A sentence for people.
    pub detail: String,
}

fn refuse(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal { reason, wait: false, detail: detail.into() }
}

fn wait(reason: Reason, detail: impl Into<String>) -> Refusal {
    Refusal { reason, wait: true, detail: detail.into() }
}

/// The stops that do not depend on the channel, on the borrower's local day `date`: nothing due,
/// a hard-stop flag, a reaction's hold, an open promise. The planner asks them first (their codes rank before the
/// rules'); [`check`] asks them too.
pub fn stops(account: &Account, ledger: Ledger<'_>, date: NaiveDate) -> Option<Refusal> {
    if account.amount_due <= Money::ZERO {
        return Some(refuse(Reason::NotDue, "nothing is due on this account"));
    }
    if let Some(flag) = account.flags.iter().find(|flag| flag.stops_all_contact()) {
        return Some(refuse(Reason::Flag(flag), format!("the `{flag}` flag stops all contact")));
    }
    if let Some(until) = account.hold_until
        && date <= until
    {
        return Some(refuse(Reason::Held, format!("a reaction to a risk event holds all contact until {until}")));
    }
    if let Some(promise) = ledger.open_promise
        && promise.due_on + Duration::days(PROMISE_GRACE_DAYS) >= date
    {
        return Some(refuse(
            Reason::PromiseOpen,
            format!("promise to pay {} by {} is open", promise.amount, promise.due_on),
        ));
    }
    None
}

/// Asks the gate at `now`: planning (the borrower's local day containing `now`; no hand-off)
/// or handing `ask.hand_off` off now. The refusals come in this order: window closed (hand-off),
/// [`stops`], the channel's flag, addresses, opt-outs and consent, calls used (human hand-off),
/// cool-down, caps, then the temporary ones: before the window, outside the hours, `min_gap`.
pub fn check(ask: &Ask<'_>, ledger: Ledger<'_>, now: DateTime<Utc>) -> Result<Room, Refusal> {
    let zone = ask.borrower.primary_timezone();
    let date = now.with_timezone(&zone).date_naive();
    if let Some(hand_off) = &ask.hand_off
        && now >= hand_off.window.end
    {
        return Err(window_closed(hand_off, zone));
    }
    if let Some(refusal) = stops(ask.account, ledger, date) {
        return Err(refusal);
    }
    let mut room = channel_room(ask, ledger, zone, date, now)?;
    if let Some(hand_off) = &ask.hand_off {
        room.until = Some(open_until(ask, hand_off, zone, date, now)?);
        if let Some(last) = last_attempt(ask, ledger, now)
            && ask.min_gap > Duration::zero()
            && now < last + ask.min_gap
        {
            return Err(wait(
                Reason::MinGap,
                format!(
                    "the last {} attempt was at {}; the rule waits {} min",
                    ask.channel,
                    last,
                    ask.min_gap.num_minutes()
                ),
            ));
        }
    }
    Ok(room)
}

/// The time rules alone at a hand-off: inside the task's window and the policy's contact hours
/// in every zone of the borrower at `now`. Returns the instant contact must stop. Attempt
/// acceptance asks this for the attempt's instant (a report outside them is refused), and
/// [`check`] asks the same rules in its order.
pub fn timing(ask: &Ask<'_>, hand_off: &HandOff, now: DateTime<Utc>) -> Result<DateTime<Utc>, Refusal> {
    let zone = ask.borrower.primary_timezone();
    if now >= hand_off.window.end {
        return Err(window_closed(hand_off, zone));
    }
    open_until(ask, hand_off, zone, now.with_timezone(&zone).date_naive(), now)
}

fn window_closed(hand_off: &HandOff, zone: Tz) -> Refusal {
    refuse(
        Reason::WindowClosed,
        format!("the task's window closed at {}", hand_off.window.end.with_timezone(&zone).to_rfc3339()),
    )
}

/// Each address of the borrower that can carry the channel now, with the calls it has left
/// under the per-number cap (`u32::MAX` when none applies), in stored order — the addresses a
/// release may send to and a lease lists are those with calls left.
pub fn addresses<'a>(
    ask: &'a Ask<'a>,
    ledger: Ledger<'a>,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (&'a str, u32)> + 'a {
    let zone = ask.borrower.primary_timezone();
    let date = now.with_timezone(&zone).date_naive();
    ask.borrower
        .contact_points
        .iter()
        .filter(|point| point.usable_for(ask.channel))
        .map(move |point| (point.address.as_str(), number_left(ask, ledger, zone, date, &point.address, true)))
}

/// Calls `address` has left today under the per-number cap: the cap less the unanswered calls
/// to it (robot and human, across the borrower's accounts) and, with `flying`, the calls in
/// flight to it or to an unknown address.
fn number_left(ask: &Ask<'_>, ledger: Ledger<'_>, zone: Tz, date: NaiveDate, address: &str, flying: bool) -> u32 {
    let Some(cap) = ask.policy.unanswered_per_number_per_day.filter(|_| ask.channel.is_call()) else {
        return u32::MAX;
    };
    let mut used = unanswered_on(ledger.attempts, address, zone, date);
    if flying && ask.hand_off.is_some() {
        used += in_flight(ask, ledger)
            .filter(|task| task.address.as_deref().is_none_or(|to| to == address))
            .map(|task| calls_left_on(task, ledger))
            .sum::<u32>();
    }
    cap.saturating_sub(used)
}

/// The other tasks of the borrower with calls in flight (none when planning).
fn in_flight<'a>(ask: &Ask<'_>, ledger: Ledger<'a>) -> impl Iterator<Item = &'a InFlight> + 'a {
    let own = ask.hand_off.map(|hand_off| hand_off.task_id);
    let counted = ask.hand_off.is_some();
    ledger.in_flight.iter().filter(move |task| counted && task.channel.is_call() && Some(task.task_id) != own)
}

/// The calls a task in flight may still place: its allowance less the calls reported on it.
fn calls_left_on(task: &InFlight, ledger: Ledger<'_>) -> u32 {
    let made = ledger.attempts.iter().filter(|attempt| attempt.task_id == Some(task.task_id)).count();
    task.calls_allowed.saturating_sub(u32::try_from(made).unwrap_or(u32::MAX))
}

fn channel_room(
    ask: &Ask<'_>,
    ledger: Ledger<'_>,
    zone: Tz,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Room, Refusal> {
    let Ask { account, borrower, channel, policy, .. } = *ask;
    if channel.is_call() && account.flags.contains(Flag::DoNotCall) {
        return Err(refuse(Reason::Flag(Flag::DoNotCall), "the account must not be called"));
    }
    let kind = ContactKind::for_channel(channel).code();
    if !borrower.contact_points.iter().any(|point| point.reaches(channel)) {
        return Err(refuse(Reason::NoContactPoint, format!("the borrower has no usable {kind}")));
    }
    if !borrower.contact_points.iter().any(|point| point.usable_for(channel)) {
        return Err(refuse(Reason::OptOut(channel), format!("every {kind} opted out of {channel}")));
    }
    if channel == Channel::Robot && policy.robot_needs_consent && !borrower.consent_robot {
        return Err(refuse(Reason::NoConsent, format!("{} needs consent for robot calls", policy.name)));
    }
    let mut room = Room { calls: u32::MAX, limited_by: None, until: None };
    if let Some(hand_off) = ask.hand_off.filter(|_| channel == Channel::Human) {
        let made = ledger
            .attempts
            .iter()
            .filter(|attempt| attempt.task_id == Some(hand_off.task_id) && attempt.channel.is_call())
            .count();
        room.calls = hand_off.calls_allowed.saturating_sub(u32::try_from(made).unwrap_or(u32::MAX));
        if room.calls == 0 {
            return Err(refuse(
                Reason::CallsUsed,
                format!("the {} call(s) of this task are made", hand_off.calls_allowed),
            ));
        }
    }
    if !channel.is_call() {
        return Ok(room);
    }
    let exempt = ask.hand_off.is_some_and(|hand_off| hand_off.exempt);
    if !exempt && let Some(day) = cooldown_from(policy, ledger.last_conversation, zone, date) {
        return Err(refuse(
            Reason::Cooldown,
            format!("conversation on {day}: no call until day {} after it", policy.cooldown_days.unwrap_or(0) + 1),
        ));
    }
    let counters = count_calls(ledger.attempts, &account.id, zone, date, now);
    let (mut borrower_flying, mut account_flying) = (0u32, 0u32);
    for task in in_flight(ask, ledger) {
        let left = calls_left_on(task, ledger);
        borrower_flying += left;
        if task.account_id == account.id {
            account_flying += left;
        }
    }
    let handing_off = ask.hand_off.is_some();
    let caps = [
        // Connected calls: at a plan only a cap already reached stops; each release and lease
        // counts the calls in flight as connected.
        (Cap::RpcPerDay, policy.rpc_per_day, counters.borrower_rpc_today, borrower_flying, handing_off),
        (Cap::Calls7d, policy.calls_per_7_days.filter(|_| !exempt), counters.account_calls_7d, account_flying, true),
        (Cap::CallsPerDay, policy.calls_per_day, counters.account_calls_today, account_flying, true),
    ];
    let mut pending: Option<Refusal> = None;
    for (cap_name, cap, reported, flying, limits) in caps {
        let Some(cap) = cap else { continue };
        let detail = || format!("{}'s {cap_name} cap of {cap} is reached", policy.name);
        if reported >= cap {
            return Err(refuse(Reason::Cap(cap_name), detail()));
        }
        let left = cap - reported;
        if flying >= left {
            pending
                .get_or_insert_with(|| wait(Reason::Cap(cap_name), format!("{}, counting calls in flight", detail())));
            continue;
        }
        if limits && left - flying < room.calls {
            room.calls = left - flying;
            room.limited_by = Some(cap_name);
        }
    }
    if let Some(cap) = policy.unanswered_per_number_per_day {
        let usable = || borrower.contact_points.iter().filter(|point| point.usable_for(channel));
        let reported: u32 = usable().map(|point| number_left(ask, ledger, zone, date, &point.address, false)).sum();
        let detail = || format!("every usable number reached {}'s {cap} unanswered calls today", policy.name);
        if reported == 0 {
            return Err(refuse(Reason::Cap(Cap::UnansweredPerNumber), detail()));
        }
        let left: u32 = if ask.hand_off.is_some() {
            usable().map(|point| number_left(ask, ledger, zone, date, &point.address, true)).sum()
        } else {
            reported
        };
        if left == 0 {
            pending.get_or_insert_with(|| {
                wait(Reason::Cap(Cap::UnansweredPerNumber), format!("{}, counting calls in flight", detail()))
            });
        } else if left < room.calls {
            room.calls = left;
            room.limited_by = Some(Cap::UnansweredPerNumber);
        }
    }
    match pending {
        Some(refusal) => Err(refusal),
        None => Ok(room),
    }
}

/// The end of the span contact may go on at a hand-off, or why not now: before the task's
/// window, or outside the policy's hours in one of the borrower's zones.
fn open_until(
    ask: &Ask<'_>,
    hand_off: &HandOff,
    zone: Tz,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Refusal> {
    if now < hand_off.window.start {
        return Err(wait(
            Reason::NotYet,
            format!("the task's window opens at {}", hand_off.window.start.with_timezone(&zone).to_rfc3339()),
        ));
    }
    let policy = ask.policy;
    let outside = || {
        let zone = ask
            .borrower
            .timezones
            .iter()
            .find(|zone| !policy.hours.contains(now.with_timezone(*zone).time()))
            .unwrap_or(&zone);
        wait(
            Reason::Hours,
            format!(
                "{} is outside {}'s contact hours {} in {zone}",
                now.with_timezone(zone).format("%H:%M"),
                policy.name,
                policy.hours
            ),
        )
    };
    let spans = allowed_intervals(&ask.borrower.timezones, date, &[policy.hours], now);
    match spans.first() {
        Some(span) if span.start <= now && now < span.end => Ok(span.end.min(hand_off.window.end)),
        _ => Err(outside()),
    }
}

/// The last attempt on the account by the asked channel, at or before `now`.
fn last_attempt(ask: &Ask<'_>, ledger: Ledger<'_>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    ledger
        .attempts
        .iter()
        .filter(|attempt| attempt.account_id == ask.account.id && attempt.channel == ask.channel && attempt.at <= now)
        .map(|attempt| attempt.at)
        .max()
}
