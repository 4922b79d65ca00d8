//! The KPI report as people read it in a terminal: the KPI table per group, the amounts per
//! currency, the roll matrix by count and by balance, and the vintages. Formatting only: every
//! number comes from the report, none is computed here beyond rounding.

use super::{KpiReport, Money};
use std::io::Write;

/// Writes the whole report: the group tables, then the portfolio's roll matrix and vintages.
pub fn write_text(report: &KpiReport, out: &mut impl Write) -> std::io::Result<()> {
    write_groups(report, out)?;
    write_portfolio(report, out)
}

/// Writes the KPI and amount tables of the groups (rates as percentages, money with 2
/// decimals), without the portfolio's roll matrix and vintages.
pub fn write_groups(report: &KpiReport, out: &mut impl Write) -> std::io::Result<()> {
    let whose = report.funder.as_ref().map_or_else(String::new, |funder| format!(" for funder {funder}"));
    writeln!(
        out,
        "KPIs{whose} from {} to {} (UTC, end excluded), by {}",
        report.from.format("%Y-%m-%d %H:%M"),
        report.to.format("%Y-%m-%d %H:%M"),
        report.by
    )?;
    writeln!(out)?;
    let header = [
        report.by.code(),
        "accounts",
        "attempts",
        "RPC",
        "RPC rate",
        "promises",
        "promise rate",
        "kept",
        "broken",
        "kept rate",
        "payments",
        "cures",
        "cure rate",
        "attempts/cure",
        "agent min",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| cell.to_string()).collect()];
    for row in report.groups.iter().chain([&report.total]) {
        lines.push(vec![
            row.group.clone(),
            row.accounts.to_string(),
            row.attempts.to_string(),
            row.right_party_contacts.to_string(),
            percent(row.rpc_rate),
            row.promises_made.to_string(),
            percent(row.promise_rate),
            row.promises_kept.to_string(),
            row.promises_broken.to_string(),
            percent(row.kept_rate),
            row.payments.to_string(),
            row.cures.to_string(),
            percent(row.cure_rate),
            row.attempts_per_cure.map_or_else(|| "-".into(), |value| format!("{value:.1}")),
            format!("{:.1}", row.agent_minutes),
        ]);
    }
    write_table(out, &lines, Some(lines.len() - 1))?;

    writeln!(out)?;
    writeln!(out, "Amounts per currency (never summed across currencies)")?;
    let header = [report.by.code(), "currency", "collected", "per account", "per attempt", "kept by amount"];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| cell.to_string()).collect()];
    let mut total_from = 0;
    for (index, row) in report.groups.iter().chain([&report.total]).enumerate() {
        if index == report.groups.len() {
            total_from = lines.len();
        }
        for amounts in &row.amounts {
            lines.push(vec![
                row.group.clone(),
                amounts.currency.clone(),
                money(Some(amounts.collected)),
                money(amounts.collected_per_account),
                money(amounts.collected_per_attempt),
                percent(amounts.kept_rate_by_amount),
            ]);
        }
    }
    if lines.len() == 1 {
        writeln!(out, "  no amounts")?;
    } else {
        let rule = (total_from < lines.len()).then_some(total_from);
        write_table(out, &lines, rule)?;
    }
    Ok(())
}

/// Writes the balances by state at the period's end, the roll matrix (accounts and share of the
/// row, roll and cure rates), the roll and cure rates by balance per currency, and the vintages.
pub fn write_portfolio(report: &KpiReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Balances by state at {}, per currency", report.to.format("%Y-%m-%d %H:%M"))?;
    if report.balances.is_empty() {
        writeln!(out, "  no account had a stage")?;
    } else {
        let mut lines: Vec<Vec<String>> = vec![["state", "accounts", "currency", "balance"].map(String::from).to_vec()];
        for state in &report.balances {
            for balance in &state.balance {
                lines.push(vec![
                    state.stage.clone(),
                    state.accounts.to_string(),
                    balance.currency.clone(),
                    money(Some(balance.amount)),
                ]);
            }
        }
        write_table(out, &lines, None)?;
    }
    let roll = &report.roll;
    writeln!(out)?;
    writeln!(
        out,
        "Roll matrix: accounts by state at {} (rows) and at {} (columns); roll rate = share in a worse stage",
        report.from.format("%Y-%m-%d %H:%M"),
        report.to.format("%Y-%m-%d %H:%M")
    )?;
    if roll.rows.is_empty() && roll.entered.is_none() {
        writeln!(out, "  no account had a stage")?;
    } else {
        let mut lines: Vec<Vec<String>> = vec![
            std::iter::once("from \\ to".to_string())
                .chain(roll.states.iter().cloned())
                .chain(["accounts", "roll rate", "cure rate"].map(String::from))
                .collect(),
        ];
        for row in roll.rows.iter().chain(&roll.entered) {
            let mut line = vec![row.from.clone()];
            for state in &roll.states {
                line.push(row.cells.iter().find(|cell| &cell.to == state).map_or_else(
                    || "-".to_string(),
                    |cell| format!("{} ({})", cell.accounts, percent(Some(cell.share))),
                ));
            }
            line.extend([row.accounts.to_string(), percent(row.roll_rate), percent(row.cure_rate)]);
            lines.push(line);
        }
        write_table(out, &lines, None)?;
        writeln!(out)?;
        writeln!(out, "By balance at the start, per currency")?;
        let mut lines: Vec<Vec<String>> = vec![
            ["from", "currency", "balance", "rolled", "roll rate", "cured", "cure rate"].map(String::from).to_vec(),
        ];
        for row in &roll.rows {
            for balance in &row.balance {
                let rolled = row.balance_roll_rate.iter().find(|amount| amount.currency == balance.currency);
                let cured = row.balance_cure_rate.iter().find(|amount| amount.currency == balance.currency);
                lines.push(vec![
                    row.from.clone(),
                    balance.currency.clone(),
                    money(Some(balance.amount)),
                    money(rolled.map(|amount| amount.amount)),
                    percent(rolled.and_then(|amount| amount.share)),
                    money(cured.map(|amount| amount.amount)),
                    percent(cured.and_then(|amount| amount.share)),
                ]);
            }
        }
        write_table(out, &lines, None)?;
    }

    writeln!(out)?;
    writeln!(out, "Vintages: accounts entering collections by week, share cured within N days (of those N days old)")?;
    if report.vintages.is_empty() {
        writeln!(out, "  no account entered collections in the period")?;
        return Ok(());
    }
    let mut header = vec!["week".to_string(), "entered".to_string()];
    if let Some(first) = report.vintages.first() {
        header.extend(first.horizons.iter().map(|horizon| format!("{} days", horizon.days)));
    }
    let mut lines = vec![header];
    for vintage in &report.vintages {
        let mut line = vec![vintage.week.to_string(), vintage.entered.to_string()];
        line.extend(vintage.horizons.iter().map(|horizon| match horizon.cure_rate {
            Some(rate) => format!("{} ({}/{})", percent(Some(rate)), horizon.cured, horizon.matured),
            None => "-".to_string(),
        }));
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
    write_aligned(out, lines, 1, rule_before)
}

/// Aligned columns: the first `left` left-aligned, the others right-aligned; a rule under the
/// header and above line `rule_before`.
pub(crate) fn write_aligned(
    out: &mut impl Write,
    lines: &[Vec<String>],
    left: usize,
    rule_before: Option<usize>,
) -> std::io::Result<()> {
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
                if column < left { format!("{cell:<width$}") } else { format!("{cell:>width$}") }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
