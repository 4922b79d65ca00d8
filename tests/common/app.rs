//! A real `arrears serve` application on loopback for HTTP tests: a fresh migrated database, the
//! repository's strategies (copied to a temporary directory, so a test may break and fix them)
//! and templates, a manual clock, one token per role, and a reqwest client.

use super::TestDb;
use arrears::clock::Clock;
use arrears::config::Config;
use arrears::http::{self, AppState};
use arrears::ops::tokens::{Role, create_token};
use arrears::ops::{self, Settings};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The instant the manual clock starts at: 09:00 in Shanghai.
pub const START: &str = "2026-11-22T01:00:00Z";

/// One token per role (the agent token belongs to agent `agent-7`).
pub struct Tokens {
    pub admin: String,
    pub ingest: String,
    pub agent: String,
    pub dialler: String,
    pub manager: String,
}

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client with no default headers.
    pub client: reqwest::Client,
    /// The state the router serves (its database, clock, strategies).
    pub state: AppState,
    /// The manual clock.
    pub clock: Clock,
    /// Tokens by role.
    pub tokens: Tokens,
    /// The (temporary) strategies directory the server loads and reloads.
    pub strategies_dir: PathBuf,
    /// The database; dropped after the server.
    pub db: TestDb,
    server: tokio::task::JoinHandle<()>,
    _strategies: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET failed")
    }

    /// A POST of a JSON body with an optional bearer token.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST failed")
    }

    /// The backend name, for assertion messages.
    pub fn backend(&self) -> &'static str {
        self.db.backend
    }
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("cannot create the strategies copy");
    for entry in std::fs::read_dir(from).expect("cannot read strategies/") {
        let entry = entry.expect("cannot read strategies/");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("cannot copy a strategy file");
        }
    }
}

/// The settings of a test app on `db` with strategies in `strategies_dir`.
pub fn settings(db: &TestDb, strategies_dir: &Path) -> Settings {
    let config = Config::load(Path::new("/nonexistent/arrears.toml"), false).expect("default configuration");
    Settings {
        database_url: db.url.clone(),
        strategies_dir: strategies_dir.to_path_buf(),
        templates_dir: repo().join("templates"),
        config,
    }
}

/// Starts the application on `db` at 127.0.0.1:0 with the clock at [`START`].
pub async fn spawn_app(db: TestDb) -> TestApp {
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let strategies_dir = dir.path().join("strategies");
    copy_dir(&repo().join("strategies"), &strategies_dir);
    let settings = settings(&db, &strategies_dir);
    let set = ops::load_strategies(&settings, &strategies_dir).unwrap_or_else(|errors| panic!("{errors}"));
    let start: DateTime<Utc> = START.parse().expect("start instant");
    let clock = Clock::manual(start);
    ops::serve::record_versions(&db, &set, start, "test").await.expect("record strategy versions");
    let state = AppState::with_strategies(db.db.clone(), settings, set, clock.clone());

    let tokens = Tokens {
        admin: create_token(&db.db, Role::Admin, None, Some("test admin"), start).await.expect("admin token"),
        ingest: create_token(&db.db, Role::Ingest, None, None, start).await.expect("ingest token"),
        agent: create_token(&db.db, Role::Agent, Some("agent-7"), None, start).await.expect("agent token"),
        dialler: create_token(&db.db, Role::Dialler, None, None, start).await.expect("dialler token"),
        manager: create_token(&db.db, Role::Manager, None, Some("test manager"), start).await.expect("manager token"),
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("cannot bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    let app = http::router(state.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TestApp {
        base: format!("http://{address}"),
        client: reqwest::Client::builder().no_proxy().build().expect("HTTP client"),
        state,
        clock,
        tokens,
        strategies_dir,
        db,
        server,
        _strategies: dir,
    }
}
