//! When a failed delivery is tried again: the Standard Webhooks schedule (immediately, then
//! 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after each failure), with jitter, stretched by a
//! receiver's `Retry-After`. Pure: the jitter draw and `now` are parameters.

use chrono::{DateTime, Duration, Utc};

/// The wait after the n-th failed try (n = 1 .. 7); the 8th failure is final.
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::hours(10),
];

/// Tries in all, the first one included; after the last failure the delivery is a dead letter.
pub const MAX_TRIES: u32 = RETRY_DELAYS.len() as u32 + 1;

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::hours(24);

/// Jitter: each delay is moved by up to this fraction, either way.
pub const JITTER: f64 = 0.1;

/// The instant of the next try after `tries` failed tries (1-based), or `None` when that was
/// the last one. `jitter` is a draw in `[-1, 1]`; a `retry_after` longer than the scheduled
/// delay replaces it (up to [`MAX_RETRY_AFTER`]).
pub fn next_try(tries: u32, now: DateTime<Utc>, retry_after: Option<Duration>, jitter: f64) -> Option<DateTime<Utc>> {
    let index = usize::try_from(tries.checked_sub(1)?).ok()?;
    let delay = *RETRY_DELAYS.get(index)?;
    let millis = delay.num_milliseconds() as f64 * (1.0 + JITTER * jitter.clamp(-1.0, 1.0));
    let mut wait = Duration::milliseconds(millis.round() as i64);
    if let Some(asked) = retry_after {
        wait = wait.max(asked.min(MAX_RETRY_AFTER));
    }
    Some(now + wait)
}

/// Reads a `Retry-After` header: delay-seconds, or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::seconds(i64::try_from(seconds).ok()?));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).max(Duration::zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-22T06:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_schedule_without_jitter_then_a_dead_letter() {
        let waits: Vec<Option<Duration>> =
            (1..=9).map(|tries| next_try(tries, now(), None, 0.0).map(|at| at - now())).collect();
        assert_eq!(
            waits,
            [
                Some(Duration::seconds(5)),
                Some(Duration::minutes(5)),
                Some(Duration::minutes(30)),
                Some(Duration::hours(2)),
                Some(Duration::hours(5)),
                Some(Duration::hours(10)),
                Some(Duration::hours(10)),
                None,
                None,
            ]
        );
        assert_eq!(next_try(0, now(), None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(next_try(2, now(), None, 1.0).unwrap() - now(), Duration::seconds(330));
        assert_eq!(next_try(2, now(), None, -1.0).unwrap() - now(), Duration::seconds(270));
        assert_eq!(next_try(2, now(), None, 7.0).unwrap() - now(), Duration::seconds(330));
    }

    #[test]
    fn retry_after_stretches_but_never_shortens_the_wait() {
        assert_eq!(next_try(1, now(), Some(Duration::seconds(120)), 0.0).unwrap() - now(), Duration::seconds(120));
        assert_eq!(next_try(3, now(), Some(Duration::seconds(1)), 0.0).unwrap() - now(), Duration::minutes(30));
        assert_eq!(next_try(1, now(), Some(Duration::days(9)), 0.0).unwrap() - now(), MAX_RETRY_AFTER);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", now()), Some(Duration::seconds(120)));
        assert_eq!(parse_retry_after("Sun, 22 Nov 2026 06:01:00 GMT", now()), Some(Duration::seconds(60)));
        assert_eq!(parse_retry_after("soon", now()), None);
    }
}
