//! `arrears report --reactions`: per reaction, the events it acted on, its cases, how many were
//! closed within their SLA, the dispositions, its precision (the `confirmed` share of closed
//! cases) and the lead time from the event to the account's next roll into a worse stage (the
//! next missed payment). Pure: the firings, cases and stage changes in, rows out.

use super::StageOrder;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

/// One reaction acting on one account for one event (the `reaction.fired` audit row).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// When it acted.
    pub at: DateTime<Utc>,
    /// The event.
    pub event_id: String,
    /// The account.
    pub account_id: String,
    /// The strategy.
    pub strategy: String,
    /// The reaction.
    pub reaction: String,
    /// The case it opened.
    pub case_id: Option<i64>,
}

/// What the report reads of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFacts {
    /// Its SLA deadline.
    pub due_at: DateTime<Utc>,
    /// When it was closed, with what.
    pub closed: Option<(DateTime<Utc>, String)>,
}

/// One stage change of an account: `(at, from, to)`.
pub type StageMove = (DateTime<Utc>, Option<String>, String);

/// One reaction's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReactionRow {
    /// The strategy.
    pub strategy: String,
    /// The reaction.
    pub reaction: String,
    /// Distinct events it acted on.
    pub events: u64,
    /// Distinct accounts.
    pub accounts: u64,
    /// Cases it opened.
    pub cases: u64,
    /// Cases still open.
    pub open: u64,
    /// Open cases past their deadline now.
    pub overdue: u64,
    /// Cases closed.
    pub closed: u64,
    /// Cases closed by their deadline.
    pub sla_met: u64,
    /// Closed cases by disposition.
    pub dispositions: BTreeMap<String, u64>,
    /// `confirmed` / closed, when any was closed.
    pub precision: Option<f64>,
    /// Accounts that rolled into a worse stage after the event.
    pub rolled: u64,
    /// Median days from the event to that roll.
    pub median_lead_days: Option<f64>,
}

/// The rows, by strategy and reaction.
pub fn reaction_rows(
    firings: &[Firing],
    cases: &HashMap<i64, CaseFacts>,
    moves: &HashMap<String, Vec<StageMove>>,
    order: &StageOrder,
    now: DateTime<Utc>,
) -> Vec<ReactionRow> {
    let mut grouped: BTreeMap<(String, String), Vec<&Firing>> = BTreeMap::new();
    for firing in firings {
        grouped.entry((firing.strategy.clone(), firing.reaction.clone())).or_default().push(firing);
    }
    grouped
        .into_iter()
        .map(|((strategy, reaction), firings)| {
            let mut row = ReactionRow { strategy, reaction, ..ReactionRow::default() };
            row.events = firings.iter().map(|f| &f.event_id).collect::<BTreeSet<_>>().len() as u64;
            row.accounts = firings.iter().map(|f| &f.account_id).collect::<BTreeSet<_>>().len() as u64;
            let mut leads = Vec::new();
            let mut counted = BTreeSet::new();
            for firing in &firings {
                if let Some(case) = firing.case_id.and_then(|id| cases.get(&id)) {
                    row.cases += 1;
                    match &case.closed {
                        Some((closed_at, disposition)) => {
                            row.closed += 1;
                            row.sla_met += u64::from(*closed_at <= case.due_at);
                            *row.dispositions.entry(disposition.clone()).or_insert(0) += 1;
                        }
                        None => {
                            row.open += 1;
                            row.overdue += u64::from(now > case.due_at);
                        }
                    }
                }
                if !counted.insert((&firing.event_id, &firing.account_id)) {
                    continue;
                }
                let roll = moves.get(&firing.account_id).into_iter().flatten().find(|(at, from, to)| {
                    *at > firing.at && from.as_deref().is_some_and(|from| order.worse(from, to))
                });
                if let Some((at, _, _)) = roll {
                    leads.push((*at - firing.at).num_minutes() as f64 / 1440.0);
                }
            }
            let confirmed = row.dispositions.get("confirmed").copied().unwrap_or(0);
            row.precision = (row.closed > 0).then(|| confirmed as f64 / row.closed as f64);
            row.rolled = leads.len() as u64;
            leads.sort_by(f64::total_cmp);
            row.median_lead_days = match leads.len() {
                0 => None,
                n if n % 2 == 1 => Some(leads[n / 2]),
                n => Some((leads[n / 2 - 1] + leads[n / 2]) / 2.0),
            };
            row
        })
        .collect()
}

/// The rows as a table for people.
pub fn write_reactions(
    rows: &[ReactionRow],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(out, "Reactions to risk events, {} to {}", from.format("%Y-%m-%d %H:%M"), to.format("%Y-%m-%d %H:%M"))?;
    if rows.is_empty() {
        writeln!(out, "  no reaction acted in the period")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:<26} {:>6} {:>8} {:>6} {:>5} {:>7} {:>6} {:>7} {:>9} {:>7} {:>9}  dispositions",
        "strategy",
        "reaction",
        "events",
        "accounts",
        "cases",
        "open",
        "overdue",
        "closed",
        "sla met",
        "precision",
        "rolled",
        "lead days"
    )?;
    for row in rows {
        let dispositions: Vec<String> =
            row.dispositions.iter().map(|(name, count)| format!("{name} {count}")).collect();
        writeln!(
            out,
            "{:<16} {:<26} {:>6} {:>8} {:>6} {:>5} {:>7} {:>6} {:>7} {:>9} {:>7} {:>9}  {}",
            row.strategy,
            row.reaction,
            row.events,
            row.accounts,
            row.cases,
            row.open,
            row.overdue,
            row.closed,
            if row.closed > 0 { format!("{}/{}", row.sla_met, row.closed) } else { "-".into() },
            row.precision.map_or_else(|| "-".into(), |p| format!("{:.0} %", p * 100.0)),
            row.rolled,
            row.median_lead_days.map_or_else(|| "-".into(), |days| format!("{days:.1}")),
            if dispositions.is_empty() { "-".to_string() } else { dispositions.join(", ") },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn rows_count_sla_dispositions_precision_and_lead_time() {
        let order = StageOrder::new([("M1", 1), ("M2", 31)]);
        let firing = |event: &str, account: &str, case: Option<i64>| Firing {
            at: at("2026-11-01T10:00:00Z"),
            event_id: event.into(),
            account_id: account.into(),
            strategy: "s".into(),
            reaction: "fraud".into(),
            case_id: case,
        };
        let firings = vec![firing("e1", "A", Some(1)), firing("e2", "B", Some(2)), firing("e3", "C", Some(3))];
        let due = at("2026-11-01T14:00:00Z");
        let cases = HashMap::from([
            (1, CaseFacts { due_at: due, closed: Some((at("2026-11-01T12:00:00Z"), "confirmed".into())) }),
            (2, CaseFacts { due_at: due, closed: Some((at("2026-11-02T09:00:00Z"), "false_alarm".into())) }),
            (3, CaseFacts { due_at: due, closed: None }),
        ]);
        let moves = HashMap::from([
            ("A".to_string(), vec![(at("2026-11-11T10:00:00Z"), Some("M1".to_string()), "M2".to_string())]),
            // A cure is no missed payment; a roll before the event does not count.
            ("B".to_string(), vec![(at("2026-10-01T10:00:00Z"), Some("M1".to_string()), "M2".to_string())]),
        ]);
        let rows = reaction_rows(&firings, &cases, &moves, &order, at("2026-11-03T00:00:00Z"));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.events, row.cases, row.closed, row.sla_met, row.open, row.overdue), (3, 3, 2, 1, 1, 1));
        assert_eq!(row.precision, Some(0.5));
        assert_eq!((row.rolled, row.median_lead_days), (1, Some(10.0)));
        assert_eq!(row.dispositions.get("false_alarm"), Some(&1));
    }
}
