//! An independent count of compliance violations in the contacts a run actually made (contact
//! hours, calls in 7 days, calls per day, right-party calls per day, unanswered calls per number, the
//! conversation cool-down, hard stops), written from DESIGN.md's "Compliance policies" table
//! with the policy's numbers given as plain arguments. It must not call `crate::policy` (it is the check on the engine's one contact
//! gate, so it must not share its code). Pure: no clock, no I/O, no database.

use crate::domain::{Channel, Outcome};
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// One contact a run made, as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactMade {
    /// The account contacted.
    pub account_id: String,
    /// Its borrower.
    pub borrower_id: String,
    /// Every zone the borrower may be in; the first decides the local day for caps.
    pub zones: Vec<Tz>,
    /// The channel.
    pub channel: Channel,
    /// The number dialled or texted, if any.
    pub phone: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// A call the borrower asked for within the past seven days (a callback): Regulation F
    /// (§1006.14(b)(3)) leaves it out of the 7-in-7 count and the conversation cool-down.
    pub exempt: bool,
}

/// A policy's limits as plain numbers. `None` is no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Contact hours in every borrower zone, all channels: `[start, end)` in minutes after
    /// local midnight (08:00–21:00 is 480..1260).
    pub hours: (u32, u32),
    /// Calls (robot and human) per account in any 7 consecutive local days.
    pub calls_per_7_days: Option<u32>,
    /// Calls (robot and human) per account per local day, callbacks included (`uk-fca`'s
    /// configured cap).
    pub calls_per_day: Option<u32>,
    /// Right-party calls per borrower per local day, across accounts.
    pub rpc_per_day: Option<u32>,
    /// Unanswered calls per phone number per local day.
    pub unanswered_per_number_per_day: Option<u32>,
    /// Local days without calls to an account after a conversation on a call about it, the
    /// conversation's day counting as day 1.
    pub cooldown_days: Option<u32>,
}

/// Violations counted, by rule: each offending contact counts once per rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Violations {
    /// Contacts outside the contact hours in at least one of the borrower's zones.
    pub outside_hours: u32,
    /// Calls beyond the cap of calls per account in 7 consecutive days.
    pub calls_7d: u32,
    /// Calls beyond the cap of calls per account per day.
    pub calls_per_day: u32,
    /// Right-party calls beyond the per-borrower daily cap.
    pub rpc_per_day: u32,
    /// Unanswered calls beyond the per-number daily cap.
    pub unanswered_per_number: u32,
    /// Calls to an account after its `do_not_call`, or any contact after its `dispute`.
    pub after_hard_stop: u32,
    /// Calls to an account within the cool-down after a conversation about it.
    pub cooldown: u32,
}

impl Violations {
    /// Adds another count to this one.
    pub fn add(&mut self, other: &Violations) {
        self.outside_hours += other.outside_hours;
        self.calls_7d += other.calls_7d;
        self.calls_per_day += other.calls_per_day;
        self.rpc_per_day += other.rpc_per_day;
        self.unanswered_per_number += other.unanswered_per_number;
        self.after_hard_stop += other.after_hard_stop;
        self.cooldown += other.cooldown;
    }

    /// All violations.
    pub fn total(&self) -> u32 {
        self.outside_hours
            + self.calls_7d
            + self.calls_per_day
            + self.rpc_per_day
            + self.unanswered_per_number
            + self.after_hard_stop
            + self.cooldown
    }
}

fn local_day(contact: &ContactMade) -> NaiveDate {
    let zone = contact.zones.first().copied().unwrap_or(Tz::UTC);
    contact.at.with_timezone(&zone).date_naive()
}

fn outside_hours(contact: &ContactMade, (start, end): (u32, u32)) -> bool {
    let zones: &[Tz] = if contact.zones.is_empty() { &[Tz::UTC] } else { &contact.zones };
    zones.iter().any(|zone| {
        let local = contact.at.with_timezone(zone);
        let minute = local.hour() * 60 + local.minute();
        !(start..end).contains(&minute)
    })
}

/// Counts the violations in `contacts` (in any order) under `limits`.
pub fn violations(contacts: &[ContactMade], limits: &Limits) -> Violations {
    let mut order: Vec<&ContactMade> = contacts.iter().collect();
    order.sort_by_key(|contact| contact.at);
    let mut found = Violations::default();
    let mut calls_by_account: BTreeMap<&str, Vec<NaiveDate>> = BTreeMap::new();
    let mut calls_by_account_day: BTreeMap<(&str, NaiveDate), u32> = BTreeMap::new();
    let mut rpc_by_borrower_day: BTreeMap<(&str, NaiveDate), u32> = BTreeMap::new();
    let mut unanswered_by_number_day: BTreeMap<(&str, NaiveDate), u32> = BTreeMap::new();
    let mut do_not_call: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let mut disputed: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let mut conversed: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for contact in order {
        let account = contact.account_id.as_str();
        let day = local_day(contact);
        let is_call = contact.channel.is_call();
        if outside_hours(contact, limits.hours) {
            found.outside_hours += 1;
        }
        let stopped_by_dispute = disputed.get(account).is_some_and(|at| *at < contact.at);
        let stopped_by_opt_out = is_call && do_not_call.get(account).is_some_and(|at| *at < contact.at);
        if stopped_by_dispute || stopped_by_opt_out {
            found.after_hard_stop += 1;
        }
        if is_call && !contact.exempt {
            let cooling = conversed.get(account).is_some_and(|since| {
                limits.cooldown_days.is_some_and(|days| (day - *since).num_days() < i64::from(days))
            });
            if cooling {
                found.cooldown += 1;
            }
            let days = calls_by_account.entry(account).or_default();
            days.push(day);
            if let Some(cap) = limits.calls_per_7_days {
                let first = day - Duration::days(6);
                let in_window = days.iter().filter(|other| **other >= first && **other <= day).count();
                if in_window > cap as usize {
                    found.calls_7d += 1;
                }
            }
        }
        if is_call {
            let count = calls_by_account_day.entry((account, day)).or_insert(0);
            *count += 1;
            if limits.calls_per_day.is_some_and(|cap| *count > cap) {
                found.calls_per_day += 1;
            }
            if contact.outcome.is_conversation() {
                conversed.insert(account, day);
            }
            if contact.outcome.is_right_party() {
                let count = rpc_by_borrower_day.entry((contact.borrower_id.as_str(), day)).or_insert(0);
                *count += 1;
                if limits.rpc_per_day.is_some_and(|cap| *count > cap) {
                    found.rpc_per_day += 1;
                }
            }
            if contact.outcome.is_unanswered()
                && let Some(phone) = contact.phone.as_deref()
            {
                let count = unanswered_by_number_day.entry((phone, day)).or_insert(0);
                *count += 1;
                if limits.unanswered_per_number_per_day.is_some_and(|cap| *count > cap) {
                    found.unanswered_per_number += 1;
                }
            }
        }
        match contact.outcome {
            Outcome::DoNotCall => {
                do_not_call.entry(account).or_insert(contact.at);
            }
            Outcome::Dispute => {
                disputed.entry(account).or_insert(contact.at);
            }
            _ => {}
        }
    }
    found
}
