//! The simulated call center's capacity: robot calls per hour and agents per queue, with a
//! ledger of what each hour has used (robot calls counted, agent minutes summed from handling
//! times). Pure bookkeeping: no clock, no I/O, no database.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the call center can do in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capacity {
    /// Robot calls the dialler places per hour.
    pub robot_calls_per_hour: u32,
    /// Agents working each queue, by queue name.
    pub agents: BTreeMap<String, u32>,
}

/// What each UTC hour has used so far.
#[derive(Debug, Clone, Default)]
pub struct Load {
    robot: BTreeMap<i64, u32>,
    agent_minutes: BTreeMap<(String, i64), f64>,
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

impl Load {
    /// An empty ledger.
    pub fn new() -> Load {
        Load::default()
    }

    /// Whether one more robot call fits in the hour of `at`.
    pub fn robot_fits(&self, capacity: &Capacity, at: DateTime<Utc>) -> bool {
        self.robot.get(&hour_of(at)).copied().unwrap_or(0) < capacity.robot_calls_per_hour
    }

    /// Takes one robot call in the hour of `at` if it fits; says whether it did.
    pub fn take_robot(&mut self, capacity: &Capacity, at: DateTime<Utc>) -> bool {
        let fits = self.robot_fits(capacity, at);
        if fits {
            *self.robot.entry(hour_of(at)).or_insert(0) += 1;
        }
        fits
    }

    /// Agent minutes the queue has left in the hour of `at` (60 per agent).
    pub fn agent_minutes_left(&self, capacity: &Capacity, queue: &str, at: DateTime<Utc>) -> f64 {
        let total = f64::from(capacity.agents.get(queue).copied().unwrap_or(0)) * 60.0;
        let used = self.agent_minutes.get(&(queue.to_string(), hour_of(at))).copied().unwrap_or(0.0);
        (total - used).max(0.0)
    }

    /// Books `minutes` of a queue's agents in the hour of `at` if any time is left there (a
    /// call that starts in the hour may run past it); says whether it did.
    pub fn take_agent(&mut self, capacity: &Capacity, queue: &str, at: DateTime<Utc>, minutes: f64) -> bool {
        let fits = self.agent_minutes_left(capacity, queue, at) > 0.0;
        if fits {
            *self.agent_minutes.entry((queue.to_string(), hour_of(at))).or_insert(0.0) += minutes.max(0.0);
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn robot_calls_fill_an_hour_and_the_next_hour_is_fresh() {
        let capacity = Capacity { robot_calls_per_hour: 3, agents: BTreeMap::new() };
        let mut load = Load::new();
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 14, 5, 0).unwrap();
        let taken: Vec<bool> = (0..4).map(|_| load.take_robot(&capacity, at)).collect();
        assert_eq!(taken, [true, true, true, false]);
        assert!(load.robot_fits(&capacity, at + chrono::Duration::hours(1)));
    }

    #[test]
    fn agent_minutes_are_sixty_per_agent_per_hour() {
        let capacity = Capacity { robot_calls_per_hour: 0, agents: BTreeMap::from([("early".to_string(), 2)]) };
        let mut load = Load::new();
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 14, 0, 0).unwrap();
        assert!(load.take_agent(&capacity, "early", at, 100.0));
        assert_eq!(load.agent_minutes_left(&capacity, "early", at), 20.0);
        assert!(load.take_agent(&capacity, "early", at, 30.0));
        assert!(!load.take_agent(&capacity, "early", at, 1.0));
        assert!(!load.take_agent(&capacity, "late", at, 1.0), "a queue without agents has no time");
    }
}
