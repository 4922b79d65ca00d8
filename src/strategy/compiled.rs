//! The compiled form of strategies: conditions as bit sets and ranges over interned symbols,
//! evaluated against an account's [`Facts`] without allocating. No I/O here.

use crate::domain::{Account, Channel, Money};
use crate::policy::{Policy, TimeWindow};
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

/// Interned names used by the rules: tags, score models, attributes and their values, products.
/// Names no rule mentions are not interned: they cannot change a decision.
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    pub(crate) tags: HashMap<String, u32>,
    pub(crate) models: HashMap<String, u32>,
    pub(crate) attrs: HashMap<String, u32>,
    pub(crate) attr_values: HashMap<String, u32>,
    pub(crate) products: HashMap<String, u32>,
    pub(crate) funders: HashMap<String, u32>,
}

impl Symbols {
    fn intern(map: &mut HashMap<String, u32>, name: &str) -> u32 {
        let next = map.len() as u32;
        *map.entry(name.to_string()).or_insert(next)
    }
    pub(crate) fn tag(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.tags, name)
    }
    pub(crate) fn model(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.models, name)
    }
    pub(crate) fn attr(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.attrs, name)
    }
    pub(crate) fn attr_value(&mut self, value: &str) -> u32 {
        Self::intern(&mut self.attr_values, value)
    }
    pub(crate) fn product(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.products, name)
    }
    pub(crate) fn funder(&mut self, name: &str) -> u32 {
        Self::intern(&mut self.funders, name)
    }
    fn tag_words(&self) -> usize {
        self.tags.len().div_ceil(64)
    }
    fn funder_words(&self) -> usize {
        self.funders.len().div_ceil(64)
    }
}

/// Marks "not interned" (a product, attribute value or tag no rule mentions).
pub const UNKNOWN: u32 = u32::MAX;

/// What the conditions read about one account on one day. Filled by [`StrategySet::fill_facts`]
/// into a buffer reused across accounts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Days past due on the local day.
    pub dpd: i32,
    /// Amount due.
    pub amount_due: Money,
    /// Balance.
    pub balance: Money,
    /// Interned product, or [`UNKNOWN`].
    pub product: u32,
    /// Bit set of interned tags.
    pub tags: Vec<u64>,
    /// Bit set of the interned funders holding a share of the account.
    pub funders: Vec<u64>,
    /// Score by interned model (NaN when the account has none).
    pub scores: Vec<f64>,
    /// Interned value by interned attribute ([`UNKNOWN`] when absent or unmentioned).
    pub attrs: Vec<u32>,
    /// Broken promises so far.
    pub broken_promises: u32,
    /// Attempts on any channel in the last 7 local days.
    pub attempts_7d: u32,
    /// Whole days since the last conversation; `None` when there never was one.
    pub days_since_rpc: Option<u32>,
}

/// An inclusive range; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    /// Lowest accepted value.
    pub min: Option<T>,
    /// Highest accepted value.
    pub max: Option<T>,
}

impl<T: PartialOrd + Copy> Range<T> {
    #[inline]
    fn holds(&self, value: T) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

/// A rule's `when`, compiled.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub(crate) products: Option<Vec<u32>>,
    pub(crate) dpd: Option<Range<i32>>,
    pub(crate) amount_due: Option<Range<Money>>,
    pub(crate) balance: Option<Range<Money>>,
    pub(crate) scores: Vec<(u32, Range<f64>)>,
    pub(crate) tags_any: Option<Vec<u64>>,
    pub(crate) tags_all: Option<Vec<u64>>,
    pub(crate) tags_none: Option<Vec<u64>>,
    pub(crate) funders: Option<Vec<u64>>,
    pub(crate) attrs: Vec<(u32, Vec<u32>)>,
    pub(crate) broken_promises: Option<Range<u32>>,
    pub(crate) attempts_7d: Option<Range<u32>>,
    pub(crate) days_since_rpc: Option<Range<u32>>,
}

fn bits(facts: &[u64], word: usize) -> u64 {
    facts.get(word).copied().unwrap_or(0)
}

impl Conditions {
    /// `None` when every condition holds, else the name of the first that does not.
    #[inline]
    pub fn first_failure(&self, facts: &Facts) -> Option<&'static str> {
        if let Some(products) = &self.products
            && !products.contains(&facts.product)
        {
            return Some("product");
        }
        if let Some(range) = &self.dpd
            && !range.holds(facts.dpd)
        {
            return Some("dpd");
        }
        if let Some(mask) = &self.tags_any
            && !mask.iter().enumerate().any(|(word, m)| bits(&facts.tags, word) & m != 0)
        {
            return Some("tags_any");
        }
        if let Some(mask) = &self.tags_all
            && !mask.iter().enumerate().all(|(word, m)| bits(&facts.tags, word) & m == *m)
        {
            return Some("tags_all");
        }
        if let Some(mask) = &self.tags_none
            && mask.iter().enumerate().any(|(word, m)| bits(&facts.tags, word) & m != 0)
        {
            return Some("tags_none");
        }
        if let Some(mask) = &self.funders
            && !mask.iter().enumerate().any(|(word, m)| bits(&facts.funders, word) & m != 0)
        {
            return Some("funder");
        }
        if let Some(range) = &self.amount_due
            && !range.holds(facts.amount_due)
        {
            return Some("amount_due");
        }
        if let Some(range) = &self.balance
            && !range.holds(facts.balance)
        {
            return Some("balance");
        }
        for (model, range) in &self.scores {
            let score = facts.scores.get(*model as usize).copied().unwrap_or(f64::NAN);
            if score.is_nan() || !range.holds(score) {
                return Some("score");
            }
        }
        for (attr, values) in &self.attrs {
            let value = facts.attrs.get(*attr as usize).copied().unwrap_or(UNKNOWN);
            if !values.contains(&value) {
                return Some("attr");
            }
        }
        if let Some(range) = &self.broken_promises
            && !range.holds(facts.broken_promises)
        {
            return Some("broken_promises");
        }
        if let Some(range) = &self.attempts_7d
            && !range.holds(facts.attempts_7d)
        {
            return Some("attempts_7d");
        }
        if let Some(range) = &self.days_since_rpc {
            let holds = match facts.days_since_rpc {
                Some(days) => range.holds(days),
                None => range.max.is_none(),
            };
            if !holds {
                return Some("days_since_rpc");
            }
        }
        None
    }
}

/// Where a task's priority comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Priority {
    /// A constant.
    Constant(f64),
    /// The account's balance.
    Balance,
    /// The account's amount due.
    AmountDue,
    /// Days past due.
    Dpd,
    /// A model score (interned), 0 when missing.
    Score(u32),
    /// The balance times the contact model's estimated probability of a right-party contact
    /// inside the task's window (the planner multiplies; without a model it is the balance).
    ExpectedValue,
}

impl Priority {
    /// The priority value for an account.
    pub fn value(self, facts: &Facts) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        match self {
            Priority::Constant(value) => value,
            Priority::Balance | Priority::ExpectedValue => facts.balance.to_f64().unwrap_or(0.0),
            Priority::AmountDue => facts.amount_due.to_f64().unwrap_or(0.0),
            Priority::Dpd => f64::from(facts.dpd),
            Priority::Score(model) => {
                let score = facts.scores.get(model as usize).copied().unwrap_or(f64::NAN);
                if score.is_nan() { 0.0 } else { score }
            }
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub struct Treatment {
    /// Channel.
    pub channel: Channel,
    /// Template name.
    pub template: Option<Arc<str>>,
    /// Local windows, already clipped to the policy's contact hours.
    pub windows: Vec<TimeWindow>,
    /// Attempts per day (sms, email, robot).
    pub attempts_per_day: u32,
    /// Minimum minutes between two attempts' earliest instants.
    pub min_gap_minutes: u32,
    /// Where the attempts go inside the windows.
    pub timing: Timing,
    /// Hours whose estimated contact probability is below this get no attempt.
    pub min_p_contact: Option<f64>,
    /// Human queue.
    pub queue: Option<Arc<str>>,
    /// Calls per day for a human task.
    pub calls_per_day: u32,
    /// Priority source.
    pub priority: Priority,
    /// Robot to human escalation: after so many failed attempts, this queue.
    pub escalate: Option<(u32, Arc<str>)>,
    /// The inbound call script's template (`inbound_template`).
    pub inbound_template: Option<Arc<str>>,
}

/// Where a rule's attempts go inside its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timing {
    /// Evenly over the allowed time (`spread`, the default).
    #[default]
    Spread,
    /// At the hours of highest sampled contact probability (`learned`): Thompson sampling from
    /// the latest contact model; `spread` while no model exists.
    Learned,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name.
    pub name: Arc<str>,
    /// Bit per stage index; 0 means every stage.
    pub(crate) stage_mask: u64,
    /// Reserved for one experiment arm: `(experiment index, arm index)`.
    pub(crate) reserved_for: Option<(usize, usize)>,
    /// Conditions.
    pub conditions: Conditions,
    /// What it does.
    pub treatment: Treatment,
}

impl Rule {
    /// Whether the rule covers a stage.
    pub fn covers_stage(&self, stage: usize) -> bool {
        self.stage_mask == 0 || self.stage_mask & (1 << stage) != 0
    }
}

/// A named inclusive DPD range.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Stage name.
    pub name: Arc<str>,
    /// First day past due.
    pub first: i32,
    /// Last day past due.
    pub last: i32,
}

/// A champion/challenger split of one stage.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Name; also the assignment salt.
    pub name: Arc<str>,
    /// Stage index.
    pub stage: usize,
    /// Arms with their weights; the first is the champion.
    pub arms: Vec<(Arc<str>, u32)>,
    /// The index of the holdout arm, if there is one (never the champion).
    pub holdout: Option<usize>,
    /// How long after entering each account's outcomes are read (whole days).
    pub horizon_days: u32,
}

impl Experiment {
    /// The borrower's arm: sticky and deterministic, shared by all of the borrower's accounts
    /// (`crate::experiment::assign`).
    pub fn arm_of(&self, borrower_id: &str) -> usize {
        crate::experiment::assign(&self.name, borrower_id, self.arms.iter().map(|(_, weight)| *weight))
    }
}

/// One loaded, valid strategy.
#[derive(Debug, Clone)]
pub struct Strategy {
    /// Name.
    pub name: Arc<str>,
    /// The file it came from.
    pub file: String,
    /// SHA-256 of the file's content, hex.
    pub content_hash: String,
    /// The file's text as loaded (what the hash is of), kept for the strategy-version record.
    pub content: String,
    /// Products it claims; empty = the catch-all.
    pub products: Vec<String>,
    /// The policy in force for its accounts (its profile, tightened by its limits).
    pub policy: Policy,
    /// Stages.
    pub stages: Vec<Stage>,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Experiments.
    pub experiments: Vec<Experiment>,
    /// Reactions to risk events, in file order.
    pub reactions: Vec<super::Reaction>,
    /// Per stage, the experiment splitting it.
    pub(crate) experiment_by_stage: Vec<Option<usize>>,
    /// Per stage, the indices of the rules covering it, in order.
    pub(crate) rules_by_stage: Vec<Vec<usize>>,
    /// Per stage, which of those rules an account's tags can reach (see [`TagIndex`]).
    pub(crate) tag_index: Vec<TagIndex>,
}

/// Which rules of a stage an account's tags can reach, so that matching looks only at those: a
/// rule with `tags_any` cannot match an account that has none of its tags. Bit sets over the
/// positions of the stage's rules (in `rules_by_stage` order).
#[derive(Debug, Clone, Default)]
pub(crate) struct TagIndex {
    /// The rules without `tags_any`: always looked at.
    untagged: Vec<u64>,
    /// By interned tag, the rules whose `tags_any` names it.
    by_tag: HashMap<u32, Vec<u64>>,
}

/// Tags an account may carry at most for the index to be used; beyond, every rule is looked at.
const INDEXED_TAGS: usize = 16;

impl TagIndex {
    /// The index of `rules` (a stage's rules, in order).
    pub(crate) fn new<'a>(rules: impl ExactSizeIterator<Item = &'a Rule>) -> TagIndex {
        let words = rules.len().div_ceil(64);
        let mut index = TagIndex { untagged: vec![0; words], by_tag: HashMap::default() };
        for (position, rule) in rules.enumerate() {
            let bit = (position / 64, 1u64 << (position % 64));
            match &rule.conditions.tags_any {
                None => index.untagged[bit.0] |= bit.1,
                Some(mask) => {
                    for (word, bits) in mask.iter().enumerate() {
                        let mut bits = *bits;
                        while bits != 0 {
                            let tag = (word * 64) as u32 + bits.trailing_zeros();
                            bits &= bits - 1;
                            index.by_tag.entry(tag).or_insert_with(|| vec![0; words])[bit.0] |= bit.1;
                        }
                    }
                }
            }
        }
        index
    }
}

impl Strategy {
    /// The stage containing `dpd`.
    pub fn stage_of(&self, dpd: i32) -> Option<usize> {
        self.stages.iter().position(|stage| dpd >= stage.first && dpd <= stage.last)
    }

    /// The experiment and arm of a borrower's account in a stage, if the stage runs one.
    pub fn arm_of(&self, stage: usize, borrower_id: &str) -> Option<(usize, usize)> {
        let experiment = self.experiment_by_stage.get(stage).copied().flatten()?;
        Some((experiment, self.experiments[experiment].arm_of(borrower_id)))
    }

    /// The rules that may apply in a stage to an account in the given arm, in order, with their
    /// indices.
    pub fn candidate_rules(&self, stage: usize, arm: Option<(usize, usize)>) -> impl Iterator<Item = (usize, &Rule)> {
        self.rules_by_stage[stage]
            .iter()
            .map(|index| (*index, &self.rules[*index]))
            .filter(move |(_, rule)| rule.reserved_for.is_none() || rule.reserved_for == arm)
    }

    /// The first rule matching the facts, with its index: the first of [`Strategy::candidate_rules`]
    /// whose conditions all hold. Rules whose `tags_any` names none of the account's tags are
    /// passed over without being evaluated (they could not match), through the stage's tag
    /// index; the answer is the same.
    pub fn first_match(&self, stage: usize, arm: Option<(usize, usize)>, facts: &Facts) -> Option<(usize, &Rule)> {
        self.first_match_from(stage, arm, facts, 0)
    }

    /// The first matching rule whose index is `from` or more: the rule an account falls
    /// through to when an earlier match cannot take it (a human queue at capacity).
    pub fn first_match_from(
        &self,
        stage: usize,
        arm: Option<(usize, usize)>,
        facts: &Facts,
        from: usize,
    ) -> Option<(usize, &Rule)> {
        let stage_rules = &self.rules_by_stage[stage];
        let Some(index) = self.tag_index.get(stage) else {
            return self
                .candidate_rules(stage, arm)
                .find(|(rule_index, rule)| *rule_index >= from && rule.conditions.first_failure(facts).is_none());
        };
        let mut masks: [&[u64]; INDEXED_TAGS] = [&[]; INDEXED_TAGS];
        let mut tagged = 0;
        for (word, bits) in facts.tags.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                let tag = (word * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                if let Some(mask) = index.by_tag.get(&tag) {
                    if tagged == INDEXED_TAGS {
                        let mut all = self.candidate_rules(stage, arm);
                        return all.find(|(rule_index, rule)| {
                            *rule_index >= from && rule.conditions.first_failure(facts).is_none()
                        });
                    }
                    masks[tagged] = mask;
                    tagged += 1;
                }
            }
        }
        for (word, untagged) in index.untagged.iter().enumerate() {
            let mut bits = masks[..tagged].iter().fold(*untagged, |bits, mask| bits | mask[word]);
            while bits != 0 {
                let position = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let rule_index = stage_rules[position];
                let rule = &self.rules[rule_index];
                if rule_index >= from
                    && (rule.reserved_for.is_none() || rule.reserved_for == arm)
                    && rule.conditions.first_failure(facts).is_none()
                {
                    return Some((rule_index, rule));
                }
            }
        }
        None
    }
}

/// Every loaded strategy, with the product routing and the shared symbols.
#[derive(Debug, Clone, Default)]
pub struct StrategySet {
    /// Strategies in file-name order.
    pub strategies: Vec<Strategy>,
    pub(crate) by_product: HashMap<String, usize>,
    pub(crate) catch_all: Option<usize>,
    pub(crate) symbols: Symbols,
    /// Human queues' capacity by queue name (from `[queues.<name>]`); a queue not listed is not
    /// limited.
    pub capacities: std::collections::BTreeMap<String, crate::domain::QueueCapacity>,
}

impl StrategySet {
    /// The strategy handling a product.
    pub fn strategy_for(&self, product: &str) -> Option<&Strategy> {
        self.strategies.get(self.index_for(product)?)
    }

    /// The index of the strategy handling a product.
    pub fn index_for(&self, product: &str) -> Option<usize> {
        self.by_product.get(product).copied().or(self.catch_all)
    }

    /// An empty facts buffer sized for these strategies.
    pub fn new_facts(&self) -> Facts {
        Facts {
            tags: vec![0; self.symbols.tag_words()],
            funders: vec![0; self.symbols.funder_words()],
            scores: vec![f64::NAN; self.symbols.models.len()],
            attrs: vec![UNKNOWN; self.symbols.attrs.len()],
            ..Facts::default()
        }
    }

    /// Fills `facts` (from [`StrategySet::new_facts`]) for an account; allocation-free.
    pub fn fill_facts(
        &self,
        account: &Account,
        dpd: i32,
        attempts_7d: u32,
        days_since_rpc: Option<u32>,
        facts: &mut Facts,
    ) {
        let symbols = &self.symbols;
        facts.dpd = dpd;
        facts.amount_due = account.amount_due;
        facts.balance = account.balance;
        facts.product = symbols.products.get(account.product.as_str()).copied().unwrap_or(UNKNOWN);
        facts.tags.iter_mut().for_each(|word| *word = 0);
        for tag in &account.tags {
            if let Some(id) = symbols.tags.get(tag.as_str()) {
                facts.tags[*id as usize / 64] |= 1 << (id % 64);
            }
        }
        facts.funders.iter_mut().for_each(|word| *word = 0);
        for share in account.funders.iter().flat_map(|funders| funders.shares()) {
            if let Some(id) = symbols.funders.get(share.funder.as_str()) {
                facts.funders[*id as usize / 64] |= 1 << (id % 64);
            }
        }
        facts.scores.iter_mut().for_each(|score| *score = f64::NAN);
        for (model, value) in &account.scores {
            if let Some(id) = symbols.models.get(model.as_str()) {
                facts.scores[*id as usize] = *value;
            }
        }
        facts.attrs.iter_mut().for_each(|value| *value = UNKNOWN);
        for (name, value) in &account.attrs {
            if let Some(id) = symbols.attrs.get(name.as_str()) {
                facts.attrs[*id as usize] = symbols.attr_values.get(value.as_str()).copied().unwrap_or(UNKNOWN);
            }
        }
        facts.broken_promises = account.broken_promises;
        facts.attempts_7d = attempts_7d;
        facts.days_since_rpc = days_since_rpc;
    }

    /// `(name, content hash)` of every strategy.
    pub fn versions(&self) -> Vec<(String, String)> {
        self.strategies.iter().map(|s| (s.name.to_string(), s.content_hash.clone())).collect()
    }
}
