//! Whether a promise to pay is kept or broken, decided once: kept as soon as the payments made
//! since the promise, by its deadline, add up to its amount; broken once the deadline has
//! passed without that. Pure: the promise watcher (`ops::work::promises`) applies it.

use super::{Money, PromiseRecord};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

/// What became of a promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Paid in time.
    Kept,
    /// The deadline passed unpaid.
    Broken,
}

impl Resolution {
    /// The stored status (`kept`, `broken`).
    pub fn code(self) -> &'static str {
        match self {
            Resolution::Kept => "kept",
            Resolution::Broken => "broken",
        }
    }
}

/// Resolves `promise` at `now` from the account's `payments` (`(paid_at, amount)`): the
/// deadline is `due_on + grace_days`, inclusive, on the calendar of `zone` (the borrower's
/// primary zone); payments count when made at or after the promise, at or before `now` and on
/// or before the deadline. Returns the resolution (`None`: still open) and the amount that
/// counted.
pub fn resolve(
    promise: &PromiseRecord,
    payments: &[(DateTime<Utc>, Money)],
    zone: Tz,
    grace_days: u32,
    now: DateTime<Utc>,
) -> (Option<Resolution>, Money) {
    let deadline = promise.due_on + Duration::days(i64::from(grace_days));
    let paid: Money = payments
        .iter()
        .filter(|(paid_at, _)| {
            *paid_at >= promise.made_at && *paid_at <= now && paid_at.with_timezone(&zone).date_naive() <= deadline
        })
        .map(|(_, amount)| *amount)
        .sum();
    let resolution = if paid >= promise.amount {
        Some(Resolution::Kept)
    } else if now.with_timezone(&zone).date_naive() > deadline {
        Some(Resolution::Broken)
    } else {
        None
    };
    (resolution, paid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn kept_broken_or_open_on_the_borrowers_calendar() {
        let promise = PromiseRecord {
            amount: "100".parse().unwrap(),
            due_on: "2026-11-25".parse().unwrap(),
            made_at: at("2026-11-22T02:00:00Z"),
        };
        let shanghai = chrono_tz::Asia::Shanghai;
        let money = |text: &str| -> Money { text.parse().unwrap() };
        // (payments, now, expected, paid)
        type Row = (Vec<(DateTime<Utc>, Money)>, &'static str, Option<Resolution>, &'static str);
        let table: Vec<Row> = vec![
            (vec![], "2026-11-24T00:00:00Z", None, "0"),
            (
                vec![(at("2026-11-23T01:00:00Z"), money("60")), (at("2026-11-24T01:00:00Z"), money("40"))],
                "2026-11-24T02:00:00Z",
                Some(Resolution::Kept),
                "100",
            ),
            // A payment before the promise does not count.
            (vec![(at("2026-11-21T01:00:00Z"), money("100"))], "2026-11-24T02:00:00Z", None, "0"),
            // Grace day 11-26 ends at midnight Shanghai (16:00Z): still open at 15:59Z, broken after.
            (vec![(at("2026-11-23T01:00:00Z"), money("60"))], "2026-11-26T15:59:00Z", None, "60"),
            (vec![(at("2026-11-23T01:00:00Z"), money("60"))], "2026-11-26T16:00:00Z", Some(Resolution::Broken), "60"),
            // Paid on the grace day (local), kept; paid the day after, too late.
            (vec![(at("2026-11-26T15:00:00Z"), money("100"))], "2026-11-27T00:00:00Z", Some(Resolution::Kept), "100"),
            (vec![(at("2026-11-26T16:30:00Z"), money("100"))], "2026-11-27T00:00:00Z", Some(Resolution::Broken), "0"),
            // A payment after `now` is not seen yet.
            (vec![(at("2026-11-25T01:00:00Z"), money("100"))], "2026-11-24T00:00:00Z", None, "0"),
        ];
        for (payments, now, expected, paid) in table {
            let (got, counted) = resolve(&promise, &payments, shanghai, 1, at(now));
            assert_eq!((got, counted), (expected, money(paid)), "at {now} with {payments:?}");
        }
    }
}
