//! Learned timing: the day's attempts of a `timing = "learned"` rule placed at the local hours
//! of highest sampled contact probability (Thompson sampling from the contact model), at most
//! one per hour, starts at least `min_gap` apart, inside the allowed intervals (the rule's
//! windows within the contact hours in every zone) and never in an hour estimated below
//! `min_p_contact`. Pure: the model, the intervals and the random source come in; the gate
//! and the caps are the planner's, asked before.

use crate::learn::{ContactModel, SegmentRef};
use crate::policy::Interval;
use chrono::{Datelike, Duration, Timelike};
use chrono_tz::Tz;
use rand::Rng;

/// One placed attempt: its window (one local hour, or what the intervals leave of it) and the
/// model's estimate there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    /// The attempt's window.
    pub slot: Interval,
    /// The posterior mean of a right-party contact in that hour.
    pub p_contact: f64,
}

/// Whom the estimates are for.
#[derive(Debug, Clone, Copy)]
pub struct Estimates<'a> {
    /// The fitted model.
    pub model: &'a ContactModel,
    /// The account's segment in it.
    pub segment: SegmentRef,
    /// The borrower (their own history, shrunk toward the segment).
    pub borrower_id: &'a str,
    /// The borrower's primary zone: the hours and weekdays of the model are local there.
    pub zone: Tz,
    /// Hours estimated below this get no attempt.
    pub min_p_contact: Option<f64>,
}

/// What [`place`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Attempts were placed (possibly fewer than asked: `min_gap` or too few hours).
    Placed,
    /// No hour is left: the intervals are empty.
    NoTime,
    /// Hours are left, but every one is estimated below `min_p_contact`.
    BelowThreshold,
}

/// One candidate hour.
#[derive(Debug, Clone, Copy)]
struct Cell {
    slot: Interval,
    mean: f64,
    draw: f64,
}

/// The local-hour cells of the intervals in `zone`: each interval cut at every local hour.
fn cells(intervals: &[Interval], zone: Tz, mut each: impl FnMut(Interval, chrono::Weekday, u32)) {
    for interval in intervals {
        let mut start = interval.start;
        while start < interval.end {
            let local = start.with_timezone(&zone);
            let into_hour = i64::from(local.minute()) * 60 + i64::from(local.second());
            let end = (start + Duration::seconds(3600 - into_hour)).min(interval.end);
            each(Interval { start, end }, local.weekday(), local.hour());
            start = end;
        }
    }
}

/// The time-weighted mean of the model's estimates over `intervals` (the chance of reaching
/// the borrower at a moment drawn evenly from them); `None` when they are empty.
pub fn window_mean(intervals: &[Interval], estimates: &Estimates<'_>) -> Option<f64> {
    let (mut weighted, mut seconds) = (0.0, 0.0);
    cells(intervals, estimates.zone, |slot, weekday, hour| {
        let length = (slot.end - slot.start).num_seconds() as f64;
        let mean = estimates.model.posterior(estimates.segment, estimates.borrower_id, weekday, hour).mean();
        weighted += mean * length;
        seconds += length;
    });
    (seconds > 0.0).then(|| weighted / seconds)
}

/// Why an hour was or was not taken (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HourFate {
    /// An attempt was placed there.
    Chosen,
    /// Its estimate is below the rule's `min_p_contact`.
    BelowMinPContact,
    /// It starts within `min_gap` of an hour drawn higher.
    WithinMinGap,
    /// The attempts were all placed at hours drawn higher.
    DrawnLower,
}

/// One candidate hour of a learned placement, as `explain` shows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HourTrace {
    /// The hour's window (one local hour, or what the intervals leave of it).
    pub slot: Interval,
    /// The local hour (borrower's first zone).
    pub local_hour: u32,
    /// The posterior mean of a right-party contact.
    pub estimate: f64,
    /// The Thompson draw (none below `min_p_contact`: not drawn).
    pub draw: Option<f64>,
    /// What became of it.
    pub fate: HourFate,
}

/// Places up to `count` attempts over `intervals` (sorted, disjoint), appending them to `out`
/// in time order. Each candidate hour's contact probability is drawn once from its posterior;
/// the hours are taken best draw first, skipping any that would start within `min_gap` of one
/// already taken. `trace` (when given) receives what became of every hour, in time order.
pub fn place<R: Rng + ?Sized>(
    intervals: &[Interval],
    count: u32,
    min_gap: Duration,
    estimates: &Estimates<'_>,
    rng: &mut R,
    out: &mut Vec<Placed>,
    mut trace: Option<&mut Vec<HourTrace>>,
) -> Placement {
    let mut candidates: Vec<Cell> = Vec::with_capacity(16);
    let mut any = false;
    cells(intervals, estimates.zone, |slot, weekday, hour| {
        any = true;
        let posterior = estimates.model.posterior(estimates.segment, estimates.borrower_id, weekday, hour);
        let mean = posterior.mean();
        if estimates.min_p_contact.is_some_and(|least| mean < least) {
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(HourTrace {
                    slot,
                    local_hour: hour,
                    estimate: mean,
                    draw: None,
                    fate: HourFate::BelowMinPContact,
                });
            }
            return;
        }
        candidates.push(Cell { slot, mean, draw: posterior.sample(rng) });
    });
    if !any {
        return Placement::NoTime;
    }
    if candidates.is_empty() {
        return Placement::BelowThreshold;
    }
    candidates.sort_by(|a, b| b.draw.total_cmp(&a.draw).then(a.slot.start.cmp(&b.slot.start)));
    let first = out.len();
    for cell in candidates {
        let fate = if out.len() - first == count as usize {
            HourFate::DrawnLower
        } else {
            let clear = out[first..].iter().all(|placed| {
                let apart = if placed.slot.start > cell.slot.start {
                    placed.slot.start - cell.slot.start
                } else {
                    cell.slot.start - placed.slot.start
                };
                apart >= min_gap
            });
            if clear {
                out.push(Placed { slot: cell.slot, p_contact: cell.mean });
                HourFate::Chosen
            } else {
                HourFate::WithinMinGap
            }
        };
        if let Some(trace) = trace.as_deref_mut() {
            let local_hour = cell.slot.start.with_timezone(&estimates.zone).hour();
            trace.push(HourTrace { slot: cell.slot, local_hour, estimate: cell.mean, draw: Some(cell.draw), fate });
        }
    }
    out[first..].sort_by_key(|placed| placed.slot.start);
    if let Some(trace) = trace {
        trace.sort_by_key(|hour| hour.slot.start);
    }
    Placement::Placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::learn::{AttemptFact, fit};
    use crate::policy::{TimeWindow, allowed_intervals};
    use chrono::{DateTime, NaiveDate, Utc, Weekday};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const WEEKDAYS: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

    /// A model of segment `early/robot/card` whose contact rate by local hour is `curve(hour)`,
    /// from `per_cell` attempts in every weekday and hour.
    fn model(curve: impl Fn(u32) -> f64, per_cell: u32, rng: &mut SmallRng) -> ContactModel {
        let mut facts = Vec::new();
        for weekday in WEEKDAYS {
            for hour in 0..24 {
                for _ in 0..per_cell {
                    let contact = rng.random_bool(curve(hour));
                    facts.push((weekday, hour, contact));
                }
            }
        }
        let from: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        fit(
            facts.iter().map(|&(weekday, hour, contact)| AttemptFact {
                borrower_id: "someone else",
                stage: "early",
                channel: Channel::Robot,
                product: "card",
                weekday,
                hour,
                contact,
            }),
            from,
            from + Duration::days(90),
        )
    }

    fn evening(hour: u32) -> f64 {
        if (18..21).contains(&hour) { 0.5 } else { 0.05 }
    }

    /// Whether the local time of `at` in `zone` lies inside one of `windows` (`end` exclusive
    /// unless `closing`).
    fn inside(windows: &[TimeWindow], zone: Tz, at: DateTime<Utc>, closing: bool) -> bool {
        let local = at.with_timezone(&zone);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let minute =
            if closing && local.second() == 0 && local.minute() == 0 && local.hour() == 0 { 1440 } else { minute };
        windows
            .iter()
            .any(|window| window.start <= minute && (minute < window.end || (closing && minute == window.end)))
    }

    #[test]
    fn learned_slots_stay_inside_the_windows_in_every_zone_and_keep_min_gap_on_dst_days() {
        let mut rng = SmallRng::seed_from_u64(7);
        let model = model(evening, 40, &mut rng);
        let segment = model.segment("early", Channel::Robot, "card");
        use chrono_tz::{America, Asia, Europe};
        let zone_sets: [&[Tz]; 5] = [
            &[America::New_York],
            &[America::New_York, America::Los_Angeles],
            &[Asia::Shanghai],
            &[Europe::London, America::New_York],
            &[America::Chicago, America::Denver, America::New_York],
        ];
        // US spring forward and fall back, UK spring forward and fall back, an ordinary day.
        let days = ["2026-03-08", "2026-11-01", "2026-03-29", "2026-10-25", "2026-06-10"];
        let mut cases = 0;
        for zones in zone_sets {
            for day in days {
                let date: NaiveDate = day.parse().unwrap();
                for _ in 0..40 {
                    let start = rng.random_range(8 * 60..20 * 60) as u16;
                    let end: u16 = rng.random_range(start + 30..=21 * 60);
                    let mut windows = vec![TimeWindow { start, end }];
                    if rng.random_bool(0.5) && end + 60 < 21 * 60 {
                        windows.push(TimeWindow { start: end + 60, end: 21 * 60 });
                    }
                    let count = rng.random_range(1..=6);
                    let min_gap = Duration::minutes(rng.random_range(0..=180));
                    let not_before = date.and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(14);
                    let intervals = allowed_intervals(zones, date, &windows, not_before);
                    let estimates =
                        Estimates { model: &model, segment, borrower_id: "B1", zone: zones[0], min_p_contact: None };
                    let mut placed = Vec::new();
                    let found = place(&intervals, count, min_gap, &estimates, &mut rng, &mut placed, None);
                    assert_eq!(found == Placement::NoTime, intervals.is_empty());
                    assert!(placed.len() <= count as usize);
                    for attempt in &placed {
                        let slot = attempt.slot;
                        assert!(slot.start < slot.end && slot.end - slot.start <= Duration::hours(1));
                        assert!(
                            intervals.iter().any(|i| i.start <= slot.start && slot.end <= i.end),
                            "{slot:?} outside {intervals:?}"
                        );
                        for zone in zones {
                            assert!(inside(&windows, *zone, slot.start, false), "{slot:?} starts outside in {zone}");
                            let last = slot.end - Duration::seconds(1);
                            assert!(inside(&windows, *zone, last, false), "{slot:?} ends outside in {zone}");
                        }
                    }
                    for pair in placed.windows(2) {
                        assert!(pair[1].slot.start - pair[0].slot.start >= min_gap.max(Duration::seconds(1)));
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 5 * 5 * 40);
    }

    #[test]
    fn attempts_go_to_the_hours_that_answer_most_and_not_below_min_p_contact() {
        let mut rng = SmallRng::seed_from_u64(11);
        let model = model(evening, 200, &mut rng);
        let zone = chrono_tz::America::New_York;
        let date: NaiveDate = "2026-06-10".parse().unwrap();
        let windows = [TimeWindow { start: 9 * 60, end: 21 * 60 }];
        let intervals = allowed_intervals(&[zone], date, &windows, "2026-06-10T00:00:00Z".parse().unwrap());
        let mut estimates = Estimates {
            model: &model,
            segment: model.segment("early", Channel::Robot, "card"),
            borrower_id: "B1",
            zone,
            min_p_contact: None,
        };
        let mut placed = Vec::new();
        assert_eq!(
            place(&intervals, 3, Duration::hours(1), &estimates, &mut rng, &mut placed, None),
            Placement::Placed
        );
        let hours: Vec<u32> = placed.iter().map(|p| p.slot.start.with_timezone(&zone).hour()).collect();
        assert_eq!(hours, vec![18, 19, 20]);
        assert!(placed.iter().all(|p| p.p_contact > 0.4), "{placed:?}");

        // Six attempts asked, but only the evening hours reach 10 %.
        estimates.min_p_contact = Some(0.1);
        placed.clear();
        assert_eq!(place(&intervals, 6, Duration::zero(), &estimates, &mut rng, &mut placed, None), Placement::Placed);
        assert_eq!(placed.len(), 3);

        // A morning-only window: nothing reaches it.
        let morning = allowed_intervals(
            &[zone],
            date,
            &[TimeWindow { start: 9 * 60, end: 12 * 60 }],
            "2026-06-10T00:00:00Z".parse().unwrap(),
        );
        placed.clear();
        assert_eq!(
            place(&morning, 2, Duration::zero(), &estimates, &mut rng, &mut placed, None),
            Placement::BelowThreshold
        );
        assert!(placed.is_empty());
    }
}
