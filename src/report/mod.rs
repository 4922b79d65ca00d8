//! KPIs from stored attempts, promises, payments, cures and stage history: the period a report
//! covers ([`Period`]), the rows the store loads for it ([`KpiInput`]), their aggregation by
//! stage, strategy, rule or experiment arm ([`aggregate`]) and the text table managers read
//! ([`write_text`]); and paired comparisons of two simulated runs with their confidence
//! intervals ([`paired`]).
//!
//! Pure: no I/O, no clock. The rows come from `store::load_kpi_input`; `ops::report` ties the
//! two together. Money is summed here with `rust_decimal`, never in SQL floats. The definitions
//! of every KPI are in `docs/operations.md` ("Reports"); change them there too.

pub mod paired;

use crate::domain::{Money, Outcome};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io::Write;
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
    fn invalid(parameter: &'static str, message: impl Into<String>) -> Self {
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
fn start_of_day(date: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    (0..=24 * 4).find_map(|quarter| {
        let local = date.and_time(NaiveTime::MIN) + Duration::minutes(15 * quarter);
        zone.from_local_datetime(&local).earliest().map(|at| at.with_timezone(&Utc))
    })
}

/// The task an attempt carried out, or the one a payment or cure is attributed to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// Attempts in the period with one outcome in one task group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCount {
    /// The attempt's task (none for imported attempts).
    pub group: Option<TaskGroup>,
    /// The stored outcome code.
    pub outcome: String,
    /// How many.
    pub count: u64,
}

/// Promises in one status and task group (made in the period, or resolved in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromiseCount {
    /// The task of the attempt that made the promise (none for imported promises).
    pub group: Option<TaskGroup>,
    /// `open`, `kept` or `broken`.
    pub status: String,
    /// How many.
    pub count: u64,
}

/// One payment received in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// The account's latest task before the payment.
    pub group: Option<TaskGroup>,
    /// The amount, exact.
    pub amount: Money,
    /// The account's currency (none when the account is unknown).
    pub currency: Option<String>,
}

/// One `account.paid_in_full` event in the period, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CureRow {
    /// The account.
    pub account_id: String,
    /// The account's latest task before the event.
    pub group: Option<TaskGroup>,
}

/// Stage changes in the period from one stage to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMoveCount {
    /// The stage the accounts left.
    pub from_stage: String,
    /// The stage they entered.
    pub to_stage: String,
    /// How many changes.
    pub count: u64,
}

/// Everything a KPI report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiInput {
    /// Attempts made in the period, by task group and outcome.
    pub attempts: Vec<AttemptCount>,
    /// Promises made in the period, by task group and status.
    pub promises_made: Vec<PromiseCount>,
    /// Promises resolved (kept or broken) in the period, by task group and status.
    pub promises_resolved: Vec<PromiseCount>,
    /// Payments received in the period.
    pub payments: Vec<PaymentRow>,
    /// Paid-in-full events in the period, in time order.
    pub cures: Vec<CureRow>,
    /// Stage changes in the period (first classifications excluded).
    pub moves: Vec<StageMoveCount>,
}

/// The KPIs of one group (or of all of them).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KpiRow {
    /// The group's name (`(none)` for rows without a task; `total` for the total row).
    pub group: String,
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
    /// Their sum, exact.
    #[schema(value_type = String, example = "1250.50")]
    pub collected: Money,
    /// Accounts paid in full in the period (each counted once).
    pub cures: u64,
    /// `attempts / collected`: the attempts each unit of money cost; null when nothing was
    /// collected.
    pub attempts_per_unit: Option<f64>,
    /// `collected / attempts`, to 4 decimals; null without attempts.
    #[schema(value_type = Option<String>, example = "12.5")]
    pub collected_per_attempt: Option<Money>,
}

impl KpiRow {
    fn empty(group: String) -> KpiRow {
        KpiRow {
            group,
            attempts: 0,
            right_party_contacts: 0,
            rpc_rate: None,
            promises_made: 0,
            promise_rate: None,
            promises_kept: 0,
            promises_broken: 0,
            kept_rate: None,
            payments: 0,
            collected: Money::ZERO,
            cures: 0,
            attempts_per_unit: None,
            collected_per_attempt: None,
        }
    }

    fn add(&mut self, other: &KpiRow) {
        self.attempts += other.attempts;
        self.right_party_contacts += other.right_party_contacts;
        self.promises_made += other.promises_made;
        self.promises_kept += other.promises_kept;
        self.promises_broken += other.promises_broken;
        self.payments += other.payments;
        self.collected += other.collected;
        self.cures += other.cures;
    }

    /// Computes the ratios from the counts.
    fn finish(&mut self) {
        self.rpc_rate = ratio(self.right_party_contacts, self.attempts);
        self.promise_rate = ratio(self.promises_made, self.right_party_contacts);
        self.kept_rate = ratio(self.promises_kept, self.promises_kept + self.promises_broken);
        self.collected = self.collected.normalize();
        self.attempts_per_unit = if self.collected > Money::ZERO {
            self.collected.to_f64().map(|collected| self.attempts as f64 / collected)
        } else {
            None
        };
        self.collected_per_attempt = if self.attempts > 0 {
            self.collected.checked_div(Money::from(self.attempts)).map(|value| value.round_dp(4).normalize())
        } else {
            None
        };
    }
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// One cell of the roll-rate table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RollRate {
    /// The stage accounts left.
    pub from_stage: String,
    /// The stage they entered.
    pub to_stage: String,
    /// Stage changes from `from_stage` to `to_stage` in the period.
    pub count: u64,
    /// `count` / all changes out of `from_stage` in the period.
    pub share: f64,
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
    /// Stage changes in the period, by from-stage then to-stage.
    pub roll_rates: Vec<RollRate>,
    /// The currencies of the payments summed in `collected` (more than one means the sums mix
    /// currencies).
    pub currencies: Vec<String>,
}

/// Aggregates the rows of a period into a report.
pub fn aggregate(input: &KpiInput, period: Period, by: GroupBy) -> KpiReport {
    let mut rows: BTreeMap<String, KpiRow> = BTreeMap::new();
    fn row<'a>(rows: &'a mut BTreeMap<String, KpiRow>, group: &Option<TaskGroup>, by: GroupBy) -> &'a mut KpiRow {
        let key = key_of(group, by);
        rows.entry(key.clone()).or_insert_with(|| KpiRow::empty(key))
    }
    for attempt in &input.attempts {
        let entry = row(&mut rows, &attempt.group, by);
        entry.attempts += attempt.count;
        if attempt.outcome.parse::<Outcome>().is_ok_and(Outcome::is_right_party) {
            entry.right_party_contacts += attempt.count;
        }
    }
    for promise in &input.promises_made {
        row(&mut rows, &promise.group, by).promises_made += promise.count;
    }
    for promise in &input.promises_resolved {
        let entry = row(&mut rows, &promise.group, by);
        match promise.status.as_str() {
            "kept" => entry.promises_kept += promise.count,
            "broken" => entry.promises_broken += promise.count,
            _ => {}
        }
    }
    let mut currencies = BTreeSet::new();
    for payment in &input.payments {
        let entry = row(&mut rows, &payment.group, by);
        entry.payments += 1;
        entry.collected += payment.amount;
        currencies.extend(payment.currency.clone());
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
    total.finish();
    KpiReport {
        from: period.from,
        to: period.to,
        by,
        groups,
        total,
        roll_rates: roll_rates(&input.moves),
        currencies: currencies.into_iter().collect(),
    }
}

/// Each from-stage → to-stage count with its share of the from-stage's changes.
fn roll_rates(moves: &[StageMoveCount]) -> Vec<RollRate> {
    let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut out_of: BTreeMap<&str, u64> = BTreeMap::new();
    for change in moves {
        *counts.entry((change.from_stage.as_str(), change.to_stage.as_str())).or_default() += change.count;
        *out_of.entry(change.from_stage.as_str()).or_default() += change.count;
    }
    counts
        .into_iter()
        .map(|((from, to), count)| RollRate {
            from_stage: from.to_string(),
            to_stage: to.to_string(),
            count,
            share: ratio(count, out_of.get(from).copied().unwrap_or(0)).unwrap_or(0.0),
        })
        .collect()
}

/// Writes the report for people: the KPI table (rates as percentages, money with 2 decimals)
/// and the roll-rate matrix (count and share of the row's changes).
pub fn write_text(report: &KpiReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "KPIs from {} to {} (UTC, end excluded), by {}",
        report.from.format("%Y-%m-%d %H:%M"),
        report.to.format("%Y-%m-%d %H:%M"),
        report.by
    )?;
    writeln!(out)?;
    let header = [
        report.by.code(),
        "attempts",
        "RPC",
        "RPC rate",
        "promises",
        "promise rate",
        "kept",
        "broken",
        "kept rate",
        "payments",
        "collected",
        "cures",
        "attempts/unit",
        "per attempt",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| cell.to_string()).collect()];
    for row in report.groups.iter().chain([&report.total]) {
        lines.push(vec![
            row.group.clone(),
            row.attempts.to_string(),
            row.right_party_contacts.to_string(),
            percent(row.rpc_rate),
            row.promises_made.to_string(),
            percent(row.promise_rate),
            row.promises_kept.to_string(),
            row.promises_broken.to_string(),
            percent(row.kept_rate),
            row.payments.to_string(),
            money(Some(row.collected)),
            row.cures.to_string(),
            row.attempts_per_unit.map_or_else(|| "-".into(), |value| format!("{value:.4}")),
            money(row.collected_per_attempt),
        ]);
    }
    write_table(out, &lines, Some(lines.len() - 1))?;
    if report.currencies.len() > 1 {
        writeln!(out, "note: the amounts mix currencies ({})", report.currencies.join(", "))?;
    }

    writeln!(out)?;
    writeln!(out, "Roll rates (stage changes in the period; share of the row's changes)")?;
    if report.roll_rates.is_empty() {
        writeln!(out, "  no stage changes")?;
        return Ok(());
    }
    let from: BTreeSet<&str> = report.roll_rates.iter().map(|rate| rate.from_stage.as_str()).collect();
    let to: BTreeSet<&str> = report.roll_rates.iter().map(|rate| rate.to_stage.as_str()).collect();
    let mut lines: Vec<Vec<String>> =
        vec![std::iter::once("from \\ to".to_string()).chain(to.iter().map(|stage| stage.to_string())).collect()];
    for from_stage in &from {
        let mut line = vec![from_stage.to_string()];
        for to_stage in &to {
            let cell = report
                .roll_rates
                .iter()
                .find(|rate| rate.from_stage == *from_stage && rate.to_stage == *to_stage)
                .map_or_else(|| "-".to_string(), |rate| format!("{} ({})", rate.count, percent(Some(rate.share))));
            line.push(cell);
        }
        lines.push(line);
    }
    write_table(out, &lines, None)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |rate| format!("{:.1}%", rate * 100.0))
}

fn money(amount: Option<Money>) -> String {
    amount.map_or_else(|| "-".into(), |amount| format!("{:.2}", amount.round_dp(2)))
}

/// Aligned columns: the first left-aligned, the others right-aligned; a rule under the header
/// and above line `rule_before`.
fn write_table(out: &mut impl Write, lines: &[Vec<String>], rule_before: Option<usize>) -> std::io::Result<()> {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            lines.iter().filter_map(|line| line.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let rule: String = widths.iter().map(|width| "-".repeat(*width)).collect::<Vec<_>>().join("  ");
    for (index, line) in lines.iter().enumerate() {
        if index == 1 || Some(index) == rule_before {
            writeln!(out, "{rule}")?;
        }
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                let width = widths[column];
                if column == 0 { format!("{cell:<width$}") } else { format!("{cell:>width$}") }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
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

    fn input() -> KpiInput {
        let attempt = |group, outcome: &str, count| AttemptCount { group, outcome: outcome.into(), count };
        KpiInput {
            attempts: vec![
                attempt(group("M1", "a", None), "no_answer", 3),
                attempt(group("M1", "a", None), "rpc", 1),
                attempt(group("M1", "b", Some("x")), "promise", 1),
                attempt(None, "paid_claimed", 1),
            ],
            promises_made: vec![PromiseCount { group: group("M1", "b", Some("x")), status: "open".into(), count: 1 }],
            promises_resolved: vec![
                PromiseCount { group: group("M1", "b", Some("x")), status: "kept".into(), count: 1 },
                PromiseCount { group: None, status: "broken".into(), count: 2 },
            ],
            payments: vec![
                PaymentRow {
                    group: group("M2", "c", None),
                    amount: "0.1".parse().unwrap(),
                    currency: Some("USD".into()),
                },
                PaymentRow {
                    group: group("M2", "c", None),
                    amount: "0.2".parse().unwrap(),
                    currency: Some("USD".into()),
                },
            ],
            cures: vec![
                CureRow { account_id: "A".into(), group: group("M2", "c", None) },
                CureRow { account_id: "A".into(), group: group("M2", "c", None) },
            ],
            moves: vec![
                StageMoveCount { from_stage: "M1".into(), to_stage: "M2".into(), count: 3 },
                StageMoveCount { from_stage: "M1".into(), to_stage: "pre-due".into(), count: 1 },
            ],
        }
    }

    #[test]
    fn groups_by_stage_with_a_total_and_none_last() {
        let report = aggregate(&input(), period(), GroupBy::Stage);
        let names: Vec<&str> = report.groups.iter().map(|row| row.group.as_str()).collect();
        assert_eq!(names, ["M1", "M2", "(none)"]);
        let m1 = &report.groups[0];
        assert_eq!((m1.attempts, m1.right_party_contacts, m1.promises_made), (5, 2, 1));
        assert_eq!((m1.rpc_rate, m1.promise_rate, m1.kept_rate), (Some(0.4), Some(0.5), Some(1.0)));
        let m2 = &report.groups[1];
        assert_eq!(m2.collected.to_string(), "0.3", "summed exactly");
        assert_eq!((m2.payments, m2.cures, m2.attempts_per_unit, m2.collected_per_attempt), (2, 1, Some(0.0), None));
        let total = &report.total;
        assert_eq!(
            (total.attempts, total.right_party_contacts, total.promises_kept, total.promises_broken),
            (6, 3, 1, 2)
        );
        assert_eq!(total.collected_per_attempt, Some("0.05".parse().unwrap()));
        assert!((total.attempts_per_unit.unwrap() - 20.0).abs() < 1e-9, "{:?}", total.attempts_per_unit);
        assert_eq!(report.roll_rates[0].share, 0.75);
        assert_eq!(report.currencies, ["USD"]);
    }

    #[test]
    fn rules_and_arms_are_named_within_their_strategy() {
        let report = aggregate(&input(), period(), GroupBy::Rule);
        let names: Vec<&str> = report.groups.iter().map(|row| row.group.as_str()).collect();
        assert_eq!(names, ["s/a", "s/b", "s/c", "(none)"]);
        let report = aggregate(&input(), period(), GroupBy::Arm);
        let names: Vec<&str> = report.groups.iter().map(|row| row.group.as_str()).collect();
        assert_eq!(names, ["(no arm)", "s/x", "(none)"]);
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
    fn the_text_table_is_aligned_with_percentages_and_cents() {
        let report = aggregate(&input(), period(), GroupBy::Stage);
        let mut text = Vec::new();
        write_text(&report, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("stage   attempts  RPC  RPC rate"), "{text}");
        let m1 = lines.iter().find(|line| line.starts_with("M1 ")).unwrap();
        assert!(m1.contains("40.0%") && m1.contains("50.0%") && m1.contains("100.0%"), "{text}");
        let m2 = lines.iter().find(|line| line.starts_with("M2 ")).unwrap();
        assert!(m2.contains(" 0.30 "), "{text}");
        let widths: HashSet<usize> = lines[2..8].iter().map(|line| line.len()).collect();
        assert_eq!(widths.len(), 1, "aligned:\n{text}");
        let matrix = lines.iter().position(|line| line.starts_with("Roll rates")).unwrap();
        assert_eq!(lines[matrix + 1].split_whitespace().collect::<Vec<_>>(), ["from", "\\", "to", "M2", "pre-due"]);
        assert_eq!(lines[matrix + 3].split_whitespace().collect::<Vec<_>>(), ["M1", "3", "(75.0%)", "1", "(25.0%)"]);
    }
}
