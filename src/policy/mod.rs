//! Compliance: the built-in profiles, how a strategy tightens them, contact-hour windows across
//! time zones, and the counters the caps read from attempt history. Pure: no I/O, no clock.

mod counters;
mod profile;
mod window;

pub use counters::{CallCounters, CapReached, call_room, cooldown_from, count_calls, unanswered_today};
pub use profile::{Limits, PROFILES, Policy, PolicySettings, ProfileError};
pub use window::{Interval, TimeWindow, allowed_intervals, local_to_utc_end, local_to_utc_start};
