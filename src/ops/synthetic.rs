//! The synthetic loan book of `arrears demo` and `arrears simulate`: seeded accounts across
//! several time zones, products, stages, tags, scores and flags, with some attempt and promise
//! history, written as the contract's CSV files (accounts, attempts, promises) so that they go
//! through the real importer. Owns only the generation; it reads no clock (`now` is an
//! argument) and touches no database.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const CN_ZONES: &[&[&str]] =
    &[&["Asia/Shanghai"], &["Asia/Shanghai"], &["Asia/Shanghai"], &["Asia/Urumqi"], &["Asia/Shanghai", "Asia/Urumqi"]];
const US_ZONES: &[&[&str]] = &[
    &["America/New_York"],
    &["America/New_York"],
    &["America/Chicago"],
    &["America/Denver"],
    &["America/Los_Angeles"],
    &["America/Phoenix"],
    &["America/New_York", "America/Los_Angeles"],
    &["America/Anchorage"],
    &["Pacific/Honolulu"],
];
const US_STATES: &[&str] = &["NY", "CA", "TX", "FL", "MA", "IL", "WA", "GA"];
const CN_CITIES: &[&str] = &["shanghai", "beijing", "chengdu", "urumqi", "shenzhen"];
const TAGS: &[(&str, f64)] = &[
    ("vip", 0.03),
    ("new_customer", 0.15),
    ("salaried", 0.5),
    ("self_employed", 0.2),
    ("hardship", 0.04),
    ("student", 0.06),
];
const FLAGS: &[(&str, f64)] = &[
    ("dispute", 0.01),
    ("do_not_call", 0.01),
    ("deceased", 0.003),
    ("bankruptcy", 0.004),
    ("attorney", 0.004),
    ("cease_contact", 0.002),
];

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn days_past_due(rng: &mut SmallRng) -> i64 {
    match rng.random_range(0..100) {
        0..=9 => rng.random_range(-5..=-1),
        10..=11 => 0,
        12..=44 => rng.random_range(1..=7),
        45..=69 => rng.random_range(8..=30),
        70..=84 => rng.random_range(31..=60),
        85..=97 => rng.random_range(61..=180),
        _ => rng.random_range(181..=400),
    }
}

/// Writes the demo's CSV files into `dir`: accounts, attempts and promises as of `now`.
pub fn write_portfolio(dir: &Path, accounts: usize, seed: u64, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let today: NaiveDate = now.date_naive();
    let mut accounts_csv = csv::Writer::from_path(dir.join("accounts.csv"))?;
    let extra = ["score.loss", "score.contact", "attr.state", "attr.city"];
    accounts_csv.write_record(crate::import::ACCOUNT_COLUMNS.iter().chain(&extra))?;
    let mut attempts_csv = csv::Writer::from_path(dir.join("attempts.csv"))?;
    attempts_csv.write_record(["account_id", "channel", "phone", "at", "outcome"])?;
    let mut promises_csv = csv::Writer::from_path(dir.join("promises.csv"))?;
    promises_csv.write_record(["account_id", "amount", "due_on", "made_at"])?;
    let mut borrower = 0usize;
    let mut index = 0usize;
    while index < accounts {
        borrower += 1;
        let us = rng.random_bool(0.35);
        let loans = if rng.random_bool(0.15) { 2 } else { 1 };
        let zones = pick(&mut rng, if us { US_ZONES } else { CN_ZONES }).join(";");
        let phone = if us {
            format!("+1{}{:07}", rng.random_range(201..=989), rng.random_range(0..10_000_000))
        } else {
            format!("+86{}{:08}", rng.random_range(130..=199), rng.random_range(0..100_000_000))
        };
        let second_phone = rng.random_bool(0.2).then(|| format!("{}9", &phone[..phone.len() - 1]));
        let phones = match &second_phone {
            Some(second) if *second != phone => format!("{phone};{second}"),
            _ => phone.clone(),
        };
        let name = if us { format!("Borrower {borrower}") } else { format!("借款人 {borrower}") };
        let email = if rng.random_bool(0.7) { format!("b{borrower}@example.com") } else { String::new() };
        let consent = rng.random_bool(if us { 0.8 } else { 0.95 });
        let state = if us { pick(&mut rng, US_STATES).to_string() } else { String::new() };
        let city = if us { String::new() } else { pick(&mut rng, CN_CITIES).to_string() };
        for _ in 0..loans {
            if index == accounts {
                break;
            }
            index += 1;
            let account_id = format!("A{index:08}");
            let product = if us {
                "card"
            } else if rng.random_bool(0.6) {
                "cash"
            } else {
                "installment"
            };
            let dpd = days_past_due(&mut rng);
            let balance =
                if rng.random_bool(0.05) { rng.random_range(20_000..80_000) } else { rng.random_range(500..20_000) };
            let due =
                if dpd == 0 && rng.random_bool(0.5) { 0 } else { (balance / 10).max(50) + rng.random_range(0..500) };
            let tags: Vec<&str> = TAGS.iter().filter(|(_, p)| rng.random_bool(*p)).map(|(t, _)| *t).collect();
            let flags: Vec<&str> = FLAGS.iter().filter(|(_, p)| rng.random_bool(*p)).map(|(f, _)| *f).collect();
            accounts_csv.write_record([
                account_id.as_str(),
                &format!("B{borrower:08}"),
                &name,
                &phones,
                &email,
                &zones,
                product,
                if us { "USD" } else { "CNY" },
                &format!("{due}.00"),
                &format!("{balance}.{:02}", rng.random_range(0..100)),
                &(today - Duration::days(dpd)).to_string(),
                &tags.join(";"),
                &flags.join(";"),
                if consent { "true" } else { "false" },
                &format!("{:.3}", rng.random_range(0.0..1.0)),
                &format!("{:.3}", rng.random_range(0.0..1.0)),
                &state,
                &city,
            ])?;
            if dpd > 1 && rng.random_bool(0.3) {
                for _ in 0..rng.random_range(1..=4) {
                    let at = now - Duration::minutes(rng.random_range(60..7 * 24 * 60));
                    let outcome = *pick(
                        &mut rng,
                        &["no_answer", "no_answer", "busy", "voicemail", "rpc", "refused", "callback", "third_party"],
                    );
                    attempts_csv.write_record([account_id.as_str(), "robot", &phone, &at.to_rfc3339(), outcome])?;
                }
            }
            if dpd > 0 && due > 0 && rng.random_bool(0.04) {
                let made = now - Duration::hours(rng.random_range(2..72));
                let due_on = today + Duration::days(rng.random_range(0..5));
                promises_csv.write_record([
                    account_id.as_str(),
                    &format!("{due}.00"),
                    &due_on.to_string(),
                    &made.to_rfc3339(),
                ])?;
            }
        }
    }
    accounts_csv.flush()?;
    attempts_csv.flush()?;
    promises_csv.flush()?;
    Ok(())
}

/// Distinct tags the benchmark strategy's rules test (`t0` … `t299`).
pub const BENCHMARK_TAGS: usize = 300;
/// Rules of the benchmark strategy.
pub const BENCHMARK_RULES: usize = 600;
/// The benchmark strategy's stages: `(name, first dpd, last dpd)`.
pub const BENCHMARK_STAGES: [(&str, i32, i32); 6] =
    [("pre", -5, -1), ("m1a", 1, 7), ("m1", 8, 30), ("m2", 31, 60), ("m3", 61, 90), ("m4", 91, 720)];

/// The benchmark strategy of `benches/` and `docs/PERFORMANCE.md`: [`BENCHMARK_RULES`] rules
/// over [`BENCHMARK_STAGES`] (SMS, robot calls with `timing`, human queues `q0`–`q6`), each but
/// a stage's last testing `tags_any` of two of [`BENCHMARK_TAGS`] tags, a `score.loss` maximum
/// and a `balance` minimum; the last rule of each stage is its catch-all. Its templates are
/// `sms/t` and `robot/t` (see [`write_benchmark_book`]).
pub fn benchmark_strategy(timing: &str) -> String {
    use std::fmt::Write as _;
    let mut text = String::from("name = \"bench\"\npolicy = \"cn-gbt-45251\"\n[stages]\n");
    for (name, first, last) in BENCHMARK_STAGES {
        let _ = writeln!(text, "{name} = {{ dpd = [{first}, {last}] }}");
    }
    let per_stage = BENCHMARK_RULES / BENCHMARK_STAGES.len();
    for index in 0..BENCHMARK_RULES {
        let stage = BENCHMARK_STAGES[index / per_stage].0;
        let last_of_stage = index % per_stage == per_stage - 1;
        let (channel, extra) = match index % 3 {
            0 => ("sms", "template = \"sms/t\"\n".to_string()),
            1 => (
                "robot",
                format!(
                    "template = \"robot/t\"\nattempts_per_day = 3\nmin_gap = \"2h\"\nwindows = [\"09:00-12:00\", \"14:00-20:00\"]\ntiming = \"{timing}\"\n"
                ),
            ),
            _ => ("human", format!("queue = \"q{}\"\npriority = \"balance\"\n", index % 7)),
        };
        let _ =
            writeln!(text, "\n[[rule]]\nname = \"r{index}\"\nstage = \"{stage}\"\nchannel = \"{channel}\"\n{extra}");
        if !last_of_stage {
            let (a, b) = ((index * 7) % BENCHMARK_TAGS, (index * 13 + 5) % BENCHMARK_TAGS);
            let _ = writeln!(
                text,
                "when = {{ tags_any = [\"t{a}\", \"t{b}\"], \"score.loss\" = {{ max = {:.2} }}, balance = {{ min = \"{}\" }} }}",
                0.3 + (index % 50) as f64 / 100.0,
                (index % 10) * 1000
            );
        }
    }
    text
}

/// Writes the benchmark book into `dir`: the demo's `accounts.csv` of `accounts` rows (seed 42,
/// as of `now`; its attempts and promises files too), `strategies/bench.toml` (see
/// [`benchmark_strategy`], spread timing) and its templates under `templates/`.
pub fn write_benchmark_book(dir: &Path, accounts: usize, now: DateTime<Utc>) -> anyhow::Result<()> {
    write_portfolio(dir, accounts, 42, now)?;
    std::fs::create_dir_all(dir.join("strategies"))?;
    std::fs::write(dir.join("strategies").join("bench.toml"), benchmark_strategy("spread"))?;
    for (name, body) in [("sms", "Hi {{borrower.name}}"), ("robot", "Hello {{borrower.name}}")] {
        std::fs::create_dir_all(dir.join("templates").join(name))?;
        std::fs::write(dir.join("templates").join(name).join("t.hbs"), body)?;
    }
    Ok(())
}
