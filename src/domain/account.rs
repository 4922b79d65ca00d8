//! Accounts, borrowers and their contact points as the planner and the store see them.

use super::{Channel, Flags, FundingShares, Money};
use chrono::NaiveDate;
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;

/// Whether a contact point is a telephone number or an e-mail address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactKind {
    /// An E.164 telephone number: calls (robot, human) and SMS.
    Phone,
    /// An e-mail address.
    Email,
}

impl ContactKind {
    /// The kind of address a channel needs: e-mail for `email`, a phone for the others.
    pub fn for_channel(channel: Channel) -> ContactKind {
        if channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone }
    }

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            ContactKind::Phone => "phone",
            ContactKind::Email => "email",
        }
    }
}

/// One telephone number or e-mail address of a borrower, with its opt-outs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPoint {
    /// Phone or e-mail.
    pub kind: ContactKind,
    /// The E.164 number or the e-mail address.
    pub address: String,
    /// Channels the borrower opted out of on this address (for example SMS after a STOP reply).
    pub opted_out: Vec<Channel>,
    /// Marked by an attempt whose outcome was `wrong_number`: not the borrower's own number.
    pub wrong_number: bool,
    /// Dropped by the servicing system (missing from the account's latest import): kept, with
    /// its opt-outs and marks, but never chosen again.
    pub retired: bool,
}

impl ContactPoint {
    /// Whether this address can carry the channel: the right kind, current, not a wrong
    /// number, not opted out.
    pub fn usable_for(&self, channel: Channel) -> bool {
        self.reaches(channel) && !self.opted_out.contains(&channel)
    }

    /// Whether this is a current address of the kind the channel needs that is the
    /// borrower's own (opt-outs aside).
    pub fn reaches(&self, channel: Channel) -> bool {
        self.kind == ContactKind::for_channel(channel) && !self.wrong_number && !self.retired
    }
}

/// The person who owes: contact points, consents and the time zones they may be in.
#[derive(Debug, Clone, PartialEq)]
pub struct Borrower {
    /// The servicing system's borrower id.
    pub id: String,
    /// Full name, for agents and message templates.
    pub name: String,
    /// Every IANA zone the borrower may be in (phone area, address); the first is the primary one.
    pub timezones: Vec<Tz>,
    /// Phones and e-mail addresses.
    pub contact_points: Vec<ContactPoint>,
    /// Consent to robot (prerecorded / AI voice) calls.
    pub consent_robot: bool,
}

impl Borrower {
    /// The zone whose calendar decides the borrower's local day (days past due, plan day).
    pub fn primary_timezone(&self) -> Tz {
        self.timezones.first().copied().unwrap_or(Tz::UTC)
    }
}

/// One loan: what is owed, since when, and what the servicing system knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// The servicing system's account id.
    pub id: String,
    /// The borrower who owes it.
    pub borrower_id: String,
    /// Product code (`cash`, `card`, ...), matched by strategies' `applies_to`.
    pub product: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Amount overdue now.
    pub amount_due: Money,
    /// Outstanding balance.
    pub balance: Money,
    /// Oldest unpaid due date.
    pub due_date: NaiveDate,
    /// Free tags from the servicing system.
    pub tags: Vec<String>,
    /// Hard-stop flags.
    pub flags: Flags,
    /// Named model scores (`score.<model>` columns).
    pub scores: Vec<(String, f64)>,
    /// Named string attributes (`attr.<name>` columns).
    pub attrs: Vec<(String, String)>,
    /// Promises made on this account and broken so far.
    pub broken_promises: u32,
    /// Who funds it and in what share (co-lending); `None` when it is wholly the lender's own.
    pub funders: Option<FundingShares>,
    /// The last local day a reaction to a risk event holds all contact (`hold` in a
    /// `[[reaction]]`); `None` when nothing holds it.
    pub hold_until: Option<NaiveDate>,
}

impl Account {
    /// Days past due on the given local date (negative before the due date).
    pub fn dpd_on(&self, local_date: NaiveDate) -> i32 {
        (local_date - self.due_date).num_days() as i32
    }

    /// A model score by name.
    pub fn score(&self, model: &str) -> Option<f64> {
        self.scores.iter().find(|(name, _)| name == model).map(|(_, value)| *value)
    }

    /// A string attribute by name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// The loan book as loaded for planning: accounts and the borrowers they belong to.
#[derive(Debug, Clone, Default)]
pub struct Portfolio {
    /// Every account, in a stable order (by id).
    pub accounts: Vec<Account>,
    /// Borrowers by id.
    pub borrowers: HashMap<String, Borrower>,
}
