//! Learning the probability of a right-party contact from the stored attempts: the pure fit
//! (`fit`) and the fitted model the planner reads (`model`). Nothing here reads the clock, the
//! store or a file: `store::models` reads the attempts and keeps the models, `ops::learn` runs
//! a training. The math is described in `docs/LEARNING.md` and atop `fit.rs`.

mod fit;
mod model;

pub use fit::{AttemptFact, Fitter, fit};
pub use model::{Beta, ContactModel, HourRate, ModelCurves, SegmentCurve, SegmentRef, SegmentSummary};

#[cfg(test)]
mod tests;
