//! The lender's monitoring in the simulated world: which risk events it raises on an account on
//! a day (a bureau score change, a missed payment elsewhere, a new phone, a fraud alert, a legal
//! notice), and what the team finds when it works a reaction's case. Tied to the hidden truth:
//! a borrower who rarely keeps promises draws deeper score drops, and a warning about them is
//! more often confirmed. Pure draws keyed by account, day and event (see `draw`); no I/O.

use super::draw::{Key, Kind};
use super::world::World;
use crate::domain::{Disposition, EventType};
use chrono::{Datelike, NaiveDate};
use rand::Rng;

/// The chance an account draws each event type on a day.
pub const RISK_EVENT_RATES: [(EventType, f64); 5] = [
    (EventType::ScoreChange, 0.004),
    (EventType::MissedPaymentElsewhere, 0.002),
    (EventType::ContactChanged, 0.001),
    (EventType::FraudAlert, 0.0005),
    (EventType::LegalNotice, 0.0003),
];

/// One event the monitoring raises.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// A stable id: `sim-<type>-<account>-<day>`.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// Its type.
    pub kind: EventType,
    /// Its fields (`delta` for a score change, `source` for the others).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What the team finds on a case, and the minutes it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseWork {
    /// The disposition.
    pub disposition: Disposition,
    /// Handling time in minutes.
    pub minutes: i64,
}

impl World {
    /// The risk events the monitoring raises on `date`, in account order.
    pub fn risk_events(&self, date: NaiveDate) -> Vec<SimEvent> {
        let day = i64::from(date.num_days_from_ce());
        let mut events = Vec::new();
        for account in &self.accounts {
            for (index, (kind, rate)) in RISK_EVENT_RATES.iter().enumerate() {
                let key = Key {
                    seed: self.seed,
                    id: &account.id,
                    kind: Kind::RiskEvent,
                    channel: index as u8,
                    day,
                    hour: 0,
                    index: 0,
                };
                let mut rng = key.rng();
                if !rng.random_bool(*rate) {
                    continue;
                }
                let mut fields = serde_json::Map::new();
                if *kind == EventType::ScoreChange {
                    let risk = 1.0 - account.traits.keep;
                    let delta = -140.0 * risk * rng.random::<f64>() + 30.0 * (rng.random::<f64>() - 0.5);
                    fields.insert("delta".into(), (delta.round() as i64).into());
                } else {
                    fields.insert("source".into(), "monitoring".into());
                }
                events.push(SimEvent {
                    id: format!("sim-{}-{}-{date}", kind.code(), account.id),
                    account_id: account.id.clone(),
                    kind: *kind,
                    fields,
                });
            }
        }
        events
    }

    /// What the team finds on the case `case_id` about an event of `kind` on the account (an
    /// unknown account: a false alarm).
    pub fn work_case(&self, account_id: &str, kind: &str, case_id: i64) -> CaseWork {
        let risk = self.index(account_id).map_or(0.0, |index| 1.0 - self.accounts[index].traits.keep);
        let key = Key {
            seed: self.seed,
            id: account_id,
            kind: Kind::Disposition,
            channel: 0,
            day: case_id,
            hour: 0,
            index: 0,
        };
        let mut rng = key.rng();
        let confirmed = match kind {
            "fraud_alert" => 0.25,
            "legal_notice" => 0.8,
            _ => risk,
        };
        let draw: f64 = rng.random();
        let disposition = if draw < confirmed {
            Disposition::Confirmed
        } else if draw < confirmed + (1.0 - confirmed) * 0.15 {
            Disposition::Escalated
        } else if draw < confirmed + (1.0 - confirmed) * 0.45 {
            Disposition::Resolved
        } else {
            Disposition::FalseAlarm
        };
        CaseWork { disposition, minutes: rng.random_range(10..=90) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Account, Flags, Portfolio};

    fn world(accounts: usize) -> World {
        let mut portfolio = Portfolio::default();
        for i in 0..accounts {
            portfolio.accounts.push(Account {
                id: format!("A{i}"),
                borrower_id: format!("B{i}"),
                product: "cash".into(),
                currency: "CNY".into(),
                amount_due: 100.into(),
                balance: 1000.into(),
                due_date: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                tags: Vec::new(),
                flags: Flags::NONE,
                scores: Vec::new(),
                attrs: Vec::new(),
                broken_promises: 0,
                funders: None,
                hold_until: None,
            });
        }
        World::new(3, &portfolio, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
    }

    #[test]
    fn events_come_at_their_rates_the_same_every_time() {
        let world = world(20_000);
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let events = world.risk_events(day);
        assert_eq!(events, world.risk_events(day));
        let scores = events.iter().filter(|event| event.kind == EventType::ScoreChange).count();
        assert!((50..=110).contains(&scores), "{scores} score changes at 0.4 % of 20,000");
        assert!(
            events.iter().any(|event| event
                .fields
                .get("delta")
                .and_then(|d| d.as_i64())
                .is_some_and(|delta| delta <= -50))
        );
        let work = world.work_case("A1", "legal_notice", 7);
        assert_eq!(work, world.work_case("A1", "legal_notice", 7));
        assert!((10..=90).contains(&work.minutes));
    }
}
