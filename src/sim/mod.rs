//! A simulated call center's borrowers: a seeded ground truth of hidden traits the engine never
//! reads, what each contact produces, the day's payments, the center's capacity and an
//! independent violation check, and the oracle contact model built from the truth. A pure library: no clock, no I/O, no database — the simulator
//! that drives the real engine over simulated days lives elsewhere and calls this.

mod capacity;
mod check;
mod contact;
mod draw;
mod inbound;
mod oracle;
mod risk;
mod world;

#[cfg(test)]
mod tests;

pub use capacity::{Capacity, Load};
pub use check::{ContactMade, Limits, Violations, violations};
pub use contact::{Contact, PromiseTerms};
pub use inbound::{INBOUND_HOURS, InboundContact};
pub use oracle::{OracleBorrower, oracle_model};
pub use risk::{CaseWork, RISK_EVENT_RATES, SimEvent};
pub use world::{
    AccountTraits, Archetype, BorrowerTraits, DpdBucket, FATIGUE_WINDOW_HOURS, Payment, PaymentCause, UnknownAccount,
    World,
};
