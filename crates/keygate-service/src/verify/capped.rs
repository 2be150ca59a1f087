//! A map with a capacity that keeps what is used often: S3-FIFO (Yang et al., SOSP 2023). This
//! module owns the map, its queues and its eviction; what a value means (and its TTL) is the
//! caller's. No I/O here.
//!
//! A new entry goes to a small FIFO (a tenth of the capacity); the rest is the main FIFO. A lookup
//! only raises the entry's use count (at most 3, one relaxed atomic, under the shard's read lock).
//! When the map is full, the small FIFO's oldest entry moves to the main one if it was used since
//! it came in, and is evicted otherwise, its hash kept in a *ghost* FIFO of hashes (as many as the
//! main FIFO holds); an entry whose hash is a ghost goes straight to the main FIFO. The main FIFO's
//! oldest entry is evicted when unused, else it goes round again with one use less. So a scan of
//! entries used once passes through the small FIFO and never displaces what is used often.
//! Admission and eviction are O(1) amortised; the map is sharded by hash, each shard behind its
//! own lock, and never holds more than its capacity.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::{BuildHasher, Hash},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

/// A use count above this is not counted: an entry used this often goes round the main FIFO at
/// most this many times before it is evicted unused.
const MAX_USES: u8 = 3;
const MAX_SHARDS: usize = 64;
/// Entries per shard at least (fewer shards for a small capacity, so the FIFOs stay meaningful).
const MIN_PER_SHARD: usize = 1024;

#[derive(Debug)]
struct Slot<V> {
    value: Arc<V>,
    at: Instant,
    uses: AtomicU8,
    /// Which push to a queue this entry is (entries removed leave stale queue items behind).
    generation: u32,
    in_main: bool,
}

#[derive(Debug)]
struct Shard<K, V, S> {
    map: HashMap<K, Slot<V>, S>,
    small: VecDeque<(K, u32)>,
    main: VecDeque<(K, u32)>,
    in_small: usize,
    in_main: usize,
    ghost: VecDeque<u64>,
    ghosts: HashSet<u64, std::hash::BuildHasherDefault<super::hashing::PassThrough>>,
    next_generation: u32,
    capacity: usize,
    small_capacity: usize,
}

impl<K: Eq + Hash + Copy, V, S: BuildHasher + Default> Shard<K, V, S> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::default(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            in_small: 0,
            in_main: 0,
            ghost: VecDeque::new(),
            ghosts: HashSet::default(),
            next_generation: 0,
            capacity,
            small_capacity: (capacity / 10).max(1),
        }
    }

    fn push(&mut self, k: K, to_main: bool) -> u32 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        if to_main {
            self.main.push_back((k, generation));
            self.in_main += 1;
        } else {
            self.small.push_back((k, generation));
            self.in_small += 1;
        }
        self.compact();
        generation
    }

    /// Drops stale queue items once they outnumber the live ones (many removals, few evictions).
    fn compact(&mut self) {
        let limit = 2 * self.capacity + 64;
        if self.small.len() + self.main.len() > limit {
            let map = &self.map;
            let live = |(k, g): &(K, u32)| map.get(k).is_some_and(|s| s.generation == *g);
            self.small.retain(live);
            self.main.retain(live);
        }
    }

    /// The oldest live item of the small (or main) FIFO, taken off it.
    fn pop(&mut self, main: bool) -> Option<K> {
        loop {
            let queue = if main { &mut self.main } else { &mut self.small };
            let (k, generation) = queue.pop_front()?;
            if self.map.get(&k).is_some_and(|s| s.generation == generation && s.in_main == main) {
                return Some(k);
            }
        }
    }

    /// Evicts one entry (moving others between FIFOs on the way); `None` when empty.
    fn evict_one(&mut self, fingerprint: impl Fn(&K) -> u64) -> Option<(K, Arc<V>)> {
        loop {
            let from_small = self.in_small > 0 && (self.in_small >= self.small_capacity || self.in_main == 0);
            if from_small {
                let k = self.pop(false)?;
                self.in_small -= 1;
                let used = self.map.get(&k).is_some_and(|s| s.uses.load(Ordering::Relaxed) > 0);
                if used {
                    let generation = self.push(k, true);
                    if let Some(slot) = self.map.get_mut(&k) {
                        slot.generation = generation;
                        slot.in_main = true;
                        *slot.uses.get_mut() = 0;
                    }
                    continue;
                }
                let slot = self.map.remove(&k)?;
                let hash = fingerprint(&k);
                if self.ghosts.insert(hash) {
                    self.ghost.push_back(hash);
                }
                while self.ghost.len() > self.capacity - self.small_capacity {
                    if let Some(old) = self.ghost.pop_front() {
                        self.ghosts.remove(&old);
                    }
                }
                return Some((k, slot.value));
            }
            let k = self.pop(true)?;
            self.in_main -= 1;
            let uses = self.map.get(&k).map_or(0, |s| s.uses.load(Ordering::Relaxed));
            if uses > 0 {
                let generation = self.push(k, true);
                if let Some(slot) = self.map.get_mut(&k) {
                    slot.generation = generation;
                    *slot.uses.get_mut() = uses - 1;
                }
                continue;
            }
            let slot = self.map.remove(&k)?;
            return Some((k, slot.value));
        }
    }
}

/// A map of `Arc<V>` with a capacity in entries, each stored with the time it was stored.
#[derive(Debug)]
pub(super) struct CappedMap<K, V, S = std::hash::RandomState> {
    shards: Box<[RwLock<Shard<K, V, S>>]>,
    hasher: S,
    capacity: usize,
    len: AtomicUsize,
    evictions: AtomicU64,
}

impl<K: Eq + Hash + Copy, V, S: BuildHasher + Default> CappedMap<K, V, S> {
    /// A map that never holds more than `capacity` entries (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS).next_power_of_two().min(MAX_SHARDS);
        let shards = if shards * MIN_PER_SHARD > capacity && shards > 1 { shards / 2 } else { shards };
        let per_shard = capacity / shards;
        Self {
            shards: (0..shards).map(|_| RwLock::new(Shard::new(per_shard.max(1)))).collect(),
            hasher: S::default(),
            capacity: per_shard.max(1) * shards,
            len: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, k: &K) -> &RwLock<Shard<K, V, S>> {
        // Bits the shard's own table does not use first (it indexes with the low bits and tags
        // with the top seven).
        let hash = self.hasher.hash_one(k);
        &self.shards[((hash >> 40) as usize) & (self.shards.len() - 1)]
    }

    /// The value and when it was stored; counts a use.
    pub(super) fn get(&self, k: &K) -> Option<(Arc<V>, Instant)> {
        let shard = self.shard(k).read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = shard.map.get(k)?;
        let uses = slot.uses.load(Ordering::Relaxed);
        if uses < MAX_USES {
            slot.uses.store(uses + 1, Ordering::Relaxed);
        }
        Some((Arc::clone(&slot.value), slot.at))
    }

    /// Stores `v` for `k` (replacing what was there, in place), under the shard's write lock, if
    /// `admit` still says so under that lock; returns what was evicted to make room (`None` when
    /// not admitted).
    pub(super) fn insert_if(
        &self,
        k: K,
        v: Arc<V>,
        at: Instant,
        admit: impl FnOnce() -> bool,
    ) -> Option<Vec<(K, Arc<V>)>> {
        let mut shard = self.shard(&k).write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut evicted = Vec::new();
        if !admit() {
            return None;
        }
        if let Some(slot) = shard.map.get_mut(&k) {
            slot.value = v;
            slot.at = at;
            return Some(evicted);
        }
        while shard.map.len() >= shard.capacity {
            let hasher = &self.hasher;
            match shard.evict_one(|k| hasher.hash_one(k)) {
                Some(gone) => evicted.push(gone),
                None => break,
            }
        }
        let hash = self.hasher.hash_one(k);
        let to_main = shard.ghosts.remove(&hash);
        let generation = shard.push(k, to_main);
        shard.map.insert(k, Slot { value: v, at, uses: AtomicU8::new(0), generation, in_main: to_main });
        if evicted.is_empty() {
            self.len.fetch_add(1, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(evicted.len() - 1, Ordering::Relaxed);
            self.evictions.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        }
        Some(evicted)
    }

    /// Marks `k` as stored at `at` (never earlier than it was), if it still holds `expected` (the
    /// same allocation) and `renew` says so under the shard's write lock; whether it did.
    pub(super) fn renew_if(&self, k: &K, expected: &Arc<V>, at: Instant, renew: impl FnOnce() -> bool) -> bool {
        let mut shard = self.shard(k).write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(slot) = shard.map.get_mut(k) else { return false };
        if !Arc::ptr_eq(&slot.value, expected) || !renew() {
            return false;
        }
        slot.at = slot.at.max(at);
        true
    }

    /// Removes `k`, running `also` under the shard's write lock either way.
    pub(super) fn remove_with(&self, k: &K, also: impl FnOnce()) -> Option<Arc<V>> {
        let mut shard = self.shard(k).write().unwrap_or_else(std::sync::PoisonError::into_inner);
        also();
        let slot = shard.map.remove(k)?;
        if slot.in_main {
            shard.in_main -= 1;
        } else {
            shard.in_small -= 1;
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(slot.value)
    }

    /// Entries held now; never more than [`Self::capacity`].
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries evicted to make room since the start.
    pub(super) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Map = CappedMap<u64, u64>;

    fn put(map: &Map, k: u64) -> usize {
        map.insert_if(k, Arc::new(k), Instant::now(), || true).map_or(0, |e| e.len())
    }

    #[test]
    fn the_map_never_holds_more_than_its_capacity_and_counts_what_it_evicts() {
        let map = Map::new(10_000);
        let mut evicted = 0;
        for k in 0..30_000 {
            evicted += put(&map, k);
            assert!(map.len() <= 10_000, "{} entries after {k} inserts", map.len());
        }
        let held: usize = map.shards.iter().map(|s| s.read().expect("lock").map.len()).sum();
        assert_eq!(held, map.len());
        assert_eq!(map.len(), 10_000);
        assert_eq!(evicted as u64, map.evictions());
        assert_eq!(map.evictions(), 20_000);
    }

    #[test]
    fn a_scan_of_twenty_times_the_capacity_in_cold_keys_does_not_evict_a_hundred_hot_ones() {
        // One hot key per 100 cold ones, in turn: each comes back after 10 000 cold keys, the whole
        // capacity, so a least-recently-used map would have evicted every one of them.
        let map = Map::new(10_000);
        let hot: Vec<u64> = (0..100).map(|i| u64::MAX - i).collect();
        for &k in &hot {
            put(&map, k);
            map.get(&k);
        }
        let mut misses = 0;
        for cold in 0..200_000u64 {
            if map.get(&cold).is_none() {
                put(&map, cold);
            }
            // The hot keys stay in use while the scan runs, one of them per 100 cold keys.
            if cold % 100 == 0 {
                let k = hot[(cold / 100) as usize % hot.len()];
                if map.get(&k).is_none() {
                    misses += 1;
                    put(&map, k);
                }
            }
        }
        let kept = hot.iter().filter(|k| map.get(k).is_some()).count();
        assert_eq!(kept, 100, "every hot key survives the scan");
        assert_eq!(misses, 0, "and was never evicted on the way");
        assert!(map.len() <= 10_000);
    }

    #[test]
    fn removed_and_replaced_entries_leave_no_queue_behind() {
        let map = Map::new(1_000);
        for round in 0..100_000u64 {
            put(&map, round % 10);
            map.remove_with(&(round % 10), || {});
        }
        let shard = map.shards[0].read().expect("lock");
        assert!(shard.small.len() + shard.main.len() <= 2 * 1_000 + 64 + 1, "queues compacted");
        assert_eq!(map.len(), 0);
        drop(shard);
        put(&map, 1);
        map.insert_if(1, Arc::new(2), Instant::now(), || true);
        assert_eq!(map.get(&1).map(|(v, _)| *v), Some(2), "replaced in place");
        assert_eq!(map.len(), 1);
        assert!(map.insert_if(3, Arc::new(3), Instant::now(), || false).is_none());
        assert!(map.get(&3).is_none(), "not admitted");
    }

    #[test]
    fn an_entry_is_renewed_only_while_it_holds_the_value_read_and_never_back_in_time() {
        let map = Map::new(100);
        let (stored, later) = (Instant::now(), Instant::now() + std::time::Duration::from_secs(5));
        map.insert_if(1, Arc::new(1), stored, || true);
        let held = map.get(&1).expect("stored").0;
        assert!(!map.renew_if(&1, &held, later, || false), "not when the condition fails");
        assert_eq!(map.get(&1).map(|(_, at)| at), Some(stored));
        assert!(map.renew_if(&1, &held, later, || true));
        assert_eq!(map.get(&1).map(|(_, at)| at), Some(later));
        assert!(map.renew_if(&1, &held, stored, || true), "an older time leaves it as it is");
        assert_eq!(map.get(&1).map(|(_, at)| at), Some(later));
        map.insert_if(1, Arc::new(1), stored, || true);
        assert!(!map.renew_if(&1, &held, later, || true), "not a value that replaced the one read");
        assert!(!map.renew_if(&2, &held, later, || true), "not a key it does not hold");
    }

    #[test]
    fn a_key_evicted_and_soon_wanted_again_comes_back_to_the_main_fifo() {
        let map = Map::new(100);
        put(&map, 7);
        for k in 100..200 {
            put(&map, k);
        }
        assert!(map.get(&7).is_none(), "unused, evicted from the small FIFO");
        put(&map, 7);
        for k in 200..290 {
            put(&map, k);
        }
        assert!(map.get(&7).is_some(), "remembered as a ghost: admitted to the main FIFO");
    }
}
