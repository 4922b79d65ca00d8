//! `arrears simulate` end to end on real SQLite files: small synthetic books run for a couple of
//! simulated days through the real importer, scheduler, gate, outbox and work use cases against
//! the in-process call center. A run is deterministic for a seed; two arms of the same
//! strategies differ by exactly zero; a measurable change (no robot rules) shows with an
//! interval that excludes zero; the independent check finds no violation; agents never work
//! more than their shifts.

use arrears::config::Config;
use arrears::ops::Settings;
use arrears::ops::simulate::{ArmModel, Book, SimOptions, SimReport, compare, simulate, simulate_arm};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn settings(config: &str) -> Settings {
    Settings {
        database_url: "sqlite::memory:".into(),
        strategies_dir: root().join("strategies"),
        templates_dir: root().join("templates"),
        config: toml::from_str::<Config>(config).unwrap(),
    }
}

/// A fixed end, so that two runs simulate the same days.
fn end() -> DateTime<Utc> {
    "2026-03-02T12:00:00Z".parse().unwrap()
}

fn options(accounts: usize, days: u32) -> SimOptions {
    SimOptions { days, book: Book::Generated(accounts), seed: 11, end: end(), robot_calls_per_hour: 2_000, store: None }
}

fn metric(report: &SimReport, name: &str) -> f64 {
    report.metrics.iter().find(|metric| metric.metric == name).unwrap_or_else(|| panic!("no metric {name}")).value
}

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

/// `strategies/` without its robot rules, in a directory of its own.
fn without_robots() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("strategies")).unwrap() {
        let path = entry.unwrap().path();
        let mut file: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(toml::Value::Array(rules)) = file.get_mut("rule") {
            rules.retain(|rule| rule.get("channel").and_then(toml::Value::as_str) != Some("robot"));
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), toml::to_string(&file).unwrap()).unwrap();
    }
    let strategies = dir.path().to_path_buf();
    (dir, strategies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_deterministic_for_a_seed_and_breaks_no_rule() {
    let settings = settings("");
    let first = simulate(&settings, &settings.strategies_dir, &options(150, 2), &hidden()).await.unwrap();
    let second = simulate(&settings, &settings.strategies_dir, &options(150, 2), &hidden()).await.unwrap();
    assert_eq!(first.report, second.report);
    assert_eq!(serde_json::to_string(&first.report).unwrap(), serde_json::to_string(&second.report).unwrap());
    let report = &first.report;
    assert_eq!((report.accounts, report.end, report.start), (150, end(), "2026-02-28T12:00:00Z".parse().unwrap()));
    assert!(metric(report, "  robot attempts") > 20.0, "{report:#?}");
    assert!(metric(report, "  human attempts") > 20.0, "{report:#?}");
    assert!(metric(report, "right-party contacts") > 0.0, "{report:#?}");
    assert!(!report.collected.is_empty(), "the world paid something: {report:#?}");
    // The independent check finds nothing, and the engine refused nothing the center reported.
    assert_eq!(report.violations.total(), 0, "{:?}", report.violations);
    assert_eq!(metric(report, "policy violations"), 0.0);
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert_eq!(report.webhooks_rejected, 0);
    // A different seed is a different world.
    let other = simulate(&settings, &settings.strategies_dir, &SimOptions { seed: 12, ..options(150, 2) }, &hidden())
        .await
        .unwrap();
    assert_ne!(other.report.metrics, report.metrics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_arms_of_the_same_strategies_differ_by_exactly_zero() {
    let settings = settings("");
    let a = simulate(&settings, &settings.strategies_dir, &options(120, 2), &hidden()).await.unwrap();
    let b = simulate(&settings, &root().join("strategies"), &options(120, 2), &hidden()).await.unwrap();
    let comparison = compare(&a, &b, 0.95).unwrap();
    assert!(comparison.rows.len() >= 14, "{:?}", comparison.rows);
    for row in &comparison.rows {
        assert_eq!(row.difference, 0.0, "{row:?}");
        assert_eq!(row.ci, Some([0.0, 0.0]), "{row:?}");
    }
    let attempts = comparison.rows.iter().find(|row| row.metric == "attempts").unwrap();
    assert!(attempts.a > 0.0 && attempts.ratio == Some(1.0), "{attempts:?}");
    let mut text = Vec::new();
    arrears::ops::simulate::write_comparison(&comparison, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("95 % CI of B−A") && text.contains("RPC per call attempt"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_without_robot_rules_places_no_robot_call_and_the_interval_says_so() {
    let settings = settings("");
    let (_dir, no_robots) = without_robots();
    let a = simulate(&settings, &settings.strategies_dir, &options(150, 2), &hidden()).await.unwrap();
    let b = simulate(&settings, &no_robots, &options(150, 2), &hidden()).await.unwrap();
    let comparison = compare(&a, &b, 0.95).unwrap();
    let robot = comparison.rows.iter().find(|row| row.metric == "  robot attempts").unwrap();
    assert!(robot.a > 20.0 && robot.b == 0.0, "{robot:?}");
    let [low, high] = robot.ci.unwrap();
    assert!(low <= robot.difference && robot.difference <= high && high < 0.0, "{robot:?}");
    assert_eq!(b.report.violations.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_arm_plans_learned_rules_with_the_truth_and_says_so() {
    let settings = settings("");
    let timing = root().join("strategies-timing");
    let spread = simulate(&settings, &settings.strategies_dir, &options(300, 3), &hidden()).await.unwrap();
    let oracle = simulate_arm(&settings, &timing, &options(300, 3), ArmModel::Oracle, &hidden()).await.unwrap();
    assert_eq!((spread.report.contact_model, oracle.report.contact_model), (ArmModel::Learned, ArmModel::Oracle));
    assert_eq!(oracle.report.violations.total(), 0, "{:?}", oracle.report.violations);
    let comparison = compare(&spread, &oracle, 0.95).unwrap();
    let row = |name: &str| comparison.rows.iter().find(|row| row.metric == name).unwrap().clone();
    let (robot, rpc) = (row("  robot attempts"), row("  RPC per robot attempt"));
    assert!(robot.a > 100.0 && robot.b > 100.0, "{robot:?}");
    assert!(rpc.difference > 0.0, "the true best hours reach more people per robot call: {rpc:?}");
    assert!(row("RPC per call attempt").difference > 0.0);
    let mut text = Vec::new();
    arrears::ops::simulate::write_comparison(&comparison, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("with the oracle"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_never_work_more_than_their_shifts_and_unworked_tasks_expire() {
    // One agent two hours a day for the early queue (10:00-12:00 in Shanghai, 02:00-04:00 UTC):
    // the planner gives it at most its 20 calls a day and the rest falls through. The run (2026-02-28 03:00 to 2026-03-02 03:00 UTC) starts
    // and ends inside a shift: four shift hours, and the agent's last call runs past the end of
    // the simulated period, where that part belongs to no simulated hour.
    let settings = settings(
        "timezone = \"Asia/Shanghai\"\n[queues.early]\ncalls_per_agent_hour = 10\nshifts = [{ hours = \"10:00-12:00\", agents = 1 }]\n",
    );
    let ending_in_the_shift = SimOptions { end: "2026-03-02T03:00:00Z".parse().unwrap(), ..options(1000, 2) };
    let run = simulate(&settings, &settings.strategies_dir, &ending_in_the_shift, &hidden()).await.unwrap();
    let report = &run.report;
    let early = report.queues.iter().find(|queue| queue.queue == "early").unwrap();
    assert_eq!((early.capacity_from.as_str(), early.agent_hours_available), ("arrears.toml", 4.0), "{early:?}");
    assert!(early.agent_hours_used > 0.0 && early.agent_hours_used <= early.agent_hours_available, "{early:?}");
    // The run touches three local days of the queue: at most 20 planned calls each.
    assert!(early.leases > 0 && early.leases <= 3 * 20, "the plan gives the queue at most its calls: {early:?}");
    for queue in &report.queues {
        assert!(queue.agent_hours_used <= queue.agent_hours_available + 1e-9, "{queue:?}");
    }
    let default = report.queues.iter().find(|queue| queue.queue == "m2").unwrap();
    assert_eq!((default.capacity_from.as_str(), default.zone.as_str()), ("default", "Asia/Shanghai"), "{default:?}");
    assert_eq!(default.agent_hours_available, 2.0 * 12.0 * 12.0);
    let expired = metric(report, "human tasks expired unworked");
    assert!(expired > 0.0 && expired <= report.human_tasks as f64, "{expired} of {}", report.human_tasks);
    let agent_hours: f64 = report.queues.iter().map(|queue| queue.agent_hours_used).sum();
    assert!((metric(report, "agent hours used") - agent_hours).abs() < 1e-6);
    assert_eq!(report.violations.total(), 0, "{:?}", report.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_file_is_imported_and_bad_options_name_their_flag() {
    let settings = settings("");
    let dir = tempfile::tempdir().unwrap();
    arrears::ops::synthetic::write_portfolio(dir.path(), 40, 3, end() - chrono::Duration::days(1)).unwrap();
    let book = SimOptions { book: Book::File(dir.path().join("accounts.csv")), ..options(0, 1) };
    let run = simulate(&settings, &settings.strategies_dir, &book, &hidden()).await.unwrap();
    assert_eq!(run.report.accounts, 40);
    assert!(run.report.book.ends_with("accounts.csv"), "{}", run.report.book);

    let error = |options: SimOptions, strategies: PathBuf| {
        let settings = settings.clone();
        async move { simulate(&settings, &strategies, &options, &hidden()).await.unwrap_err().to_string() }
    };
    let missing = SimOptions { book: Book::File(dir.path().join("nope.csv")), ..options(0, 1) };
    assert!(error(missing, root().join("strategies")).await.starts_with("--book: "), "a missing book");
    std::fs::write(dir.path().join("bad.csv"), "account_id,colour\nA1,red\n").unwrap();
    let bad = SimOptions { book: Book::File(dir.path().join("bad.csv")), ..options(0, 1) };
    let message = error(bad, root().join("strategies")).await;
    assert!(message.starts_with("--book: ") && message.contains("colour"), "{message}");
    let message = error(options(10, 1), dir.path().join("no-such-dir")).await;
    assert!(message.starts_with("--strategies: "), "{message}");
    assert_eq!(error(options(10, 0), root().join("strategies")).await, "--days: must be at least 1");
    assert_eq!(error(options(0, 1), root().join("strategies")).await, "--accounts: must be at least 1");
}

#[test]
fn the_command_line_prints_a_table_and_json_and_refuses_both_book_kinds() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_arrears")).current_dir(root()).args(args).output().unwrap()
    };
    let out = run(&["simulate", "--days", "1", "--accounts", "30", "--vs", "strategies-learned", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["b"]["strategies"], "strategies-learned");
    assert!(json["rows"].as_array().is_some_and(|rows| rows.len() >= 14), "{json}");
    let out = run(&["simulate", "--days", "1", "--accounts", "30"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && text.contains("policy violations") && text.contains("RPC per call attempt"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["simulate", "--accounts", "30", "--book", "accounts.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--book"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["simulate", "--days", "1", "--accounts", "30", "--strategies", "strategies-timing", "--oracle"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success() && text.contains("with the oracle"), "{text}");
    let out = run(&["simulate", "--days", "1", "--accounts", "30", "--vs", "no-such-dir"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--vs: no-such-dir is not a directory"));
}
