//! Every entity under its table's name.

pub use super::account_stages::Entity as AccountStages;
pub use super::accounts::Entity as Accounts;
pub use super::api_tokens::Entity as ApiTokens;
pub use super::attempts::Entity as Attempts;
pub use super::audit_log::Entity as AuditLog;
pub use super::borrowers::Entity as Borrowers;
pub use super::contact_models::Entity as ContactModels;
pub use super::contact_points::Entity as ContactPoints;
pub use super::deliveries::Entity as Deliveries;
pub use super::inbound_calls::Entity as InboundCalls;
pub use super::payments::Entity as Payments;
pub use super::plan_runs::Entity as PlanRuns;
pub use super::promises::Entity as Promises;
pub use super::reaction_cases::Entity as ReactionCases;
pub use super::risk_events::Entity as RiskEvents;
pub use super::scheduler_locks::Entity as SchedulerLocks;
pub use super::stage_history::Entity as StageHistory;
pub use super::strategy_versions::Entity as StrategyVersions;
pub use super::tasks::Entity as Tasks;
