//! Placeholder model.

use crate::domain::Channel;
use chrono::{DateTime, Datelike, Utc, Weekday};
use rustc_hash::FxHashMap;

/// A Beta posterior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beta {
    /// Successes plus prior.
    pub alpha: f64,
    /// Failures plus prior.
    pub beta: f64,
}

impl Beta {
    /// The mean.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// One draw.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        use rand_distr::Distribution;
        rand_distr::Beta::new(self.alpha, self.beta).map_or(self.mean(), |beta| beta.sample(rng))
    }
}

/// A resolved segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentRef(Option<u32>);

/// The model.
#[derive(Debug, Clone, Default)]
pub struct ContactModel {
    /// Version.
    pub version: i64,
    /// From.
    pub trained_from: DateTime<Utc>,
    /// To.
    pub trained_to: DateTime<Utc>,
    pub(crate) segments: FxHashMap<(String, Channel, String), u32>,
    pub(crate) cells: Vec<[(u32, u32); 168]>,
}

impl ContactModel {
    /// Resolves a segment.
    pub fn segment(&self, stage: &str, channel: Channel, product: &str) -> SegmentRef {
        SegmentRef(self.segments.get(&(stage.to_string(), channel, product.to_string())).copied())
    }

    /// The posterior.
    pub fn posterior(&self, segment: SegmentRef, _borrower_id: &str, weekday: Weekday, hour: u32) -> Beta {
        let Some(index) = segment.0 else { return Beta { alpha: 1.0, beta: 1.0 } };
        let (n, c) = self.cells[index as usize][weekday.num_days_from_monday() as usize * 24 + hour as usize];
        Beta { alpha: f64::from(c) + 1.0, beta: f64::from(n - c) + 1.0 }
    }
}

#[allow(dead_code)]
fn _unused(at: DateTime<Utc>) -> Weekday {
    at.weekday()
}
