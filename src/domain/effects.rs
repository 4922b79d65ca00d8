//! What an attempt's outcome does, decided once: the flag it sets, whether it opens a promise,
//! which of the account's other live tasks it cancels and why, whether it marks the number as
//! wrong, and when it hands the borrower from the robot to a person. Pure: the use case
//! (`ops::work::attempts`) applies these with the store.

use super::{Flag, Outcome, Reason};

/// Which of the account's other live tasks an outcome cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancels {
    /// Every channel.
    All,
    /// Calls only (robot, human).
    Calls,
}

/// The effects of one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effects {
    /// A flag the engine sets on the account.
    pub sets_flag: Option<Flag>,
    /// Whether the report's promise is recorded (outcome `promise`).
    pub opens_promise: bool,
    /// The account's other live tasks to cancel, and the reason they carry.
    pub cancels: Option<(Cancels, Reason)>,
    /// Whether the number called is marked as not the borrower's.
    pub marks_wrong_number: bool,
    /// Whether the borrower asked to be called back at a time (a consent-based call).
    pub asks_callback: bool,
}

/// Which live tasks a flag set on an account closes, and the reason they carry: calls for
/// `do_not_call`, everything for the flags that stop all contact.
pub fn cancels_for(flag: Flag) -> (Cancels, Reason) {
    let which = if flag.stops_all_contact() { Cancels::All } else { Cancels::Calls };
    (which, Reason::Flag(flag))
}

/// The effects of `outcome`.
pub fn effects(outcome: Outcome) -> Effects {
    let none = Effects::default();
    match outcome {
        Outcome::Promise => Effects { opens_promise: true, cancels: Some((Cancels::All, Reason::PromiseOpen)), ..none },
        Outcome::DoNotCall => {
            Effects { sets_flag: Some(Flag::DoNotCall), cancels: Some(cancels_for(Flag::DoNotCall)), ..none }
        }
        Outcome::Dispute => {
            Effects { sets_flag: Some(Flag::Dispute), cancels: Some(cancels_for(Flag::Dispute)), ..none }
        }
        Outcome::WrongNumber => Effects { marks_wrong_number: true, ..none },
        Outcome::Callback => Effects { asks_callback: true, ..none },
        Outcome::NoAnswer
        | Outcome::Busy
        | Outcome::Voicemail
        | Outcome::Failed
        | Outcome::Rpc
        | Outcome::ThirdParty
        | Outcome::Refused
        | Outcome::PaidClaimed
        | Outcome::Delivered
        | Outcome::Undelivered => none,
    }
}

/// Why a robot call hands the borrower to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The borrower asked for a person (`callback`).
    Callback,
    /// The rule's `escalate.after_failed_attempts` unanswered robot calls were reached.
    FailedAttempts,
    /// The robot hands a borrower who called in to a person (`POST /v1/inbound-calls/{id}/transfer`).
    Transfer,
}

impl Handover {
    /// The code in escalation records and reasons (`callback`, `failed_attempts`).
    pub fn code(self) -> &'static str {
        match self {
            Handover::Callback => "callback",
            Handover::FailedAttempts => "failed_attempts",
            Handover::Transfer => "transfer",
        }
    }
}

/// Whether a robot attempt with `outcome` hands the borrower to a person, given the unanswered
/// robot calls on the account in the escalation window (this one included) and the rule's
/// threshold.
pub fn handover_due(outcome: Outcome, failed_robot_calls: usize, after_failed_attempts: u32) -> Option<Handover> {
    if outcome == Outcome::Callback {
        Some(Handover::Callback)
    } else if outcome.is_unanswered() && failed_robot_calls >= after_failed_attempts as usize {
        Some(Handover::FailedAttempts)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (outcome, flag set, opens a promise, cancels, marks wrong number, asks a callback)
    type Row = (Outcome, Option<Flag>, bool, Option<(Cancels, &'static str)>, bool, bool);

    #[test]
    fn every_outcome_has_its_effects() {
        let table: &[Row] = &[
            (Outcome::NoAnswer, None, false, None, false, false),
            (Outcome::Busy, None, false, None, false, false),
            (Outcome::Voicemail, None, false, None, false, false),
            (Outcome::Failed, None, false, None, false, false),
            (Outcome::WrongNumber, None, false, None, true, false),
            (Outcome::Rpc, None, false, None, false, false),
            (Outcome::ThirdParty, None, false, None, false, false),
            (Outcome::Promise, None, true, Some((Cancels::All, "promise_open")), false, false),
            (Outcome::Refused, None, false, None, false, false),
            (Outcome::Dispute, Some(Flag::Dispute), false, Some((Cancels::All, "flag:dispute")), false, false),
            (Outcome::Callback, None, false, None, false, true),
            (
                Outcome::DoNotCall,
                Some(Flag::DoNotCall),
                false,
                Some((Cancels::Calls, "flag:do_not_call")),
                false,
                false,
            ),
            (Outcome::PaidClaimed, None, false, None, false, false),
            (Outcome::Delivered, None, false, None, false, false),
            (Outcome::Undelivered, None, false, None, false, false),
        ];
        assert_eq!(table.len(), Outcome::ALL.len(), "every outcome is in the table");
        for (outcome, flag, promise, cancels, wrong, callback) in table {
            let got = effects(*outcome);
            assert_eq!(got.sets_flag, *flag, "{outcome}");
            assert_eq!(got.opens_promise, *promise, "{outcome}");
            assert_eq!(
                got.cancels.map(|(which, reason)| (which, reason.to_string())),
                cancels.map(|(w, r)| (w, r.to_string())),
                "{outcome}"
            );
            assert_eq!(got.marks_wrong_number, *wrong, "{outcome}");
            assert_eq!(got.asks_callback, *callback, "{outcome}");
        }
    }

    #[test]
    fn a_handover_is_due_on_callback_or_at_the_threshold_of_unanswered_calls() {
        let table = [
            (Outcome::Callback, 0, 6, Some(Handover::Callback)),
            (Outcome::NoAnswer, 5, 6, None),
            (Outcome::NoAnswer, 6, 6, Some(Handover::FailedAttempts)),
            (Outcome::Busy, 7, 6, Some(Handover::FailedAttempts)),
            (Outcome::Rpc, 9, 6, None),
            (Outcome::Refused, 9, 1, None),
        ];
        for (outcome, failed, after, expected) in table {
            assert_eq!(handover_due(outcome, failed, after), expected, "{outcome} after {failed} of {after}");
        }
    }
}
