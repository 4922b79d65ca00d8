//! The dashboard's short-lived cache of aggregates, kept in the application state: one entry per
//! (page, filters) key, fresh for [`CACHE_TTL`] by the application's clock.
//!
//! A page asks with [`DashboardCache::page`]: a fresh entry is returned at once; a stale one is
//! returned at once too while one background task recomputes it (so a page that has been seen
//! once never waits for its aggregates again); a missing one is computed while the callers
//! wait, once for all of them. Shared inputs (the KPI rows of a period, read by two pages) are
//! asked with [`DashboardCache::fresh`], which waits for a recomputation instead of answering
//! stale. This module owns no query and renders nothing.

use chrono::{DateTime, Duration, Utc};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How long an entry is fresh.
pub const CACHE_TTL: Duration = Duration::seconds(60);

/// Entries kept at most; beyond, the stalest are dropped.
const CACHE_ENTRIES: usize = 256;

type Value = Arc<dyn Any + Send + Sync>;

/// One computed value and the instant it was computed (by the application clock).
#[derive(Clone)]
struct Computed {
    value: Value,
    at: DateTime<Utc>,
}

/// One key's slot: its last value, the lock that makes one computation at a time, and whether a
/// background refresh is under way.
#[derive(Default)]
struct Slot {
    last: Mutex<Option<Computed>>,
    computing: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
}

impl Slot {
    fn last(&self) -> Option<Computed> {
        self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn store(&self, computed: Computed) {
        *self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(computed);
    }
}

/// A value from the cache and the instant it was computed ("as of").
pub struct Cached<T> {
    /// The value.
    pub value: Arc<T>,
    /// When it was computed, by the application clock.
    pub as_of: DateTime<Utc>,
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Cached { value: Arc::clone(&self.value), as_of: self.as_of }
    }
}

/// The cache (see the module documentation). Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct DashboardCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    refreshes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for DashboardCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.slots.lock().map(|slots| slots.len()).unwrap_or(0);
        f.debug_struct("DashboardCache").field("entries", &entries).finish_non_exhaustive()
    }
}

fn downcast<T: Send + Sync + 'static>(computed: Computed) -> Option<Cached<T>> {
    computed.value.downcast::<T>().ok().map(|value| Cached { value, as_of: computed.at })
}

impl DashboardCache {
    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= CACHE_ENTRIES {
            // Drop the stalest half (empty slots first): the keys are (page, filters) pairs a
            // few people look at, so this happens only when filters are tried by the hundred.
            let mut ages: Vec<(Option<DateTime<Utc>>, String)> =
                slots.iter().map(|(key, slot)| (slot.last().map(|computed| computed.at), key.clone())).collect();
            ages.sort();
            for (_, key) in ages.into_iter().take(CACHE_ENTRIES / 2) {
                slots.remove(&key);
            }
        }
        let slot = Arc::<Slot>::default();
        slots.insert(key.to_string(), Arc::clone(&slot));
        slot
    }

    /// Computes the slot's value (one computation at a time per key), unless one computed at or
    /// after `fresh_since` is there by the time the lock is held.
    async fn compute<T, E, F, Fut>(
        slot: &Slot,
        fresh_since: DateTime<Utc>,
        now: DateTime<Utc>,
        compute: F,
    ) -> Result<Cached<T>, E>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let _one_at_a_time = slot.computing.lock().await;
        if let Some(cached) = slot.last().filter(|computed| computed.at >= fresh_since).and_then(downcast::<T>) {
            return Ok(cached);
        }
        let value = Arc::new(compute().await?);
        slot.store(Computed { value: Arc::clone(&value) as Value, at: now });
        Ok(Cached { value, as_of: now })
    }

    /// The value of a page's aggregates under `key`: fresh from the cache; stale from the cache
    /// while a background task recomputes it; else computed now (callers of the same key wait
    /// for one computation). `compute` must be `'static` (it may run in the background): give it
    /// owned copies of what it needs. An error is returned to the caller that computed, and
    /// nothing is stored.
    pub async fn page<T, E, F, Fut>(&self, key: &str, now: DateTime<Utc>, compute: F) -> Result<Cached<T>, E>
    where
        T: Send + Sync + 'static,
        E: std::fmt::Display + Send + 'static,
        F: Fn(DateTime<Utc>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let slot = self.slot(key);
        if let Some(last) = slot.last() {
            if now - last.at < CACHE_TTL
                && let Some(cached) = downcast::<T>(last.clone())
            {
                return Ok(cached);
            }
            if let Some(stale) = downcast::<T>(last) {
                if !slot.refreshing.swap(true, Ordering::AcqRel) {
                    let slot = Arc::clone(&slot);
                    let key = key.to_string();
                    let refresh = tokio::spawn(async move {
                        let fresh_since = now - CACHE_TTL;
                        if let Err(error) = Self::compute(&slot, fresh_since, now, || compute(now)).await {
                            tracing::warn!(%error, key, "dashboard: refreshing cached aggregates failed");
                        }
                        slot.refreshing.store(false, Ordering::Release);
                    });
                    let mut refreshes = self.refreshes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    refreshes.retain(|handle| !handle.is_finished());
                    refreshes.push(refresh);
                }
                return Ok(stale);
            }
        }
        Self::compute(&slot, now - CACHE_TTL, now, || compute(now)).await
    }

    /// The value under `key` computed less than [`CACHE_TTL`] before `now`, computing it (once
    /// for every caller of the key) when there is none: for inputs several pages share.
    pub async fn fresh<T, E, F, Fut>(&self, key: &str, now: DateTime<Utc>, compute: F) -> Result<Cached<T>, E>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let slot = self.slot(key);
        if let Some(cached) = slot.last().filter(|last| now - last.at < CACHE_TTL).and_then(downcast::<T>) {
            return Ok(cached);
        }
        Self::compute(&slot, now - CACHE_TTL, now, compute).await
    }

    /// Waits for the background refreshes started so far (tests use it to see a refresh land).
    pub async fn settle(&self) {
        let handles: Vec<_> =
            std::mem::take(&mut *self.refreshes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for handle in handles {
            let _ = handle.await;
        }
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}
