//! The metrics of a simulated run and the side-by-side comparison of two paired runs: each
//! metric's totals, B − A, its confidence interval from the per-account paired differences
//! (`report::paired`), and B/A; and the text tables. No I/O beyond the writer it is given.

use super::tally::{AccountCounts, CHANNELS, Tally, channel_slot};
use super::{SimReport, SimRun};
use crate::domain::Channel;
use crate::report::paired::{Difference, ratio_difference, total_difference, z_for};
use serde::Serialize;
use std::io::Write;

/// What a metric adds up.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Attempts on every channel.
    Attempts,
    /// Attempts on one channel (position in `CHANNELS`).
    AttemptsOn(usize),
    /// Right-party contacts.
    Rpc,
    /// Right-party contacts per call attempt (robot and human).
    RpcPerCall,
    /// Right-party contacts on one channel (position in `CHANNELS`).
    RpcOn(usize),
    /// Right-party contacts per attempt on one channel (position in `CHANNELS`).
    RpcPerAttemptOn(usize),
    /// Promises made.
    Promises,
    /// Promises kept.
    Kept,
    /// Money collected in one currency.
    Collected(String),
    /// Accounts cured.
    Cures,
    /// Agent hours on calls.
    AgentHours,
    /// Human tasks expired with no call.
    ExpiredUnworked,
    /// Violations found by the independent check.
    Violations,
}

/// A metric of the table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MetricDef {
    pub name: String,
    kind: Kind,
}

/// The metrics of the table, in order, for a book with these account currencies.
pub(super) fn metric_defs(currencies: &[String]) -> Vec<MetricDef> {
    let def = |name: &str, kind: Kind| MetricDef { name: name.to_string(), kind };
    let mut defs = vec![def("attempts", Kind::Attempts)];
    for (slot, channel) in CHANNELS.iter().enumerate() {
        defs.push(def(&format!("  {} attempts", channel.code()), Kind::AttemptsOn(slot)));
    }
    defs.push(def("right-party contacts", Kind::Rpc));
    defs.push(def("RPC per call attempt", Kind::RpcPerCall));
    // Timing rules only move robot calls: their own rate, undiluted by the agents' calls.
    let robot = channel_slot(Channel::Robot);
    defs.push(def("  robot right-party contacts", Kind::RpcOn(robot)));
    defs.push(def("  RPC per robot attempt", Kind::RpcPerAttemptOn(robot)));
    defs.push(def("promises", Kind::Promises));
    defs.push(def("promises kept", Kind::Kept));
    let mut distinct: Vec<&String> = currencies.iter().collect();
    distinct.sort();
    distinct.dedup();
    for currency in distinct {
        defs.push(def(&format!("collected {currency}"), Kind::Collected(currency.clone())));
    }
    defs.push(def("cures", Kind::Cures));
    defs.push(def("agent hours used", Kind::AgentHours));
    defs.push(def("human tasks expired unworked", Kind::ExpiredUnworked));
    defs.push(def("policy violations", Kind::Violations));
    defs
}

impl MetricDef {
    /// The account's value (for a ratio, its numerator).
    fn value(&self, counts: &AccountCounts, currency: &str) -> f64 {
        match &self.kind {
            Kind::Attempts => counts.attempts.iter().map(|n| f64::from(*n)).sum(),
            Kind::AttemptsOn(slot) => f64::from(counts.attempts[*slot]),
            Kind::Rpc | Kind::RpcPerCall => f64::from(counts.rpc),
            Kind::RpcOn(slot) | Kind::RpcPerAttemptOn(slot) => f64::from(counts.rpc_on[*slot]),
            Kind::Promises => f64::from(counts.promises),
            Kind::Kept => f64::from(counts.kept),
            Kind::Collected(wanted) if wanted == currency => counts.collected.to_string().parse::<f64>().unwrap_or(0.0),
            Kind::Collected(_) => 0.0,
            Kind::Cures => f64::from(u8::from(counts.cured)),
            Kind::AgentHours => counts.agent_minutes / 60.0,
            Kind::ExpiredUnworked => f64::from(counts.expired_unworked),
            Kind::Violations => f64::from(counts.violations),
        }
    }

    /// The account's denominator, for a ratio.
    fn denominator(&self, counts: &AccountCounts) -> Option<f64> {
        match self.kind {
            Kind::RpcPerCall => {
                let calls = CHANNELS
                    .iter()
                    .zip(counts.attempts)
                    .filter(|(channel, _)| channel.is_call())
                    .map(|(_, n)| f64::from(n))
                    .sum();
                Some(calls)
            }
            Kind::RpcPerAttemptOn(slot) => Some(f64::from(counts.attempts[slot])),
            _ => None,
        }
    }

    fn columns(&self, tally: &Tally, currencies: &[String]) -> (Vec<f64>, Option<Vec<f64>>) {
        let values =
            tally.accounts.iter().zip(currencies).map(|(counts, currency)| self.value(counts, currency)).collect();
        let denominators = matches!(self.kind, Kind::RpcPerCall | Kind::RpcPerAttemptOn(_))
            .then(|| tally.accounts.iter().map(|counts| self.denominator(counts).unwrap_or(0.0)).collect());
        (values, denominators)
    }

    /// The run's total (for a ratio, the ratio of totals; 0 without a denominator).
    pub fn total(&self, tally: &Tally, currencies: &[String]) -> f64 {
        let (values, denominators) = self.columns(tally, currencies);
        let sum: f64 = values.iter().sum();
        match denominators {
            Some(denominators) => {
                let below: f64 = denominators.iter().sum();
                if below > 0.0 { sum / below } else { 0.0 }
            }
            None => sum,
        }
    }
}

/// One row of the side-by-side table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedRow {
    /// The metric.
    pub metric: String,
    /// Its value in A.
    pub a: f64,
    /// Its value in B.
    pub b: f64,
    /// B − A.
    pub difference: f64,
    /// The confidence interval of B − A (none for a ratio undefined in an arm).
    pub ci: Option<[f64; 2]>,
    /// B / A (none when A is 0).
    pub ratio: Option<f64>,
}

/// Two paired runs side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The confidence level of the intervals.
    pub confidence: f64,
    /// The normal quantile used.
    pub z: f64,
    /// Arm A (`--strategies`).
    pub a: SimReport,
    /// Arm B (`--vs`).
    pub b: SimReport,
    /// The table.
    pub rows: Vec<ComparedRow>,
}

/// Compares two runs of the same book and seed, account by account.
pub fn compare(a: &SimRun, b: &SimRun, confidence: f64) -> anyhow::Result<Comparison> {
    if a.currencies != b.currencies || a.report.seed != b.report.seed || a.report.start != b.report.start {
        anyhow::bail!("the two runs are not of the same book, seed and days: they cannot be paired");
    }
    let z = z_for(confidence).ok_or_else(|| anyhow::anyhow!("confidence {confidence} is not inside (0, 1)"))?;
    let rows = metric_defs(&a.currencies)
        .iter()
        .map(|def| {
            let (va, da) = def.columns(&a.tally, &a.currencies);
            let (vb, db) = def.columns(&b.tally, &b.currencies);
            let (ta, tb) = (def.total(&a.tally, &a.currencies), def.total(&b.tally, &b.currencies));
            let ci: Option<Difference> = match (&da, &db) {
                (Some(da), Some(db)) => ratio_difference(&va, da, &vb, db, z),
                _ => Some(total_difference(&va, &vb, z)),
            };
            ComparedRow {
                metric: def.name.clone(),
                a: ta,
                b: tb,
                difference: tb - ta,
                ci: ci.map(|ci| [ci.low, ci.high]),
                ratio: (ta != 0.0).then(|| tb / ta),
            }
        })
        .collect();
    Ok(Comparison { confidence, z, a: a.report.clone(), b: b.report.clone(), rows })
}

fn grouped(integer: i128) -> String {
    let digits = integer.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if integer < 0 { format!("-{out}") } else { out }
}

/// A number with thousands separators and `decimals` decimals.
fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let scale = 10f64.powi(decimals as i32);
    let scaled = (value * scale).round();
    let integer = (scaled / scale).trunc() as i128;
    let sign = if value < 0.0 && integer == 0 && scaled != 0.0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}{}", grouped(integer));
    }
    let fraction = ((scaled.abs() as i128) % (scale as i128)).to_string();
    format!("{sign}{}.{fraction:0>decimals$}", grouped(integer))
}

fn decimals_of(metric: &str) -> usize {
    if metric.trim_start().starts_with("RPC per") {
        4
    } else if metric.starts_with("collected") {
        2
    } else if metric.starts_with("agent hours") {
        1
    } else {
        0
    }
}

/// A metric's value as the table shows it.
pub(super) fn format_value(metric: &str, value: f64) -> String {
    number(value, decimals_of(metric))
}

/// The facts under a table: plan hours, the dialler, the queues, anything refused.
pub(super) fn write_notes(reports: &[SimReport], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out)?;
    let arms = ["A", "B"];
    for (n, report) in reports.iter().enumerate() {
        let label = if reports.len() > 1 { format!("{}: ", arms[n.min(1)]) } else { String::new() };
        writeln!(
            out,
            "{label}{}: planned daily at {} UTC{}; dialler {} robot calls/h, {} robot task(s) not reached before their window closed; {} human task(s), {} expired unworked",
            report.strategies,
            report.plan_hours_utc.iter().map(|hour| format!("{hour:02}:00")).collect::<Vec<_>>().join(", "),
            match report.contact_model {
                super::ArmModel::Learned => "",
                super::ArmModel::Oracle => ", each with the oracle (the world's true curves, no nightly learn)",
            },
            number(f64::from(report.robot_calls_per_hour), 0),
            number(report.robot_tasks_unreached as f64, 0),
            number(report.human_tasks as f64, 0),
            report
                .metrics
                .iter()
                .find(|metric| metric.metric == "human tasks expired unworked")
                .map_or("0".to_string(), |metric| number(metric.value, 0)),
        )?;
        for queue in &report.queues {
            writeln!(
                out,
                "{label}  queue {:<14} {:>8} agent h available ({}, {}), {:>8} used, {:>6} overtime, {} leases",
                queue.queue,
                number(queue.agent_hours_available, 0),
                queue.capacity_from,
                queue.zone,
                number(queue.agent_hours_used, 1),
                number(queue.overtime_hours, 1),
                number(queue.leases as f64, 0),
            )?;
        }
        if report.violations.total() > 0 {
            writeln!(out, "{label}  VIOLATIONS found by the independent check: {:?}", report.violations)?;
        }
        if !report.refused.is_empty() || report.webhooks_rejected > 0 {
            writeln!(
                out,
                "{label}  the engine refused {:?}; the receivers rejected {} webhook(s)",
                report.refused, report.webhooks_rejected
            )?;
        }
    }
    Ok(())
}

/// Writes the side-by-side table.
pub fn write_comparison(comparison: &Comparison, out: &mut impl Write) -> std::io::Result<()> {
    let (a, b) = (&comparison.a, &comparison.b);
    writeln!(out, "A = {}   B = {}", a.strategies, b.strategies)?;
    writeln!(
        out,
        "{} simulated day(s), {} to {} (UTC), book {} ({} accounts), seed {}: both arms see the same book and the same draws",
        (a.end - a.start).num_days(),
        a.start.format("%Y-%m-%d %H:%M"),
        a.end.format("%Y-%m-%d %H:%M"),
        a.book,
        a.accounts,
        a.seed,
    )?;
    writeln!(out)?;
    let ci_title = format!("{:.0} % CI of B−A", comparison.confidence * 100.0);
    writeln!(out, "{:<30} {:>14} {:>14} {:>13} {:>29} {:>7}", "metric", "A", "B", "B−A", ci_title, "B/A")?;
    for row in &comparison.rows {
        let decimals = decimals_of(&row.metric);
        let ci = row.ci.map_or("n/a".to_string(), |[low, high]| {
            format!("[{}, {}]", number(low, decimals.max(1)), number(high, decimals.max(1)))
        });
        let ratio = row.ratio.map_or("n/a".to_string(), |ratio| format!("{ratio:.3}"));
        writeln!(
            out,
            "{:<30} {:>14} {:>14} {:>13} {:>29} {:>7}",
            row.metric,
            number(row.a, decimals),
            number(row.b, decimals),
            number(row.difference, decimals),
            ci,
            ratio
        )?;
    }
    write_notes(&[a.clone(), b.clone()], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(number(1234567.0, 0), "1,234,567");
        assert_eq!(number(-1234.5, 1), "-1,234.5");
        assert_eq!(number(0.12345, 4), "0.1235");
        assert_eq!(number(-0.25, 2), "-0.25");
        assert_eq!(number(999.999, 2), "1,000.00");
        assert_eq!(number(0.0, 0), "0");
    }
}
