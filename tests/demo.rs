//! `arrears demo` end to end on a fresh SQLite file: the synthetic book is imported and planned,
//! and a simulated day runs through the real engine and HTTP API — tasks released and delivered
//! as signed webhooks to the simulated call center, which verifies them and reports outcomes;
//! agents lease and report; promises are paid — without a single refused request or signature.

mod common;

use arrears::config::Config;
use arrears::ops::Settings;
use sea_orm::{EntityTrait, PaginatorTrait};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_runs_through_the_real_api() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = Settings {
        database_url: format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display()),
        strategies_dir: root.join("strategies"),
        templates_dir: root.join("templates"),
        config: toml::from_str::<Config>("").unwrap(),
    };
    let mut out = Vec::new();
    arrears::demo::run(&settings, 600, 3, 1, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = text.lines().find(|line| line.starts_with("1 simulated day(s)")).unwrap_or_else(|| panic!("{text}"));
    let leased: u64 =
        line.split("agents leased ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap().parse().unwrap();
    assert!(leased > 20, "{line}");
    assert!(line.contains("(0 refused requests)"), "{line}");
    let release = text.lines().find(|line| line.starts_with("release:")).unwrap_or_else(|| panic!("{text}"));
    assert!(release.contains("refused 0 signature(s)") && release.ends_with(", 0 refused"), "{release}");
    let sent: u64 = release.split("release: ").nth(1).and_then(|rest| rest.split(' ').next()).unwrap().parse().unwrap();
    assert!(sent > 20, "robot, SMS and e-mail tasks reached the simulated call center: {release}");
    assert!(release.contains(&format!("{sent} webhook(s) delivered")), "{release}");
    let db = arrears::store::connect(&settings.database_url).await.unwrap();
    let attempts = entity::prelude::Attempts::find().count(&db).await.unwrap();
    assert!(attempts > leased, "the book's own attempts plus the agents' ({attempts} <= {leased})");
}
