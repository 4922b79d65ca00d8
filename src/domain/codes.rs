//! The fixed code lists of the contracts: channels, hard-stop flags and attempt outcomes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A value that is not one of a fixed list of codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct ParseCodeError {
    /// What kind of code was expected ("channel", "flag", "outcome").
    pub kind: &'static str,
    /// The text that was given.
    pub value: String,
    /// The accepted codes, comma-separated.
    pub expected: String,
}

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every code, in contract order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code written in files, JSON and the database.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseCodeError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text.trim() {
                    $($code => Ok($name::$variant),)+
                    other => Err(ParseCodeError {
                        kind: $kind,
                        value: other.to_string(),
                        expected: [$($code),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.code()) }
        }
    };
}

code_enum!(
    /// How a task reaches the borrower.
    Channel, "channel", {
        Sms => "sms",
        Email => "email",
        Robot => "robot",
        Human => "human",
    }
);

impl Channel {
    /// Robot and human channels place telephone calls.
    pub fn is_call(self) -> bool {
        matches!(self, Channel::Robot | Channel::Human)
    }
}

code_enum!(
    /// Hard-stop flags: no strategy or policy can lift them.
    Flag, "flag", {
        CeaseContact => "cease_contact",
        Deceased => "deceased",
        Bankruptcy => "bankruptcy",
        Attorney => "attorney",
        BreathingSpace => "breathing_space",
        Dispute => "dispute",
        DoNotCall => "do_not_call",
    }
);

impl Flag {
    /// Whether the flag stops every channel (all but `do_not_call`, which stops calls only).
    pub fn stops_all_contact(self) -> bool {
        !matches!(self, Flag::DoNotCall)
    }
}

/// A set of [`Flag`]s as a bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    /// The empty set.
    pub const NONE: Flags = Flags(0);

    /// Adds a flag.
    pub fn insert(&mut self, flag: Flag) {
        self.0 |= 1 << (flag as u8);
    }

    /// Whether the set holds the flag.
    pub fn contains(self, flag: Flag) -> bool {
        self.0 & (1 << (flag as u8)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags in the set, in contract order.
    pub fn iter(self) -> impl Iterator<Item = Flag> {
        Flag::ALL.iter().copied().filter(move |flag| self.contains(*flag))
    }

    /// Parses a `;`-separated list of flag codes; an unknown code is an error.
    pub fn parse_list(text: &str) -> Result<Flags, ParseCodeError> {
        let mut flags = Flags::NONE;
        for part in text.split(';').map(str::trim).filter(|part| !part.is_empty()) {
            flags.insert(part.parse()?);
        }
        Ok(flags)
    }

    /// The `;`-separated list of codes, as stored.
    pub fn to_list(self) -> String {
        self.iter().map(Flag::code).collect::<Vec<_>>().join(";")
    }
}

code_enum!(
    /// What happened on one contact attempt.
    Outcome, "outcome", {
        NoAnswer => "no_answer",
        Busy => "busy",
        Voicemail => "voicemail",
        Failed => "failed",
        WrongNumber => "wrong_number",
        Rpc => "rpc",
        ThirdParty => "third_party",
        Promise => "promise",
        Refused => "refused",
        Dispute => "dispute",
        Callback => "callback",
        DoNotCall => "do_not_call",
        PaidClaimed => "paid_claimed",
        Delivered => "delivered",
        Undelivered => "undelivered",
    }
);

impl Outcome {
    /// A conversation: the borrower was reached and talked (starts `us-reg-f`'s cool-down).
    pub fn is_conversation(self) -> bool {
        matches!(
            self,
            Outcome::Rpc
                | Outcome::Promise
                | Outcome::Refused
                | Outcome::Dispute
                | Outcome::Callback
                | Outcome::DoNotCall
        )
    }

    /// A connected right-party call (counted by `cn-gbt-45251`'s daily cap): a conversation or
    /// the borrower claiming to have paid.
    pub fn is_right_party(self) -> bool {
        self.is_conversation() || self == Outcome::PaidClaimed
    }

    /// An attempt on which nobody answered (counted per number by `cn-gbt-45251`).
    pub fn is_unanswered(self) -> bool {
        matches!(self, Outcome::NoAnswer | Outcome::Busy | Outcome::Voicemail | Outcome::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_name_the_accepted_list() {
        let error = "fax".parse::<Channel>().unwrap_err();
        assert_eq!(error.to_string(), "unknown channel `fax` (expected one of: sms, email, robot, human)");
        assert!(Flags::parse_list("deceased;vip").is_err());
    }

    #[test]
    fn flags_round_trip_through_their_list() {
        let flags = Flags::parse_list("dispute; do_not_call").unwrap();
        assert!(flags.contains(Flag::Dispute) && flags.contains(Flag::DoNotCall));
        assert!(!flags.contains(Flag::Deceased));
        assert_eq!(flags.to_list(), "dispute;do_not_call");
    }
}
