//! arrears: a post-loan collections orchestration engine. Strategies as code, compliance first.
//!
//! The pure core (`domain`, `strategy`, `policy`, `plan`) never reads the clock or does I/O; the
//! shell (`store`, `import`, `ops`, `http`, `scheduler`, `serve`, `cli`, `demo`) does, and calls
//! the core. `serve` wires `http` and `scheduler` together; `ops` never uses `http`, and only
//! `ops::simulate` drives the `scheduler` (as the demo does).

pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod experiment;
pub mod http;
pub mod import;
pub mod learn;
pub mod metrics;
pub mod ops;
pub mod plan;
pub mod policy;
pub mod report;
pub mod scheduler;
pub mod serve;
pub mod sim;
pub mod store;
pub mod strategy;
