//! Local time-of-day windows ("09:00-12:00") and their instants in UTC for one local day,
//! across every time zone a borrower may be in, correct on daylight-saving change days.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// Minutes in a day.
const DAY: u16 = 24 * 60;

/// A time-of-day window in local time, `[start, end)` in minutes since midnight. A window whose
/// end is before its start crosses midnight: on a given day it covers `[00:00, end)` and
/// `[start, 24:00)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// Minutes since local midnight, 0..1440.
    pub start: u16,
    /// Minutes since local midnight, 0..=1440 (1440 = the end of the day).
    pub end: u16,
}

impl TimeWindow {
    /// A window from `start` to `end` minutes.
    pub const fn new(start: u16, end: u16) -> TimeWindow {
        TimeWindow { start, end }
    }

    /// Whether the window crosses midnight.
    pub fn crosses_midnight(self) -> bool {
        self.end < self.start
    }

    /// The window's pieces within one day, each `start < end`.
    pub fn pieces(self) -> impl Iterator<Item = (u16, u16)> {
        let (first, second) =
            if self.crosses_midnight() { ((0, self.end), (self.start, DAY)) } else { ((self.start, self.end), (0, 0)) };
        [first, second].into_iter().filter(|(start, end)| start < end)
    }

    /// The parts of this window inside `hours` (a window that does not cross midnight).
    pub fn clip_to(self, hours: TimeWindow) -> Vec<TimeWindow> {
        self.pieces()
            .filter_map(|(start, end)| {
                let start = start.max(hours.start);
                let end = end.min(hours.end);
                (start < end).then_some(TimeWindow { start, end })
            })
            .collect()
    }

    /// Whether a local time of day falls inside the window.
    pub fn contains(self, time: NaiveTime) -> bool {
        use chrono::Timelike;
        let minute = (time.hour() * 60 + time.minute()) as u16;
        self.pieces().any(|(start, end)| minute >= start && minute < end)
    }

    /// Total minutes covered in a day.
    pub fn minutes(self) -> u32 {
        self.pieces().map(|(start, end)| u32::from(end - start)).sum()
    }
}

impl FromStr for TimeWindow {
    type Err = String;

    fn from_str(text: &str) -> Result<TimeWindow, String> {
        let (start, end) =
            text.split_once('-').ok_or_else(|| format!("window `{text}` must look like \"09:00-12:00\""))?;
        let start = parse_clock(start.trim(), false)
            .ok_or_else(|| format!("window `{text}`: `{}` is not a time HH:MM (00:00 to 23:59)", start.trim()))?;
        let end = parse_clock(end.trim(), true)
            .ok_or_else(|| format!("window `{text}`: `{}` is not a time HH:MM (00:00 to 24:00)", end.trim()))?;
        if start == end {
            return Err(format!("window `{text}` is empty: it starts when it ends"));
        }
        Ok(TimeWindow { start, end })
    }
}

fn parse_clock(text: &str, allow_24: bool) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    if minutes >= 60 {
        return None;
    }
    match hours * 60 + minutes {
        value if value < DAY => Some(value),
        DAY if allow_24 => Some(DAY),
        _ => None,
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.start / 60, self.start % 60, self.end / 60, self.end % 60)
    }
}

impl serde::Serialize for TimeWindow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A half-open span of instants `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Interval {
    /// First instant inside.
    pub start: DateTime<Utc>,
    /// First instant after.
    pub end: DateTime<Utc>,
}

impl Interval {
    /// Length of the interval.
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// The first instant whose local time on `date` is at or after `minute`. In a spring-forward gap
/// that is the transition; on a fall-back hour it is the later of the two instants, so nothing
/// before it has a local time at or after `minute` on that day's second pass.
pub fn local_to_utc_start(zone: Tz, date: NaiveDate, minute: u16) -> DateTime<Utc> {
    map_local(zone, date, minute, true)
}

/// The last bound whose local time on `date` is before `minute`: in a gap the transition; on a
/// fall-back hour the earlier of the two instants.
pub fn local_to_utc_end(zone: Tz, date: NaiveDate, minute: u16) -> DateTime<Utc> {
    map_local(zone, date, minute, false)
}

fn map_local(zone: Tz, date: NaiveDate, minute: u16, latest: bool) -> DateTime<Utc> {
    let base = date.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(minute));
    for step in 0..=(26 * 60) {
        let local = base + Duration::minutes(step);
        match zone.from_local_datetime(&local) {
            LocalResult::Single(instant) => return instant.with_timezone(&Utc),
            LocalResult::Ambiguous(early, late) => {
                let chosen = if latest && step == 0 { late } else { early };
                return chosen.with_timezone(&Utc);
            }
            LocalResult::None => continue,
        }
    }
    // No zone has a gap longer than a day; fall back to reading the clock face as UTC.
    Utc.from_utc_datetime(&base)
}

fn intervals_in_zone(zone: Tz, date: NaiveDate, windows: &[TimeWindow], out: &mut Vec<Interval>) {
    for window in windows {
        for (start, end) in window.pieces() {
            let start = local_to_utc_start(zone, date, start);
            let end = local_to_utc_end(zone, date, end);
            if start < end {
                out.push(Interval { start, end });
            }
        }
    }
}

fn normalise(intervals: &mut Vec<Interval>) {
    intervals.sort();
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for interval in intervals.drain(..) {
        match merged.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => merged.push(interval),
        }
    }
    *intervals = merged;
}

fn intersect(left: &[Interval], right: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        let start = left[i].start.max(right[j].start);
        let end = left[i].end.min(right[j].end);
        if start < end {
            out.push(Interval { start, end });
        }
        if left[i].end < right[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The instants of the primary zone's local day `date` at which every zone in `zones` shows a
/// local time inside `windows`, from `not_before` on. `windows` must already be clipped to the
/// policy's contact hours. An empty result means no contact is possible that day.
pub fn allowed_intervals(
    zones: &[Tz],
    date: NaiveDate,
    windows: &[TimeWindow],
    not_before: DateTime<Utc>,
) -> Vec<Interval> {
    let Some((primary, others)) = zones.split_first() else {
        return Vec::new();
    };
    let mut allowed = Vec::new();
    intervals_in_zone(*primary, date, windows, &mut allowed);
    normalise(&mut allowed);
    for zone in others {
        let mut in_zone = Vec::new();
        for day in [date.pred_opt(), Some(date), date.succ_opt()].into_iter().flatten() {
            intervals_in_zone(*zone, day, windows, &mut in_zone);
        }
        normalise(&mut in_zone);
        allowed = intersect(&allowed, &in_zone);
    }
    allowed.retain_mut(|interval| {
        interval.start = interval.start.max(not_before);
        interval.start < interval.end
    });
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    fn window(text: &str) -> TimeWindow {
        text.parse().unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    /// Every minute of every interval shows a local time inside the windows in every zone.
    fn assert_inside(intervals: &[Interval], zones: &[Tz], windows: &[TimeWindow]) {
        for interval in intervals {
            let mut instant = interval.start;
            while instant < interval.end {
                for zone in zones {
                    let local = instant.with_timezone(zone).time();
                    assert!(
                        windows.iter().any(|window| window.contains(local)),
                        "{instant} is {local} in {zone}, outside {windows:?}"
                    );
                }
                instant += Duration::minutes(1);
            }
        }
    }

    #[test]
    fn windows_parse_and_reject_nonsense() {
        assert_eq!(window("09:00-12:30"), TimeWindow::new(540, 750));
        assert_eq!(window("22:00-02:00").pieces().collect::<Vec<_>>(), vec![(0, 120), (1320, 1440)]);
        assert_eq!(window("08:00-24:00"), TimeWindow::new(480, 1440));
        for bad in ["9-12", "09:00", "25:00-26:00", "09:60-10:00", "10:00-10:00", "24:00-10:00"] {
            assert!(bad.parse::<TimeWindow>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn table_of_zones_and_days() {
        struct Case {
            name: &'static str,
            zones: &'static [Tz],
            date: &'static str,
            windows: &'static [&'static str],
            expect: &'static [(&'static str, &'static str)],
        }
        use chrono_tz::{America, Asia, Australia, Europe};
        let cases = [
            Case {
                name: "plain day in Shanghai",
                zones: &[Asia::Shanghai],
                date: "2026-11-22",
                windows: &["08:00-22:00"],
                expect: &[("2026-11-22T00:00:00Z", "2026-11-22T14:00:00Z")],
            },
            Case {
                name: "US spring forward: 08:00 EDT",
                zones: &[America::New_York],
                date: "2026-03-08",
                windows: &["08:00-21:00"],
                expect: &[("2026-03-08T12:00:00Z", "2026-03-09T01:00:00Z")],
            },
            Case {
                name: "US fall back: 08:00 EST, the day has 25 hours",
                zones: &[America::New_York],
                date: "2026-11-01",
                windows: &["08:00-21:00"],
                expect: &[("2026-11-01T13:00:00Z", "2026-11-02T02:00:00Z")],
            },
            Case {
                name: "window inside the spring-forward gap starts at the transition",
                zones: &[America::New_York],
                date: "2026-03-08",
                windows: &["02:30-04:00"],
                expect: &[("2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z")],
            },
            Case {
                name: "window over the repeated hour starts on its second pass",
                zones: &[Europe::London],
                date: "2026-10-25",
                windows: &["01:30-03:00"],
                expect: &[("2026-10-25T01:30:00Z", "2026-10-25T03:00:00Z")],
            },
            Case {
                name: "India is +05:30",
                zones: &[Asia::Kolkata],
                date: "2026-11-22",
                windows: &["09:00-12:00"],
                expect: &[("2026-11-22T03:30:00Z", "2026-11-22T06:30:00Z")],
            },
            Case {
                name: "Nepal is +05:45",
                zones: &[Asia::Kathmandu],
                date: "2026-11-22",
                windows: &["09:00-12:00"],
                expect: &[("2026-11-22T03:15:00Z", "2026-11-22T06:15:00Z")],
            },
            Case {
                name: "Chatham is +13:45 in its summer",
                zones: &[chrono_tz::Pacific::Chatham],
                date: "2026-11-22",
                windows: &["08:00-21:00"],
                expect: &[("2026-11-21T18:15:00Z", "2026-11-22T07:15:00Z")],
            },
            Case {
                name: "two zones: New York and Los Angeles overlap 11:00-21:00 Eastern",
                zones: &[America::New_York, America::Los_Angeles],
                date: "2026-11-23",
                windows: &["08:00-21:00"],
                expect: &[("2026-11-23T16:00:00Z", "2026-11-24T02:00:00Z")],
            },
            Case {
                name: "two zones with no overlap",
                zones: &[Asia::Shanghai, America::New_York],
                date: "2026-11-23",
                windows: &["09:00-12:00"],
                expect: &[],
            },
            Case {
                name: "Lord Howe moves by half an hour",
                zones: &[Australia::Lord_Howe],
                date: "2026-10-04",
                windows: &["01:00-03:00"],
                expect: &[("2026-10-03T14:30:00Z", "2026-10-03T16:00:00Z")],
            },
        ];
        for case in cases {
            let windows: Vec<TimeWindow> = case.windows.iter().map(|w| window(w)).collect();
            let got = allowed_intervals(case.zones, day(case.date), &windows, utc("2000-01-01T00:00:00Z"));
            let expect: Vec<Interval> =
                case.expect.iter().map(|(s, e)| Interval { start: utc(s), end: utc(e) }).collect();
            assert_eq!(got, expect, "{}", case.name);
            assert_inside(&got, case.zones, &windows);
        }
    }

    #[test]
    fn not_before_cuts_the_morning_off() {
        let got = allowed_intervals(
            &[chrono_tz::Asia::Shanghai],
            day("2026-11-22"),
            &[window("09:00-12:00"), window("14:00-20:00")],
            utc("2026-11-22T05:00:00Z"),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].start.with_timezone(&chrono_tz::Asia::Shanghai).hour(), 14);
    }

    #[test]
    fn windows_clip_to_policy_hours() {
        let hours = window("08:00-21:00");
        assert_eq!(window("06:00-23:00").clip_to(hours), vec![hours]);
        assert_eq!(window("20:00-07:00").clip_to(hours), vec![window("20:00-21:00")]);
        assert!(window("21:30-23:00").clip_to(hours).is_empty());
    }

    #[test]
    fn every_zone_on_its_change_days_stays_inside() {
        use chrono_tz::{America, Australia, Europe};
        let hours = [window("08:00-21:00")];
        for (zone, date) in [
            (America::New_York, "2026-03-08"),
            (America::New_York, "2026-11-01"),
            (Europe::London, "2026-03-29"),
            (Europe::London, "2026-10-25"),
            (Australia::Sydney, "2026-10-04"),
            (Australia::Lord_Howe, "2026-04-05"),
        ] {
            for other in [America::Chicago, Europe::Paris, Australia::Adelaide] {
                let zones = [zone, other];
                let got = allowed_intervals(&zones, day(date), &hours, utc("2000-01-01T00:00:00Z"));
                assert_inside(&got, &zones, &hours);
            }
        }
    }
}
