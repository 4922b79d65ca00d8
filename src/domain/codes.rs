//! The fixed code lists of the contracts: channels, hard-stop flags, attempt outcomes, task and
//! delivery states, task origins, the policy's caps, risk event types, case states and
//! dispositions. One source per code: parse, display,
//! the list, and the SQL literals (`sql_list`) the store's statements and indexes use.

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

        impl $name {
            /// The codes as an SQL list literal, `('a', 'b')`, for `IN` clauses and partial
            /// indexes (the codes are fixed identifiers: nothing to escape).
            pub fn sql_list(items: &[$name]) -> String {
                let quoted: Vec<String> = items.iter().map(|item| format!("'{}'", item.code())).collect();
                format!("({})", quoted.join(", "))
            }
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

    /// Takes a flag out.
    pub fn remove(&mut self, flag: Flag) {
        self.0 &= !(1 << (flag as u8));
    }

    /// The flags in either set.
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
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

code_enum!(
    /// Where a task is in its life: `planned` → `ready` (human, window open) or `dispatched`
    /// (sent to the outbox) → `leased` (human) → `done`; or `cancelled` (the gate said no, a
    /// payment, a promise), `expired` (its window closed) or `escalated` (handed to a person).
    TaskState, "task state", {
        Planned => "planned",
        Ready => "ready",
        Dispatched => "dispatched",
        Leased => "leased",
        Done => "done",
        Cancelled => "cancelled",
        Expired => "expired",
        Escalated => "escalated",
    }
);

impl TaskState {
    /// Open: not yet handed to anyone; may still be released or leased.
    pub const OPEN: &'static [TaskState] = &[TaskState::Planned, TaskState::Ready];
    /// In flight: handed to a machine (`dispatched`) or a person (`leased`), outcome not yet
    /// reported. Calls in flight count as possibly connected.
    pub const IN_FLIGHT: &'static [TaskState] = &[TaskState::Dispatched, TaskState::Leased];
    /// Live: open or in flight; what a cancellation or an expiry closes.
    pub const LIVE: &'static [TaskState] =
        &[TaskState::Planned, TaskState::Ready, TaskState::Leased, TaskState::Dispatched];

    /// Whether the task may still be handed out.
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Whether the task is with a machine or a person, outcome not reported.
    pub fn is_in_flight(self) -> bool {
        Self::IN_FLIGHT.contains(&self)
    }

    /// Whether nothing more will happen to the task.
    pub fn is_final(self) -> bool {
        !Self::LIVE.contains(&self)
    }
}

code_enum!(
    /// Where a webhook message is: `pending` (due or retrying), `delivered` (final), `dead`
    /// (retries exhausted; replayable), `disabled` (its endpoint answered 410), or `void` (its
    /// task was no longer sendable when its turn came: never sent).
    DeliveryState, "delivery state", {
        Pending => "pending",
        Delivered => "delivered",
        Dead => "dead",
        Disabled => "disabled",
        Void => "void",
    }
);

code_enum!(
    /// Why a task exists: the daily `plan`, an `escalation` from robot to person, or a
    /// `callback` the borrower asked for (a consent-based call under Reg F §1006.14(b)(3)).
    TaskOrigin, "task origin", {
        Plan => "plan",
        Escalation => "escalation",
        Callback => "callback",
        Transfer => "transfer",
    }
);

code_enum!(
    /// Where a shard of a sharded plan run is: `open` (nobody plans it), `claimed` (a planner
    /// plans it, or did until its heartbeat stopped) or `done` (all its accounts are saved).
    ShardState, "shard state", {
        Open => "open",
        Claimed => "claimed",
        Done => "done",
    }
);

code_enum!(
    /// The policy's caps, as named in `cap:<name>` reason codes.
    Cap, "cap", {
        RpcPerDay => "rpc_per_day",
        Calls7d => "calls_7d",
        CallsPerDay => "calls_per_day",
        UnansweredPerNumber => "unanswered_per_number",
    }
);

code_enum!(
    /// Who placed a call: the engine (`outbound`, the calls the caps count) or the borrower
    /// (`inbound`: Reg F counts placed calls, so these count toward no call cap; a conversation
    /// on one still starts the cool-down).
    Direction, "direction", {
        Outbound => "outbound",
        Inbound => "inbound",
    }
);

code_enum!(
    /// How an inbound caller's number matched the book: one borrower, several (a shared
    /// number: the candidates are listed), or none.
    CallMatch, "call match", {
        Single => "single",
        Shared => "shared",
        Unknown => "unknown",
    }
);

code_enum!(
    /// The built-in types of risk events (`custom:<name>` is the lender's own; see
    /// [`crate::domain::EventKind`]).
    EventType, "event type", {
        ScoreChange => "score_change",
        MissedPaymentElsewhere => "missed_payment_elsewhere",
        ContactChanged => "contact_changed",
        FraudAlert => "fraud_alert",
        LegalNotice => "legal_notice",
    }
);

code_enum!(
    /// What the team found when it closed a reaction's case: the feedback that measures the
    /// reaction (its precision is the `confirmed` share).
    Disposition, "disposition", {
        Confirmed => "confirmed",
        FalseAlarm => "false_alarm",
        Resolved => "resolved",
        Escalated => "escalated",
    }
);

code_enum!(
    /// Where a reaction's case is: `open` (in its queue, taken or not) or `closed` (with a
    /// disposition).
    CaseState, "case state", {
        Open => "open",
        Closed => "closed",
    }
);

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

    #[test]
    fn the_partial_indexes_name_the_states_the_code_means() {
        // The migrations are plain SQL text (the migration crate cannot see these types): their
        // state literals must be the codes, or an index would serve no query.
        let leases = include_str!("../../migration/src/m20261122_000003_leases.rs");
        let release = include_str!("../../migration/src/m20261122_000005_release.rs");
        let open = TaskState::sql_list(TaskState::OPEN);
        assert!(leases.contains(&format!("state IN {open}")) && release.contains(&format!("state IN {open}")));
        assert!(leases.contains(&format!("WHERE state = '{}'", TaskState::Leased.code())));
        assert!(leases.contains(&format!("channel = '{}'", Channel::Human.code())));
        let in_flight = include_str!("../../migration/src/m20261207_000015_in_flight_borrower.rs");
        assert!(in_flight.contains(&format!("state IN {}", TaskState::sql_list(TaskState::IN_FLIGHT))));
        let expiry = include_str!("../../migration/src/m20261207_000019_released_expiry_index.rs");
        assert!(expiry.contains(&format!("WHERE state IN {}", TaskState::sql_list(crate::store::tasks::RELEASED))));
        let shards = include_str!("../../migration/src/m20261207_000016_plan_shards.rs");
        assert!(shards.contains(&format!(".default(\"{}\")", ShardState::Open.code())));
    }

    #[test]
    fn task_states_partition_and_list_as_sql() {
        for state in TaskState::ALL {
            let kinds = [state.is_open(), state.is_in_flight(), state.is_final()];
            assert_eq!(kinds.iter().filter(|kind| **kind).count(), 1, "{state}");
        }
        assert_eq!(TaskState::sql_list(TaskState::OPEN), "('planned', 'ready')");
        assert_eq!(DeliveryState::sql_list(&[DeliveryState::Pending]), "('pending')");
        assert_eq!("void".parse::<DeliveryState>(), Ok(DeliveryState::Void));
    }
}
