//! Test databases: each test gets its own fresh, migrated database — a real SQLite file in a
//! temporary directory, and, when `ARREARS_TEST_DATABASE_URL` is set, a brand-new PostgreSQL
//! database created on that server.
#![allow(dead_code)]

pub mod app;
pub mod book;
pub mod dashboard;

use arrears::store;
use entity::prelude::*;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

/// The variable naming a PostgreSQL server for tests (`postgres://user@host:port/db`).
pub const POSTGRES_URL_VAR: &str = "ARREARS_TEST_DATABASE_URL";

/// A fresh, migrated database that lives as long as this value.
pub struct TestDb {
    /// The connection.
    pub db: DatabaseConnection,
    /// Its URL.
    pub url: String,
    /// `sqlite` or `postgres`, for assertion messages.
    pub backend: &'static str,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<TempDir>,
    /// For PostgreSQL: the server URL and the database to drop afterwards.
    drop_database: Option<(String, String)>,
}

impl std::ops::Deref for TestDb {
    type Target = DatabaseConnection;

    fn deref(&self) -> &DatabaseConnection {
        &self.db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Best effort: drop the PostgreSQL database from a thread of its own (Drop is sync).
        let Some((server, name)) = self.drop_database.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(admin) = store::connect(&server).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A migrated SQLite file in a fresh temporary directory.
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("arrears.db").display());
    let db = store::connect(&url).await.expect("cannot open the SQLite test database");
    store::migrate(&db).await.expect("cannot migrate the SQLite test database");
    TestDb { db, url, backend: "sqlite", _dir: Some(dir), drop_database: None }
}

/// A brand-new, migrated PostgreSQL database on the server `ARREARS_TEST_DATABASE_URL` names,
/// or `None` when the variable is unset. Panics when the server cannot be used.
pub async fn postgres_db() -> Option<TestDb> {
    let server = std::env::var(POSTGRES_URL_VAR).ok().filter(|url| !url.trim().is_empty())?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    let name = format!("arrears_test_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos);
    let admin = store::connect(&server)
        .await
        .unwrap_or_else(|error| panic!("{POSTGRES_URL_VAR} is set but cannot connect: {error}"));
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|error| panic!("cannot create the test database {name}: {error}"));
    admin.close().await.ok();
    let url = with_database(&server, &name);
    let db = store::connect(&url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the new test database {name}: {error}"));
    store::migrate(&db).await.expect("cannot migrate the PostgreSQL test database");
    Some(TestDb { db, url, backend: "postgres", _dir: None, drop_database: Some((server, name)) })
}

/// SQLite always; PostgreSQL too when `ARREARS_TEST_DATABASE_URL` is set (never skipped).
pub async fn all_dbs() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db().await];
    dbs.extend(postgres_db().await);
    dbs
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Everything the importers write, in a stable order: equal snapshots mean nothing changed.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub borrowers: Vec<entity::borrowers::Model>,
    pub contact_points: Vec<entity::contact_points::Model>,
    pub accounts: Vec<entity::accounts::Model>,
    pub payments: Vec<entity::payments::Model>,
    pub attempts: Vec<entity::attempts::Model>,
    pub promises: Vec<entity::promises::Model>,
}

impl Snapshot {
    /// Row counts, in field order.
    pub fn counts(&self) -> [usize; 6] {
        [
            self.borrowers.len(),
            self.contact_points.len(),
            self.accounts.len(),
            self.payments.len(),
            self.attempts.len(),
            self.promises.len(),
        ]
    }
}

/// Reads every imported table.
pub async fn snapshot(db: &DatabaseConnection) -> Snapshot {
    Snapshot {
        borrowers: Borrowers::find().order_by_asc(entity::borrowers::Column::Id).all(db).await.expect("borrowers"),
        contact_points: ContactPoints::find()
            .order_by_asc(entity::contact_points::Column::Id)
            .all(db)
            .await
            .expect("contact points"),
        accounts: Accounts::find().order_by_asc(entity::accounts::Column::Id).all(db).await.expect("accounts"),
        payments: Payments::find().order_by_asc(entity::payments::Column::Id).all(db).await.expect("payments"),
        attempts: Attempts::find().order_by_asc(entity::attempts::Column::Id).all(db).await.expect("attempts"),
        promises: Promises::find().order_by_asc(entity::promises::Column::Id).all(db).await.expect("promises"),
    }
}

/// Imports `lines` under `header` as a CSV file of `kind` at `now`, through the real importer;
/// panics with the importer's error.
pub async fn import_lines(
    db: &DatabaseConnection,
    kind: arrears::import::ImportKind,
    header: &str,
    lines: &[String],
    now: chrono::DateTime<chrono::Utc>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.csv");
    let mut text = vec![header.to_string()];
    text.extend(lines.iter().cloned());
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    arrears::import::import_file_at(db, kind, &path, now).await.unwrap_or_else(|error| panic!("{kind:?}: {error}"));
}

/// Loads one strategy file of `text` (templates from an empty directory, `us-reg-f` by
/// default); the errors as text.
pub fn strategies_from(text: &str) -> Result<arrears::strategy::StrategySet, String> {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let strategies = dir.path().join("strategies");
    std::fs::create_dir_all(&strategies).unwrap();
    std::fs::write(strategies.join("test.toml"), text).unwrap();
    let settings = arrears::policy::PolicySettings::default();
    let options = arrears::strategy::LoadOptions {
        templates_dir: &templates,
        default_policy: "us-reg-f",
        settings: &settings,
        capacities: &Default::default(),
    };
    arrears::strategy::load_dir(&strategies, &options).map_err(|errors| errors.to_string())
}
