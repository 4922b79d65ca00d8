//! Borrowers who call the lender in the simulated world: who calls in a local hour (more often
//! after a call they missed), whether they ask for a person, and what they tell the robot
//! otherwise (a promise drawn like an outbound one, kept as the account's truth says). Pure
//! draws keyed by account, local day and hour; no clock, no I/O.

use super::contact::PromiseTerms;
use super::draw::{Key, Kind};
use super::world::{World, day_number};
use crate::domain::{Money, Outcome};
use chrono::{DateTime, Duration, Timelike, Utc};
use rand::Rng;

/// The borrower-local hours in which borrowers call: `[start, end)`.
pub const INBOUND_HOURS: (u32, u32) = (9, 20);

/// The chance an account's borrower calls in a local hour, and the extra chance within a day of
/// a call they did not answer.
const P_CALL: f64 = 0.000_15;
const P_CALL_AFTER_MISSED: f64 = 0.004;

/// What a borrower who calls wants.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundContact {
    /// The account they call about.
    pub account_id: String,
    /// When they call.
    pub at: DateTime<Utc>,
    /// They ask for a person (the robot transfers them).
    pub wants_person: bool,
    /// Otherwise what they tell the robot: `promise`, `rpc` or `dispute`.
    pub outcome: Outcome,
    /// A promise's terms.
    pub promise: Option<PromiseTerms>,
}

impl World {
    /// The borrowers who call in the hour starting at `hour` (UTC), one contact per calling
    /// account, in account order. A promise they make is remembered for `World::day` when the
    /// truth says it will be kept.
    pub fn inbound_calls(&mut self, hour: DateTime<Utc>) -> Vec<InboundContact> {
        let mut calls = Vec::new();
        for index in 0..self.accounts.len() {
            let borrower = self.accounts[index].borrower;
            let local = hour.with_timezone(&self.borrowers[borrower].traits.zone);
            if local.hour() < INBOUND_HOURS.0 || local.hour() >= INBOUND_HOURS.1 {
                continue;
            }
            let owed = self.accounts[index].owed;
            if owed <= Money::ZERO {
                continue;
            }
            let missed =
                self.borrowers[borrower].calls.iter().any(|at| *at <= hour && hour - *at < Duration::hours(24));
            let key = Key {
                seed: self.seed,
                id: &self.accounts[index].id,
                kind: Kind::Inbound,
                channel: 0,
                day: day_number(local.date_naive()),
                hour: local.hour(),
                index: 0,
            };
            let mut rng = key.rng();
            let p = P_CALL + if missed { P_CALL_AFTER_MISSED } else { 0.0 };
            if !rng.random_bool(p) {
                continue;
            }
            let at = hour + Duration::minutes(rng.random_range(0..60));
            let traits = &self.accounts[index].traits;
            let wants_person = rng.random_bool(0.3);
            let u: f64 = rng.random();
            let (outcome, promise) = if wants_person {
                // The person they are transferred to draws the call's outcome.
                (Outcome::Rpc, None)
            } else if u < (traits.promise * 1.5).min(0.7) {
                let amount = if rng.random_bool(0.6) {
                    owed
                } else {
                    (owed * Money::from(rng.random_range(30..=90_i64)) / Money::from(100)).round_dp(2)
                };
                let due_on = local.date_naive() + Duration::days(rng.random_range(1..=7));
                if rng.random::<f64>() < traits.keep {
                    self.accounts[index].kept_promises.push((due_on, amount));
                }
                (Outcome::Promise, Some(PromiseTerms { amount, due_on }))
            } else if u < 0.75 + traits.dispute {
                (Outcome::Rpc, None)
            } else if u < 0.8 {
                (Outcome::Dispute, None)
            } else {
                (Outcome::Rpc, None)
            };
            calls.push(InboundContact {
                account_id: self.accounts[index].id.clone(),
                at,
                wants_person,
                outcome,
                promise,
            });
        }
        calls
    }
}
