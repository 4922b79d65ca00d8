//! The type of a risk event: one of the built-in [`EventType`]s or the lender's own
//! `custom:<name>`. Parsing and display only; what an event does is a strategy's `[[reaction]]`.

use super::{EventType, ParseCodeError};
use std::fmt;
use std::str::FromStr;

/// A risk event's type as sent and as a reaction's `on` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A built-in type.
    Standard(EventType),
    /// `custom:<name>`: lower-case letters, digits, `-` and `_`.
    Custom(String),
}

impl FromStr for EventKind {
    type Err = ParseCodeError;

    fn from_str(text: &str) -> Result<EventKind, ParseCodeError> {
        let text = text.trim();
        if let Some(name) = text.strip_prefix("custom:") {
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if valid {
                return Ok(EventKind::Custom(name.to_string()));
            }
        }
        text.parse::<EventType>().map(EventKind::Standard).map_err(|mut error| {
            error.expected.push_str(", custom:<name> (lower-case letters, digits, - and _)");
            error
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Standard(kind) => f.write_str(kind.code()),
            EventKind::Custom(name) => write!(f, "custom:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_and_bad_ones_name_the_choices() {
        for text in ["score_change", "fraud_alert", "custom:bureau-hit_2"] {
            assert_eq!(text.parse::<EventKind>().unwrap().to_string(), text);
        }
        let error = "fraud".parse::<EventKind>().unwrap_err().to_string();
        assert!(error.contains("legal_notice") && error.contains("custom:<name>"), "{error}");
        assert!("custom:".parse::<EventKind>().is_err());
        assert!("custom:Big Hit".parse::<EventKind>().is_err());
    }
}
