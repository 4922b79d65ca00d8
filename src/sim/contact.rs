//! What one contact produces in the simulated world: the outcome of a robot or human call or a
//! message, the promise's terms, the callback time and a human call's handling time, each drawn
//! from the event's own key so paired runs see the same draw. Records calls for fatigue and kept
//! promises for `World::day`. Pure: no clock, no I/O, no database.

use super::draw::{Key, Kind};
use super::world::{UnknownAccount, World, day_number};
use crate::domain::{Channel, Money, Outcome};
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use rand::Rng;
use rand_distr::{Distribution, LogNormal};

/// The terms of a promise to pay.
#[derive(Debug, Clone, PartialEq)]
pub struct PromiseTerms {
    /// How much.
    pub amount: Money,
    /// The borrower-local day it is due.
    pub due_on: NaiveDate,
}

/// What one contact produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// The attempt's outcome code.
    pub outcome: Outcome,
    /// For `promise`: its terms.
    pub promise: Option<PromiseTerms>,
    /// For `callback`: when the borrower asked to be called.
    pub callback_at: Option<DateTime<Utc>>,
    /// For a human call: the agent's handling time in minutes (talk and wrap-up).
    pub handling_minutes: Option<f64>,
}

const P_BUSY: f64 = 0.12;
const P_VOICEMAIL: f64 = 0.35;
const P_CALLBACK: f64 = 0.08;
const P_REFUSED: f64 = 0.15;

fn log_normal(rng: &mut rand::rngs::SmallRng, median_minutes: f64, sigma: f64) -> f64 {
    LogNormal::new(median_minutes.ln(), sigma).map(|d| d.sample(rng)).unwrap_or(median_minutes)
}

impl World {
    /// Contacts the account's borrower on `channel` at `at` and says what happened. Calls are
    /// recorded (they tire the borrower for 72 hours); a kept promise is remembered for
    /// [`World::day`]. The draw is keyed by (seed, account, decision, channel, local day and
    /// hour, the attempt's index in that hour on that channel).
    pub fn contact(
        &mut self,
        account_id: &str,
        channel: Channel,
        at: DateTime<Utc>,
    ) -> Result<Contact, UnknownAccount> {
        let index = self.index(account_id)?;
        let borrower = self.accounts[index].borrower;
        let local = at.with_timezone(&self.borrowers[borrower].traits.zone);
        let (date, hour) = (local.date_naive(), local.hour());
        let attempt = {
            let count = self.accounts[index].attempts.entry((channel, day_number(date), hour)).or_insert(0);
            let attempt = *count;
            *count += 1;
            attempt
        };
        let key = Key {
            seed: self.seed,
            id: account_id,
            kind: Kind::Answer,
            channel: channel as u8,
            day: day_number(date),
            hour,
            index: attempt,
        };
        let mut contact =
            Contact { outcome: Outcome::NoAnswer, promise: None, callback_at: None, handling_minutes: None };
        if !channel.is_call() {
            let delivered = if channel == Channel::Sms { 0.95 } else { 0.90 };
            contact.outcome =
                if key.with(Kind::Delivery).uniform() < delivered { Outcome::Delivered } else { Outcome::Undelivered };
            return Ok(contact);
        }
        let p_answer = self.p_answer(index, channel, at);
        self.borrowers[borrower].calls.push(at);
        self.borrowers[borrower].calls.sort();
        let borrower_traits = &self.borrowers[borrower].traits;
        let account = &self.accounts[index];
        contact.outcome = if key.uniform() >= p_answer {
            let u = key.with(Kind::Unanswered).uniform();
            if u < P_BUSY {
                Outcome::Busy
            } else if u < P_BUSY + P_VOICEMAIL {
                Outcome::Voicemail
            } else {
                Outcome::NoAnswer
            }
        } else if borrower_traits.wrong_number {
            Outcome::WrongNumber
        } else if key.with(Kind::RightParty).uniform() >= borrower_traits.right_party {
            Outcome::ThirdParty
        } else if account.owed <= Money::ZERO {
            Outcome::PaidClaimed
        } else {
            let u = key.with(Kind::Reaction).uniform();
            let thresholds = [
                (account.traits.dispute, Outcome::Dispute),
                (borrower_traits.opt_out, Outcome::DoNotCall),
                (account.traits.promise, Outcome::Promise),
                (P_CALLBACK, Outcome::Callback),
                (P_REFUSED, Outcome::Refused),
            ];
            let mut edge = 0.0;
            let mut outcome = Outcome::Rpc;
            for (p, candidate) in thresholds {
                edge += p;
                if u < edge {
                    outcome = candidate;
                    break;
                }
            }
            outcome
        };
        match contact.outcome {
            Outcome::Promise => {
                let mut rng = key.with(Kind::PromiseTerms).rng();
                let owed = account.owed;
                let amount = if rng.random_bool(0.6) {
                    owed
                } else {
                    (owed * Money::from(rng.random_range(30..=90_i64)) / Money::from(100)).round_dp(2)
                };
                let due_on = date + Duration::days(rng.random_range(1..=7));
                let kept = key.with(Kind::PromiseKept).uniform() < account.traits.keep;
                contact.promise = Some(PromiseTerms { amount, due_on });
                if kept {
                    self.accounts[index].kept_promises.push((due_on, amount));
                }
            }
            Outcome::Callback => {
                let minutes = key.with(Kind::Callback).rng().random_range(60..=360);
                contact.callback_at = Some(at + Duration::minutes(minutes));
            }
            _ => {}
        }
        if channel == Channel::Human {
            let mut rng = key.with(Kind::Handling).rng();
            let (median, sigma) = match contact.outcome {
                Outcome::NoAnswer | Outcome::Busy | Outcome::Voicemail | Outcome::Failed => (0.7, 0.3),
                Outcome::WrongNumber | Outcome::ThirdParty => (1.5, 0.4),
                Outcome::Promise | Outcome::Dispute => (7.0, 0.45),
                _ => (4.5, 0.5),
            };
            contact.handling_minutes = Some(log_normal(&mut rng, median, sigma));
        }
        Ok(contact)
    }
}
