//! KPIs as collectors define them, from stored attempts, promises, payments, cures and stage
//! history: the period a report covers ([`Period`]), the rows the store loads for it
//! ([`KpiInput`]), their aggregation by stage, strategy, rule or experiment arm
//! ([`aggregate`]) with amounts per currency, the roll matrix ([`roll`]), the vintages
//! ([`vintage`]) and the text tables managers read ([`text`]); and paired comparisons of two
//! simulated runs with their confidence intervals ([`paired`]).
//!
//! Pure: no I/O, no clock. The rows come from `store::load_kpi_input`; `ops::report` ties the
//! two together. Money is summed here with `rust_decimal`, never in SQL floats, and never
//! across currencies. The definitions of every KPI are in `docs/kpis.md`; change them there too.

pub mod csv;
pub mod funder;
pub mod paired;
pub mod reactions;
pub mod roll;
pub mod text;
pub mod vintage;

pub use funder::{FunderScope, UNFUNDED};
pub use roll::{AccountStates, CURRENT, RollMatrix, StageBalance, StageOrder, StateCells};
pub use text::{write_groups, write_portfolio, write_text};
pub use vintage::{Vintage, VintageEntry};

use crate::domain::{Money, Outcome};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// The group of rows without a task (imported attempts and promises, payments and cures of an
/// account that had no task before them).
pub const NO_GROUP: &str = "(none)";
/// The arm group of tasks planned outside any experiment.
pub const NO_ARM: &str = "(no arm)";
/// The default length of a report period.
pub const DEFAULT_DAYS: i64 = 7;

/// A report's parameters that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A parameter's value is not valid; `parameter` names it (`from`, `to`, `by`, ...).
    #[error("{parameter}: {message}")]
    Invalid {
        /// The parameter.
        parameter: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl ReportError {
    pub(crate) fn invalid(parameter: &'static str, message: impl Into<String>) -> Self {
        ReportError::Invalid { parameter, message: message.into() }
    }

    /// The parameter at fault.
    pub fn parameter(&self) -> &'static str {
        match self {
            ReportError::Invalid { parameter, .. } => parameter,
        }
    }
}

/// What the rows of a report are grouped by. An attempt's group is its task's; see
/// `docs/operations.md` for promises, payments and cures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The task's delinquency stage.
    #[default]
    Stage,
    /// The task's strategy.
    Strategy,
    /// The task's rule, as `strategy/rule` (rule names are unique only within a strategy).
    Rule,
    /// The task's experiment arm, as `strategy/arm`; `(no arm)` outside experiments.
    Arm,
}

impl GroupBy {
    /// The code used on the command line, in query strings and JSON.
    pub fn code(self) -> &'static str {
        match self {
            GroupBy::Stage => "stage",
            GroupBy::Strategy => "strategy",
            GroupBy::Rule => "rule",
            GroupBy::Arm => "arm",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for GroupBy {
    type Err = ReportError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "stage" => Ok(GroupBy::Stage),
            "strategy" => Ok(GroupBy::Strategy),
            "rule" => Ok(GroupBy::Rule),
            "arm" => Ok(GroupBy::Arm),
            other => Err(ReportError::invalid(
                "by",
                format!("`{other}` is not a grouping (expected one of: stage, strategy, rule, arm)"),
            )),
        }
    }
}

/// The half-open period `[from, to)` a report covers, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// First instant no longer included.
    pub to: DateTime<Utc>,
}

impl Period {
    /// The period from the optional `from` and `to` texts: an RFC 3339 instant, or a
    /// `YYYY-MM-DD` date in the portfolio zone `zone` — `from` at the start of that day, `to`
    /// at the end of that day (the date is included). Without `to` the period ends at `now`;
    /// without `from` it starts [`DEFAULT_DAYS`] before its end. An empty period is an error.
    pub fn parse(from: Option<&str>, to: Option<&str>, zone: Tz, now: DateTime<Utc>) -> Result<Period, ReportError> {
        let to = match to {
            Some(text) => parse_bound("to", text, zone, true)?,
            None => now,
        };
        let from = match from {
            Some(text) => parse_bound("from", text, zone, false)?,
            None => to - Duration::days(DEFAULT_DAYS),
        };
        if from >= to {
            return Err(ReportError::invalid(
                "from",
                format!("{} is not before `to` ({})", from.to_rfc3339(), to.to_rfc3339()),
            ));
        }
        Ok(Period { from, to })
    }

    /// Whether `at` falls in the period.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// One bound: an RFC 3339 instant, or a date in `zone` (its start, or with `end` the next
/// day's start).
fn parse_bound(parameter: &'static str, text: &str, zone: Tz, end: bool) -> Result<DateTime<Utc>, ReportError> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ReportError::invalid(parameter, format!("`{text}` is neither an RFC 3339 instant nor a YYYY-MM-DD date"))
    })?;
    let day = if end { date.succ_opt() } else { Some(date) }
        .ok_or_else(|| ReportError::invalid(parameter, format!("`{text}` is out of range")))?;
    start_of_day(day, zone).ok_or_else(|| ReportError::invalid(parameter, format!("`{text}` is out of range")))
}

/// The first instant of `date` in `zone` (the first existing local time when a DST change skips
/// midnight).
pub(crate) fn start_of_day(date: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    (0..=24 * 4).find_map(|quarter| {
        let local = date.and_time(NaiveTime::MIN) + Duration::minutes(15 * quarter);
        zone.from_local_datetime(&local).earliest().map(|at| at.with_timezone(&Utc))
    })
}

/// The task an attempt carried out, or the one a payment or cure is attributed to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskGroup {
    /// `tasks.stage`.
    pub stage: String,
    /// `tasks.strategy`.
    pub strategy: String,
    /// `tasks.rule`.
    pub rule: String,
    /// `tasks.arm`.
    pub arm: Option<String>,
}

impl TaskGroup {
    /// The group's name under `by`.
    pub fn key(&self, by: GroupBy) -> String {
        match by {
            GroupBy::Stage => self.stage.clone(),
            GroupBy::Strategy => self.strategy.clone(),
            GroupBy::Rule => format!("{}/{}", self.strategy, self.rule),
            GroupBy::Arm => match &self.arm {
                Some(arm) => format!("{}/{arm}", self.strategy),
                None => NO_ARM.to_string(),
            },
        }
    }
}

fn key_of(group: &Option<TaskGroup>, by: GroupBy) -> String {
    group.as_ref().map_or_else(|| NO_GROUP.to_string(), |group| group.key(by))
}

/// An amount in one currency, with its share of a whole where one is meant.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CurrencyAmount {
    /// ISO 4217 code.
    pub currency: String,
    /// The amount, exact.
    #[schema(value_type = String, example = "1250.50")]
    pub amount: Money,
    /// The amount's share of its whole in the same currency; null where no whole is meant or
    /// the whole is zero.
    pub share: Option<f64>,
}

impl CurrencyAmount {
    /// An amount without a share.
    pub fn new(currency: &str, amount: Money) -> CurrencyAmount {
        CurrencyAmount { currency: currency.to_string(), amount: amount.normalize(), share: None }
    }

    /// `part` with its share of `whole`.
    pub fn share(currency: &str, part: Money, whole: Money) -> CurrencyAmount {
        let share = money_share(part, whole);
        CurrencyAmount { currency: currency.to_string(), amount: part.normalize(), share }
    }
}

/// The currency of rows whose account is not stored.
pub const UNKNOWN_CURRENCY: &str = "(unknown)";

/// Attempts in the period with one outcome in one task group, on accounts of one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCount {
    /// The attempt's task (none for imported attempts).
    pub group: Option<TaskGroup>,
    /// The stored outcome code.
    pub outcome: String,
    /// The account's currency.
    pub currency: String,
    /// How many.
    pub count: u64,
    /// The durations reported for those of them on the human channel, in seconds.
    pub agent_seconds: u64,
}

/// One account attempted in the period under one task group: one per group and account, so a
/// report row counts its distinct accounts whatever groups it gathers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountAttempted {
    /// The attempts' task group.
    pub group: Option<TaskGroup>,
    /// The account's currency.
    pub currency: String,
    /// The account.
    pub account_id: String,
}

/// Promises made in the period in one status and task group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseCount {
    /// The task of the attempt that made the promise (none for imported promises).
    pub group: Option<TaskGroup>,
    /// `open`, `kept` or `broken`.
    pub status: String,
    /// How many.
    pub count: u64,
}

/// One promise kept or broken in the period (whenever it was made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPromise {
    /// Its account.
    pub account_id: String,
    /// The task of the attempt that made it.
    pub group: Option<TaskGroup>,
    /// Whether it was kept.
    pub kept: bool,
    /// The amount promised, exact.
    pub amount: Money,
    /// The account's currency.
    pub currency: String,
}

/// One payment received in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// Its account.
    pub account_id: String,
    /// The account's latest task before the payment.
    pub group: Option<TaskGroup>,
    /// The amount, exact.
    pub amount: Money,
    /// The account's currency.
    pub currency: String,
}

/// One `account.paid_in_full` event in the period, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CureRow {
    /// The account.
    pub account_id: String,
    /// The account's latest task before the event.
    pub group: Option<TaskGroup>,
}

/// Everything a KPI report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiInput {
    /// Attempts made in the period, by task group, outcome and currency.
    pub attempts: Vec<AttemptCount>,
    /// Accounts attempted in the period, one per task group and account.
    pub accounts: Vec<AccountAttempted>,
    /// Promises made in the period, by task group and status.
    pub promises_made: Vec<PromiseCount>,
    /// Promises resolved (kept or broken) in the period.
    pub promises_resolved: Vec<ResolvedPromise>,
    /// Payments received in the period.
    pub payments: Vec<PaymentRow>,
    /// Paid-in-full events in the period, in time order.
    pub cures: Vec<CureRow>,
    /// The accounts' states at the period's bounds, folded by state and currency (the roll
    /// matrix and the balances by stage).
    pub states: StateCells,
    /// Accounts that entered collections in the period, with their first cure (the vintages).
    pub entries: Vec<VintageEntry>,
}

/// The amounts of a KPI row in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CurrencyKpis {
    /// ISO 4217 code.
    pub currency: String,
    /// Accounts of this currency attempted in the period.
    pub accounts: u64,
    /// Attempts on them.
    pub attempts: u64,
    /// Payments received in the period.
    pub payments: u64,
    /// Their sum, exact.
    #[schema(value_type = String, example = "1250.50")]
    pub collected: Money,
    /// `collected / accounts`, to 4 decimals; null without accounts.
    #[schema(value_type = Option<String>, example = "12.5")]
    pub collected_per_account: Option<Money>,
    /// `collected / attempts`, to 4 decimals; null without attempts.
    #[schema(value_type = Option<String>, example = "3.25")]
    pub collected_per_attempt: Option<Money>,
    /// The amount of the promises kept in the period.
    #[schema(value_type = String, example = "300")]
    pub promised_kept: Money,
    /// The amount of the promises kept or broken in the period.
    #[schema(value_type = String, example = "500")]
    pub promised_resolved: Money,
    /// `promised_kept / promised_resolved`: the kept rate by amount; null when none resolved.
    pub kept_rate_by_amount: Option<f64>,
}

impl CurrencyKpis {
    fn empty(currency: &str) -> CurrencyKpis {
        CurrencyKpis {
            currency: currency.to_string(),
            accounts: 0,
            attempts: 0,
            payments: 0,
            collected: Money::ZERO,
            collected_per_account: None,
            collected_per_attempt: None,
            promised_kept: Money::ZERO,
            promised_resolved: Money::ZERO,
            kept_rate_by_amount: None,
        }
    }

    fn add(&mut self, other: &CurrencyKpis) {
        self.accounts += other.accounts;
        self.attempts += other.attempts;
        self.payments += other.payments;
        self.collected += other.collected;
        self.promised_kept += other.promised_kept;
        self.promised_resolved += other.promised_resolved;
    }

    fn finish(&mut self) {
        let per = |amount: Money, count: u64| {
            (count > 0).then(|| amount.checked_div(Money::from(count))).flatten().map(|v| v.round_dp(4).normalize())
        };
        self.collected = self.collected.normalize();
        self.promised_kept = self.promised_kept.normalize();
        self.promised_resolved = self.promised_resolved.normalize();
        self.collected_per_account = per(self.collected, self.accounts);
        self.collected_per_attempt = per(self.collected, self.attempts);
        self.kept_rate_by_amount = money_share(self.promised_kept, self.promised_resolved);
    }
}

/// The KPIs of one group (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiRow {
    /// The group's name (`(none)` for rows without a task; `total` for the total row).
    pub group: String,
    /// Distinct accounts attempted in the period (an account attempted under two groups counts
    /// in each, and once in the total).
    pub accounts: u64,
    /// Contact attempts made in the period.
    pub attempts: u64,
    /// Attempts whose outcome reached the right party (a conversation or `paid_claimed`).
    pub right_party_contacts: u64,
    /// `right_party_contacts / attempts`, a fraction (0.25 = 25 %); null without attempts.
    pub rpc_rate: Option<f64>,
    /// Promises made in the period.
    pub promises_made: u64,
    /// `promises_made / right_party_contacts`; null without right-party contacts.
    pub promise_rate: Option<f64>,
    /// Promises kept in the period (whenever they were made).
    pub promises_kept: u64,
    /// Promises broken in the period (whenever they were made).
    pub promises_broken: u64,
    /// `promises_kept / (promises_kept + promises_broken)`; null when none was resolved.
    pub kept_rate: Option<f64>,
    /// Payments received in the period.
    pub payments: u64,
    /// Accounts paid in full in the period (each counted once).
    pub cures: u64,
    /// `cures / accounts`; null without accounts.
    pub cure_rate: Option<f64>,
    /// `attempts / cures`: what a cure cost in attempts; null without cures.
    pub attempts_per_cure: Option<f64>,
    /// Agent minutes: the durations agents reported for their calls in the period (a human
    /// call reported without a duration adds nothing).
    pub agent_minutes: f64,
    /// `agent_minutes / cures`; null without cures.
    pub agent_minutes_per_cure: Option<f64>,
    /// The same in seconds, exact.
    pub agent_seconds: u64,
    /// The amounts, one entry per currency (never summed across currencies), by code.
    pub amounts: Vec<CurrencyKpis>,
}

impl KpiRow {
    pub(crate) fn empty(group: String) -> KpiRow {
        KpiRow {
            group,
            accounts: 0,
            attempts: 0,
            right_party_contacts: 0,
            rpc_rate: None,
            promises_made: 0,
            promise_rate: None,
            promises_kept: 0,
            promises_broken: 0,
            kept_rate: None,
            payments: 0,
            cures: 0,
            cure_rate: None,
            attempts_per_cure: None,
            agent_minutes: 0.0,
            agent_minutes_per_cure: None,
            agent_seconds: 0,
            amounts: Vec::new(),
        }
    }

    fn currency(&mut self, currency: &str) -> &mut CurrencyKpis {
        let index = match self.amounts.binary_search_by(|amounts| amounts.currency.as_str().cmp(currency)) {
            Ok(index) => index,
            Err(index) => {
                self.amounts.insert(index, CurrencyKpis::empty(currency));
                index
            }
        };
        &mut self.amounts[index]
    }

    fn add(&mut self, other: &KpiRow) {
        self.accounts += other.accounts;
        self.attempts += other.attempts;
        self.right_party_contacts += other.right_party_contacts;
        self.promises_made += other.promises_made;
        self.promises_kept += other.promises_kept;
        self.promises_broken += other.promises_broken;
        self.payments += other.payments;
        self.cures += other.cures;
        self.agent_seconds += other.agent_seconds;
        for amounts in &other.amounts {
            self.currency(&amounts.currency).add(amounts);
        }
    }

    /// The amounts in one currency, if the row has any.
    pub fn amounts_in(&self, currency: &str) -> Option<&CurrencyKpis> {
        self.amounts.iter().find(|amounts| amounts.currency == currency)
    }

    /// Computes the ratios from the counts.
    fn finish(&mut self) {
        self.rpc_rate = ratio(self.right_party_contacts, self.attempts);
        self.promise_rate = ratio(self.promises_made, self.right_party_contacts);
        self.kept_rate = ratio(self.promises_kept, self.promises_kept + self.promises_broken);
        self.cure_rate = ratio(self.cures, self.accounts);
        self.attempts_per_cure = (self.cures > 0).then(|| self.attempts as f64 / self.cures as f64);
        self.agent_minutes = self.agent_seconds as f64 / 60.0;
        self.agent_minutes_per_cure = (self.cures > 0).then(|| self.agent_minutes / self.cures as f64);
        for amounts in &mut self.amounts {
            amounts.finish();
        }
    }
}

/// `part / whole` as a fraction; null when the whole is not positive.
fn money_share(part: Money, whole: Money) -> Option<f64> {
    if whole > Money::ZERO { Some(part.to_f64()? / whole.to_f64()?) } else { None }
}

pub(crate) fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// A KPI report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiReport {
    /// First instant included (UTC).
    pub from: DateTime<Utc>,
    /// First instant no longer included (UTC).
    pub to: DateTime<Utc>,
    /// What the rows are grouped by.
    pub by: GroupBy,
    /// One row per group, by name; `(none)` last.
    pub groups: Vec<KpiRow>,
    /// All groups together (`group` is `total`).
    pub total: KpiRow,
    /// The co-lending funder whose share the report shows (`(none)`: the accounts no funder
    /// holds a share of); absent for the whole portfolio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funder: Option<String>,
    /// The accounts in each state at `to` and their balance then, best state first.
    pub balances: Vec<StageBalance>,
    /// Where the accounts in each state at `from` are at `to`, by count and balance.
    pub roll: RollMatrix,
    /// Accounts entering collections in the period, by week, cured after 7/14/30/60 days.
    pub vintages: Vec<Vintage>,
}

/// Aggregates the rows of a period into a report: `order` says which stages are worse,
/// `zone` cuts the vintages' weeks.
pub fn aggregate(input: &KpiInput, period: Period, by: GroupBy, order: &StageOrder, zone: Tz) -> KpiReport {
    let mut rows: BTreeMap<String, KpiRow> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<String, KpiRow>, group: &Option<TaskGroup>, by: GroupBy) -> &'a mut KpiRow {
        let key = key_of(group, by);
        rows.entry(key.clone()).or_insert_with(|| KpiRow::empty(key))
    }
    for attempt in &input.attempts {
        let entry = row(&mut rows, &attempt.group, by);
        entry.attempts += attempt.count;
        entry.agent_seconds += attempt.agent_seconds;
        entry.currency(&attempt.currency).attempts += attempt.count;
        if attempt.outcome.parse::<Outcome>().is_ok_and(Outcome::is_right_party) {
            entry.right_party_contacts += attempt.count;
        }
    }
    // Distinct accounts per row (a row gathers several groups: a strategy's stages and rules)
    // and for the total, by currency.
    let mut distinct: HashSet<(String, &str)> = HashSet::new();
    let mut distinct_total: HashSet<&str> = HashSet::new();
    let mut total_accounts: BTreeMap<&str, u64> = BTreeMap::new();
    for attempted in &input.accounts {
        if distinct_total.insert(attempted.account_id.as_str()) {
            *total_accounts.entry(attempted.currency.as_str()).or_default() += 1;
        }
        if distinct.insert((key_of(&attempted.group, by), attempted.account_id.as_str())) {
            let entry = row(&mut rows, &attempted.group, by);
            entry.accounts += 1;
            entry.currency(&attempted.currency).accounts += 1;
        }
    }
    for promise in &input.promises_made {
        row(&mut rows, &promise.group, by).promises_made += promise.count;
    }
    for promise in &input.promises_resolved {
        let entry = row(&mut rows, &promise.group, by);
        if promise.kept {
            entry.promises_kept += 1;
        } else {
            entry.promises_broken += 1;
        }
        let amounts = entry.currency(&promise.currency);
        amounts.promised_resolved += promise.amount;
        if promise.kept {
            amounts.promised_kept += promise.amount;
        }
    }
    for payment in &input.payments {
        let entry = row(&mut rows, &payment.group, by);
        entry.payments += 1;
        let amounts = entry.currency(&payment.currency);
        amounts.payments += 1;
        amounts.collected += payment.amount;
    }
    let mut cured = HashSet::new();
    for cure in &input.cures {
        if cured.insert(cure.account_id.as_str()) {
            row(&mut rows, &cure.group, by).cures += 1;
        }
    }

    let mut total = KpiRow::empty("total".into());
    let none = rows.remove(NO_GROUP);
    let mut groups: Vec<KpiRow> = rows.into_values().chain(none).collect();
    for group in &mut groups {
        total.add(group);
        group.finish();
    }
    // The rows' sums count an account attempted in two rows twice: the total counts it once.
    total.accounts = total_accounts.values().sum();
    for amounts in &mut total.amounts {
        amounts.accounts = total_accounts.get(amounts.currency.as_str()).copied().unwrap_or(0);
    }
    total.finish();
    KpiReport {
        from: period.from,
        to: period.to,
        by,
        groups,
        total,
        funder: None,
        balances: roll::stage_balances(&input.states, order),
        roll: roll::roll_matrix(&input.states, order),
        vintages: vintage::vintages(&input.entries, period.to, zone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(stage: &str, rule: &str, arm: Option<&str>) -> Option<TaskGroup> {
        Some(TaskGroup { stage: stage.into(), strategy: "s".into(), rule: rule.into(), arm: arm.map(str::to_string) })
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn period() -> Period {
        Period { from: at("2026-11-16T00:00:00Z"), to: at("2026-11-23T00:00:00Z") }
    }

    fn zone() -> Tz {
        "UTC".parse().unwrap()
    }

    fn input() -> KpiInput {
        let attempt = |group, outcome: &str, currency: &str, count| AttemptCount {
            group,
            outcome: outcome.into(),
            currency: currency.into(),
            count,
            agent_seconds: 90 * count,
        };
        let money = |text: &str| text.parse::<Money>().unwrap();
        KpiInput {
            attempts: vec![
                attempt(group("M1", "a", None), "no_answer", "USD", 3),
                attempt(group("M1", "a", None), "rpc", "USD", 1),
                attempt(group("M1", "b", Some("x")), "promise", "CNY", 1),
                attempt(None, "paid_claimed", "USD", 1),
                attempt(group("M2", "c", None), "no_answer", "USD", 2),
            ],
            accounts: vec![
                attempted(group("M1", "a", None), "USD", "U1"),
                attempted(group("M1", "a", None), "USD", "U2"),
                attempted(group("M1", "b", Some("x")), "CNY", "C1"),
                attempted(None, "USD", "U3"),
                attempted(group("M2", "c", None), "USD", "U1"),
            ],
            promises_made: vec![PromiseCount { group: group("M1", "b", Some("x")), status: "open".into(), count: 1 }],
            promises_resolved: vec![
                ResolvedPromise {
                    account_id: "C1".into(),
                    group: group("M1", "b", Some("x")),
                    kept: true,
                    amount: money("300"),
                    currency: "CNY".into(),
                },
                ResolvedPromise {
                    account_id: "U3".into(),
                    group: None,
                    kept: false,
                    amount: money("50"),
                    currency: "USD".into(),
                },
                ResolvedPromise {
                    account_id: "U3".into(),
                    group: None,
                    kept: false,
                    amount: money("25"),
                    currency: "USD".into(),
                },
            ],
            payments: vec![
                PaymentRow {
                    account_id: "A".into(),
                    group: group("M2", "c", None),
                    amount: money("0.1"),
                    currency: "USD".into(),
                },
                PaymentRow {
                    account_id: "A".into(),
                    group: group("M2", "c", None),
                    amount: money("0.2"),
                    currency: "USD".into(),
                },
                PaymentRow {
                    account_id: "A".into(),
                    group: group("M1", "b", Some("x")),
                    amount: money("300"),
                    currency: "CNY".into(),
                },
            ],
            cures: vec![
                CureRow { account_id: "A".into(), group: group("M2", "c", None) },
                CureRow { account_id: "A".into(), group: group("M2", "c", None) },
            ],
            ..KpiInput::default()
        }
    }

    fn report(by: GroupBy) -> KpiReport {
        aggregate(&input(), period(), by, &StageOrder::new([("M1", 1), ("M2", 31)]), zone())
    }

    fn attempted(group: Option<TaskGroup>, currency: &str, account: &str) -> AccountAttempted {
        AccountAttempted { group, currency: currency.into(), account_id: account.into() }
    }

    #[test]
    fn an_account_attempted_under_several_groups_of_a_row_counts_once_in_it() {
        // U1 attempted under rules a and b in M1 and under a in M2; U2 under a in M2.
        let input = KpiInput {
            accounts: vec![
                attempted(group("M1", "a", None), "USD", "U1"),
                attempted(group("M1", "b", None), "USD", "U1"),
                attempted(group("M2", "a", None), "USD", "U1"),
                attempted(group("M2", "a", None), "USD", "U2"),
            ],
            ..KpiInput::default()
        };
        let order = StageOrder::new([("M1", 1), ("M2", 31)]);
        let accounts = |by: GroupBy| -> Vec<(String, u64, u64)> {
            let report = aggregate(&input, period(), by, &order, zone());
            let usd = |row: &KpiRow| row.amounts_in("USD").map_or(0, |amounts| amounts.accounts);
            report.groups.iter().chain([&report.total]).map(|row| (row.group.clone(), row.accounts, usd(row))).collect()
        };
        let rows = |rows: &[(&str, u64)]| -> Vec<(String, u64, u64)> {
            rows.iter().map(|(name, count)| (name.to_string(), *count, *count)).collect()
        };
        assert_eq!(accounts(GroupBy::Stage), rows(&[("M1", 1), ("M2", 2), ("total", 2)]));
        assert_eq!(accounts(GroupBy::Rule), rows(&[("s/a", 2), ("s/b", 1), ("total", 2)]));
        assert_eq!(accounts(GroupBy::Strategy), rows(&[("s", 2), ("total", 2)]));
    }

    #[test]
    fn groups_by_stage_with_a_total_and_none_last() {
        let report = report(GroupBy::Stage);
        let names: Vec<&str> = report.groups.iter().map(|row| row.group.as_str()).collect();
        assert_eq!(names, ["M1", "M2", "(none)"]);
        let m1 = &report.groups[0];
        assert_eq!((m1.accounts, m1.attempts, m1.right_party_contacts, m1.promises_made), (3, 5, 2, 1));
        assert_eq!((m1.rpc_rate, m1.promise_rate, m1.kept_rate), (Some(0.4), Some(0.5), Some(1.0)));
        let m2 = &report.groups[1];
        let usd = m2.amounts_in("USD").unwrap();
        assert_eq!(usd.collected.to_string(), "0.3", "summed exactly");
        assert_eq!((usd.payments, usd.accounts, usd.attempts), (2, 1, 2));
        assert_eq!(
            (usd.collected_per_account, usd.collected_per_attempt),
            (Some("0.3".parse().unwrap()), Some("0.15".parse().unwrap()))
        );
        assert_eq!((m2.cures, m2.cure_rate, m2.attempts_per_cure), (1, Some(1.0), Some(2.0)));
        assert_eq!((m2.agent_minutes, m2.agent_minutes_per_cure), (3.0, Some(3.0)), "2 calls of 90 s");
        let total = &report.total;
        assert_eq!(
            (total.accounts, total.attempts, total.right_party_contacts, total.promises_kept, total.promises_broken),
            (4, 8, 3, 1, 2)
        );
        let currencies: Vec<&str> = total.amounts.iter().map(|amounts| amounts.currency.as_str()).collect();
        assert_eq!(currencies, ["CNY", "USD"], "one entry per currency, never a sum of both");
        let cny = total.amounts_in("CNY").unwrap();
        assert_eq!((cny.collected, cny.kept_rate_by_amount), ("300".parse().unwrap(), Some(1.0)));
        let usd = total.amounts_in("USD").unwrap();
        assert_eq!((usd.collected.to_string().as_str(), usd.accounts, usd.attempts), ("0.3", 3, 7));
        assert_eq!((usd.promised_resolved, usd.kept_rate_by_amount), ("75".parse().unwrap(), Some(0.0)));
    }

    #[test]
    fn rules_and_arms_are_named_within_their_strategy() {
        let names = |report: KpiReport| report.groups.iter().map(|row| row.group.clone()).collect::<Vec<_>>();
        assert_eq!(names(report(GroupBy::Rule)), ["s/a", "s/b", "s/c", "(none)"]);
        assert_eq!(names(report(GroupBy::Arm)), ["(no arm)", "s/x", "(none)"]);
    }

    #[test]
    fn periods_read_dates_in_the_portfolio_zone() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        let now = at("2026-11-23T05:00:00Z");
        let period = Period::parse(Some("2026-11-16"), Some("2026-11-22"), zone, now).unwrap();
        assert_eq!((period.from, period.to), (at("2026-11-15T16:00:00Z"), at("2026-11-22T16:00:00Z")));
        let period = Period::parse(None, None, zone, now).unwrap();
        assert_eq!((period.from, period.to), (at("2026-11-16T05:00:00Z"), now));
        let period = Period::parse(Some("2026-11-20T00:00:00+08:00"), None, zone, now).unwrap();
        assert_eq!(period.from, at("2026-11-19T16:00:00Z"));
        assert!(period.contains(at("2026-11-19T16:00:00Z")) && !period.contains(now));
        let error = Period::parse(Some("yesterday"), None, zone, now).unwrap_err();
        assert_eq!(error.parameter(), "from");
        assert_eq!(Period::parse(Some("2026-11-24"), None, zone, now).unwrap_err().parameter(), "from");
        assert_eq!(Period::parse(None, Some("2026-13-01"), zone, now).unwrap_err().parameter(), "to");
        assert_eq!("color".parse::<GroupBy>().unwrap_err().parameter(), "by");
    }

    #[test]
    fn the_text_tables_are_aligned_with_percentages_and_cents_per_currency() {
        let report = report(GroupBy::Stage);
        let mut text = Vec::new();
        write_text(&report, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("stage   accounts  attempts  RPC  RPC rate"), "{text}");
        let m1 = lines.iter().find(|line| line.starts_with("M1 ")).unwrap();
        assert!(m1.contains("40.0%") && m1.contains("50.0%") && m1.contains("100.0%"), "{text}");
        let widths: HashSet<usize> = lines[2..8].iter().map(|line| line.len()).collect();
        assert_eq!(widths.len(), 1, "aligned:\n{text}");
        let m2_usd = lines.iter().find(|line| line.starts_with("M2 ") && line.contains("USD")).unwrap();
        assert!(m2_usd.contains(" 0.30 "), "{text}");
        assert!(lines.iter().any(|line| line.starts_with("total") && line.contains("CNY") && line.contains("300.00")));
        assert!(!text.contains("mix currencies"), "{text}");
        assert_eq!(text.matches("Roll matrix").count(), 1, "{text}");
        let mut groups_only = Vec::new();
        write_groups(&report, &mut groups_only).unwrap();
        assert!(!String::from_utf8(groups_only).unwrap().contains("Roll matrix"));
    }
}
