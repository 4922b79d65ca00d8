//! Format-neutral checks shared by the CSV importer and the HTTP API (`ops::ingest`): an account
//! record (the contract's fields, already split into lists) becomes a domain [`Account`] and
//! its borrower; a batch of records becomes accounts and merged borrowers, or a list of errors
//! that name the record (a CSV row, a JSON array item) and the field.
//!
//! No I/O here, and nothing format-specific: reading cells or JSON values is the callers' job.

pub(crate) use super::csvfile::{
    parse_amount, parse_date, parse_instant, parse_positive_money, parse_required, reason,
};
use crate::domain::{
    Account, Borrower, Channel, ContactKind, ContactPoint, Flags, FundingShares, parse_email, parse_phone,
    parse_timezone,
};
use chrono_tz::Tz;
use std::collections::HashMap;

/// Where a record is in its batch, for messages.
pub(crate) trait Position: Clone {
    /// "row 3" or "item [2]".
    fn describe(&self) -> String;
    /// What a batch is called: "file" or "request".
    const BATCH: &'static str;
    /// How to get an unknown account into the store ("import it with accounts.csv first").
    const UNKNOWN_ACCOUNT_HINT: &'static str;
}

/// One bad field of one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError<P> {
    /// The record.
    pub at: P,
    /// The contract's field (column) name, such as `timezones` or `score.loss`.
    pub field: String,
    /// The bad value, when there is one.
    pub value: Option<String>,
    /// What is wrong; follows the quoted value ("is not a date (YYYY-MM-DD)").
    pub message: String,
    /// Whether the error is a conflict with stored data (a reused payment reference) rather
    /// than a bad value.
    pub conflict: bool,
}

impl<P> FieldError<P> {
    /// A bad value.
    pub fn new(at: P, field: &str, value: Option<&str>, message: impl Into<String>) -> Self {
        FieldError {
            at,
            field: field.to_string(),
            value: value.map(str::to_string),
            message: message.into(),
            conflict: false,
        }
    }
}

/// One account as a batch describes it, fields still as text (lists already split). A
/// `None` means the caller already reported that field as bad.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountRecord<'a> {
    pub account_id: &'a str,
    pub borrower_id: &'a str,
    pub name: &'a str,
    pub phones: Vec<&'a str>,
    /// Empty for none.
    pub email: &'a str,
    pub timezones: Vec<&'a str>,
    /// The whole field as written, for the "is empty" message.
    pub timezones_text: &'a str,
    pub product: &'a str,
    pub currency: &'a str,
    pub amount_due: &'a str,
    pub balance: &'a str,
    pub due_date: &'a str,
    pub tags: Vec<&'a str>,
    pub flags: Vec<&'a str>,
    pub consent_robot: Option<bool>,
    pub opt_outs: Vec<&'a str>,
    pub scores: Option<Vec<(String, f64)>>,
    pub attrs: Vec<(String, String)>,
    /// Funding shares as written (`bank-a:0.7;platform:0.3`); empty for the lender's own.
    pub funders: &'a str,
}

/// An opt-out as written, kept until the borrower's contact points are all known.
struct OptOut<P> {
    channel: Channel,
    address: String,
    item: String,
    at: P,
}

/// A borrower as the records so far describe it.
struct BorrowerDraft<P> {
    borrower: Borrower,
    opt_outs: Vec<OptOut<P>>,
}

/// Accounts and borrowers collected from a batch of records, in order.
pub(crate) struct AccountBatch<P> {
    accounts: Vec<Account>,
    account_at: HashMap<String, P>,
    borrowers: Vec<BorrowerDraft<P>>,
    borrower_index: HashMap<String, usize>,
}

impl<P: Position> Default for AccountBatch<P> {
    fn default() -> Self {
        AccountBatch {
            accounts: Vec::new(),
            account_at: HashMap::new(),
            borrowers: Vec::new(),
            borrower_index: HashMap::new(),
        }
    }
}

/// Accounts in batch order and borrowers in order of first appearance.
pub(crate) type Checked = (Vec<Account>, Vec<Borrower>);

impl<P: Position> AccountBatch<P> {
    /// Checks one record; a good one is added (an account appears once per batch; borrower
    /// fields come from the borrower's last record, contact points and opt-outs are the union
    /// of all of them), a bad one adds its errors to `errors`.
    pub fn add(&mut self, at: P, record: &AccountRecord<'_>, errors: &mut Vec<FieldError<P>>) {
        let before = errors.len();
        let check = |errors: &mut Vec<FieldError<P>>, name: &str, value: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(FieldError::new(at.clone(), name, Some(value), message));
            }
        };
        check(errors, "account_id", record.account_id, parse_required(record.account_id).map(drop));
        check(errors, "borrower_id", record.borrower_id, parse_required(record.borrower_id).map(drop));
        let mut phones: Vec<String> = Vec::new();
        for item in &record.phones {
            match parse_phone(item) {
                Ok(phone) if !phones.contains(&phone) => phones.push(phone),
                Ok(_) => {}
                Err(message) => errors.push(FieldError::new(at.clone(), "phones", Some(item), reason(item, message))),
            }
        }
        if !record.email.is_empty() {
            let result = parse_email(record.email).map(drop).map_err(|message| reason(record.email, message));
            check(errors, "email", record.email, result);
        }
        let mut zones: Vec<Tz> = Vec::new();
        let mut zones_good = true;
        for item in &record.timezones {
            match parse_timezone(item) {
                Ok(zone) if !zones.contains(&zone) => zones.push(zone),
                Ok(_) => {}
                Err(message) => {
                    zones_good = false;
                    errors.push(FieldError::new(at.clone(), "timezones", Some(item), reason(item, message)));
                }
            }
        }
        if zones_good && zones.is_empty() {
            errors.push(FieldError::new(
                at.clone(),
                "timezones",
                Some(record.timezones_text),
                "is empty; at least one IANA time zone is required",
            ));
        }
        check(errors, "product", record.product, parse_required(record.product).map(drop));
        check(errors, "currency", record.currency, parse_currency(record.currency).map(drop));
        check(errors, "amount_due", record.amount_due, parse_amount(record.amount_due).map(drop));
        check(errors, "balance", record.balance, parse_amount(record.balance).map(drop));
        check(errors, "due_date", record.due_date, parse_date(record.due_date).map(drop));
        let flags = match Flags::parse_list(&record.flags.join(";")) {
            Ok(flags) => flags,
            Err(error) => {
                let message = format!("is not a known flag (expected one of: {})", error.expected);
                errors.push(FieldError::new(at.clone(), "flags", Some(&error.value), message));
                Flags::NONE
            }
        };
        let funders = match record.funders.trim() {
            "" => None,
            text => match FundingShares::parse(text) {
                Ok(shares) => Some(shares),
                Err(message) => {
                    errors.push(FieldError::new(at.clone(), "funders", Some(record.funders), message));
                    None
                }
            },
        };
        let mut opt_outs = Vec::new();
        for item in &record.opt_outs {
            match parse_opt_out(item) {
                Ok((channel, address)) => {
                    opt_outs.push(OptOut { channel, address, item: item.to_string(), at: at.clone() })
                }
                Err(message) => errors.push(FieldError::new(at.clone(), "opt_outs", Some(item), message)),
            }
        }
        for (name, prefix) in record
            .scores
            .iter()
            .flatten()
            .map(|(name, _)| (name, "score."))
            .chain(record.attrs.iter().map(|(name, _)| (name, "attr.")))
        {
            if !dynamic_name_ok(name) {
                errors.push(FieldError::new(
                    at.clone(),
                    &format!("{prefix}{name}"),
                    None,
                    "needs a name made of letters, digits, `_` and `-`",
                ));
            }
        }
        let (Some(consent_robot), Some(scores)) = (record.consent_robot, record.scores.clone()) else {
            return;
        };
        if errors.len() > before {
            return;
        }
        // Every field is good: the parsers cannot fail below.
        let (Ok(amount_due), Ok(balance), Ok(due_date)) =
            (parse_amount(record.amount_due), parse_amount(record.balance), parse_date(record.due_date))
        else {
            return;
        };

        if let Some(first) = self.account_at.get(record.account_id) {
            let message = format!("repeats {}; an account appears once per {}", first.describe(), P::BATCH);
            errors.push(FieldError::new(at, "account_id", Some(record.account_id), message));
            return;
        }
        self.account_at.insert(record.account_id.to_string(), at);

        let index = *self.borrower_index.entry(record.borrower_id.to_string()).or_insert_with(|| {
            self.borrowers.push(BorrowerDraft {
                borrower: Borrower {
                    id: record.borrower_id.to_string(),
                    name: String::new(),
                    timezones: Vec::new(),
                    contact_points: Vec::new(),
                    consent_robot: false,
                },
                opt_outs: Vec::new(),
            });
            self.borrowers.len() - 1
        });
        let draft = &mut self.borrowers[index];
        draft.borrower.name = record.name.to_string();
        draft.borrower.timezones = zones;
        draft.borrower.consent_robot = consent_robot;
        let points = &mut draft.borrower.contact_points;
        let email = (!record.email.is_empty()).then(|| record.email.trim().to_string());
        let addresses = phones.into_iter().map(|phone| (ContactKind::Phone, phone));
        for (kind, address) in addresses.chain(email.map(|email| (ContactKind::Email, email))) {
            if !points.iter().any(|point| point.kind == kind && point.address == address) {
                points.push(ContactPoint { kind, address, opted_out: Vec::new(), wrong_number: false, retired: false });
            }
        }
        draft.opt_outs.extend(opt_outs);

        let mut tags: Vec<String> = Vec::new();
        for tag in record.tags.iter().map(|tag| tag.trim()).filter(|tag| !tag.is_empty()) {
            if !tags.iter().any(|known| known == tag) {
                tags.push(tag.to_string());
            }
        }
        self.accounts.push(Account {
            id: record.account_id.to_string(),
            borrower_id: record.borrower_id.to_string(),
            product: record.product.to_string(),
            currency: record.currency.to_string(),
            amount_due,
            balance,
            due_date,
            tags,
            flags,
            scores,
            attrs: record.attrs.iter().filter(|(_, value)| !value.is_empty()).cloned().collect(),
            broken_promises: 0,
            funders,
            hold_until: None,
        });
    }

    /// Applies the opt-outs to the contact points they name (an opt-out naming an address the
    /// borrower does not have in the batch is an error) and returns the accounts and borrowers.
    pub fn finish(self, errors: &mut Vec<FieldError<P>>) -> Checked {
        let mut borrowers = Vec::with_capacity(self.borrowers.len());
        for mut draft in self.borrowers {
            for opt_out in draft.opt_outs {
                let kind = if opt_out.channel == Channel::Email { ContactKind::Email } else { ContactKind::Phone };
                let point = draft
                    .borrower
                    .contact_points
                    .iter_mut()
                    .find(|point| point.kind == kind && point.address == opt_out.address);
                match point {
                    Some(point) => {
                        if !point.opted_out.contains(&opt_out.channel) {
                            point.opted_out.push(opt_out.channel);
                        }
                    }
                    None => {
                        let (what, list) = if kind == ContactKind::Email {
                            ("e-mail address", "e-mail addresses")
                        } else {
                            ("phone number", "phones")
                        };
                        let message = format!(
                            "names {what} {}, which is not among borrower {}'s {list} in this {}",
                            opt_out.address,
                            draft.borrower.id,
                            P::BATCH
                        );
                        errors.push(FieldError::new(opt_out.at, "opt_outs", Some(&opt_out.item), message));
                    }
                }
            }
            borrowers.push(draft.borrower);
        }
        (self.accounts, borrowers)
    }
}

/// An ISO 4217 code: three capital letters.
pub(crate) fn parse_currency(value: &str) -> Result<String, String> {
    if value.len() == 3 && value.bytes().all(|byte| byte.is_ascii_uppercase()) {
        Ok(value.to_string())
    } else {
        Err("is not an ISO 4217 currency code (three capital letters, like CNY)".into())
    }
}

/// `channel:address`, the address checked for the channel's kind.
fn parse_opt_out(item: &str) -> Result<(Channel, String), String> {
    match item.split_once(':') {
        None => Err("is not `channel:address` (like sms:+8613800138000)".to_string()),
        Some((channel, address)) => match channel.trim().parse::<Channel>() {
            Err(error) => Err(format!("does not start with a known channel (expected one of: {})", error.expected)),
            Ok(channel) => {
                let address = address.trim();
                let checked = if channel == Channel::Email { parse_email(address) } else { parse_phone(address) };
                checked.map(|address| (channel, address)).map_err(|message| format!("has a bad address: {message}"))
            }
        },
    }
}

/// A score model or attribute name: non-empty, letters, digits, `_` and `-`.
pub(crate) fn dynamic_name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
