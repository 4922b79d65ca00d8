//! Co-lending funding shares: who funds an account and in what share (`bank-a:0.7;platform:0.3`),
//! and how an amount is split between them to the cent so that the funders' parts add up to the
//! amount exactly. Pure: it owns the format and the rounding rule, reads no store and knows no
//! report.
//!
//! The rounding rule (largest remainder): each funder gets its exact share of the amount rounded
//! down to the currency's minor unit; the minor units left over go one each to the funders with
//! the largest remainders, ties to the funder listed first. So per-funder figures summed over any
//! set of accounts add up to the portfolio's figure exactly, and no funder is ever off by more
//! than one minor unit per account from its exact share.

use super::Money;
use rust_decimal::RoundingStrategy;
use std::fmt;

/// Whether `name` is a funder's name: lower-case letters, digits, `-` and `_`, not empty.
pub fn is_funder_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One funder's share of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingShare {
    /// The funder's name (lower-case letters, digits, `-` and `_`).
    pub funder: String,
    /// Its share, in (0, 1].
    pub share: Money,
}

/// An account's funders, in the order written; their shares sum to exactly 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingShares(Vec<FundingShare>);

impl FundingShares {
    /// Reads `name:share;name:share…`. Every name is a valid funder name and appears once, every
    /// share is a plain decimal in (0, 1], and the shares sum to exactly 1; the error says which
    /// part is wrong.
    pub fn parse(text: &str) -> Result<FundingShares, String> {
        let mut shares: Vec<FundingShare> = Vec::new();
        for part in text.split(';').map(str::trim) {
            if part.is_empty() {
                return Err(format!(
                    "`{text}`: an empty part (write funder:share;funder:share, e.g. bank-a:0.7;platform:0.3)"
                ));
            }
            let (funder, share) =
                part.split_once(':').ok_or_else(|| format!("`{part}`: expected funder:share, e.g. bank-a:0.7"))?;
            let funder = funder.trim();
            if !is_funder_name(funder) {
                return Err(format!("`{funder}`: a funder name is lower-case letters, digits, - and _"));
            }
            if shares.iter().any(|held| held.funder == funder) {
                return Err(format!("`{funder}`: named twice"));
            }
            let share = share.trim();
            let value: Money = share
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
                .then(|| share.parse().ok())
                .flatten()
                .ok_or_else(|| format!("`{share}` ({funder}): a share is a decimal such as 0.7"))?;
            if value <= Money::ZERO || value > Money::ONE {
                return Err(format!("`{share}` ({funder}): a share is more than 0 and at most 1"));
            }
            shares.push(FundingShare { funder: funder.to_string(), share: value });
        }
        let total: Money = shares.iter().map(|share| share.share).sum();
        if total != Money::ONE {
            return Err(format!("`{text}`: the shares sum to {}, not 1", total.normalize()));
        }
        Ok(FundingShares(shares))
    }

    /// One funder owning everything.
    pub fn sole(funder: &str) -> FundingShares {
        FundingShares(vec![FundingShare { funder: funder.to_string(), share: Money::ONE }])
    }

    /// The shares, in the order written.
    pub fn shares(&self) -> &[FundingShare] {
        &self.0
    }

    /// `amount` split between the funders (in their order) at `scale` decimal places (the
    /// currency's minor unit: 2 for cents) by the module's rounding rule. The parts sum to
    /// `amount` rounded down to `scale` places exactly.
    pub fn split(&self, amount: Money, scale: u32) -> Vec<(&str, Money)> {
        let amount = amount.round_dp_with_strategy(scale, RoundingStrategy::ToZero);
        let unit = Money::new(1, scale);
        let mut parts: Vec<(&str, Money, Money)> = self
            .0
            .iter()
            .map(|share| {
                let exact = amount * share.share;
                let floor = exact.round_dp_with_strategy(scale, RoundingStrategy::ToZero);
                (share.funder.as_str(), floor, exact - floor)
            })
            .collect();
        let mut left = amount - parts.iter().map(|(_, floor, _)| *floor).sum::<Money>();
        // Largest remainder first; `sort_by` is stable, so ties keep the written order.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by(|a, b| parts[*b].2.abs().cmp(&parts[*a].2.abs()));
        let step = if left.is_sign_negative() { -unit } else { unit };
        // Each floor lost less than one unit, so fewer units are left than there are funders.
        for index in order {
            if left.is_zero() {
                break;
            }
            parts[index].1 += step;
            left -= step;
        }
        parts.into_iter().map(|(funder, part, _)| (funder, part)).collect()
    }
}

/// The decimal places of `currency`'s minor unit (ISO 4217: 2 for USD, 0 for JPY, 3 for KWD);
/// 2 for a code ISO 4217 does not list.
pub fn minor_unit(currency: &str) -> u32 {
    iso_currency::Currency::from_code(currency).and_then(|code| code.exponent()).map_or(2, u32::from)
}

impl FundingShares {
    /// `amount` in `currency` split between the funders by the rounding rule, at the currency's
    /// minor unit, or at the amount's own scale when it is finer (a stored `10.005` is split to
    /// the tenth of a cent), so the parts always sum to `amount` exactly.
    pub fn split_in(&self, amount: Money, currency: &str) -> Vec<(&str, Money)> {
        self.split(amount, minor_unit(currency).max(amount.scale()))
    }

    /// `funder`'s part of `amount` in `currency` ([`FundingShares::split_in`]); zero when it
    /// has no share.
    pub fn part_of(&self, funder: &str, amount: Money, currency: &str) -> Money {
        self.split_in(amount, currency)
            .into_iter()
            .find(|(name, _)| *name == funder)
            .map_or(Money::ZERO, |(_, part)| part)
    }

    /// Whether `funder` holds a share.
    pub fn has(&self, funder: &str) -> bool {
        self.0.iter().any(|share| share.funder == funder)
    }
}

impl fmt::Display for FundingShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> =
            self.0.iter().map(|share| format!("{}:{}", share.funder, share.share.normalize())).collect();
        f.write_str(&parts.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Money {
        text.parse().unwrap()
    }

    #[test]
    fn reads_the_written_form_and_writes_it_back() {
        let shares = FundingShares::parse("bank-a:0.7; platform:0.30").unwrap();
        assert_eq!(shares.shares().len(), 2);
        assert_eq!(shares.to_string(), "bank-a:0.7;platform:0.3");
        assert_eq!(FundingShares::parse(&shares.to_string()).unwrap(), shares);
    }

    #[test]
    fn bad_shares_say_which_part_is_wrong() {
        let error = |text: &str| FundingShares::parse(text).unwrap_err();
        assert!(error("bank-a:0.7;platform:0.2").contains("sum to 0.9, not 1"), "{}", error("bank-a:0.7;platform:0.2"));
        assert!(error("bank-a:0.7;bank-a:0.3").contains("named twice"));
        assert!(error("Bank A:1").contains("funder name"));
        assert!(error("bank-a:1e0").contains("a decimal such as 0.7"));
        assert!(error("bank-a:-0.5;b:1.5").contains("a decimal"));
        assert!(error("bank-a:0;b:1").contains("more than 0"));
        assert!(error("bank-a").contains("expected funder:share"));
        assert!(error("bank-a:1;").contains("an empty part"));
    }

    #[test]
    fn thirds_split_to_the_cent_and_add_up() {
        let shares = FundingShares::parse("a:0.3333333333;b:0.3333333333;c:0.3333333334").unwrap();
        let parts = shares.split(money("100.00"), 2);
        assert_eq!(parts, [("a", money("33.33")), ("b", money("33.33")), ("c", money("33.34"))]);
        let parts = shares.split(money("0.02"), 2);
        // 0.0066… each: c has the largest remainder, then a (listed before b).
        assert_eq!(parts, [("a", money("0.01")), ("b", money("0.00")), ("c", money("0.01"))]);
    }

    #[test]
    fn per_funder_sums_over_a_book_equal_the_book_exactly() {
        let shares = FundingShares::parse("bank-a:0.7;bank-b:0.1666;platform:0.1334").unwrap();
        let mut book = Money::ZERO;
        let mut funders = [Money::ZERO; 3];
        for cents in (1..5_000i64).map(|i| i * 37 % 100_003) {
            let amount = Money::new(cents, 2);
            book += amount;
            for (slot, (_, part)) in funders.iter_mut().zip(shares.split(amount, 2)) {
                *slot += part;
            }
        }
        assert_eq!(funders.iter().copied().sum::<Money>(), book);
        // Each funder within one cent per account of its exact share.
        for (slot, share) in funders.iter().zip(shares.shares()) {
            assert!((*slot - book * share.share).abs() <= Money::new(4_999, 2), "{slot} vs {}", book * share.share);
        }
    }

    #[test]
    fn a_sole_funder_takes_everything_and_zero_decimal_currencies_split_whole_units() {
        assert_eq!(FundingShares::sole("platform").split(money("12.345"), 2), [("platform", money("12.34"))]);
        let shares = FundingShares::parse("a:0.5;b:0.5").unwrap();
        assert_eq!(shares.split(money("101"), 0), [("a", money("51")), ("b", money("50"))]);
    }

    #[test]
    fn amounts_split_at_their_currency_minor_unit_or_finer_and_never_lose_a_fraction() {
        let shares = FundingShares::parse("a:0.3333333333;b:0.3333333333;c:0.3333333334").unwrap();
        assert_eq!(minor_unit("USD"), 2);
        assert_eq!(minor_unit("JPY"), 0);
        assert_eq!(minor_unit("KWD"), 3);
        let yen = shares.split_in(money("100"), "JPY");
        assert_eq!(yen, [("a", money("33")), ("b", money("33")), ("c", money("34"))]);
        let fine = shares.split_in(money("10.005"), "USD");
        assert_eq!(fine.iter().map(|(_, part)| *part).sum::<Money>(), money("10.005"));
        assert_eq!(shares.part_of("b", money("1"), "USD"), money("0.33"));
        assert_eq!(shares.part_of("z", money("1"), "USD"), Money::ZERO);
        assert!(shares.has("c") && !shares.has("z"));
    }
}
