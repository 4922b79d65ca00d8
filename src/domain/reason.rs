//! Why a contact does not happen: the stable reason codes of skips (`plan`), of tasks the gate
//! takes out at a hand-off, and of voided deliveries. One enum, one text per code
//! (`flag:dispute`, `cap:rpc_per_day`, ...), parsed back by `FromStr`.

use super::{Cap, Channel, Flag, ParseCodeError, QueueName};
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Nothing is due on the account.
    NotDue,
    /// No strategy handles the account's product.
    NoStrategy,
    /// The DPD is in no stage of the strategy.
    NoStage,
    /// The account's local day already has planned tasks.
    AlreadyPlanned,
    /// A flag stops the contact (all contact, or calls for `do_not_call`).
    Flag(Flag),
    /// A reaction to a risk event holds all contact with the account until a date.
    Held,
    /// A promise to pay is open.
    PromiseOpen,
    /// No rule matches.
    NoRule,
    /// The account is not in the book, or the borrower has no usable address of the kind.
    NoContactPoint,
    /// Every address of the kind opted out of the channel.
    OptOut(Channel),
    /// Robot calls need consent the borrower has not given.
    NoConsent,
    /// The cool-down after a conversation is running.
    Cooldown,
    /// A cap of the policy leaves no call.
    Cap(Cap),
    /// No time is left today inside the windows and contact hours in every zone.
    NoWindow,
    /// The human queue's capacity for the day is given to accounts of higher value, and no
    /// later rule matches (`capacity:<queue>`).
    Capacity(QueueName),
    /// Every hour left inside the windows is estimated below the rule's `min_p_contact`.
    LowContactProbability,
    /// Now is outside the policy's contact hours in one of the borrower's zones.
    Hours,
    /// Now is before the task's window.
    NotYet,
    /// The task's window has closed.
    WindowClosed,
    /// Too soon after the last attempt on the channel (the rule's `min_gap`).
    MinGap,
    /// The calls a human task allows are made.
    CallsUsed,
    /// The task is no longer live (done, cancelled, expired, escalated), or no longer in the
    /// state a message announced (a human task already leased).
    NotLive,
    /// A `task.cancelled` whose `task.ready` was never delivered: the receiver never heard of
    /// the task, so there is nothing to cancel.
    ReadyNotDelivered,
}

impl Reason {
    /// Every code with no parameter, and one of each parametrised family per value: the list
    /// the documentation must cover.
    pub fn all() -> Vec<Reason> {
        let mut all = vec![
            Reason::NotDue,
            Reason::NoStrategy,
            Reason::NoStage,
            Reason::AlreadyPlanned,
            Reason::Held,
            Reason::PromiseOpen,
            Reason::NoRule,
            Reason::NoContactPoint,
            Reason::NoConsent,
            Reason::Cooldown,
            Reason::NoWindow,
            Reason::LowContactProbability,
            Reason::Hours,
            Reason::NotYet,
            Reason::WindowClosed,
            Reason::MinGap,
            Reason::CallsUsed,
            Reason::NotLive,
            Reason::ReadyNotDelivered,
        ];
        all.extend(Flag::ALL.iter().map(|flag| Reason::Flag(*flag)));
        all.extend(Channel::ALL.iter().map(|channel| Reason::OptOut(*channel)));
        all.extend(Cap::ALL.iter().map(|cap| Reason::Cap(*cap)));
        all.push(Reason::Capacity(QueueName::intern("<queue>")));
        all
    }

    /// Whether the reason may pass later the same day (outside the hours now, before the
    /// window, too soon after the last attempt), so a task waits rather than leaves.
    pub fn is_temporary(self) -> bool {
        matches!(self, Reason::Hours | Reason::NotYet | Reason::MinGap)
    }
}

impl Reason {
    /// The code of a reason without a parameter; `None` for `flag:`, `opt_out:` and `cap:`.
    fn fixed_code(self) -> Option<&'static str> {
        Some(match self {
            Reason::Flag(_) | Reason::OptOut(_) | Reason::Cap(_) | Reason::Capacity(_) => return None,
            Reason::NotDue => "not_due",
            Reason::NoStrategy => "no_strategy",
            Reason::NoStage => "no_stage",
            Reason::AlreadyPlanned => "already_planned",
            Reason::Held => "held",
            Reason::PromiseOpen => "promise_open",
            Reason::NoRule => "no_rule",
            Reason::NoContactPoint => "no_contact_point",
            Reason::NoConsent => "no_consent",
            Reason::Cooldown => "cooldown:conversation",
            Reason::NoWindow => "no_window",
            Reason::LowContactProbability => "low_contact_probability",
            Reason::Hours => "hours",
            Reason::NotYet => "not_yet",
            Reason::WindowClosed => "window_closed",
            Reason::MinGap => "min_gap",
            Reason::CallsUsed => "calls_used",
            Reason::NotLive => "not_live",
            Reason::ReadyNotDelivered => "ready_not_delivered",
        })
    }

    /// Whether `code` is this reason's code (no allocation).
    pub fn is_code(self, code: &str) -> bool {
        match self {
            Reason::Flag(flag) => code.strip_prefix("flag:") == Some(flag.code()),
            Reason::OptOut(channel) => code.strip_prefix("opt_out:") == Some(channel.code()),
            Reason::Cap(cap) => code.strip_prefix("cap:") == Some(cap.code()),
            Reason::Capacity(queue) => code.strip_prefix("capacity:") == Some(queue.as_str()),
            other => other.fixed_code() == Some(code),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Flag(flag) => write!(f, "flag:{flag}"),
            Reason::OptOut(channel) => write!(f, "opt_out:{channel}"),
            Reason::Cap(cap) => write!(f, "cap:{cap}"),
            Reason::Capacity(queue) => write!(f, "capacity:{queue}"),
            other => f.write_str(other.fixed_code().unwrap_or_default()),
        }
    }
}

impl FromStr for Reason {
    type Err = ParseCodeError;

    fn from_str(text: &str) -> Result<Reason, ParseCodeError> {
        let text = text.trim();
        let parsed = match text.split_once(':') {
            Some(("flag", flag)) => flag.parse().ok().map(Reason::Flag),
            Some(("opt_out", channel)) => channel.parse().ok().map(Reason::OptOut),
            Some(("cap", cap)) => cap.parse().ok().map(Reason::Cap),
            Some(("capacity", queue)) if !queue.is_empty() => Some(Reason::Capacity(QueueName::intern(queue))),
            _ => Reason::all().into_iter().find(|reason| reason.is_code(text)),
        };
        parsed.ok_or_else(|| ParseCodeError {
            kind: "reason",
            value: text.to_string(),
            expected: Reason::all().iter().map(Reason::to_string).collect::<Vec<_>>().join(", "),
        })
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, code: &str) -> bool {
        self.is_code(code)
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, code: &&str) -> bool {
        self.is_code(code)
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself() {
        for reason in Reason::all() {
            assert_eq!(reason.to_string().parse::<Reason>(), Ok(reason), "{reason}");
        }
        assert_eq!(Reason::Cap(Cap::RpcPerDay).to_string(), "cap:rpc_per_day");
        assert_eq!(Reason::Cooldown.to_string(), "cooldown:conversation");
        assert_eq!("capacity:collections".parse::<Reason>(), Ok(Reason::Capacity(QueueName::intern("collections"))));
        assert!("flag:vip".parse::<Reason>().is_err());
    }
}
