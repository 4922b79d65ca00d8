//! Placeholder of the contact-probability model's API while the learner is written on its own
//! branch; replaced by it at merge.

mod fit;
mod model;

pub use fit::{AttemptFact, fit};
pub use model::{Beta, ContactModel, SegmentRef};
