//! The fitted contact model: Beta posteriors of a right-party contact per channel, segment
//! (stage, channel, product), local weekday and hour, a rate factor per borrower, and per
//! borrower and call channel a factor for each local hour they were called in. Pure
//! lookups for the planner's hot path (no allocation in [`ContactModel::posterior`]); it never
//! fits (see `fit.rs`) and never reads the store.

use crate::domain::Channel;
use chrono::{DateTime, Utc, Weekday};
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// Weekday × hour slots of a week.
pub(crate) const SLOTS: usize = 7 * 24;

/// The smallest and largest mean a posterior is given (keeps both parameters positive).
pub(crate) const MEAN_FLOOR: f64 = 1e-4;

/// The slot of a local weekday and hour (hours above 23 read as 23).
pub(crate) fn slot(weekday: Weekday, hour: u32) -> usize {
    weekday.num_days_from_monday() as usize * 24 + hour.min(23) as usize
}

/// Keeps a probability inside `[MEAN_FLOOR, 1 - MEAN_FLOOR]`.
pub(crate) fn clamp_mean(mean: f64) -> f64 {
    if mean.is_finite() { mean.clamp(MEAN_FLOOR, 1.0 - MEAN_FLOOR) } else { 0.5 }
}

/// A Beta distribution over a probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Beta {
    /// Pseudo-count of successes (right-party contacts).
    pub alpha: f64,
    /// Pseudo-count of failures.
    pub beta: f64,
}

impl Beta {
    /// The uniform distribution: nothing known.
    pub const UNIFORM: Beta = Beta { alpha: 1.0, beta: 1.0 };

    /// The Beta with this mean (clamped inside (0, 1)) and concentration `alpha + beta`.
    pub fn with_mean(mean: f64, concentration: f64) -> Beta {
        let mean = clamp_mean(mean);
        let concentration = if concentration.is_finite() && concentration > 0.0 { concentration } else { 2.0 };
        Beta { alpha: mean * concentration, beta: (1.0 - mean) * concentration }
    }

    /// The mean, `alpha / (alpha + beta)`.
    pub fn mean(&self) -> f64 {
        let total = self.alpha + self.beta;
        if total > 0.0 { self.alpha / total } else { 0.5 }
    }

    /// `alpha + beta`: how many observations the distribution is worth.
    pub fn concentration(&self) -> f64 {
        self.alpha + self.beta
    }

    /// One Thompson draw (the mean when the parameters are not a valid Beta).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        use rand_distr::Distribution as _;
        match rand_distr::Beta::new(self.alpha, self.beta) {
            Ok(distribution) => distribution.sample(rng),
            Err(_) => self.mean(),
        }
    }

    /// The same concentration with the mean multiplied by `factor`.
    pub(crate) fn scaled(self, factor: f64) -> Beta {
        Beta::with_mean(self.mean() * factor, self.concentration())
    }
}

/// A resolved segment: cheap to copy; the planner resolves it once per (stage, channel,
/// product) and caches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentRef {
    channel: Channel,
    /// Index into the model's segments; `None`: not seen, the channel's global curve only.
    index: Option<u32>,
}

impl SegmentRef {
    /// Whether the model saw attempts in this segment.
    pub fn is_known(&self) -> bool {
        self.index.is_some()
    }
}

/// The global curve of one channel, pooled over every segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChannelCurve {
    /// Attempts behind it.
    pub(crate) attempts: u64,
    /// The channel's overall rate.
    pub(crate) overall: Beta,
    /// By local hour (24).
    pub(crate) hours: Vec<Beta>,
    /// By local weekday × hour ([`SLOTS`], Monday 00:00 first).
    pub(crate) cells: Vec<Beta>,
    /// The prior strength a segment's level gets around this curve (empirical Bayes): the
    /// concentration an unseen segment's posterior is given.
    pub(crate) segment_strength: f64,
}

/// One segment's fitted curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Segment {
    pub(crate) stage: String,
    pub(crate) channel: Channel,
    pub(crate) product: String,
    pub(crate) attempts: u64,
    pub(crate) contacts: u64,
    pub(crate) overall: Beta,
    /// Attempts by local hour (24).
    pub(crate) hour_attempts: Vec<u64>,
    /// By local hour (24).
    pub(crate) hours: Vec<Beta>,
    /// By local weekday × hour ([`SLOTS`]).
    pub(crate) cells: Vec<Beta>,
}

/// One borrower's own hour shape: per call channel, the multiplicative factor of each local hour
/// the borrower was called in (pooled with the neighbouring hours and shrunk toward the
/// borrower's rate factor, see `fit.rs`), sorted by hour. An hour not listed takes the rate
/// factor. Stored compactly: `(hour, factor)` pairs, f32.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct BorrowerHours {
    /// Robot calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) robot: Vec<(u8, f32)>,
    /// Agents' calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) human: Vec<(u8, f32)>,
}

impl BorrowerHours {
    /// The hours of a call channel (`None` for messages).
    pub(crate) fn of_mut(&mut self, channel: Channel) -> Option<&mut Vec<(u8, f32)>> {
        match channel {
            Channel::Robot => Some(&mut self.robot),
            Channel::Human => Some(&mut self.human),
            Channel::Sms | Channel::Email => None,
        }
    }

    /// The factor of `hour` on `channel`, when the borrower has one there.
    fn factor(&self, channel: Channel, hour: u32) -> Option<f64> {
        let hours = match channel {
            Channel::Robot => &self.robot,
            Channel::Human => &self.human,
            Channel::Sms | Channel::Email => return None,
        };
        hours.iter().find(|(h, _)| u32::from(*h) == hour).map(|(_, factor)| f64::from(*factor))
    }
}

/// The concentration of [`ContactModel::exact`]'s posteriors: so large that a Thompson draw is
/// the mean.
pub const EXACT_CONCENTRATION: f64 = 1e9;

/// The fitted model of P(right-party contact | attempt). Stored as JSON by `store::models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactModel {
    /// The stored version (the row id of `contact_models`); 0 until stored.
    pub version: i64,
    /// Attempts at or after this instant were learned from.
    pub trained_from: DateTime<Utc>,
    /// Attempts before this instant were learned from.
    pub trained_to: DateTime<Utc>,
    pub(crate) attempts: u64,
    /// One per channel, in [`Channel::ALL`] order.
    pub(crate) channels: Vec<ChannelCurve>,
    pub(crate) segments: Vec<Segment>,
    /// stage → product → segment index per channel ([`Channel::ALL`] order).
    pub(crate) index: HashMap<String, HashMap<String, [Option<u32>; 4]>>,
    /// The multiplicative rate factor of each borrower seen.
    pub(crate) borrowers: HashMap<String, f64>,
    /// The hour factors of each borrower called by robot or agent (absent from models stored
    /// before they existed: those have the rate factor only).
    #[serde(default)]
    pub(crate) borrower_hours: HashMap<String, BorrowerHours>,
}

/// A channel's position in [`Channel::ALL`].
pub(crate) fn channel_index(channel: Channel) -> usize {
    Channel::ALL.iter().position(|each| *each == channel).unwrap_or(0)
}

/// One local hour of a segment, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourRate {
    /// Local hour, 0..24.
    pub hour: u32,
    /// Posterior mean rate of the hour (all weekdays).
    pub rate: f64,
    /// Attempts behind it.
    pub attempts: u64,
}

/// What was learned about one segment, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentSummary {
    /// Stage.
    pub stage: String,
    /// Channel.
    pub channel: Channel,
    /// Product.
    pub product: String,
    /// Attempts learned from.
    pub attempts: u64,
    /// Right-party contacts among them.
    pub contacts: u64,
    /// Posterior mean of the segment's overall rate.
    pub rate: f64,
    /// The hours with attempts, best rate first.
    pub hours: Vec<HourRate>,
}

impl ContactModel {
    /// Resolves a segment (allocation-free; cache the result).
    pub fn segment(&self, stage: &str, channel: Channel, product: &str) -> SegmentRef {
        let index = self
            .index
            .get(stage)
            .and_then(|products| products.get(product))
            .and_then(|channels| channels[channel_index(channel)]);
        SegmentRef { channel, index }
    }

    /// Posterior of a right-party contact for an attempt to `borrower_id` in `segment` at local
    /// `weekday`/`hour` (0..24; above 23 reads as 23): the segment's cell (an unseen segment:
    /// the channel's global cell, as concentrated as the spread between segments allows), its
    /// mean multiplied by the borrower's factor of that hour on the segment's channel when the
    /// borrower was called then, else by the borrower's rate factor when the borrower was seen.
    /// Allocation-free.
    pub fn posterior(&self, segment: SegmentRef, borrower_id: &str, weekday: Weekday, hour: u32) -> Beta {
        let slot = slot(weekday, hour);
        let known = segment
            .index
            .and_then(|index| self.segments.get(index as usize))
            .and_then(|segment| segment.cells.get(slot))
            .copied();
        let base = known.unwrap_or_else(|| match self.channels.get(channel_index(segment.channel)) {
            Some(curve) => match curve.cells.get(slot) {
                Some(cell) => Beta::with_mean(cell.mean(), cell.concentration().min(curve.segment_strength)),
                None => Beta::UNIFORM,
            },
            None => Beta::UNIFORM,
        });
        let hour_factor =
            self.borrower_hours.get(borrower_id).and_then(|hours| hours.factor(segment.channel, hour.min(23)));
        match hour_factor.or_else(|| self.borrowers.get(borrower_id).copied()) {
            Some(factor) => base.scaled(factor),
            None => base,
        }
    }

    /// A model that knows the answer: for each borrower, call channel and local hour given, the
    /// posterior has exactly that mean (clamped into (0, 1)) and [`EXACT_CONCENTRATION`], so a
    /// Thompson draw is the mean, whatever the segment and weekday. Other channels, hours and
    /// borrowers get 0.5. Built by the simulator's oracle (`sim::oracle`) from the world's
    /// truth; never by the fit.
    pub fn exact(
        trained_from: DateTime<Utc>,
        trained_to: DateTime<Utc>,
        rates: impl IntoIterator<Item = (String, Channel, [f64; 24])>,
    ) -> ContactModel {
        const FLAT: f64 = 0.5;
        let cell = Beta::with_mean(FLAT, EXACT_CONCENTRATION);
        let channels = Channel::ALL
            .iter()
            .map(|_| ChannelCurve {
                attempts: 0,
                overall: cell,
                hours: vec![cell; 24],
                cells: vec![cell; SLOTS],
                segment_strength: EXACT_CONCENTRATION,
            })
            .collect();
        let mut borrower_hours: HashMap<String, BorrowerHours> = HashMap::default();
        for (borrower_id, channel, by_hour) in rates {
            let entry = borrower_hours.entry(borrower_id).or_default();
            if let Some(hours) = entry.of_mut(channel) {
                *hours = (0..24u8).map(|hour| (hour, (by_hour[usize::from(hour)] / FLAT) as f32)).collect();
            }
        }
        ContactModel {
            version: 0,
            trained_from,
            trained_to,
            attempts: 0,
            channels,
            segments: Vec::new(),
            index: HashMap::default(),
            borrowers: HashMap::default(),
            borrower_hours,
        }
    }

    /// The borrower's multiplicative rate factor (1 when not seen).
    pub fn borrower_factor(&self, borrower_id: &str) -> f64 {
        self.borrowers.get(borrower_id).copied().unwrap_or(1.0)
    }

    /// Attempts the model was learned from.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// What was learned per segment, in stage, channel, product order.
    pub fn summaries(&self) -> Vec<SegmentSummary> {
        let mut summaries: Vec<SegmentSummary> = self
            .segments
            .iter()
            .map(|segment| {
                let mut hours: Vec<HourRate> = (0..24u32)
                    .filter_map(|hour| {
                        let attempts = segment.hour_attempts.get(hour as usize).copied().unwrap_or(0);
                        let rate = segment.hours.get(hour as usize)?.mean();
                        (attempts > 0).then_some(HourRate { hour, rate, attempts })
                    })
                    .collect();
                hours.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.hour.cmp(&b.hour)));
                SegmentSummary {
                    stage: segment.stage.clone(),
                    channel: segment.channel,
                    product: segment.product.clone(),
                    attempts: segment.attempts,
                    contacts: segment.contacts,
                    rate: segment.overall.mean(),
                    hours,
                }
            })
            .collect();
        summaries.sort_by(|a, b| (&a.stage, a.channel, &a.product).cmp(&(&b.stage, b.channel, &b.product)));
        summaries
    }
}

/// The segments' hour curves of a stored model, without its per-borrower factors: what a
/// report of the model reads. Decoding a stored model into this skips the borrower maps (a
/// model of a million borrowers is mostly those), so it is cheap to read for the dashboard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelCurves {
    /// Attempts at or after this instant were learned from.
    pub trained_from: DateTime<Utc>,
    /// Attempts before this instant were learned from.
    pub trained_to: DateTime<Utc>,
    attempts: u64,
    segments: Vec<Segment>,
}

/// One segment's probability of a right-party contact by local hour, every hour of the day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentCurve {
    /// Stage.
    pub stage: String,
    /// Channel.
    pub channel: Channel,
    /// Product.
    pub product: String,
    /// Attempts learned from.
    pub attempts: u64,
    /// Right-party contacts among them.
    pub contacts: u64,
    /// Posterior mean of the segment's overall rate.
    pub rate: f64,
    /// The 24 local hours in order: the posterior mean rate of each (all weekdays) and the
    /// attempts behind it (an hour without attempts shows what the shrinkage gave it).
    pub hours: Vec<HourRate>,
}

impl ModelCurves {
    /// Attempts the model was learned from.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Every segment's curve, in stage, channel, product order.
    pub fn curves(&self) -> Vec<SegmentCurve> {
        let mut curves: Vec<SegmentCurve> = self
            .segments
            .iter()
            .map(|segment| SegmentCurve {
                stage: segment.stage.clone(),
                channel: segment.channel,
                product: segment.product.clone(),
                attempts: segment.attempts,
                contacts: segment.contacts,
                rate: segment.overall.mean(),
                hours: (0..24u32)
                    .map(|hour| HourRate {
                        hour,
                        rate: segment.hours.get(hour as usize).map_or(segment.overall.mean(), Beta::mean),
                        attempts: segment.hour_attempts.get(hour as usize).copied().unwrap_or(0),
                    })
                    .collect(),
            })
            .collect();
        curves.sort_by(|a, b| (&a.stage, a.channel, &a.product).cmp(&(&b.stage, b.channel, &b.product)));
        curves
    }
}
