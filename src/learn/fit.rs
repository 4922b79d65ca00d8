//! Fitting P(right-party contact | attempt): Beta-binomial cells with hierarchical shrinkage.
//! Pure: the facts come in as arguments; no I/O, no clock.
//!
//! Per channel (sms, email, robot, human), each level is a Beta posterior whose prior is
//! centred on the level above, with a prior strength estimated by empirical Bayes (method of
//! moments over the level's cells) and never stronger than the data behind the parent:
//!
//! 1. channel overall: `Beta(1 + k, 1 + n - k)`;
//! 2. channel hour `h` (24): prior mean the channel's overall rate;
//! 3. channel weekday × hour cell (168, the *global curve*): prior mean its hour's rate;
//! 4. segment (stage, channel, product) level: prior mean `E_s / n_s`, the global curve at the
//!    slots of the segment's attempts; `ρ_s` = posterior mean / prior mean is the segment's
//!    rate relative to the global curve;
//! 5. segment hour: prior mean `ρ_s · h_c(h)`;
//! 6. segment cell: prior mean `segment hour(h) · global cell(w, h) / h_c(h)` (the global
//!    weekday effect on the segment's hour).
//!
//! Shrinking children `(n_i, k_i)` toward prior means `q_i`: the between-cell variance is
//! `τ² = max(0, (Σ n_i (k_i/n_i − q_i)² − Σ q_i(1 − q_i)) / Σ n_i)` and the prior strength
//! `m = q̄(1 − q̄)/τ² − 1` (infinite when `τ² = 0`, 20 when fewer than two cells have data);
//! cell `i` gets `Beta(k_i + s_i q_i, n_i − k_i + s_i (1 − q_i))` with
//! `s_i = clamp(m, 1, concentration of the parent)`. A cell's concentration is thus that of the
//! data behind it and its parent's.
//!
//! Borrowers: a multiplicative rate factor pooled over all their attempts, Gamma–Poisson
//! style: `r_b = (k_b + K) / (E_b + K)`, `E_b` the sum of the segment cell means at the slots of
//! their attempts, `K = 3` expected contacts ([`BORROWER_PRIOR_CONTACTS`]). Then their own hour
//! shape, per call channel `c` (robot, human) and local hour `h` they were called in on it:
//! `r_{b,c,h} = (K_{b,c,h} + m · r_b) / (E_{b,c,h} + m)`, with `K` and `E` the contacts and the
//! expected contacts (segment cell means) of their attempts on `c` at `h`, plus half
//! ([`HOUR_NEIGHBOUR_WEIGHT`]) of those at `h − 1` and `h + 1`, and `m = 1` expected contact
//! ([`BORROWER_HOUR_PRIOR_CONTACTS`]): shrunk toward `r_b`, the rate factor, which hours they were
//! never called in keep. So a borrower with a few attempts follows the segment's best hours and
//! one with many gets their own. Only hours with attempts are stored (f32, 3 decimals).

use super::model::{Beta, BorrowerHours, ChannelCurve, ContactModel, SLOTS, Segment, channel_index, clamp_mean, slot};
use crate::domain::Channel;
use chrono::{DateTime, Utc, Weekday};
use rustc_hash::FxHashMap as HashMap;

/// The prior strength of a level whose spread cannot be estimated (fewer than two cells).
pub const DEFAULT_STRENGTH: f64 = 20.0;

/// The borrower factor's prior, in expected contacts (`K` above).
pub const BORROWER_PRIOR_CONTACTS: f64 = 3.0;

/// The prior of a borrower's hour factor, in expected contacts (`m` above): an hour's own
/// evidence weighs as much as this many contacts the segment expected there before it moves
/// the factor halfway from the borrower's rate factor.
pub const BORROWER_HOUR_PRIOR_CONTACTS: f64 = 1.0;

/// The weight of the evidence of the neighbouring hours (`h ± 1`) in a borrower's hour factor.
pub const HOUR_NEIGHBOUR_WEIGHT: f64 = 0.5;

/// One attempt as the fit needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptFact<'a> {
    /// The borrower called or messaged.
    pub borrower_id: &'a str,
    /// The account's stage at the attempt.
    pub stage: &'a str,
    /// How.
    pub channel: Channel,
    /// The account's product.
    pub product: &'a str,
    /// Local weekday (borrower's primary zone).
    pub weekday: Weekday,
    /// Local hour, 0..24.
    pub hour: u32,
    /// A right-party contact (`Outcome::is_conversation`).
    pub contact: bool,
}

/// One attempt, compactly (12 bytes): what the borrower pass re-reads.
#[derive(Debug, Clone, Copy)]
struct Row {
    borrower: u32,
    segment: u32,
    slot: u8,
    contact: bool,
}

/// Contacts and attempts.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    n: u64,
    k: u64,
}

impl Counts {
    fn add(&mut self, contact: bool) {
        self.n += 1;
        self.k += u64::from(contact);
    }
}

/// A segment being counted.
struct SegmentCounts {
    stage: String,
    channel: Channel,
    product: String,
    cells: Vec<Counts>,
}

/// An incremental fit: add facts one by one (strings are interned, each attempt kept in 12
/// bytes), then [`Fitter::finish`].
#[derive(Default)]
pub struct Fitter {
    borrowers: HashMap<String, u32>,
    borrower_ids: Vec<String>,
    /// stage → product → segment per channel, as the model keeps it.
    segment_index: HashMap<String, HashMap<String, [Option<u32>; 4]>>,
    segments: Vec<SegmentCounts>,
    rows: Vec<Row>,
}

impl Fitter {
    /// An empty fit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts added so far.
    pub fn attempts(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Adds one attempt.
    pub fn add(&mut self, fact: AttemptFact<'_>) {
        let borrower = match self.borrowers.get(fact.borrower_id) {
            Some(&id) => id,
            None => {
                let id = self.borrower_ids.len() as u32;
                self.borrower_ids.push(fact.borrower_id.to_string());
                self.borrowers.insert(fact.borrower_id.to_string(), id);
                id
            }
        };
        let channel = channel_index(fact.channel);
        let existing = self
            .segment_index
            .get(fact.stage)
            .and_then(|products| products.get(fact.product))
            .and_then(|channels| channels[channel]);
        let segment = match existing {
            Some(id) => id,
            None => {
                let id = self.segments.len() as u32;
                self.segments.push(SegmentCounts {
                    stage: fact.stage.to_string(),
                    channel: fact.channel,
                    product: fact.product.to_string(),
                    cells: vec![Counts::default(); SLOTS],
                });
                self.segment_index
                    .entry(fact.stage.to_string())
                    .or_default()
                    .entry(fact.product.to_string())
                    .or_default()[channel] = Some(id);
                id
            }
        };
        let slot = slot(fact.weekday, fact.hour);
        if let Some(cell) = self.segments.get_mut(segment as usize).and_then(|s| s.cells.get_mut(slot)) {
            cell.add(fact.contact);
        }
        self.rows.push(Row { borrower, segment, slot: slot as u8, contact: fact.contact });
    }

    /// The fitted model (version 0) of the attempts added.
    pub fn finish(self, trained_from: DateTime<Utc>, trained_to: DateTime<Utc>) -> ContactModel {
        let mut channels = Vec::with_capacity(Channel::ALL.len());
        let mut segments: Vec<Option<Segment>> = self.segments.iter().map(|_| None).collect();
        for &channel in Channel::ALL {
            let members: Vec<usize> =
                (0..self.segments.len()).filter(|&i| self.segments[i].channel == channel).collect();
            // The global curve: every segment of the channel pooled.
            let mut cells = vec![Counts::default(); SLOTS];
            for &i in &members {
                for (total, cell) in cells.iter_mut().zip(&self.segments[i].cells) {
                    total.n += cell.n;
                    total.k += cell.k;
                }
            }
            let all = sum(&cells);
            let overall = Beta { alpha: 1.0 + all.k as f64, beta: 1.0 + (all.n - all.k) as f64 };
            let hour_counts = by_hour(&cells);
            let hours = shrink(hour_counts.iter().map(|&counts| (counts, overall.mean(), overall.concentration())));
            let global = shrink(cells.iter().enumerate().map(|(slot, &counts)| {
                let hour = hours[slot % 24];
                (counts, hour.mean(), hour.concentration())
            }));
            // Segment levels, relative to the global curve.
            let levels: Vec<(Counts, f64)> = members
                .iter()
                .map(|&i| {
                    let cells = &self.segments[i].cells;
                    let expected: f64 = cells.iter().zip(&global).map(|(c, g)| c.n as f64 * g.mean()).sum();
                    let counts = sum(cells);
                    (counts, if counts.n > 0 { expected / counts.n as f64 } else { overall.mean() })
                })
                .collect();
            let (level_posteriors, segment_strength) = shrink_with_strength(
                levels.iter().map(|&(counts, prior)| (counts, clamp_mean(prior), overall.concentration())),
            );
            let segment_hours: Vec<Vec<Counts>> = members.iter().map(|&i| by_hour(&self.segments[i].cells)).collect();
            let hour_posteriors = shrink(members.iter().enumerate().flat_map(|(m, _)| {
                let ratio = level_posteriors[m].mean() / levels[m].1.max(f64::MIN_POSITIVE);
                let level_concentration = level_posteriors[m].concentration();
                let hours = &hours;
                segment_hours[m].iter().enumerate().map(move |(h, &counts)| {
                    (counts, clamp_mean(ratio * hours[h].mean()), level_concentration.min(hours[h].concentration()))
                })
            }));
            let cell_posteriors = shrink(members.iter().enumerate().flat_map(|(m, &i)| {
                let (hours, global, hour_posteriors) = (&hours, &global, &hour_posteriors);
                self.segments[i].cells.iter().enumerate().map(move |(slot, &counts)| {
                    let h = slot % 24;
                    let segment_hour = hour_posteriors[m * 24 + h];
                    let weekday_effect = global[slot].mean() / hours[h].mean().max(f64::MIN_POSITIVE);
                    let prior = clamp_mean(segment_hour.mean() * weekday_effect);
                    (counts, prior, segment_hour.concentration().min(global[slot].concentration()))
                })
            }));
            for (m, &i) in members.iter().enumerate() {
                let counts = &self.segments[i];
                let total = levels[m].0;
                segments[i] = Some(Segment {
                    stage: counts.stage.clone(),
                    channel,
                    product: counts.product.clone(),
                    attempts: total.n,
                    contacts: total.k,
                    overall: level_posteriors[m],
                    hour_attempts: segment_hours[m].iter().map(|c| c.n).collect(),
                    hours: hour_posteriors[m * 24..(m + 1) * 24].to_vec(),
                    cells: cell_posteriors[m * SLOTS..(m + 1) * SLOTS].to_vec(),
                });
            }
            channels.push(ChannelCurve { attempts: all.n, overall, hours, cells: global, segment_strength });
        }
        let segments: Vec<Segment> = segments.into_iter().flatten().collect();
        // Borrowers: contacts against those expected from their segments' cells.
        let mut expected = vec![(0.0f64, 0u64); self.borrower_ids.len()];
        for row in &self.rows {
            if let (Some(entry), Some(cell)) = (
                expected.get_mut(row.borrower as usize),
                segments.get(row.segment as usize).and_then(|s| s.cells.get(row.slot as usize)),
            ) {
                entry.0 += cell.mean();
                entry.1 += u64::from(row.contact);
            }
        }
        let rates: Vec<f64> = expected
            .iter()
            .map(|&(expected, contacts)| {
                (contacts as f64 + BORROWER_PRIOR_CONTACTS) / (expected + BORROWER_PRIOR_CONTACTS)
            })
            .collect();
        let attempts = self.rows.len() as u64;
        let borrower_hours = borrower_hours(self.rows, &segments, &rates, &self.borrower_ids);
        let borrowers = self.borrower_ids.into_iter().zip(rates).collect();
        ContactModel {
            version: 0,
            trained_from,
            trained_to,
            attempts,
            channels,
            segments,
            index: self.segment_index,
            borrowers,
            borrower_hours,
        }
    }
}

/// Contacts, expected contacts and attempts of one borrower at one local hour of one channel.
#[derive(Debug, Clone, Copy, Default)]
struct HourEvidence {
    attempts: u32,
    contacts: f64,
    expected: f64,
}

/// The borrowers' hour factors (see the module doc) from the attempts `rows` (sorted here, in
/// place: no copy), the fitted `segments` and the borrowers' rate factors `rates`.
fn borrower_hours(
    mut rows: Vec<Row>,
    segments: &[Segment],
    rates: &[f64],
    ids: &[String],
) -> HashMap<String, BorrowerHours> {
    let channel_of = |row: &Row| segments.get(row.segment as usize).map(|segment| segment.channel);
    rows.retain(|row| matches!(channel_of(row), Some(Channel::Robot | Channel::Human)));
    rows.sort_unstable_by_key(|row| (row.borrower, channel_of(row).map(channel_index), row.slot % 24));
    let mut out: HashMap<String, BorrowerHours> = HashMap::default();
    for group in rows.chunk_by(|a, b| a.borrower == b.borrower && channel_of(a) == channel_of(b)) {
        let (Some(first), Some(channel)) = (group.first(), group.first().and_then(channel_of)) else { continue };
        let mut evidence = [HourEvidence::default(); 24];
        for row in group {
            let Some(cell) = segments.get(row.segment as usize).and_then(|s| s.cells.get(row.slot as usize)) else {
                continue;
            };
            let hour = &mut evidence[usize::from(row.slot) % 24];
            hour.attempts += 1;
            hour.contacts += f64::from(u8::from(row.contact));
            hour.expected += cell.mean();
        }
        let rate = rates.get(first.borrower as usize).copied().unwrap_or(1.0);
        let factors = hour_factors(&evidence, rate);
        if let (Some(id), false) = (ids.get(first.borrower as usize), factors.is_empty())
            && let Some(hours) = out.entry(id.clone()).or_default().of_mut(channel)
        {
            *hours = factors;
        }
    }
    out
}

/// The factor of each hour with attempts: its evidence and half its neighbours', shrunk toward
/// `rate` by [`BORROWER_HOUR_PRIOR_CONTACTS`]; rounded to 3 decimals (the model is stored as
/// JSON).
fn hour_factors(evidence: &[HourEvidence; 24], rate: f64) -> Vec<(u8, f32)> {
    (0..24usize)
        .filter(|&hour| evidence[hour].attempts > 0)
        .map(|hour| {
            let (mut contacts, mut expected) = (0.0, 0.0);
            for (other, weight) in [
                (hour.checked_sub(1), HOUR_NEIGHBOUR_WEIGHT),
                (Some(hour), 1.0),
                (Some(hour + 1), HOUR_NEIGHBOUR_WEIGHT),
            ] {
                if let Some(each) = other.and_then(|other| evidence.get(other)) {
                    contacts += weight * each.contacts;
                    expected += weight * each.expected;
                }
            }
            let factor = (contacts + BORROWER_HOUR_PRIOR_CONTACTS * rate) / (expected + BORROWER_HOUR_PRIOR_CONTACTS);
            (hour as u8, ((factor * 1000.0).round() / 1000.0) as f32)
        })
        .collect()
}

/// Fits the model of `facts` (version 0: not stored yet).
pub fn fit<'a>(
    facts: impl IntoIterator<Item = AttemptFact<'a>>,
    trained_from: DateTime<Utc>,
    trained_to: DateTime<Utc>,
) -> ContactModel {
    let mut fitter = Fitter::new();
    for fact in facts {
        fitter.add(fact);
    }
    fitter.finish(trained_from, trained_to)
}

fn sum(cells: &[Counts]) -> Counts {
    cells.iter().fold(Counts::default(), |total, cell| Counts { n: total.n + cell.n, k: total.k + cell.k })
}

/// Weekday × hour cells pooled by hour.
fn by_hour(cells: &[Counts]) -> Vec<Counts> {
    let mut hours = vec![Counts::default(); 24];
    for (slot, cell) in cells.iter().enumerate() {
        hours[slot % 24].n += cell.n;
        hours[slot % 24].k += cell.k;
    }
    hours
}

/// Posteriors of children `(counts, prior mean, parent concentration)` (see the module doc).
fn shrink(children: impl Iterator<Item = (Counts, f64, f64)>) -> Vec<Beta> {
    shrink_with_strength(children).0
}

/// [`shrink`], and the estimated prior strength (capped by the largest parent concentration).
fn shrink_with_strength(children: impl Iterator<Item = (Counts, f64, f64)>) -> (Vec<Beta>, f64) {
    let children: Vec<(Counts, f64, f64)> = children.collect();
    let strength = prior_strength(&children);
    let posteriors = children
        .iter()
        .map(|&(counts, prior, parent)| {
            let s = strength.min(parent).max(1.0);
            Beta { alpha: counts.k as f64 + s * prior, beta: (counts.n - counts.k) as f64 + s * (1.0 - prior) }
        })
        .collect();
    let largest_parent = children.iter().map(|c| c.2).fold(1.0f64, f64::max);
    (posteriors, strength.min(largest_parent).max(1.0))
}

/// Empirical-Bayes prior strength by the method of moments (see the module doc).
fn prior_strength(children: &[(Counts, f64, f64)]) -> f64 {
    let (mut total, mut deviation, mut binomial, mut weighted_variance, mut used) = (0.0, 0.0, 0.0, 0.0, 0);
    for &(counts, prior, _) in children.iter().filter(|c| c.0.n > 0) {
        let n = counts.n as f64;
        let observed = counts.k as f64 / n;
        total += n;
        deviation += n * (observed - prior).powi(2);
        binomial += prior * (1.0 - prior);
        weighted_variance += n * prior * (1.0 - prior);
        used += 1;
    }
    if used < 2 {
        return DEFAULT_STRENGTH;
    }
    let between = (deviation - binomial) / total;
    if between <= 0.0 {
        return f64::INFINITY;
    }
    (weighted_variance / total / between - 1.0).max(1.0)
}
