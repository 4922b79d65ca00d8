//! Counters the caps and conditions read from attempt history, on the borrower's local calendar.
//! Only the gate (and `explain`, to show them) reads these; calls in flight are added by the gate.

use crate::domain::AttemptRecord;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// What reported attempts say about one account on one local day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Calls (robot or human) on this account on local days `D-6 ..= D`, less the calls the
    /// borrower asked for (Reg F's consent-based calls are outside the 7-in-7 count).
    pub account_calls_7d: u32,
    /// Calls on this account on day `D`.
    pub account_calls_today: u32,
    /// Attempts on this account on any channel on days `D-6 ..= D` (for rule conditions); the
    /// borrower's own inbound calls are not attempts.
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
        // Calls the borrower placed count toward no cap (Reg F counts placed calls).
        let is_call = attempt.channel.is_call() && !attempt.inbound;
        if day == date && is_call && attempt.outcome.is_right_party() {
            counters.borrower_rpc_today += 1;
        }
        if attempt.account_id != account_id || attempt.inbound {
            continue;
        }
        counters.account_attempts_7d += 1;
        if is_call {
            if !attempt.exempt {
                counters.account_calls_7d += 1;
            }
            if day == date {
                counters.account_calls_today += 1;
            }
        }
    }
    counters
}

/// Unanswered calls (robot or human) to `number` on local day `date` in `zone`, across the
/// borrower's accounts.
pub fn unanswered_on(attempts: &[AttemptRecord], number: &str, zone: Tz, date: NaiveDate) -> u32 {
    attempts
        .iter()
        .filter(|attempt| {
            attempt.channel.is_call()
                && !attempt.inbound
                && attempt.outcome.is_unanswered()
                && attempt.address.as_deref() == Some(number)
                && attempt.at.with_timezone(&zone).date_naive() == date
        })
        .count() as u32
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
