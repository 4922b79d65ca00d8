//! `arrears serve`: the start-up wiring. Migrates, loads the strategies (any invalid file
//! stops the start-up with every error), binds, serves the HTTP API (`crate::http`), starts the
//! scheduler (`crate::scheduler`: plan, release, dispatch, lease reaper, promise watcher),
//! warms the dashboard's cache (`crate::dashboard::spawn_warmer`), reloads the strategies on
//! SIGHUP and stops gracefully on SIGTERM or Ctrl-C.
//!
//! This is the one module that knows both `http` and `scheduler`; the use cases they share are
//! in `ops` (the live strategy set and its reload: `ops::serve`), and the metrics registry both
//! write to is `crate::metrics`.

use crate::clock::Clock;
use crate::http::{self, AppState};
use crate::ops::serve::{LiveStrategies, record_versions, reload_strategies};
use crate::ops::{self, Settings, load_strategies};
use anyhow::Context as _;
use std::sync::Arc;

/// `arrears serve`: migrates, loads the strategies (an invalid directory is a start-up error),
/// binds `config.bind`, serves until SIGTERM or Ctrl-C (finishing requests in flight), and
/// reloads the strategies on SIGHUP.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let db = ops::connect(&settings).await?;
    let strategies = load_strategies(&settings, &settings.strategies_dir).map_err(|errors| {
        anyhow::anyhow!("the strategies in {} are invalid; not starting:\n{errors}", settings.strategies_dir.display())
    })?;
    let clock = Clock::System;
    let now = clock.now();
    record_versions(&db, &strategies, now, "serve").await.context("cannot record the strategy versions")?;
    let bind = settings.config.bind.clone();
    let state = AppState::new(db, settings, LiveStrategies::new(strategies, now), clock);
    let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("cannot listen on {bind}"))?;
    let address = listener.local_addr().context("cannot read the bound address")?;
    tracing::info!(%address, "listening");
    eprintln!("arrears serve: listening on http://{address}");

    let jobs = spawn_background_jobs(&state)?;
    let hangups = spawn_reload_on_hangup(&state);
    let warmer = crate::dashboard::spawn_warmer(state.clone());
    axum::serve(listener, http::router(state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    for job in jobs.into_iter().chain(hangups).chain([warmer]) {
        job.abort();
    }
    state.db.clone().close().await.ok();
    eprintln!("arrears serve: stopped");
    Ok(())
}

/// Starts the background jobs of `serve`: the scheduler (plan, release, lease reaper, promise
/// watcher) and the webhook dispatcher, stepping once a second. Each step reads the clock from
/// `state.clock` and the strategies from `state.strategies`. The returned handles are aborted at
/// shutdown. A bad schedule or endpoint in the configuration is an error naming its key.
pub fn spawn_background_jobs(state: &AppState) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let config = &state.settings.config;
    let schedules = crate::scheduler::Schedules::from_config(config).map_err(|message| anyhow::anyhow!(message))?;
    let live = Arc::clone(&state.strategies);
    let source: crate::scheduler::StrategySource = Arc::new(move || live.current());
    let holder = format!("{}-{}", std::process::id(), rand::random::<u32>());
    let mut scheduler =
        crate::scheduler::Scheduler::new(state.db.clone(), schedules, source, state.clock.clone(), holder)
            .with_metrics(Arc::clone(&state.metrics))
            .with_release(config, &state.settings.templates_dir)?;
    if !config.endpoints.is_empty() {
        let dispatcher = crate::dispatch::Dispatcher::from_config(config)?;
        scheduler = scheduler.with_dispatcher(dispatcher);
    }
    let job = tokio::spawn(scheduler.run(std::time::Duration::from_secs(1), std::future::pending()));
    Ok(vec![job])
}

/// SIGHUP reloads the strategies exactly as `POST /v1/strategies/reload` does.
fn spawn_reload_on_hangup(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /v1/strategies/reload");
                return None;
            }
        };
        let state = state.clone();
        Some(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let now = state.clock.now();
                match reload_strategies(&state.db, &state.settings, &state.strategies, now, "sighup").await {
                    Ok(loaded) => eprintln!("arrears serve: SIGHUP: {} strategies reloaded", loaded.len()),
                    Err(error) => eprintln!("arrears serve: SIGHUP: {error}"),
                }
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = state;
        None
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terms) => {
                terms.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    eprintln!("arrears serve: shutting down");
}
