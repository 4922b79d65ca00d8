//! The KPI report as a CSV file, one figure per line — the daily file a co-lending funder loads
//! (`arrears report --funder bank-a --format csv`): every line says its period and funder, so
//! files of several days or funders concatenate. Formatting only: every number comes from the
//! report; money is written exactly, never rounded.

use super::{KpiReport, KpiRow, Money};
use std::io::Write;

/// The header line.
pub const CSV_COLUMNS: [&str; 9] = ["from", "to", "funder", "section", "group", "state", "currency", "metric", "value"];

/// Writes the report: `kpi` lines per group and for the total (counts, rates, and amounts per
/// currency), `balance` lines per state at the period's end, `roll` lines per cell of the roll
/// matrix, and `vintage` lines per week.
pub fn write_csv(report: &KpiReport, out: &mut impl Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_COLUMNS)?;
    let (from, to) = (report.from.to_rfc3339(), report.to.to_rfc3339());
    let funder = report.funder.clone().unwrap_or_default();
    let mut line = |section: &str, group: &str, state: &str, currency: &str, metric: &str, value: String| {
        writer.write_record([from.as_str(), &to, &funder, section, group, state, currency, metric, &value])
    };
    let rate = |value: Option<f64>| value.map_or_else(String::new, |value| format!("{value:.6}"));
    let money = |amount: Money| amount.normalize().to_string();
    for row in report.groups.iter().chain([&report.total]) {
        kpi_lines(row, &mut line, &rate, &money)?;
    }
    for state in &report.balances {
        line("balance", "", &state.stage, "", "accounts", state.accounts.to_string())?;
        for balance in &state.balance {
            line("balance", "", &state.stage, &balance.currency, "balance", money(balance.amount))?;
        }
    }
    for row in report.roll.rows.iter().chain(&report.roll.entered) {
        line("roll", &row.from, "", "", "accounts", row.accounts.to_string())?;
        line("roll", &row.from, "", "", "roll_rate", rate(row.roll_rate))?;
        line("roll", &row.from, "", "", "cure_rate", rate(row.cure_rate))?;
        for cell in &row.cells {
            line("roll", &row.from, &cell.to, "", "accounts", cell.accounts.to_string())?;
            for balance in &cell.balance {
                line("roll", &row.from, &cell.to, &balance.currency, "balance", money(balance.amount))?;
            }
        }
    }
    for vintage in &report.vintages {
        let week = vintage.week.to_string();
        line("vintage", &week, "", "", "entered", vintage.entered.to_string())?;
        for horizon in &vintage.horizons {
            line("vintage", &week, "", "", &format!("cure_rate_{}d", horizon.days), rate(horizon.cure_rate))?;
        }
    }
    writer.flush()
}

/// The `kpi` lines of one row.
fn kpi_lines<E>(
    row: &KpiRow,
    line: &mut impl FnMut(&str, &str, &str, &str, &str, String) -> Result<(), E>,
    rate: &impl Fn(Option<f64>) -> String,
    money: &impl Fn(Money) -> String,
) -> Result<(), E> {
    let group = row.group.as_str();
    let counts = [
        ("accounts", row.accounts),
        ("attempts", row.attempts),
        ("right_party_contacts", row.right_party_contacts),
        ("promises_made", row.promises_made),
        ("promises_kept", row.promises_kept),
        ("promises_broken", row.promises_broken),
        ("payments", row.payments),
        ("cures", row.cures),
        ("agent_seconds", row.agent_seconds),
    ];
    for (metric, value) in counts {
        line("kpi", group, "", "", metric, value.to_string())?;
    }
    let rates = [
        ("rpc_rate", row.rpc_rate),
        ("promise_rate", row.promise_rate),
        ("kept_rate", row.kept_rate),
        ("cure_rate", row.cure_rate),
    ];
    for (metric, value) in rates {
        line("kpi", group, "", "", metric, rate(value))?;
    }
    for amounts in &row.amounts {
        let currency = amounts.currency.as_str();
        line("kpi", group, "", currency, "collected", money(amounts.collected))?;
        line("kpi", group, "", currency, "promised_kept", money(amounts.promised_kept))?;
        line("kpi", group, "", currency, "promised_resolved", money(amounts.promised_resolved))?;
    }
    Ok(())
}
