//! The roll matrix as collectors read it: where the accounts (and the balance) in each state at
//! a period's start are at its end — the roll rate (the share that moved to a worse stage), the
//! cure rate (the share back to `current`) and every other cell, by count and by balance per
//! currency; and the order of states that "worse" means ([`StageOrder`]).
//!
//! Pure: the store supplies each account's latest stage entry and latest cure before each
//! bound ([`AccountStates`]) and folds them into [`StateCells`] as it reads them, page by page;
//! this module decides the states from them and never reads a store.

use super::{CurrencyAmount, ratio};
use crate::domain::Money;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The state of an account paid up (its amount due brought to zero by a payment) and not
/// classified into a stage since.
pub const CURRENT: &str = "current";

/// How bad each stage is: its first day past due in the strategies in force. `current` is
/// better than every stage; a stage no strategy defines any more ranks after all known ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageOrder {
    first_dpd: BTreeMap<String, i32>,
}

impl StageOrder {
    /// The order from `(stage, first day past due)` pairs; a name defined twice keeps its
    /// lowest first day.
    pub fn new<'a>(stages: impl IntoIterator<Item = (&'a str, i32)>) -> StageOrder {
        let mut first_dpd: BTreeMap<String, i32> = BTreeMap::new();
        for (name, first) in stages {
            let entry = first_dpd.entry(name.to_string()).or_insert(first);
            *entry = (*entry).min(first);
        }
        StageOrder { first_dpd }
    }

    /// The order of the stages of a strategy set.
    pub fn of(strategies: &crate::strategy::StrategySet) -> StageOrder {
        StageOrder::new(
            strategies.strategies.iter().flat_map(|strategy| strategy.stages.iter().map(|s| (&*s.name, s.first))),
        )
    }

    /// The sort key of a state: `current` first, then stages by first day past due, then
    /// unknown stages by name.
    pub fn rank(&self, state: &str) -> (u8, i64, String) {
        if state == CURRENT {
            return (0, 0, String::new());
        }
        match self.first_dpd.get(state) {
            Some(first) => (1, i64::from(*first), state.to_string()),
            None => (2, 0, state.to_string()),
        }
    }

    /// Whether `to` is a worse state than `from` (a stage of later first day; unknown stages are
    /// compared by nothing, so never worse).
    pub fn worse(&self, from: &str, to: &str) -> bool {
        let (from, to) = (self.rank(from), self.rank(to));
        from.0 < 2 && to.0 < 2 && (to.0, to.1) > (from.0, from.1)
    }

    /// Whether a stage is delinquent (its first day past due is at least 1): entering one from
    /// no stage, `current` or a pre-due stage is entering collections.
    pub fn delinquent(&self, stage: &str) -> bool {
        stage != CURRENT && self.first_dpd.get(stage).is_none_or(|first| *first >= 1)
    }
}

/// What the store knows of one account at the two bounds of a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStates {
    /// The account.
    pub account_id: String,
    /// Its currency.
    pub currency: String,
    /// Its balance now.
    pub balance_now: Money,
    /// The payments received since the period's start (they lowered the balance since).
    pub paid_since_start: Money,
    /// The payments received since the period's end (zero for a period ending now).
    pub paid_since_end: Money,
    /// The latest stage entry before the period's start: stage and instant.
    pub start_stage: Option<(String, DateTime<Utc>)>,
    /// The latest paid-in-full before the period's start.
    pub start_cure: Option<DateTime<Utc>>,
    /// The latest stage entry before the period's end.
    pub end_stage: Option<(String, DateTime<Utc>)>,
    /// The latest paid-in-full before the period's end.
    pub end_cure: Option<DateTime<Utc>>,
}

/// An account's state from its latest stage entry and latest cure before an instant: whichever
/// is later (a cure at the same instant as a stage entry wins); none when it has neither.
pub fn state_at(stage: Option<&(String, DateTime<Utc>)>, cure: Option<DateTime<Utc>>) -> Option<&str> {
    match (stage, cure) {
        (Some((stage, at)), Some(cured)) if *at > cured => Some(stage.as_str()),
        (_, Some(_)) => Some(CURRENT),
        (Some((stage, _)), None) => Some(stage.as_str()),
        (None, None) => None,
    }
}

/// One cell of the matrix: the accounts that were in the row's state at the start and in
/// `to` at the end.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RollCell {
    /// The state at the period's end.
    pub to: String,
    /// Accounts.
    pub accounts: u64,
    /// `accounts` / the row's accounts.
    pub share: f64,
    /// Their balance at the period's start, per currency, with its share of the row's balance
    /// in that currency.
    pub balance: Vec<CurrencyAmount>,
}

/// One row of the matrix: the accounts in one state at the period's start.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RollRow {
    /// The state at the period's start.
    pub from: String,
    /// Accounts in it at the start.
    pub accounts: u64,
    /// Their balance at the start, per currency.
    pub balance: Vec<CurrencyAmount>,
    /// Where they are at the end, in state order (only non-empty cells).
    pub cells: Vec<RollCell>,
    /// Roll rate: the share of the row's accounts in a worse stage at the end; null for an
    /// empty row.
    pub roll_rate: Option<f64>,
    /// The roll rate by balance, per currency (`share` = rolled balance / row balance).
    pub balance_roll_rate: Vec<CurrencyAmount>,
    /// Cure rate: the share of the row's accounts `current` at the end (null for the
    /// `current` row itself).
    pub cure_rate: Option<f64>,
    /// The cure rate by balance, per currency.
    pub balance_cure_rate: Vec<CurrencyAmount>,
}

/// The roll matrix of a period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RollMatrix {
    /// Every state that occurs, best first: `current`, then stages by first day past due.
    pub states: Vec<String>,
    /// One row per state at the start, in state order.
    pub rows: Vec<RollRow>,
    /// Accounts in no state at the start (they entered collections during the period), by
    /// state at the end (`from` is `(entered)`); no roll rate.
    pub entered: Option<RollRow>,
}

/// One cell of [`StateCells`]: the accounts of one currency in one state at a period's start
/// and one at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StateCell {
    accounts: u64,
    /// Their balance at the start (each account's at least zero).
    balance_start: Money,
    /// Their balance at the end.
    balance_end: Money,
}

/// The accounts of a book folded by (state at a period's start, state at its end, currency):
/// everything the roll matrix and the balances by stage read, in memory that follows the
/// number of states and currencies, not of accounts. The store adds the accounts page by page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCells {
    /// `(start, end, currency, cell)`; a start of `None`: in no state at the start.
    cells: Vec<(Option<String>, String, String, StateCell)>,
}

impl StateCells {
    /// The cells of `accounts`.
    pub fn of<'a>(accounts: impl IntoIterator<Item = &'a AccountStates>) -> StateCells {
        let mut cells = StateCells::default();
        for account in accounts {
            cells.add(account);
        }
        cells
    }

    /// Adds one account (nothing when it is in no state at the period's end).
    pub fn add(&mut self, account: &AccountStates) {
        let Some(end) = state_at(account.end_stage.as_ref(), account.end_cure) else { return };
        let start = state_at(account.start_stage.as_ref(), account.start_cure);
        let currency = account.currency.as_str();
        let found = self.cells.iter().position(|(from, to, held, _)| {
            from.as_deref() == start && to.as_str() == end && held.as_str() == currency
        });
        let index = found.unwrap_or_else(|| {
            self.cells.push((start.map(str::to_string), end.to_string(), currency.to_string(), StateCell::default()));
            self.cells.len() - 1
        });
        let cell = &mut self.cells[index].3;
        cell.accounts += 1;
        cell.balance_start += (account.balance_now + account.paid_since_start).max(Money::ZERO);
        cell.balance_end += account.balance_now + account.paid_since_end;
    }

    /// The number of accounts added in a state at the period's end.
    pub fn accounts(&self) -> u64 {
        self.cells.iter().map(|(_, _, _, cell)| cell.accounts).sum()
    }
}

/// Builds the matrix from the accounts' states at the period's bounds.
pub fn roll_matrix(accounts: &StateCells, order: &StageOrder) -> RollMatrix {
    // (from, to) -> (accounts, balance per currency); from None = entered in the period.
    type Cells<'a> = BTreeMap<(Option<&'a str>, &'a str), (u64, BTreeMap<&'a str, Money>)>;
    let mut cells: Cells = BTreeMap::new();
    for (start, end, currency, held) in &accounts.cells {
        let cell = cells.entry((start.as_deref(), end.as_str())).or_default();
        cell.0 += held.accounts;
        *cell.1.entry(currency.as_str()).or_default() += held.balance_start;
    }
    let mut states: Vec<&str> = cells.keys().flat_map(|(from, to)| from.iter().copied().chain([*to])).collect();
    states.sort_by_key(|state| order.rank(state));
    states.dedup();

    let row_of = |from: Option<&str>| -> Option<RollRow> {
        let mut row_accounts = 0;
        let mut row_balance: BTreeMap<&str, Money> = BTreeMap::new();
        let mut row_cells = Vec::new();
        for to in &states {
            let Some((count, balance)) = cells.get(&(from, *to)) else { continue };
            row_accounts += count;
            for (currency, amount) in balance {
                *row_balance.entry(currency).or_default() += *amount;
            }
            row_cells.push((*to, *count, balance));
        }
        if row_accounts == 0 {
            return None;
        }
        let share_of = |part: &BTreeMap<&str, Money>| -> Vec<CurrencyAmount> {
            row_balance
                .iter()
                .map(|(currency, total)| {
                    CurrencyAmount::share(currency, part.get(currency).copied().unwrap_or_default(), *total)
                })
                .collect()
        };
        let sum_where = |keep: &dyn Fn(&str) -> bool| -> (u64, BTreeMap<&str, Money>) {
            let mut accounts = 0;
            let mut balance: BTreeMap<&str, Money> = BTreeMap::new();
            for (to, count, amounts) in &row_cells {
                if keep(to) {
                    accounts += count;
                    for (currency, amount) in amounts.iter() {
                        *balance.entry(currency).or_default() += *amount;
                    }
                }
            }
            (accounts, balance)
        };
        let (rolled, rolled_balance) = match from {
            Some(from) => sum_where(&|to| order.worse(from, to)),
            None => (0, BTreeMap::new()),
        };
        let (cured, cured_balance) = sum_where(&|to| to == CURRENT);
        let is_current = from == Some(CURRENT);
        Some(RollRow {
            from: from.unwrap_or("(entered)").to_string(),
            accounts: row_accounts,
            balance: row_balance.iter().map(|(currency, amount)| CurrencyAmount::new(currency, *amount)).collect(),
            cells: row_cells
                .iter()
                .map(|(to, count, balance)| RollCell {
                    to: to.to_string(),
                    accounts: *count,
                    share: ratio(*count, row_accounts).unwrap_or(0.0),
                    balance: share_of(balance),
                })
                .collect(),
            roll_rate: from.and(ratio(rolled, row_accounts)),
            balance_roll_rate: if from.is_some() { share_of(&rolled_balance) } else { Vec::new() },
            cure_rate: if is_current { None } else { ratio(cured, row_accounts) },
            balance_cure_rate: if is_current { Vec::new() } else { share_of(&cured_balance) },
        })
    };
    let rows = states.iter().filter_map(|state| row_of(Some(state))).collect();
    let entered = row_of(None);
    RollMatrix { states: states.iter().map(|state| state.to_string()).collect(), rows, entered }
}

/// The accounts in one state at a period's end, and their balance then.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StageBalance {
    /// The state (`current` or a stage).
    pub stage: String,
    /// Accounts in it.
    pub accounts: u64,
    /// Their balance at the period's end (the balance now plus what was paid since), per
    /// currency.
    pub balance: Vec<CurrencyAmount>,
}

/// The book at the period's end by state, best state first: what a funder reads as its
/// balances by stage.
pub fn stage_balances(accounts: &StateCells, order: &StageOrder) -> Vec<StageBalance> {
    let mut by_state: BTreeMap<&str, (u64, BTreeMap<&str, Money>)> = BTreeMap::new();
    for (_, end, currency, held) in &accounts.cells {
        let entry = by_state.entry(end.as_str()).or_default();
        entry.0 += held.accounts;
        *entry.1.entry(currency.as_str()).or_default() += held.balance_end;
    }
    let mut states: Vec<_> = by_state.into_iter().collect();
    states.sort_by_key(|(state, _)| order.rank(state));
    states
        .into_iter()
        .map(|(stage, (accounts, balance))| StageBalance {
            stage: stage.to_string(),
            accounts,
            balance: balance.iter().map(|(currency, amount)| CurrencyAmount::new(currency, *amount)).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn order() -> StageOrder {
        StageOrder::new([("pre-due", -3), ("M1", 1), ("M2", 31), ("M3", 61)])
    }

    fn account(id: &str, currency: &str, balance: &str, start: Option<&str>, end: &str) -> AccountStates {
        let entry = |stage: &str, day: &str| Some((stage.to_string(), at(day)));
        let (start_stage, start_cure) = match start {
            Some(CURRENT) => (entry("M1", "2026-10-01T06:00:00Z"), Some(at("2026-10-20T12:00:00Z"))),
            Some(stage) => (entry(stage, "2026-10-25T06:00:00Z"), None),
            None => (None, None),
        };
        let (end_stage, end_cure) = match end {
            CURRENT => (start_stage.clone(), Some(at("2026-11-03T12:00:00Z"))),
            stage => (entry(stage, "2026-11-04T06:00:00Z"), start_cure),
        };
        AccountStates {
            account_id: id.into(),
            currency: currency.into(),
            balance_now: balance.parse().unwrap(),
            paid_since_start: Money::ZERO,
            paid_since_end: Money::ZERO,
            start_stage,
            start_cure,
            end_stage,
            end_cure,
        }
    }

    #[test]
    fn the_latest_of_stage_entry_and_cure_is_the_state() {
        let entry = ("M1".to_string(), at("2026-11-01T06:00:00Z"));
        assert_eq!(state_at(Some(&entry), None), Some("M1"));
        assert_eq!(state_at(Some(&entry), Some(at("2026-11-01T07:00:00Z"))), Some(CURRENT));
        assert_eq!(state_at(Some(&entry), Some(at("2026-11-01T06:00:00Z"))), Some(CURRENT), "a tie is a cure");
        assert_eq!(state_at(Some(&entry), Some(at("2026-10-01T06:00:00Z"))), Some("M1"), "re-entered after a cure");
        assert_eq!(state_at(None, None), None);
    }

    #[test]
    fn worse_means_a_later_first_day_past_due() {
        let order = order();
        assert!(order.worse("M1", "M2") && order.worse(CURRENT, "pre-due") && order.worse("pre-due", "M1"));
        assert!(!order.worse("M2", "M1") && !order.worse("M1", "M1") && !order.worse("M1", CURRENT));
        assert!(!order.worse("M1", "gone") && !order.worse("gone", "M1"), "unknown stages are never worse");
        assert!(order.delinquent("M1") && !order.delinquent("pre-due") && !order.delinquent(CURRENT));
    }

    /// Worked out on paper: 10 accounts at the start, 1 entered during the period.
    ///
    /// | start \ end | current | M1 | M2 | M3 |
    /// | M1 (4, USD 100 each + 1 CNY 1000) | 1 (USD) | 1 (USD) | 2 (USD) + 1 (CNY) | |
    /// | M2 (3, USD 200 each) | 1 | | 1 | 1 |
    /// | current (1, USD 50) | 1 | | | |
    ///
    /// M1: roll rate 3/5 = 60 %, by balance USD 200/400 = 50 % and CNY 1000/1000 = 100 %; cure
    /// rate 1/5. M2: roll rate 1/3, cure rate 1/3.
    #[test]
    fn a_matrix_worked_out_on_paper() {
        let accounts = vec![
            account("a", "USD", "100", Some("M1"), CURRENT),
            account("b", "USD", "100", Some("M1"), "M1"),
            account("c", "USD", "100", Some("M1"), "M2"),
            account("d", "USD", "100", Some("M1"), "M2"),
            account("e", "CNY", "1000", Some("M1"), "M2"),
            account("f", "USD", "200", Some("M2"), CURRENT),
            account("g", "USD", "200", Some("M2"), "M2"),
            account("h", "USD", "200", Some("M2"), "M3"),
            account("i", "USD", "50", Some(CURRENT), CURRENT),
            account("j", "USD", "70", None, "M1"),
            AccountStates { end_stage: None, ..account("k", "USD", "1", None, "M1") },
        ];
        let matrix = roll_matrix(&StateCells::of(&accounts), &order());
        assert_eq!(matrix.states, [CURRENT, "M1", "M2", "M3"]);
        let names: Vec<&str> = matrix.rows.iter().map(|row| row.from.as_str()).collect();
        assert_eq!(names, [CURRENT, "M1", "M2"]);

        let m1 = &matrix.rows[1];
        assert_eq!(m1.accounts, 5);
        assert_eq!(m1.roll_rate, Some(0.6));
        assert_eq!(m1.cure_rate, Some(0.2));
        let usd = m1.balance_roll_rate.iter().find(|amount| amount.currency == "USD").unwrap();
        assert_eq!((usd.amount, usd.share), ("200".parse().unwrap(), Some(0.5)));
        let cny = m1.balance_roll_rate.iter().find(|amount| amount.currency == "CNY").unwrap();
        assert_eq!((cny.amount, cny.share), ("1000".parse().unwrap(), Some(1.0)));
        assert_eq!(m1.balance.len(), 2, "never summed across currencies");
        let to_m2 = m1.cells.iter().find(|cell| cell.to == "M2").unwrap();
        assert_eq!((to_m2.accounts, to_m2.share), (3, 0.6));

        let m2 = &matrix.rows[2];
        assert_eq!((m2.accounts, m2.roll_rate, m2.cure_rate), (3, Some(1.0 / 3.0), Some(1.0 / 3.0)));
        let cells: Vec<(&str, u64)> = m2.cells.iter().map(|cell| (cell.to.as_str(), cell.accounts)).collect();
        assert_eq!(cells, [(CURRENT, 1), ("M2", 1), ("M3", 1)]);

        let current = &matrix.rows[0];
        assert_eq!((current.accounts, current.roll_rate, current.cure_rate), (1, Some(0.0), None));
        let entered = matrix.entered.unwrap();
        assert_eq!((entered.accounts, entered.roll_rate), (1, None), "k has no state at the end: not counted");
    }

    #[test]
    fn the_balance_at_the_start_adds_back_what_was_paid_since() {
        let mut paid = account("a", "USD", "0", Some("M1"), CURRENT);
        paid.paid_since_start = "120.50".parse().unwrap();
        let matrix = roll_matrix(&StateCells::of([&paid]), &order());
        assert_eq!(matrix.rows[0].balance[0].amount, "120.50".parse::<Money>().unwrap());
        assert_eq!(matrix.rows[0].balance_cure_rate[0].share, Some(1.0));
    }

    #[test]
    fn cells_follow_the_states_not_the_accounts() {
        let accounts: Vec<AccountStates> = (0..1000)
            .map(|i| {
                let end = if i % 4 == 0 { CURRENT } else { "M2" };
                account(&format!("a{i}"), "USD", "10", Some("M1"), end)
            })
            .collect();
        let cells = StateCells::of(&accounts);
        assert_eq!(cells.cells.len(), 2, "two (start, end, currency) cells for a thousand accounts");
        assert_eq!(cells.accounts(), 1000);
        let balances = stage_balances(&cells, &order());
        let by_stage: Vec<(&str, u64)> = balances.iter().map(|b| (b.stage.as_str(), b.accounts)).collect();
        assert_eq!(by_stage, [(CURRENT, 250), ("M2", 750)]);
        assert_eq!(balances[1].balance[0].amount, "7500".parse::<Money>().unwrap());
        let row = &roll_matrix(&cells, &order()).rows[0];
        assert_eq!((row.from.as_str(), row.roll_rate, row.cure_rate), ("M1", Some(0.75), Some(0.25)));
    }
}
