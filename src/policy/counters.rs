//! Counters the caps and conditions read from attempt history, on the borrower's local calendar.

use crate::domain::{AttemptRecord, Channel};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// What history says about one account on one local day, before the day's plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Calls (robot or human) on this account on local days `D-6 ..= D`.
    pub account_calls_7d: u32,
    /// Calls on this account on day `D`.
    pub account_calls_today: u32,
    /// Attempts on this account on any channel on days `D-6 ..= D` (for rule conditions).
    pub account_attempts_7d: u32,
    /// Connected right-party calls with this borrower on day `D`, across all accounts.
    pub borrower_rpc_today: u32,
}

/// Counts the borrower's `attempts` (sorted by time) for `account_id` on local day `date` in
/// `zone`, up to `now`.
pub fn count_calls(
    attempts: &[AttemptRecord],
    account_id: &str,
    zone: Tz,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> CallCounters {
    let mut counters = CallCounters::default();
    let Some(week_start) = date.checked_sub_days(chrono::Days::new(6)) else {
        return counters;
    };
    for attempt in attempts.iter().take_while(|attempt| attempt.at <= now) {
        let day = attempt.at.with_timezone(&zone).date_naive();
        if day < week_start || day > date {
            continue;
        }
        let is_call = attempt.channel.is_call();
        if day == date && is_call && attempt.outcome.is_right_party() {
            counters.borrower_rpc_today += 1;
        }
        if attempt.account_id != account_id {
            continue;
        }
        counters.account_attempts_7d += 1;
        if is_call {
            counters.account_calls_7d += 1;
            if day == date {
                counters.account_calls_today += 1;
            }
        }
    }
    counters
}

/// Unanswered calls to `number` on local day `date` in `zone`, across the borrower's accounts.
pub fn unanswered_today(attempts: &[AttemptRecord], number: &str, zone: Tz, date: NaiveDate) -> u32 {
    attempts
        .iter()
        .filter(|attempt| {
            attempt.channel != Channel::Sms
                && attempt.channel != Channel::Email
                && attempt.outcome.is_unanswered()
                && attempt.address.as_deref() == Some(number)
                && attempt.at.with_timezone(&zone).date_naive() == date
        })
        .count() as u32
}

/// A cap that leaves no call today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapReached {
    /// The cap's name in reason codes (`rpc_per_day`, `calls_7d`, `calls_per_day`, `unanswered_per_number`).
    pub name: &'static str,
    /// The cap's value.
    pub cap: u32,
}

impl CapReached {
    /// The stable reason code, `cap:<name>`.
    pub fn reason(&self) -> String {
        format!("cap:{}", self.name)
    }
}

/// How many calls the policy's caps still leave on the day the `counters` describe
/// (`u32::MAX` when no cap applies), or the first cap already reached. `unanswered` is
/// `(cap, calls left summed over the usable numbers)` for robot calls under a per-number cap.
/// The planner and the lease-time re-check both decide with this.
pub fn call_room(
    policy: &super::Policy,
    counters: &CallCounters,
    unanswered: Option<(u32, u32)>,
) -> Result<u32, CapReached> {
    let caps = [
        ("rpc_per_day", policy.rpc_per_day.map(|cap| (cap, cap.saturating_sub(counters.borrower_rpc_today)))),
        ("calls_7d", policy.calls_per_7_days.map(|cap| (cap, cap.saturating_sub(counters.account_calls_7d)))),
        ("calls_per_day", policy.calls_per_day.map(|cap| (cap, cap.saturating_sub(counters.account_calls_today)))),
        ("unanswered_per_number", unanswered),
    ];
    let mut room = u32::MAX;
    for (name, cap) in caps {
        let Some((cap, left)) = cap else { continue };
        if left == 0 {
            return Err(CapReached { name, cap });
        }
        room = room.min(left);
    }
    Ok(room)
}

/// The local day of the conversation whose cool-down still covers `date` (the conversation's
/// day counts as day 1, so calls resume on day `cooldown_days + 1`), or `None`.
pub fn cooldown_from(
    policy: &super::Policy,
    last_conversation: Option<DateTime<Utc>>,
    zone: Tz,
    date: NaiveDate,
) -> Option<NaiveDate> {
    let (days, last) = (policy.cooldown_days?, last_conversation?);
    let conversation_day = last.with_timezone(&zone).date_naive();
    let day_number = (date - conversation_day).num_days() + 1;
    (day_number >= 1 && day_number <= i64::from(days)).then_some(conversation_day)
}
