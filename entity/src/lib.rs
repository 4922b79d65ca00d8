//! sea-orm entities of the arrears store, one module per table (generated style, no logic).
//!
//! The schema itself is defined by the `migration` crate; these mirror it column for column.

pub mod prelude;

pub mod account_stages;
pub mod accounts;
pub mod api_tokens;
pub mod attempts;
pub mod audit_log;
pub mod borrowers;
pub mod contact_models;
pub mod contact_points;
pub mod deliveries;
pub mod experiment_entries;
pub mod inbound_calls;
pub mod payments;
pub mod plan_runs;
pub mod promises;
pub mod reaction_cases;
pub mod risk_events;
pub mod scheduler_locks;
pub mod stage_history;
pub mod strategy_versions;
pub mod tasks;
