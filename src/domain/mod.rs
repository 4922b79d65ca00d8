//! Domain types of the loan book: accounts, borrowers, contact points, money, channels, flags and
//! outcomes, each built with `parse()`. No I/O and no clock here.

mod account;
mod capacity;
mod codes;
pub mod effects;
mod funding;
mod history;
pub mod promise;
mod reason;
mod risk;

pub use account::{Account, Borrower, ContactKind, ContactPoint, Portfolio};
pub use capacity::{QueueCapacity, QueueName};
pub use codes::{
    CallMatch, Cap, CaseState, Channel, DeliveryState, Direction, Disposition, EventType, Flag, Flags, Outcome,
    ParseCodeError, ShardState, TaskOrigin, TaskState,
};
pub use funding::{FundingShare, FundingShares, is_funder_name, minor_unit};
pub use history::{AttemptRecord, History, InFlight, Ledger, PromiseRecord};
pub use reason::Reason;
pub use risk::EventKind;

/// Money is always a decimal, never a float.
pub type Money = rust_decimal::Decimal;

/// Parses an amount of money written as a plain decimal ("1234.50"); rejects floats' exotica
/// (exponents, NaN) and negative values.
pub fn parse_money(text: &str) -> Result<Money, String> {
    let trimmed = text.trim();
    if !trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Err(format!("`{trimmed}` is not a decimal amount (write it like 1234.50)"));
    }
    let value: Money =
        trimmed.parse().map_err(|_| format!("`{trimmed}` is not a decimal amount (write it like 1234.50)"))?;
    if value.is_sign_negative() {
        return Err(format!("`{trimmed}` is negative; amounts must be zero or more"));
    }
    Ok(value)
}

/// Parses an IANA time-zone name such as `Asia/Shanghai`.
pub fn parse_timezone(text: &str) -> Result<chrono_tz::Tz, String> {
    let trimmed = text.trim();
    trimmed.parse::<chrono_tz::Tz>().map_err(|_| format!("`{trimmed}` is not an IANA time zone (like Europe/London)"))
}

/// Parses an E.164 phone number: `+` then 8 to 15 digits.
pub fn parse_phone(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or("");
    if digits.len() < 8 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{trimmed}` is not an E.164 phone number (like +8613800138000)"));
    }
    Ok(trimmed.to_string())
}

/// Parses an e-mail address loosely: one `@` with text on both sides and a dot in the domain.
pub fn parse_email(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    match trimmed.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !trimmed.contains(' ') =>
        {
            Ok(trimmed.to_string())
        }
        _ => Err(format!("`{trimmed}` is not an e-mail address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rejects_floats_exotica_and_negatives() {
        assert_eq!(parse_money("1234.50").unwrap().to_string(), "1234.50");
        assert!(parse_money("1e3").is_err());
        assert!(parse_money("-5").is_err());
        assert!(parse_money("abc").is_err());
    }

    #[test]
    fn phones_must_be_e164() {
        assert!(parse_phone("+8613800138000").is_ok());
        assert!(parse_phone("13800138000").is_err());
        assert!(parse_phone("+12ab").is_err());
    }
}
