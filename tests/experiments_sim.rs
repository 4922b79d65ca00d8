//! The experiment readings proven on the simulator (a reduced size; `benches/experiments.rs`
//! runs the full one): a simulated run of the real strategies, then the champion arm's
//! accounts — all treated alike — re-randomised into 200 A/A experiments read every day, the
//! same with a lift planted in one half, and a 45/55 split imposed on a 50/50 design.

use arrears::config::Config;
use arrears::ops::Settings;
use arrears::ops::simulate::validation::{ValidationOptions, validate_experiment};
use arrears::ops::simulate::{Book, SimOptions};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_peeking_gives_few_false_verdicts_and_a_planted_lift_and_a_bad_split_show() {
    let settings = Settings {
        database_url: "sqlite::memory:".into(),
        strategies_dir: root().join("strategies"),
        templates_dir: root().join("templates"),
        config: toml::from_str::<Config>("").unwrap(),
    };
    let options = SimOptions {
        days: 9,
        book: Book::Generated(1_500),
        seed: 5,
        end: "2026-03-11T12:00:00Z".parse().unwrap(),
        robot_calls_per_hour: 5_000,
        store: None,
    };
    let validation =
        ValidationOptions { experiment: "m1-robot-vs-human".into(), experiments: 200, lift: 0.20, imposed: [45, 55] };
    let started = std::time::Instant::now();
    let found = validate_experiment(
        &settings,
        &root().join("strategies"),
        &options,
        &validation,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    eprintln!("validation in {:.1?}: {}", started.elapsed(), serde_json::to_string(&found).unwrap());
    assert_eq!(found.violations, 0);
    assert!(found.entries >= 250, "the champion arm has enough accounts to split: {}", found.entries);
    assert!(found.looks.len() >= 5, "{} daily looks", found.looks.len());

    // A/A: on every metric, at most 5 % of the 200 experiments ever said better or worse.
    for (metric, count) in &found.aa.false_verdicts {
        assert!(*count <= 10, "{metric}: {count} of 200 A/A experiments gave a verdict: {:?}", found.aa);
    }
    // Planted: a lift of 20 % of the uncured (about 19 points of cure rate at this size) is
    // found in at least 80 % of the experiments, never the wrong way.
    assert!(found.planted.planted_difference > 0.15, "{:?}", found.planted);
    assert!(found.planted.detected >= 160, "{:?}", found.planted);
    assert_eq!(found.planted.wrong_way, 0, "{:?}", found.planted);
    // The imposed 45/55 split is flagged far more often than the designed 50/50 one.
    let flagged = found.imposed.warn + found.imposed.alarm;
    assert!(
        flagged >= 5 * (found.designed.warn + found.designed.alarm).max(1),
        "{:?} vs {:?}",
        found.imposed,
        found.designed
    );
    assert!(found.designed.alarm <= 2, "{:?}", found.designed);
    // The real experiment reads and explains itself.
    assert!(found.real.arms.iter().all(|arm| arm.entered > 0), "{:?}", found.real.arms);
    assert!(!found.real.summary.is_empty());
}
