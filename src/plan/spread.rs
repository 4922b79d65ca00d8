//! Spreading a day's attempts over the allowed intervals, `min_gap` apart.

use crate::policy::Interval;
use chrono::Duration;

/// Up to `count` attempt windows over `intervals` (sorted, disjoint): the allowed time is divided
/// into equal slots, each attempt's window is its slot cut at the end of the interval it starts
/// in (a window never spans a gap between intervals), and consecutive attempts start at least
/// `min_gap` apart. When `count` attempts cannot start `min_gap` apart, fewer are returned.
pub fn spread(intervals: &[Interval], count: u32, min_gap: Duration, slots: &mut Vec<Interval>) {
    let total: i64 = intervals.iter().map(|i| i.duration().num_seconds()).sum();
    if total <= 0 || count == 0 {
        return;
    }
    let gap = min_gap.num_seconds().max(0);
    let mut count = i64::from(count);
    while count > 1 && (count - 1) * gap >= total {
        count -= 1;
    }
    let step = (total / count).max(gap).max(1);
    for index in 0..count {
        let start_at = index * step;
        if start_at >= total {
            break;
        }
        let end_at = if index + 1 < count { (index + 1) * step } else { total };
        let mut offset = 0;
        for interval in intervals {
            let length = interval.duration().num_seconds();
            if start_at < offset + length {
                let start = interval.start + Duration::seconds(start_at - offset);
                let end = interval.start + Duration::seconds((end_at - offset).min(length));
                slots.push(Interval { start, end });
                break;
            }
            offset += length;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at(text: &str) -> DateTime<Utc> {
        format!("2026-11-22T{text}:00Z").parse().unwrap()
    }

    fn interval(start: &str, end: &str) -> Interval {
        Interval { start: at(start), end: at(end) }
    }

    fn spread(intervals: &[Interval], count: u32, min_gap: Duration) -> Vec<Interval> {
        let mut slots = Vec::new();
        super::spread(intervals, count, min_gap, &mut slots);
        slots
    }

    #[test]
    fn three_attempts_over_two_windows_never_span_the_gap() {
        let slots = spread(&[interval("01:00", "04:00"), interval("06:00", "12:00")], 3, Duration::hours(2));
        assert_eq!(slots, vec![interval("01:00", "04:00"), interval("06:00", "09:00"), interval("09:00", "12:00")]);
    }

    #[test]
    fn min_gap_wins_over_an_even_split_and_drops_what_does_not_fit() {
        let slots = spread(&[interval("01:00", "04:00")], 3, Duration::hours(2));
        assert_eq!(slots, vec![interval("01:00", "03:00"), interval("03:00", "04:00")]);
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= Duration::hours(2)));
    }

    #[test]
    fn one_attempt_takes_the_first_interval() {
        assert_eq!(
            spread(&[interval("01:00", "02:00"), interval("03:00", "04:00")], 1, Duration::zero()),
            vec![interval("01:00", "02:00")]
        );
        assert!(spread(&[], 3, Duration::zero()).is_empty());
    }
}
