//! A human queue's working capacity: agents at work by local hour (from shifts) and the calls one
//! agent completes in an hour. Read by the planner (the day's capacity) and by the simulator's
//! agents (the hour's). No I/O and no clock here.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

/// A human queue's name, interned so that a reason code can carry it and stay `Copy`. Each
/// distinct name is stored once for the life of the process (queue names come from strategy
/// files and configuration: a handful).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(&'static str);

impl QueueName {
    /// The interned name.
    pub fn intern(name: &str) -> QueueName {
        static NAMES: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
        let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = names.get(name) {
            return QueueName(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        QueueName(leaked)
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// How much work a human queue can take.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueCapacity {
    /// The zone the shifts are written in.
    pub zone: Tz,
    /// Calls (talk and wrap-up) one agent completes in an hour.
    pub calls_per_agent_hour: f64,
    /// Agents at work in each local hour of the day (0–23).
    pub agents_by_hour: [u32; 24],
}

impl QueueCapacity {
    /// Agents at work at `at` (in the queue's zone).
    pub fn agents_at(&self, at: DateTime<Utc>) -> u32 {
        self.agents_by_hour[at.with_timezone(&self.zone).hour() as usize]
    }

    /// Calls the queue completes in the local hour `hour`.
    pub fn calls_in_hour(&self, hour: u32) -> f64 {
        f64::from(self.agents_by_hour.get(hour as usize).copied().unwrap_or(0)) * self.calls_per_agent_hour
    }

    /// Calls the queue completes in a whole day: what the planner may give it at most.
    pub fn calls_per_day(&self) -> u64 {
        self.calls_from_hour(0)
    }

    /// Calls the queue completes from `now` to the end of its local day (the current hour
    /// counts in full when it has not begun its last minute): what a plan run at `now` may give
    /// it.
    pub fn calls_left_today(&self, now: DateTime<Utc>) -> u64 {
        self.calls_from_hour(now.with_timezone(&self.zone).hour())
    }

    /// Calls completed from the local hour `first` to the end of the day, rounded down.
    fn calls_from_hour(&self, first: u32) -> u64 {
        let total: f64 = (first..24).map(|hour| self.calls_in_hour(hour)).sum();
        total.floor() as u64
    }

    /// Agent hours in a day.
    pub fn agent_hours_per_day(&self) -> u32 {
        self.agents_by_hour.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_day_is_the_sum_of_its_hours() {
        let mut agents_by_hour = [0; 24];
        agents_by_hour[9..18].fill(8);
        agents_by_hour[18..21].fill(3);
        let capacity = QueueCapacity { zone: chrono_tz::Asia::Shanghai, calls_per_agent_hour: 7.5, agents_by_hour };
        assert_eq!(capacity.agent_hours_per_day(), 8 * 9 + 3 * 3);
        assert_eq!(capacity.calls_per_day(), ((8 * 9 + 3 * 3) as f64 * 7.5).floor() as u64);
        // 02:30 UTC is 10:30 in Shanghai; 12:30 UTC is 20:30; 14:00 UTC is 22:00.
        assert_eq!(capacity.agents_at(Utc.with_ymd_and_hms(2026, 12, 1, 2, 30, 0).unwrap()), 8);
        assert_eq!(capacity.agents_at(Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 0).unwrap()), 3);
        assert_eq!(capacity.agents_at(Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap()), 0);
        // At 19:10 local only the hours 19 and 20 are left: 2 × 3 agents × 7.5 calls.
        assert_eq!(capacity.calls_left_today(Utc.with_ymd_and_hms(2026, 12, 1, 11, 10, 0).unwrap()), 45);
        assert_eq!(capacity.calls_left_today(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()), 607);
    }

    #[test]
    fn a_queue_name_is_stored_once() {
        let first = QueueName::intern("early");
        let second = QueueName::intern(&String::from("early"));
        assert_eq!(first, second);
        assert!(std::ptr::eq(first.as_str(), second.as_str()));
        assert_ne!(first, QueueName::intern("late"));
    }
}
