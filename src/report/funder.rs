//! A co-lending funder's view of the KPI report: whose accounts a report covers
//! ([`FunderScope`]) and a funder's share of every amount in a period's rows
//! ([`take_share`]), split per account by `domain::FundingShares` (the rounding rule of
//! `docs/funders.md`), so that the funders' figures add up to the portfolio's to the cent.
//!
//! Pure: the store selects the accounts of the scope and loads their shares; no KPI is
//! defined here (counts stay counts of the funder's accounts, see `docs/funders.md`).

use super::{AccountStates, KpiInput, ReportError};
use crate::domain::{FundingShares, Money, is_funder_name};
use std::collections::HashMap;
use std::fmt;

/// The name a report gives the accounts no funder holds a share of (wholly the lender's own).
pub const UNFUNDED: &str = "(none)";

/// Whose accounts a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum FunderScope {
    /// The whole portfolio.
    #[default]
    All,
    /// The accounts this funder holds a share of, every amount cut to its share.
    Funder(String),
    /// The accounts without funding shares (the lender's own), amounts whole.
    Unfunded,
}

impl FunderScope {
    /// `bank-a` (a funder's name) or `(none)` (the unfunded accounts); the error names the
    /// `funder` parameter.
    pub fn parse(text: &str) -> Result<FunderScope, ReportError> {
        match text.trim() {
            UNFUNDED => Ok(FunderScope::Unfunded),
            name if is_funder_name(name) => Ok(FunderScope::Funder(name.to_string())),
            other => Err(ReportError::invalid(
                "funder",
                format!(
                    "`{other}` is not a funder name (lower-case letters, digits, - and _) nor {UNFUNDED} (the \
                     accounts no funder holds a share of)"
                ),
            )),
        }
    }

    /// The funder named, when the scope is one funder.
    pub fn funder(&self) -> Option<&str> {
        match self {
            FunderScope::Funder(name) => Some(name),
            _ => None,
        }
    }

    /// How a report names the scope: the funder, `(none)`, or `None` for the whole portfolio.
    pub fn label(&self) -> Option<String> {
        match self {
            FunderScope::All => None,
            FunderScope::Funder(name) => Some(name.clone()),
            FunderScope::Unfunded => Some(UNFUNDED.to_string()),
        }
    }
}

impl fmt::Display for FunderScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label().as_deref().unwrap_or("(all)"))
    }
}

/// Cuts the amounts of `input`'s rows (already restricted to `funder`'s accounts) to `funder`'s
/// part, account by account: payments and promises resolved. An account missing from `shares`
/// counts nothing. The states are cut as the store reads them ([`share_states`]).
pub fn take_share(input: &mut KpiInput, funder: &str, shares: &HashMap<String, FundingShares>) {
    for payment in &mut input.payments {
        payment.amount = part(shares.get(&payment.account_id), funder, payment.amount, &payment.currency);
    }
    for promise in &mut input.promises_resolved {
        promise.amount = part(shares.get(&promise.account_id), funder, promise.amount, &promise.currency);
    }
}

/// `funder`'s part of `amount` of an account with `shares` (none: nothing).
fn part(shares: Option<&FundingShares>, funder: &str, amount: Money, currency: &str) -> Money {
    shares.map_or(Money::ZERO, |shares| shares.part_of(funder, amount, currency))
}

/// Cuts one account's balances (now, and at both bounds of the period) to `funder`'s part of
/// them, each exactly; what was paid since a bound is the difference, so every balance adds up
/// across funders. No shares (an account `funder` holds none of) counts nothing.
pub fn share_states(states: &mut AccountStates, funder: &str, shares: Option<&FundingShares>) {
    let currency = states.currency.as_str();
    let start = part(shares, funder, states.balance_now + states.paid_since_start, currency);
    let end = part(shares, funder, states.balance_now + states.paid_since_end, currency);
    let now = part(shares, funder, states.balance_now, currency);
    states.balance_now = now;
    states.paid_since_start = start - now;
    states.paid_since_end = end - now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{PaymentRow, ResolvedPromise};

    fn money(text: &str) -> Money {
        text.parse().unwrap()
    }

    #[test]
    fn scopes_read_a_funder_name_or_the_unfunded_accounts() {
        assert_eq!(FunderScope::parse("bank-a").unwrap(), FunderScope::Funder("bank-a".into()));
        assert_eq!(FunderScope::parse("(none)").unwrap(), FunderScope::Unfunded);
        assert_eq!(FunderScope::parse("Bank A").unwrap_err().parameter(), "funder");
    }

    #[test]
    fn the_funders_shares_of_a_period_add_up_to_its_amounts_to_the_cent() {
        let thirds = FundingShares::parse("a:0.3333;b:0.3333;c:0.3334").unwrap();
        let shares: HashMap<String, FundingShares> = [("X".to_string(), thirds)].into();
        let input = KpiInput {
            payments: vec![PaymentRow {
                account_id: "X".into(),
                group: None,
                amount: money("100"),
                currency: "USD".into(),
            }],
            promises_resolved: vec![ResolvedPromise {
                account_id: "X".into(),
                group: None,
                kept: true,
                amount: money("0.05"),
                currency: "USD".into(),
            }],
            ..KpiInput::default()
        };
        let states = AccountStates {
            account_id: "X".into(),
            currency: "USD".into(),
            balance_now: money("10.01"),
            paid_since_start: money("100"),
            paid_since_end: money("0.02"),
            start_stage: None,
            start_cure: None,
            end_stage: None,
            end_cure: None,
        };
        let mut sums = (Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO, Money::ZERO);
        for funder in ["a", "b", "c"] {
            let mut mine = input.clone();
            take_share(&mut mine, funder, &shares);
            let mut my_states = states.clone();
            share_states(&mut my_states, funder, shares.get("X"));
            sums.0 += mine.payments[0].amount;
            sums.1 += mine.promises_resolved[0].amount;
            sums.2 += my_states.balance_now;
            sums.3 += my_states.balance_now + my_states.paid_since_start;
            sums.4 += my_states.balance_now + my_states.paid_since_end;
        }
        assert_eq!(sums, (money("100"), money("0.05"), money("10.01"), money("110.01"), money("10.03")));
        let mut c = input.clone();
        take_share(&mut c, "c", &shares);
        assert_eq!(c.payments[0].amount, money("33.34"), "the largest remainder takes the last cent");
        let mut stranger = input;
        take_share(&mut stranger, "z", &shares);
        assert_eq!(stranger.payments[0].amount, Money::ZERO);
        let mut strangers_states = states;
        share_states(&mut strangers_states, "z", shares.get("X"));
        assert_eq!(strangers_states.balance_now + strangers_states.paid_since_start, Money::ZERO);
    }
}
