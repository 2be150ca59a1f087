//! A generic cache of shared values with a capacity (kept by [`super::capped`]), a TTL, a load
//! epoch and single-flight loading, and the hasher of its id-keyed maps. Knows nothing of keys,
//! users or the database.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::capped::CappedMap;
pub(super) use super::hashing::{IdMap, PassThrough};
use crate::counter::Striped;

/// A map of cached values with a load epoch: a value loaded before an invalidation is not
/// stored after it, so a slow cache miss can never resurrect what a change just dropped.
/// Concurrent misses of one entry take turns ([`Cache::load_turn`]), so that a burst of calls
/// for an entry not cached (at a start, or when its TTL ran out) makes one database read, not one
/// per call.
#[derive(Debug)]
pub(super) struct Cache<K, V, S = std::hash::RandomState> {
    map: CappedMap<K, V, S>,
    epoch: AtomicU64,
    /// Entries being loaded, each with the lock its loaders take turns on.
    loading: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>, S>>,
    /// Database reads made for this cache (for `/metrics`).
    loads: AtomicU64,
    /// Lookups answered without a database read (for `/metrics`): striped, as every call makes
    /// one per cache.
    hits: Striped,
}

/// A task's turn to load an entry; the next task waiting for that entry gets its turn when this
/// is dropped (also when the loading call is cancelled).
pub(super) struct LoadTurn<'a, K: Eq + Hash + Copy, V, S: std::hash::BuildHasher> {
    cache: &'a Cache<K, V, S>,
    key: K,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl<K: Eq + Hash + Copy, V, S: std::hash::BuildHasher> Drop for LoadTurn<'_, K, V, S> {
    fn drop(&mut self) {
        let mut loading = self.cache.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Two references: the map's and the one inside this turn's guard. More: others wait.
        if loading.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) <= 2) {
            loading.remove(&self.key);
        }
    }
}

impl<K: Eq + Hash + Copy, V, S: std::hash::BuildHasher + Default> Cache<K, V, S> {
    /// A cache that holds at most `capacity` entries.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: CappedMap::new(capacity),
            epoch: AtomicU64::new(0),
            loading: Mutex::new(HashMap::default()),
            loads: AtomicU64::new(0),
            hits: Striped::default(),
        }
    }

    /// Waits until no other task is loading `k`. Whoever held the turn before has stored what it
    /// loaded (unless a change intervened), so look in the cache again before loading.
    pub(super) async fn load_turn(&self, k: K) -> LoadTurn<'_, K, V, S> {
        let lock = {
            let mut loading = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(loading.entry(k).or_default())
        };
        LoadTurn { cache: self, key: k, _held: lock.lock_owned().await }
    }

    pub(super) fn counted_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// The entry if its TTL has not run out, counting a hit when it is there: a lookup either
    /// hits or loads.
    pub(super) fn get_counted(&self, k: &K, now: Instant, ttl: Duration) -> Option<Arc<V>> {
        self.get_counted_aged(k, now, ttl).map(|(v, _)| v)
    }

    /// [`Self::get_counted`], with the entry's age: how long ago it was stored or renewed.
    pub(super) fn get_counted_aged(&self, k: &K, now: Instant, ttl: Duration) -> Option<(Arc<V>, Duration)> {
        let (v, at) = self.map.get(k)?;
        let age = now.saturating_duration_since(at);
        if age >= ttl {
            return None;
        }
        self.hits.add_one();
        Some((v, age))
    }

    /// Renews `v`'s TTL from `read_at` (when a read that found it unchanged began), unless an
    /// invalidation came after `epoch` or `v` is no longer the entry for `k`.
    pub(super) fn renew_if_unchanged(&self, k: &K, v: &Arc<V>, epoch: u64, read_at: Instant) -> bool {
        self.map.renew_if(k, v, read_at, || self.epoch.load(Ordering::Acquire) == epoch)
    }

    /// The entry even when its TTL has run out.
    pub(super) fn get_stale(&self, k: &K) -> Option<Arc<V>> {
        self.map.get(k).map(|(v, _)| v)
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stores `v` unless an invalidation came after `epoch`: what was evicted to make room, or
    /// `None` when not stored.
    pub(super) fn insert_if_unchanged(&self, k: K, v: Arc<V>, epoch: u64, now: Instant) -> Option<Vec<(K, Arc<V>)>> {
        self.map.insert_if(k, v, now, || self.epoch.load(Ordering::Acquire) == epoch)
    }

    /// Entries held now, the most it holds, and entries evicted to make room since the start.
    pub(super) fn size(&self) -> (usize, usize, u64) {
        (self.map.len(), self.map.capacity(), self.map.evictions())
    }

    /// Makes every load in flight store nothing, though no entry is dropped (one may be on its
    /// way in).
    pub(super) fn invalidate_loads(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Database reads made for this cache since the start.
    pub(super) fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Lookups answered without a database read since the start.
    pub(super) fn hits(&self) -> u64 {
        self.hits.get()
    }

    pub(super) fn remove(&self, k: &K) {
        self.map.remove_with(k, || {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        });
    }
}
