//! The oracle scheduler's contact model: what a plan would know if it could read the world —
//! each borrower's true P(right-party contact) by call channel and local hour of the day being
//! planned, without fatigue (`World::truth_rested`), as a `ContactModel` the planner loads like
//! any learned one (`ContactModel::exact`: Thompson draws equal the means). Pure: the world,
//! the borrowers and the instant come in. Only `arrears simulate --oracle` builds it.

use super::world::World;
use crate::domain::Channel;
use crate::learn::ContactModel;
use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A borrower as the oracle needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleBorrower {
    /// The borrower (the model's key).
    pub borrower_id: String,
    /// One of their accounts (the world's truth is asked per account; it is the borrower's).
    pub account_id: String,
    /// Their primary zone: the planner reads the model's hours local there.
    pub zone: Tz,
}

/// The model of the world's truth for the plan run at `plan_at`: per borrower, robot and human
/// calls, and local hour (in their primary zone) of their local date at `plan_at` — the day that
/// run plans for them — the true rate at the hour's start, rested. A local hour a DST change
/// skips gets 0. Borrowers the world does not know are left out.
pub fn oracle_model(world: &World, borrowers: &[OracleBorrower], plan_at: DateTime<Utc>) -> ContactModel {
    let mut rates = Vec::with_capacity(borrowers.len() * 2);
    for borrower in borrowers {
        let date = plan_at.with_timezone(&borrower.zone).date_naive();
        for channel in [Channel::Robot, Channel::Human] {
            let mut by_hour = [0.0; 24];
            let mut known = true;
            for (hour, rate) in (0u32..).zip(by_hour.iter_mut()) {
                let Some(at) =
                    date.and_hms_opt(hour, 0, 0).and_then(|local| borrower.zone.from_local_datetime(&local).earliest())
                else {
                    continue;
                };
                match world.truth_rested(&borrower.account_id, channel, at.with_timezone(&Utc)) {
                    Ok(truth) => *rate = truth,
                    Err(_) => known = false,
                }
            }
            if known {
                rates.push((borrower.borrower_id.clone(), channel, by_hour));
            }
        }
    }
    ContactModel::exact(plan_at, plan_at, rates)
}
