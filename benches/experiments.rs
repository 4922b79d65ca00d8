//! The experiment readings proven on the simulator at full size: 4,000 accounts over 60
//! simulated days of the real strategies; the champion arm of `m1-robot-vs-human` re-randomised
//! into 200 A/A experiments read every day, the same with a planted lift, and a 45/55 split
//! imposed on a 50/50 design (`ops::simulate::validation`). Prints the findings as JSON.
//!
//! `cargo bench --bench experiments` (ARREARS_BENCH_ACCOUNTS and ARREARS_BENCH_DAYS change the
//! size). Results and the command are in docs/experiments.md.

use arrears::config::Config;
use arrears::ops::Settings;
use arrears::ops::simulate::validation::{ValidationOptions, validate_experiment};
use arrears::ops::simulate::{Book, SimOptions};
use std::path::Path;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = Settings {
        database_url: "sqlite::memory:".into(),
        strategies_dir: root.join("strategies"),
        templates_dir: root.join("templates"),
        config: toml::from_str::<Config>("")?,
    };
    let accounts = env("ARREARS_BENCH_ACCOUNTS", 4_000) as usize;
    let days = env("ARREARS_BENCH_DAYS", 60) as u32;
    let options = SimOptions {
        days,
        book: Book::Generated(accounts),
        seed: 5,
        end: "2026-05-01T12:00:00Z".parse()?,
        robot_calls_per_hour: 5_000,
        store: None,
    };
    let validation =
        ValidationOptions { experiment: "m1-robot-vs-human".into(), experiments: 200, lift: 0.05, imposed: [45, 55] };
    let progress = indicatif::ProgressBar::new(0);
    let started = std::time::Instant::now();
    let found = validate_experiment(&settings, &root.join("strategies"), &options, &validation, &progress).await?;
    progress.finish_and_clear();
    println!("accounts {accounts}, days {days}, in {:.1?}", started.elapsed());
    println!("champion entries split: {}, daily looks: {}", found.entries, found.looks.len());
    println!("A/A (200, peeked daily): {:?}", found.aa);
    println!("planted lift {}: {:?}", validation.lift, found.planted);
    println!("imposed 45/55 on 50/50: {:?}", found.imposed);
    println!("designed 50/50: {:?}", found.designed);
    println!("violations: {}", found.violations);
    println!("real experiment: {}", found.real.summary);
    Ok(())
}
