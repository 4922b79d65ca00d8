//! Schema migrations of the arrears store, run by `arrears migrate` and at `serve` start.
//!
//! Every migration is written with the sea-query schema builder so that it runs unchanged on
//! SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_init;
mod m20261122_000002_serve;
mod m20261122_000003_leases;
mod m20261122_000004_endpoints;
mod m20261122_000005_release;
mod m20261126_000006_gate;
mod m20261201_000007_models;
mod m20261202_000008_experiments;
mod m20261203_000009_funders;
mod m20261204_000011_reactions;
mod m20261204_000012_inbound;
mod m20261205_000013_page_history;
mod m20261206_000014_queue_day;
mod m20261207_000015_in_flight_borrower;
mod m20261207_000016_plan_shards;
mod m20261207_000017_book_states;
mod m20261207_000018_expiry_index;
mod m20261207_000019_released_expiry_index;
mod m20261208_000020_account_stages;

/// The ordered list of migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261122_000002_serve::Migration),
            Box::new(m20261122_000003_leases::Migration),
            Box::new(m20261122_000004_endpoints::Migration),
            Box::new(m20261122_000005_release::Migration),
            Box::new(m20261126_000006_gate::Migration),
            Box::new(m20261201_000007_models::Migration),
            Box::new(m20261202_000008_experiments::Migration),
            Box::new(m20261203_000009_funders::Migration),
            Box::new(m20261204_000011_reactions::Migration),
            Box::new(m20261204_000012_inbound::Migration),
            Box::new(m20261205_000013_page_history::Migration),
            Box::new(m20261206_000014_queue_day::Migration),
            Box::new(m20261207_000015_in_flight_borrower::Migration),
            Box::new(m20261207_000016_plan_shards::Migration),
            Box::new(m20261207_000017_book_states::Migration),
            Box::new(m20261207_000018_expiry_index::Migration),
            Box::new(m20261207_000019_released_expiry_index::Migration),
            Box::new(m20261208_000020_account_stages::Migration),
        ]
    }
}
