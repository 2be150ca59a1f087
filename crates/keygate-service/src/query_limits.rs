//! What data queries may take, whoever sends them: at most a few at once per key (a fixed table,
//! O(1) per query), and a share of one memory budget for the pages being read and sent.
//!
//! No SQL here: the store asks the page's [`PageHold`] before its text grows, and holds each read
//! to the time budget it is given.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use keygate_domain::KeyId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots per bucket: a key is looked for and admitted among these four only.
const WAYS: usize = 4;

/// The table's default capacity: 16 384 keys querying at once, 16 bytes each (256 KiB), made at
/// the start.
pub(crate) const DEFAULT_KEY_QUERY_CAPACITY: usize = 16_384;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: i64,
    /// Queries of `key` running now; 0 marks a free slot.
    running: u32,
}

/// Why a data query may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotNow {
    /// The key already runs its limit of queries.
    KeyAtLimit(u32),
    /// Every slot of the key's bucket is taken by other keys' running queries.
    TableFull,
}

/// Running data queries per key, in a fixed table of buckets of [`WAYS`] slots, each bucket
/// behind its own lock. A key hashes (per-process random key) to one bucket; admitting and
/// releasing a query touch that bucket's four slots and nothing else. A slot is free again when
/// its key's last query ends, so the table holds only keys querying *now*.
#[derive(Debug)]
pub(crate) struct KeyQueries {
    per_key: u32,
    hasher: std::hash::RandomState,
    buckets: Box<[Mutex<[Slot; WAYS]>]>,
}

/// One running query; ends (frees its place) when dropped.
#[derive(Debug)]
pub(crate) struct Running<'a> {
    table: &'a KeyQueries,
    key: i64,
}

impl KeyQueries {
    pub(crate) fn new(per_key: u32, capacity: usize) -> Self {
        let buckets = capacity.div_ceil(WAYS).max(1);
        Self {
            per_key: per_key.max(1),
            hasher: std::hash::RandomState::new(),
            buckets: (0..buckets).map(|_| Mutex::new([Slot::default(); WAYS])).collect(),
        }
    }

    /// Keys the table can hold at once.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// What the table takes in memory, whatever arrives: it is allocated in full at the start.
    #[cfg(test)]
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets) + std::mem::size_of::<Self>()
    }

    fn bucket(&self, key: i64) -> std::sync::MutexGuard<'_, [Slot; WAYS]> {
        use std::hash::BuildHasher;
        let index = (self.hasher.hash_one(key) % self.buckets.len() as u64) as usize;
        self.buckets[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a query of `key`, or says why it may not run now.
    pub(crate) fn start(&self, key: KeyId) -> Result<Running<'_>, NotNow> {
        let key = key.0;
        let mut bucket = self.bucket(key);
        let index = match bucket.iter().position(|s| s.running > 0 && s.key == key) {
            Some(i) if bucket[i].running >= self.per_key => return Err(NotNow::KeyAtLimit(self.per_key)),
            Some(i) => i,
            None => {
                let free = bucket.iter().position(|s| s.running == 0).ok_or(NotNow::TableFull)?;
                bucket[free].key = key;
                free
            }
        };
        bucket[index].running += 1;
        Ok(Running { table: self, key })
    }

    /// Queries of `key` running now.
    #[cfg(test)]
    fn running(&self, key: i64) -> u32 {
        self.bucket(key).iter().find(|s| s.running > 0 && s.key == key).map_or(0, |s| s.running)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut bucket = self.table.bucket(self.key);
        if let Some(slot) = bucket.iter_mut().find(|s| s.running > 0 && s.key == self.key) {
            slot.running -= 1;
        }
    }
}

/// The memory budget that concurrent pages share, in KiB permits.
#[derive(Debug)]
pub(crate) struct PageMemory {
    permits: Arc<Semaphore>,
    kib: usize,
    wait: Duration,
}

/// No share of the page memory budget became free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

impl PageMemory {
    pub(crate) fn new(budget_bytes: usize, wait: Duration) -> Self {
        let kib = kib(budget_bytes).clamp(1, Semaphore::MAX_PERMITS);
        Self { permits: Arc::new(Semaphore::new(kib)), kib, wait }
    }

    /// The budget, in bytes.
    pub(crate) fn budget_bytes(&self) -> usize {
        self.kib * 1024
    }

    /// Bytes held by pages now.
    pub(crate) fn in_use_bytes(&self) -> usize {
        (self.kib - self.permits.available_permits()) * 1024
    }

    /// A page's first share, `bytes` (at most the whole budget), waited for up to the wait.
    pub(crate) async fn hold(&self, bytes: usize) -> Result<PageHold, Busy> {
        let want = u32::try_from(kib(bytes).clamp(1, self.kib)).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_many_owned(want))
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        Ok(PageHold(Arc::new(Held {
            permits: Arc::clone(&self.permits),
            permit: Mutex::new(permit),
            denied: AtomicBool::new(false),
        })))
    }
}

#[derive(Debug)]
struct Held {
    permits: Arc<Semaphore>,
    permit: Mutex<OwnedSemaphorePermit>,
    /// The page asked for more than was free, and was cut where it was.
    denied: AtomicBool,
}

impl Held {
    /// Grows the share to `bytes` if that much is free now; never waits (a page that holds a
    /// share and waits for more could wait on another that does the same).
    fn grow(&self, bytes: usize) -> bool {
        let mut permit = self.permit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let have = permit.num_permits();
        let need = kib(bytes);
        if need <= have {
            return true;
        }
        let more = u32::try_from(need - have).unwrap_or(u32::MAX);
        match Arc::clone(&self.permits).try_acquire_many_owned(more) {
            Ok(extra) => {
                permit.merge(extra);
                true
            }
            Err(_) => {
                self.denied.store(true, Ordering::Relaxed);
                false
            }
        }
    }
}

/// A page's share of the memory budget, held until the page's answer is sent (the web layer
/// keeps it in the response body).
#[derive(Debug, Clone)]
pub struct PageHold(Arc<Held>);

impl PageHold {
    /// What the store asks before the page's text grows.
    pub(crate) fn growth(&self) -> Arc<dyn Fn(usize) -> bool + Send + Sync> {
        let held = Arc::clone(&self.0);
        Arc::new(move |bytes| held.grow(bytes))
    }

    /// Whether the page was cut because the budget had no more room.
    pub(crate) fn denied(&self) -> bool {
        self.0.denied.load(Ordering::Relaxed)
    }

    /// Keeps only `bytes` of the share (what the page's answer really takes).
    pub(crate) fn shrink_to(&self, bytes: usize) {
        let mut permit = self.0.permit.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keep = kib(bytes).max(1);
        if let Some(extra) = permit.num_permits().checked_sub(keep).filter(|n| *n > 0) {
            drop(permit.split(extra));
        }
    }

    /// Bytes this page holds now.
    pub fn bytes(&self) -> usize {
        self.0.permit.lock().unwrap_or_else(std::sync::PoisonError::into_inner).num_permits() * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_runs_at_most_its_limit_of_queries_and_a_finished_query_frees_its_place() {
        let table = KeyQueries::new(2, 64);
        let a = table.start(KeyId(7)).expect("first");
        let b = table.start(KeyId(7)).expect("second");
        assert_eq!(table.start(KeyId(7)).err(), Some(NotNow::KeyAtLimit(2)));
        assert!(table.start(KeyId(8)).is_ok(), "another key is not held back");
        drop(a);
        assert_eq!(table.running(7), 1);
        let _c = table.start(KeyId(7)).expect("a place was freed");
        drop(b);
        assert_eq!(table.running(7), 1);
    }

    #[test]
    fn the_table_is_fixed_at_16384_keys_in_256_kib_whatever_arrives() {
        let table = KeyQueries::new(4, DEFAULT_KEY_QUERY_CAPACITY);
        assert_eq!(table.capacity(), 16_384);
        assert!(table.memory_bytes() <= 16_384 * 16 + 4096 * 16 + 1024, "{} bytes", table.memory_bytes());
        // 100 000 keys querying at once: the table never holds more than its capacity, and a key
        // that finds its bucket full is refused, not stored elsewhere.
        let mut running = Vec::new();
        let mut refused = 0;
        for key in 0..100_000 {
            match table.start(KeyId(key)) {
                Ok(r) => running.push(r),
                Err(NotNow::TableFull) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(running.len() <= 16_384, "{} keys held", running.len());
        assert_eq!(running.len() + refused, 100_000);
        drop(running);
        assert!(table.start(KeyId(1)).is_ok(), "every place is free again");
    }

    #[tokio::test]
    async fn pages_share_the_budget_and_one_that_cannot_grow_is_cut_not_blocked() {
        let memory = PageMemory::new(1024 * 1024, Duration::from_millis(50));
        let first = memory.hold(64 * 1024).await.expect("first share");
        assert!(first.growth()(900 * 1024), "grows into free room");
        let second = memory.hold(64 * 1024).await.expect("second share");
        assert!(!second.growth()(512 * 1024), "no room left: refused at once");
        assert!(second.denied() && !first.denied());
        assert!(memory.hold(64 * 1024).await.is_err(), "a third page waits 50 ms, then is busy");
        first.shrink_to(10 * 1024);
        assert_eq!(first.bytes(), 10 * 1024);
        assert!(memory.hold(512 * 1024).await.is_ok(), "what a page gave back is free for the next");
        drop((first, second));
        assert_eq!(memory.in_use_bytes(), 0);
    }
}
