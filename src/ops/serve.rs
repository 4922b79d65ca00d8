//! The use cases of a running `serve` that are not requests: the live strategy set, its
//! reload (from the API and on SIGHUP) and the recording of strategy versions.
//!
//! At reload an invalid directory is refused, the last good set keeps running, and the refusal
//! is logged, audited and remembered for `GET /v1/strategies`. The start-up wiring (bind, the
//! background jobs, signals) is `crate::serve`; this module depends on neither the HTTP layer
//! nor the scheduler.

use super::{Settings, load_strategies};
use crate::store::{self, StoreError};
use crate::strategy::{StrategyErrors, StrategySet};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A refused reload: when, and every error as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefusal {
    /// When the reload was refused.
    pub at: DateTime<Utc>,
    /// Every validation error.
    pub errors: Vec<String>,
}

/// One strategy of a set, as reported after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedStrategy {
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// Whether this version was recorded for the first time by this load.
    pub new_version: bool,
}

/// The strategy set in force, swapped whole by a successful reload; readers never wait.
pub struct LiveStrategies {
    current: ArcSwap<StrategySet>,
    loaded_at: Mutex<DateTime<Utc>>,
    last_refusal: Mutex<Option<ReloadRefusal>>,
    refusals: AtomicU64,
    reload_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LiveStrategies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStrategies").field("strategies", &self.current().versions()).finish_non_exhaustive()
    }
}

impl LiveStrategies {
    /// A live set starting with `set`, loaded at `at`.
    pub fn new(set: StrategySet, at: DateTime<Utc>) -> Self {
        LiveStrategies {
            current: ArcSwap::from_pointee(set),
            loaded_at: Mutex::new(at),
            last_refusal: Mutex::new(None),
            refusals: AtomicU64::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The set in force now (cheap; keep it for the duration of one job, not longer).
    pub fn current(&self) -> Arc<StrategySet> {
        self.current.load_full()
    }

    /// When the set in force was loaded.
    pub fn loaded_at(&self) -> DateTime<Utc> {
        *self.loaded_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The last refused reload, unless a reload succeeded since.
    pub fn last_refusal(&self) -> Option<ReloadRefusal> {
        self.last_refusal.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reloads refused since start-up.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    fn refuse(&self, refusal: ReloadRefusal) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        *self.last_refusal.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(refusal);
    }

    fn swap(&self, set: StrategySet, at: DateTime<Utc>) {
        self.current.store(Arc::new(set));
        *self.loaded_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
        *self.last_refusal.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
}

/// Why a reload did not take effect. The last good set keeps running in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files are invalid.
    #[error("the strategies are invalid; the running set is kept:\n{0}")]
    Invalid(StrategyErrors),
    /// Recording the new versions failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The loader thread failed.
    #[error("the strategy loader failed: {0}")]
    Loader(String),
}

/// Records every strategy version of a set (and one `strategy.loaded` audit row per version
/// new to the store) in one transaction.
pub async fn record_versions(
    db: &DatabaseConnection,
    set: &StrategySet,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<LoadedStrategy>, StoreError> {
    let txn = store::begin_write(db).await?;
    let mut loaded = Vec::with_capacity(set.strategies.len());
    for strategy in &set.strategies {
        let new_version = store::record_strategy_version_at(
            &txn,
            now,
            &strategy.name,
            &strategy.file,
            &strategy.content_hash,
            &strategy.content,
        )
        .await?;
        if new_version {
            let detail = serde_json::json!({"file": strategy.file, "hash": strategy.content_hash});
            store::record_audit_at(&txn, now, actor, "strategy.loaded", "strategy", &strategy.name, detail).await?;
        }
        loaded.push(LoadedStrategy {
            name: strategy.name.to_string(),
            file: strategy.file.clone(),
            hash: strategy.content_hash.clone(),
            new_version,
        });
    }
    txn.commit().await?;
    Ok(loaded)
}

/// Re-reads the strategies directory. Valid: records the versions, swaps the set in and
/// returns it. Invalid: logs a warning, remembers the refusal, writes a
/// `strategy.reload_refused` audit row by `actor`, and keeps the running set. Reloads are
/// serialised.
pub async fn reload_strategies(
    db: &DatabaseConnection,
    settings: &Settings,
    live: &LiveStrategies,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<Vec<LoadedStrategy>, ReloadError> {
    let _one_at_a_time = live.reload_lock.lock().await;
    let loader_settings = settings.clone();
    let loaded =
        tokio::task::spawn_blocking(move || load_strategies(&loader_settings, &loader_settings.strategies_dir))
            .await
            .map_err(|error| ReloadError::Loader(error.to_string()))?;
    match loaded {
        Ok(set) => {
            let versions = record_versions(db, &set, now, actor).await?;
            live.swap(set, now);
            tracing::info!(strategies = versions.len(), "strategies reloaded");
            Ok(versions)
        }
        Err(errors) => {
            let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
            tracing::warn!(errors = %errors, "strategy reload refused; the running set is kept");
            live.refuse(ReloadRefusal { at: now, errors: lines.clone() });
            let dir = settings.strategies_dir.display().to_string();
            let detail = serde_json::json!({ "errors": lines });
            store::record_audit_at(db, now, actor, "strategy.reload_refused", "strategies", &dir, detail).await?;
            Err(ReloadError::Invalid(errors))
        }
    }
}
