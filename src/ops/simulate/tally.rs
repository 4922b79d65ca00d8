//! What one simulated run counts per account — attempts by channel, right-party contacts,
//! promises, promises kept, money collected, cures, agent minutes, human tasks expired unworked,
//! violations — so that two runs over the same book can be compared account by account (the
//! paired differences behind the confidence intervals). Plain bookkeeping: no I/O, no clock.

use crate::domain::{Channel, Money, Outcome, Portfolio};
use crate::strategy::StrategySet;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;

/// The book's accounts in a fixed order (by id), with their borrowers' ids and zones, so that
/// both runs of a comparison number the accounts alike.
#[derive(Debug, Clone)]
pub(super) struct AccountIndex {
    ids: Vec<String>,
    by_id: HashMap<String, usize>,
    borrower_of: Vec<usize>,
    borrowers: Vec<(String, Vec<Tz>)>,
    currencies: Vec<String>,
    strategies: HashMap<String, usize>,
}

impl AccountIndex {
    /// The accounts of `portfolio` (already in id order) and the strategies of `strategies`.
    pub fn new(portfolio: &Portfolio, strategies: &StrategySet) -> AccountIndex {
        let mut by_id = HashMap::default();
        let mut borrower_index: HashMap<String, usize> = HashMap::default();
        let mut borrowers = Vec::new();
        let mut borrower_of = Vec::with_capacity(portfolio.accounts.len());
        for (index, account) in portfolio.accounts.iter().enumerate() {
            by_id.insert(account.id.clone(), index);
            let borrower = *borrower_index.entry(account.borrower_id.clone()).or_insert_with(|| {
                let zones = portfolio
                    .borrowers
                    .get(&account.borrower_id)
                    .map(|borrower| borrower.timezones.clone())
                    .unwrap_or_else(|| vec![Tz::UTC]);
                borrowers.push((account.borrower_id.clone(), zones));
                borrowers.len() - 1
            });
            borrower_of.push(borrower);
        }
        AccountIndex {
            ids: portfolio.accounts.iter().map(|account| account.id.clone()).collect(),
            by_id,
            borrower_of,
            borrowers,
            currencies: portfolio.accounts.iter().map(|account| account.currency.clone()).collect(),
            strategies: strategies
                .strategies
                .iter()
                .enumerate()
                .map(|(index, strategy)| (strategy.name.to_string(), index))
                .collect(),
        }
    }

    /// Accounts.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The position of an account.
    pub fn of(&self, account_id: &str) -> Option<usize> {
        self.by_id.get(account_id).copied()
    }

    /// The id of the account at `index`.
    pub fn id(&self, index: usize) -> &str {
        &self.ids[index]
    }

    /// The account's currency.
    pub fn currency(&self, index: usize) -> &str {
        &self.currencies[index]
    }

    /// The account's borrower: id and zones.
    pub fn party(&self, index: usize) -> (&str, &[Tz]) {
        let (id, zones) = &self.borrowers[self.borrower_of[index]];
        (id, zones)
    }

    /// The position of a strategy of the set, by name.
    pub fn strategy_index(&self, name: &str) -> Option<usize> {
        self.strategies.get(name).copied()
    }

    /// The account whose row carries the violations of a borrower: the borrower's first account.
    pub fn first_account_of(&self) -> HashMap<&str, usize> {
        let mut first = HashMap::default();
        for (index, borrower) in self.borrower_of.iter().enumerate() {
            first.entry(self.borrowers[*borrower].0.as_str()).or_insert(index);
        }
        first
    }
}

/// One account's counts in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct AccountCounts {
    /// Attempts the engine accepted, by channel (`sms`, `email`, `robot`, `human`).
    pub attempts: [u32; 4],
    /// Right-party contacts (calls answered by the borrower: conversations and `paid_claimed`).
    pub rpc: u32,
    /// Right-party contacts by channel (as `attempts`; only calls have any).
    pub rpc_on: [u32; 4],
    /// Promises to pay made.
    pub promises: u32,
    /// Promises the engine resolved as kept by the end.
    pub kept: u32,
    /// Money paid during the run, in the account's currency.
    pub collected: Money,
    /// Owed something at the start and nothing at the end.
    pub cured: bool,
    /// Agents' handling minutes on the account.
    pub agent_minutes: f64,
    /// Human tasks that expired with no call made on them.
    pub expired_unworked: u32,
    /// Violations the independent check found in contacts with the account's borrower (carried
    /// by the borrower's first account).
    pub violations: u32,
}

/// The channels in the order of [`AccountCounts::attempts`].
pub(super) const CHANNELS: [Channel; 4] = [Channel::Sms, Channel::Email, Channel::Robot, Channel::Human];

pub(super) fn channel_slot(channel: Channel) -> usize {
    CHANNELS.iter().position(|known| *known == channel).unwrap_or(0)
}

/// Every account's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Tally {
    /// By account position.
    pub accounts: Vec<AccountCounts>,
}

impl Tally {
    /// Zeros for `accounts` accounts.
    pub fn new(accounts: usize) -> Tally {
        Tally { accounts: vec![AccountCounts::default(); accounts] }
    }

    /// An attempt the engine accepted.
    pub fn attempt(&mut self, account: usize, channel: Channel, outcome: Outcome) {
        let counts = &mut self.accounts[account];
        counts.attempts[channel_slot(channel)] += 1;
        if channel.is_call() && outcome.is_right_party() {
            counts.rpc += 1;
            counts.rpc_on[channel_slot(channel)] += 1;
        }
        if outcome == Outcome::Promise {
            counts.promises += 1;
        }
    }

    /// An agent's minutes on the account.
    pub fn agent_minutes(&mut self, account: usize, minutes: f64) {
        self.accounts[account].agent_minutes += minutes;
    }

    /// A payment posted.
    pub fn collected(&mut self, account: usize, amount: Money) {
        self.accounts[account].collected += amount;
    }
}
