//! Compliance: the built-in profiles, how a strategy tightens them, contact-hour windows across
//! time zones, the counters the caps read from attempt history, and the one contact gate
//! (`gate`) that the planner and every hand-off ask. Pure: no I/O, no clock.

mod counters;
pub mod gate;
mod profile;
mod window;

pub use counters::{CallCounters, cooldown_from, count_calls, unanswered_on};
pub use gate::{Ask, HandOff, PROMISE_GRACE_DAYS, Refusal, Room};
pub use profile::{Limits, PROFILES, Policy, PolicySettings, ProfileError};
pub use window::{Interval, TimeWindow, allowed_intervals, local_to_utc_end, local_to_utc_start};
