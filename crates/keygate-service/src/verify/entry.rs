//! A key as the verification cache holds it: the stored record, and what accepted calls change
//! (rate bucket, usage not yet gathered, the rendered bytes) behind one lock.

use std::sync::{
    Arc, Mutex, Weak,
    atomic::{AtomicBool, Ordering},
};

use keygate_domain::{KeyId, KeyRecord, OwnerState, TenantPolicy};

use super::key_usage::{KeyUsage, UsageSink};
use crate::ratelimit::Bucket;

/// A key as the cache holds it: the stored record; what accepted calls change (rate bucket and
/// usage not yet written), behind one lock; and the bytes of [`Verified::rendered`]. One
/// allocation, so a call on a key that is not in the CPU cache touches as little memory as can be.
///
/// An entry hands what its calls left ungathered to the usage buffer when it goes (evicted,
/// reloaded or invalidated, once the last call holding it is over), so that the buffer needs to
/// keep only the ids of the keys used in a minute, never the entries themselves: memory stays
/// bounded by the cache's capacity.
#[derive(Debug)]
pub(crate) struct CachedKey {
    pub(super) record: KeyRecord,
    live: Mutex<LiveKey>,
    sink: Weak<dyn UsageSink>,
    /// A read of the key in the background, before its TTL runs out, is under way.
    refreshing: AtomicBool,
}

/// The sink of an entry that hands its usage to nobody (tests of what hangs off an entry).
#[cfg(test)]
#[derive(Debug)]
struct NoSink;

#[cfg(test)]
impl UsageSink for NoSink {
    fn absorb(&self, _: KeyId, _: (Option<(i64, u64)>, Option<super::key_usage::Use>)) {}
}

impl Drop for CachedKey {
    fn drop(&mut self) {
        let Some(buffer) = self.sink.upgrade() else { return };
        let usage = &mut self.live.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).usage;
        buffer.absorb(self.record.id, usage.gather());
    }
}

impl CachedKey {
    /// An entry whose ungathered usage goes to `sink` when it is dropped.
    pub(super) fn new(record: KeyRecord, live: LiveKey, sink: Weak<dyn UsageSink>) -> Self {
        Self { record, live: Mutex::new(live), sink, refreshing: AtomicBool::new(false) }
    }

    /// Claims the entry's one background refresh; false when one is under way already.
    pub(super) fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Ends the refresh [`Self::claim_refresh`] claimed: the next may start.
    pub(super) fn refresh_over(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    pub(crate) fn id(&self) -> KeyId {
        self.record.id
    }

    /// An entry for key `id` with a plain record, for tests of what hangs off an entry.
    #[cfg(test)]
    pub(crate) fn for_test(id: KeyId) -> Arc<Self> {
        use keygate_domain::{ApiKeySecret, TenantId, Timestamp, UserId};
        let secret = ApiKeySecret::generate();
        let record = keygate_store::testing::key_record(id, TenantId(1), UserId(2), &secret, Timestamp(0));
        Arc::new(Self::new(record, LiveKey::default(), Weak::<NoSink>::new()))
    }

    /// The entry a TTL reload of `old` makes.
    #[cfg(test)]
    pub(crate) fn new_for_test_successor(old: &Self) -> Self {
        Self::new(old.record.clone(), old.live().successor(), old.sink.clone())
    }

    pub(crate) fn live(&self) -> std::sync::MutexGuard<'_, LiveKey> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What accepted calls of one key change, and the bytes of [`Verified::rendered`]: one lock.
#[derive(Debug, Default)]
pub(crate) struct LiveKey {
    pub(super) bucket: Option<Bucket>,
    pub(crate) usage: KeyUsage,
    pub(super) memo: Option<Memo>,
}

impl LiveKey {
    /// The state of the entry that replaces this one when its TTL ran out: a reload is not a
    /// change, so the bucket is not refilled and a use already written is not written again.
    /// Counts not yet gathered stay here and are gathered from here.
    pub(super) fn successor(&self) -> Self {
        Self { bucket: self.bucket.clone(), usage: self.usage.successor(), memo: None }
    }
}

pub(super) struct Memo {
    pub(super) owner: Arc<OwnerState>,
    pub(super) tenant: Arc<TenantPolicy>,
    pub(super) bytes: Arc<[u8]>,
}

impl Memo {
    /// The bytes, if they were made under this owner and tenant.
    pub(super) fn bytes_for(&self, owner: &Arc<OwnerState>, tenant: &Arc<TenantPolicy>) -> Option<Arc<[u8]>> {
        (Arc::ptr_eq(&self.owner, owner) && Arc::ptr_eq(&self.tenant, tenant)).then(|| Arc::clone(&self.bytes))
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").field("owner", &self.owner.id).field("tenant", &self.tenant.id).finish_non_exhaustive()
    }
}
