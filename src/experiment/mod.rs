//! Champion/challenger experiments: assignment per borrower ([`assign`]), the readings of an
//! experiment at a look — per-arm estimates at a fixed horizon after entry, the always-valid
//! comparison with the champion, the sample-ratio check and a verdict in plain words
//! ([`reading`]) — and the statistics they rest on ([`stats`]).
//!
//! Pure: entries and outcomes come from `store::experiments`; `ops::experiments` ties the two
//! together. No I/O, no clock.

pub mod assign;
pub mod reading;
pub mod stats;
pub mod validate;

pub use assign::assign;
pub use reading::{Design, ExperimentReading};
