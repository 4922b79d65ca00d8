//! The simulated borrowers' ground truth: hidden traits drawn from each borrower's segment
//! (archetype, answer curve by local hour and weekday, right-party, promise, keep and self-cure
//! rates, fatigue, small rates of disputes, opt-outs and wrong numbers), the oracle `truth` and
//! the day's payments. The engine never reads any of it. Pure and seeded: no clock, no I/O, no
//! database; every draw goes through `draw`'s counter-based keys.

use super::draw::{self, Key, Kind};
use crate::domain::{Account, Borrower, Channel, Money, Portfolio};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rand::Rng;
use rand::rngs::SmallRng;
use rand_distr::{Beta, Distribution, Normal};
use rustc_hash::FxHashMap as HashMap;

/// Calls within this many hours before a call tire the borrower (fatigue).
pub const FATIGUE_WINDOW_HOURS: i64 = 72;

/// How a borrower's day is shaped: when they pick up the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Archetype {
    /// Works days; answers best 18:00–21:00.
    Evening,
    /// At home in the day (retired, shift off, carer); answers best 10:00–12:00.
    Daytime,
    /// Hard to reach on weekdays; answers best at weekends, early afternoon.
    Weekend,
}

/// Days-past-due bucket of an account on the world's start date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DpdBucket {
    /// Not yet due (DPD ≤ 0).
    PreDue,
    /// 1–30 days past due.
    D1To30,
    /// 31–60.
    D31To60,
    /// 61–90.
    D61To90,
    /// More than 90.
    Over90,
}

impl DpdBucket {
    /// The bucket of a DPD.
    pub fn of(dpd: i32) -> DpdBucket {
        match dpd {
            i32::MIN..=0 => DpdBucket::PreDue,
            1..=30 => DpdBucket::D1To30,
            31..=60 => DpdBucket::D31To60,
            61..=90 => DpdBucket::D61To90,
            _ => DpdBucket::Over90,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A borrower's hidden traits.
#[derive(Debug, Clone)]
pub struct BorrowerTraits {
    /// The archetype the answer curve was drawn from.
    pub archetype: Archetype,
    /// The zone the borrower really lives in (one of their zones).
    pub zone: Tz,
    /// P(answer) by weekday (0 = Monday) and local hour, before fatigue and channel.
    pub answer: [[f64; 24]; 7],
    /// P(the borrower | answered).
    pub right_party: f64,
    /// Each call in the last 72 hours multiplies P(answer) by this (below 1).
    pub fatigue: f64,
    /// The number on file is not the borrower's: every answered call is `wrong_number`.
    pub wrong_number: bool,
    /// P(`do_not_call` | right party).
    pub opt_out: f64,
}

/// An account's hidden traits.
#[derive(Debug, Clone)]
pub struct AccountTraits {
    /// DPD bucket on the world's start date.
    pub bucket: DpdBucket,
    /// P(promise | right party).
    pub promise: f64,
    /// P(promise kept).
    pub keep: f64,
    /// P(pays in full on a given day without contact).
    pub self_cure: f64,
    /// P(`dispute` | right party).
    pub dispute: f64,
}

/// Why money arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentCause {
    /// A promise kept on its due date.
    PromiseKept,
    /// The borrower paid on their own.
    SelfCure,
}

/// One payment the simulator should post.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    /// The account paid.
    pub account_id: String,
    /// The (borrower-local) day it was paid.
    pub date: NaiveDate,
    /// How much.
    pub amount: Money,
    /// Why.
    pub cause: PaymentCause,
}

/// An account id the world does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the simulated world has no account `{0}`")]
pub struct UnknownAccount(pub String);

pub(super) struct AccountState {
    pub id: String,
    pub borrower: usize,
    pub traits: AccountTraits,
    pub owed: Money,
    /// Kept promises waiting for their due date: (due_on, amount).
    pub kept_promises: Vec<(NaiveDate, Money)>,
    /// Attempts so far by (channel, local day, local hour): the attempt's index in its hour.
    pub attempts: HashMap<(Channel, i64, u32), u32>,
}

pub(super) struct BorrowerState {
    pub traits: BorrowerTraits,
    /// Instants of calls (robot or human) placed to the borrower, in order.
    pub calls: Vec<DateTime<Utc>>,
}

/// The simulated world: every borrower's hidden traits and what happened to them so far.
pub struct World {
    pub(super) seed: u64,
    pub(super) accounts: Vec<AccountState>,
    pub(super) by_id: HashMap<String, usize>,
    pub(super) borrowers: Vec<BorrowerState>,
}

/// A draw from Beta with the given mean and concentration (a + b).
pub(super) fn beta(rng: &mut SmallRng, mean: f64, concentration: f64) -> f64 {
    let mean = mean.clamp(0.001, 0.999);
    Beta::new(mean * concentration, (1.0 - mean) * concentration).map(|d| d.sample(rng)).unwrap_or(mean)
}

fn normal(rng: &mut SmallRng, mean: f64, sd: f64) -> f64 {
    Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
}

/// The local day number used in draw keys.
pub(super) fn day_number(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce())
}

fn archetype_for(seed: u64, borrower: &Borrower, accounts: &[&Account]) -> Archetype {
    // Weights by segment: product, tags and zone move the mix.
    let mut weights = [0.45, 0.35, 0.20];
    for account in accounts {
        match account.product.as_str() {
            "card" => weights[0] += 0.10,
            "cash" | "payday" => weights[2] += 0.10,
            _ => {}
        }
        for tag in &account.tags {
            match tag.as_str() {
                "retired" | "senior" | "carer" => weights[1] += 0.40,
                "student" | "salaried" => weights[0] += 0.20,
                "shift" | "gig" => weights[2] += 0.20,
                _ => {}
            }
        }
    }
    if borrower.timezones.first().is_some_and(|zone| zone.name().starts_with("Asia/")) {
        weights[0] += 0.10;
    }
    let total: f64 = weights.iter().sum();
    let u = draw::once(seed, &borrower.id, Kind::BorrowerTraits).with(Kind::Answer).uniform() * total;
    if u < weights[0] {
        Archetype::Evening
    } else if u < weights[0] + weights[1] {
        Archetype::Daytime
    } else {
        Archetype::Weekend
    }
}

fn answer_curve(rng: &mut SmallRng, archetype: Archetype, bucket: DpdBucket) -> [[f64; 24]; 7] {
    const PEAK: [f64; 5] = [0.55, 0.45, 0.36, 0.28, 0.20];
    let peak = beta(rng, PEAK[bucket.index()], 14.0);
    let floor = beta(rng, 0.30, 20.0);
    let width = normal(rng, 1.6, 0.25).clamp(0.8, 2.5);
    let jitter = normal(rng, 0.0, 0.6).clamp(-1.5, 1.5);
    let mut curve = [[0.0; 24]; 7];
    for (weekday, hours) in curve.iter_mut().enumerate() {
        let weekend = weekday >= 5;
        let (center, day_factor) = match (archetype, weekend) {
            (Archetype::Evening, false) => (19.5, 1.0),
            (Archetype::Evening, true) => (18.0, 0.85),
            (Archetype::Daytime, false) => (11.0, 1.0),
            (Archetype::Daytime, true) => (11.5, 0.6),
            (Archetype::Weekend, false) => (19.5, 0.45),
            (Archetype::Weekend, true) => (13.0, 1.0),
        };
        for (hour, p) in hours.iter_mut().enumerate() {
            let distance = hour as f64 + 0.5 - (center + jitter);
            let shape = floor + (1.0 - floor) * (-(distance * distance) / (2.0 * width * width)).exp();
            let night = if !(7..23).contains(&hour) { 0.1 } else { 1.0 };
            *p = (peak * shape * day_factor * night).clamp(0.005, 0.95);
        }
    }
    curve
}

fn account_traits(seed: u64, account: &Account, as_of: NaiveDate) -> AccountTraits {
    const PROMISE: [f64; 5] = [0.45, 0.40, 0.30, 0.22, 0.15];
    const KEEP: [f64; 5] = [0.80, 0.70, 0.55, 0.45, 0.35];
    const CURE: [f64; 5] = [0.04, 0.02, 0.008, 0.004, 0.0015];
    let bucket = DpdBucket::of(account.dpd_on(as_of));
    let mut rng = draw::once(seed, &account.id, Kind::AccountTraits).rng();
    let product = if account.product == "card" { 0.9 } else { 1.0 };
    let broken = 0.08 * f64::from(account.broken_promises.min(8));
    AccountTraits {
        bucket,
        promise: beta(&mut rng, PROMISE[bucket.index()] * product, 12.0),
        keep: beta(&mut rng, (KEEP[bucket.index()] - broken).max(0.05), 10.0),
        self_cure: beta(&mut rng, CURE[bucket.index()], 60.0),
        dispute: beta(&mut rng, 0.015, 40.0),
    }
}

fn borrower_traits(seed: u64, borrower: &Borrower, accounts: &[&Account], as_of: NaiveDate) -> BorrowerTraits {
    let archetype = archetype_for(seed, borrower, accounts);
    let worst = accounts.iter().map(|account| account.dpd_on(as_of)).max().unwrap_or(0);
    let mut rng = draw::once(seed, &borrower.id, Kind::BorrowerTraits).rng();
    let zone = if borrower.timezones.is_empty() {
        Tz::UTC
    } else {
        borrower.timezones[rng.random_range(0..borrower.timezones.len())]
    };
    BorrowerTraits {
        archetype,
        zone,
        answer: answer_curve(&mut rng, archetype, DpdBucket::of(worst)),
        right_party: beta(&mut rng, 0.82, 20.0),
        fatigue: beta(&mut rng, 0.80, 30.0),
        wrong_number: rng.random_bool(0.02),
        opt_out: beta(&mut rng, 0.02, 40.0),
    }
}

impl World {
    /// Draws every borrower's and account's hidden traits from their segment (product, tags,
    /// zone, DPD bucket on `as_of`, the simulation's first local day). The same seed and book
    /// give the same world.
    pub fn new(seed: u64, portfolio: &Portfolio, as_of: NaiveDate) -> World {
        let mut borrowers: Vec<&Borrower> = portfolio.borrowers.values().collect();
        borrowers.sort_by(|a, b| a.id.cmp(&b.id));
        World::from_parts(
            seed,
            &portfolio.accounts,
            borrowers.into_iter().cloned().collect::<Vec<_>>().as_slice(),
            as_of,
        )
    }

    /// As [`World::new`], from plain lists. An account whose borrower is missing gets a borrower
    /// of its own id in UTC.
    pub fn from_parts(seed: u64, accounts: &[Account], borrowers: &[Borrower], as_of: NaiveDate) -> World {
        let mut borrower_index: HashMap<String, usize> = HashMap::default();
        let mut people: Vec<Borrower> = Vec::new();
        for borrower in borrowers {
            if !borrower_index.contains_key(&borrower.id) {
                borrower_index.insert(borrower.id.clone(), people.len());
                people.push(borrower.clone());
            }
        }
        for account in accounts {
            if !borrower_index.contains_key(&account.borrower_id) {
                borrower_index.insert(account.borrower_id.clone(), people.len());
                people.push(Borrower {
                    id: account.borrower_id.clone(),
                    name: String::new(),
                    timezones: vec![Tz::UTC],
                    contact_points: Vec::new(),
                    consent_robot: false,
                });
            }
        }
        let mut owned: Vec<Vec<&Account>> = vec![Vec::new(); people.len()];
        for account in accounts {
            owned[borrower_index[&account.borrower_id]].push(account);
        }
        let borrower_states = people
            .iter()
            .zip(&owned)
            .map(|(borrower, mine)| BorrowerState {
                traits: borrower_traits(seed, borrower, mine, as_of),
                calls: Vec::new(),
            })
            .collect();
        let mut by_id = HashMap::default();
        let mut states = Vec::new();
        for account in accounts {
            if by_id.contains_key(&account.id) {
                continue;
            }
            by_id.insert(account.id.clone(), states.len());
            states.push(AccountState {
                id: account.id.clone(),
                borrower: borrower_index[&account.borrower_id],
                traits: account_traits(seed, account, as_of),
                owed: account.amount_due,
                kept_promises: Vec::new(),
                attempts: HashMap::default(),
            });
        }
        World { seed, accounts: states, by_id, borrowers: borrower_states }
    }

    pub(super) fn index(&self, account_id: &str) -> Result<usize, UnknownAccount> {
        self.by_id.get(account_id).copied().ok_or_else(|| UnknownAccount(account_id.to_string()))
    }

    /// The hidden traits of an account's borrower.
    pub fn borrower_traits(&self, account_id: &str) -> Result<&BorrowerTraits, UnknownAccount> {
        let index = self.index(account_id)?;
        Ok(&self.borrowers[self.accounts[index].borrower].traits)
    }

    /// The hidden traits of an account.
    pub fn account_traits(&self, account_id: &str) -> Result<&AccountTraits, UnknownAccount> {
        Ok(&self.accounts[self.index(account_id)?].traits)
    }

    /// What the account still owes in the world (after the payments `day` produced).
    pub fn owed(&self, account_id: &str) -> Result<Money, UnknownAccount> {
        Ok(self.accounts[self.index(account_id)?].owed)
    }

    /// Calls placed to the borrower in the fatigue window before `at`.
    pub(super) fn recent_calls(&self, borrower: usize, at: DateTime<Utc>) -> usize {
        let from = at - chrono::Duration::hours(FATIGUE_WINDOW_HOURS);
        self.borrowers[borrower].calls.iter().filter(|call| **call >= from && **call < at).count()
    }

    /// P(answer) of a call at `at`, channel included, fatigue included when `tired`.
    fn p_answer_of(&self, account: usize, channel: Channel, at: DateTime<Utc>, tired: bool) -> f64 {
        let borrower = self.accounts[account].borrower;
        let traits = &self.borrowers[borrower].traits;
        let local = at.with_timezone(&traits.zone);
        let base = traits.answer[local.weekday().num_days_from_monday() as usize][local.hour() as usize];
        let channel_factor = match channel {
            Channel::Human => 1.0,
            Channel::Robot => 0.85,
            Channel::Sms | Channel::Email => 0.0,
        };
        let fatigue = if tired { traits.fatigue.powi(self.recent_calls(borrower, at) as i32) } else { 1.0 };
        base * channel_factor * fatigue
    }

    /// P(answer) of a call at `at`, fatigue and channel included.
    pub(super) fn p_answer(&self, account: usize, channel: Channel, at: DateTime<Utc>) -> f64 {
        self.p_answer_of(account, channel, at, true)
    }

    /// P(right-party contact), fatigue included when `tired`.
    fn truth_of(
        &self,
        account_id: &str,
        channel: Channel,
        at: DateTime<Utc>,
        tired: bool,
    ) -> Result<f64, UnknownAccount> {
        let index = self.index(account_id)?;
        let traits = &self.borrowers[self.accounts[index].borrower].traits;
        if traits.wrong_number {
            return Ok(0.0);
        }
        Ok(self.p_answer_of(index, channel, at, tired) * traits.right_party)
    }

    /// The true P(right-party contact) of a call on `channel` at `at`, fatigue included: the
    /// oracle learned timing is measured against. Messages never reach the right party by
    /// voice: 0 for SMS and e-mail.
    pub fn truth(&self, account_id: &str, channel: Channel, at: DateTime<Utc>) -> Result<f64, UnknownAccount> {
        self.truth_of(account_id, channel, at, true)
    }

    /// [`World::truth`] of a rested borrower: without the fatigue of the calls already made (what
    /// the hour and the borrower give, the part a timing choice can use).
    pub fn truth_rested(&self, account_id: &str, channel: Channel, at: DateTime<Utc>) -> Result<f64, UnknownAccount> {
        self.truth_of(account_id, channel, at, false)
    }

    /// The borrower's local hours of `date` (in the zone they really live in), best first by
    /// the true P(right-party contact) at the hour's start; hours a DST gap skips are left out.
    pub fn best_hours(&self, account_id: &str, channel: Channel, date: NaiveDate) -> Result<Vec<u32>, UnknownAccount> {
        let index = self.index(account_id)?;
        let zone = self.borrowers[self.accounts[index].borrower].traits.zone;
        let mut scored = Vec::new();
        for hour in 0..24 {
            let Some(local) = date.and_hms_opt(hour, 0, 0) else { continue };
            let Some(at) = zone.from_local_datetime(&local).earliest() else { continue };
            scored.push((self.truth(account_id, channel, at.with_timezone(&Utc))?, hour));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(scored.into_iter().map(|(_, hour)| hour).collect())
    }

    /// The payments of one (borrower-local) day, in account order: kept promises due that day (or before, if a day was skipped),
    /// then self-cures of accounts still owing with no kept promise pending. Call it once per
    /// day, in order.
    pub fn day(&mut self, date: NaiveDate) -> Vec<Payment> {
        let mut payments = Vec::new();
        let seed = self.seed;
        for account in &mut self.accounts {
            let due: Money =
                account.kept_promises.iter().filter(|(on, _)| *on <= date).map(|(_, amount)| *amount).sum();
            account.kept_promises.retain(|(on, _)| *on > date);
            let paid = due.min(account.owed);
            if paid > Money::ZERO {
                account.owed -= paid;
                payments.push(Payment {
                    account_id: account.id.clone(),
                    date,
                    amount: paid,
                    cause: PaymentCause::PromiseKept,
                });
            }
            if account.owed > Money::ZERO && account.kept_promises.is_empty() {
                let key = Key {
                    seed,
                    id: &account.id,
                    kind: Kind::SelfCure,
                    channel: 0,
                    day: day_number(date),
                    hour: 0,
                    index: 0,
                };
                if key.uniform() < account.traits.self_cure {
                    payments.push(Payment {
                        account_id: account.id.clone(),
                        date,
                        amount: account.owed,
                        cause: PaymentCause::SelfCure,
                    });
                    account.owed = Money::ZERO;
                }
            }
        }
        payments
    }
}
