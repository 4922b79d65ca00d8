//! The vintage view: accounts grouped by the week they entered collections (the day after their
//! due date, in the portfolio zone), and the share of each week cured (paid in full) within 7,
//! 14, 30 and 60 days of entering — each share read only over the accounts whose horizon has
//! passed by the report's end, so a young week never looks worse than it is.
//!
//! Pure: the store supplies the entries, each with its first cure after entering; no I/O, no
//! clock.

use super::ratio;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The horizons of the vintage view, in days after entering collections.
pub const HORIZONS: [i64; 4] = [7, 14, 30, 60];

/// One account that entered collections: the first instant of the day after its due date, and
/// its first paid-in-full since (all a horizon asks of its cures, without naming the account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VintageEntry {
    /// When it entered collections.
    pub entered_at: DateTime<Utc>,
    /// Its first paid-in-full at or after `entered_at`, if any.
    pub first_cure: Option<DateTime<Utc>>,
}

impl VintageEntry {
    /// The entry of an account that entered at `entered_at` and was paid in full at `cures`
    /// (any order; those before entering do not count).
    pub fn new(entered_at: DateTime<Utc>, cures: &[DateTime<Utc>]) -> VintageEntry {
        VintageEntry { entered_at, first_cure: cures.iter().copied().filter(|at| *at >= entered_at).min() }
    }
}

/// One horizon of a week.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VintageHorizon {
    /// Days after entering.
    pub days: i64,
    /// Accounts of the week whose horizon has passed by the report's end.
    pub matured: u64,
    /// Of those, the accounts paid in full within the horizon.
    pub cured: u64,
    /// `cured / matured`; null while no account has matured.
    pub cure_rate: Option<f64>,
}

/// One week of entries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Vintage {
    /// The Monday the week starts (portfolio zone).
    pub week: NaiveDate,
    /// Accounts that entered collections that week.
    pub entered: u64,
    /// The cure rate at each of [`HORIZONS`].
    pub horizons: Vec<VintageHorizon>,
}

/// The vintages of `entries` as of `as_of`: a cure counts for a horizon when it falls in
/// `[entered_at, entered_at + days)` and before `as_of` (the first cure since entering does
/// when any does); an account counts for a horizon once `entered_at + days <= as_of`.
pub fn vintages(entries: &[VintageEntry], as_of: DateTime<Utc>, zone: Tz) -> Vec<Vintage> {
    let mut weeks: BTreeMap<NaiveDate, Vec<&VintageEntry>> = BTreeMap::new();
    for entry in entries {
        let day = entry.entered_at.with_timezone(&zone).date_naive();
        let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
        weeks.entry(monday).or_default().push(entry);
    }
    weeks
        .into_iter()
        .map(|(week, entries)| Vintage {
            week,
            entered: entries.len() as u64,
            horizons: HORIZONS
                .iter()
                .map(|&days| {
                    let mut matured = 0;
                    let mut cured = 0;
                    for entry in &entries {
                        let end = entry.entered_at + Duration::days(days);
                        if end > as_of {
                            continue;
                        }
                        matured += 1;
                        let in_time = entry.first_cure.is_some_and(|at| at < end && at < as_of);
                        cured += u64::from(in_time);
                    }
                    VintageHorizon { days, matured, cured, cure_rate: ratio(cured, matured) }
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn each_horizon_counts_only_the_accounts_it_has_matured_for() {
        let zone: Tz = "UTC".parse().unwrap();
        let entry = |day: &str, cures: &[&str]| {
            VintageEntry::new(at(day), &cures.iter().map(|cure| at(cure)).collect::<Vec<_>>())
        };
        // Week of Monday 2026-10-05: a (cured on day 3), b (cured on day 10), c (never).
        // Week of 2026-11-23: d, entered 2026-11-25, cured the next day.
        let entries = vec![
            entry("2026-10-05T00:00:00Z", &["2026-10-08T10:00:00Z"]),
            entry("2026-10-07T00:00:00Z", &["2026-10-17T10:00:00Z", "2026-09-01T00:00:00Z"]),
            entry("2026-10-11T00:00:00Z", &[]),
            entry("2026-11-25T00:00:00Z", &["2026-11-26T10:00:00Z"]),
        ];
        assert_eq!(
            entries[1].first_cure,
            Some(at("2026-10-17T10:00:00Z")),
            "the cure before entering is not its first"
        );
        let as_of = at("2026-11-30T00:00:00Z");
        let vintages = vintages(&entries, as_of, zone);
        assert_eq!(vintages.len(), 2);
        let october = &vintages[0];
        assert_eq!((october.week, october.entered), (NaiveDate::from_ymd_opt(2026, 10, 5).unwrap(), 3));
        let rates: Vec<(u64, u64)> = october.horizons.iter().map(|h| (h.matured, h.cured)).collect();
        assert_eq!(rates, [(3, 1), (3, 2), (3, 2), (0, 0)], "a cure before entering does not count; 60 days not up");
        assert_eq!(october.horizons[0].cure_rate, Some(1.0 / 3.0));
        assert_eq!(october.horizons[3].cure_rate, None);
        let november = &vintages[1];
        assert_eq!(november.horizons.iter().map(|h| h.matured).collect::<Vec<_>>(), [0, 0, 0, 0]);
    }

    #[test]
    fn weeks_are_cut_in_the_portfolio_zone() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        // Sunday 2026-11-29 20:00 UTC is Monday 04:00 in Shanghai: the week of 2026-11-30.
        let entries = vec![VintageEntry::new(at("2026-11-29T20:00:00Z"), &[])];
        let vintages = vintages(&entries, at("2026-12-01T00:00:00Z"), zone);
        assert_eq!(vintages[0].week, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
    }
}
