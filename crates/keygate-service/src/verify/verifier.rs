//! The verifier's state: the caches of keys, owners and tenants, and how they are filled (a read
//! within the call's bounded wait) and emptied (explicit invalidation); the failure throttle, the
//! usage buffer and the refusal log the flow feeds; the counts `/metrics` reads.

use std::{
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use keygate_domain::{KeyDigest, KeyId, KeyRecord, OwnerState, TenantId, TenantPolicy, UserId};

use super::{
    cache::{Cache, PassThrough},
    entry::{CachedKey, LiveKey},
    outcome::VERIFY_DB_WAIT,
    usage::UsageBuffer,
};
use crate::{Keygate, ServiceConfig, ServiceResult, counter::Striped, ratelimit::FailureLimiter, refusals::RefusalLog};

/// Keys read again in the background at once, at most (see [`Keygate::refresh_ahead`]): a
/// quarter of a PostgreSQL pool, so that calls that miss the cache always find a connection.
pub(crate) const REFRESHES_AT_ONCE: usize = 4;

/// What verification keeps between calls.
#[derive(Debug)]
pub(crate) struct Verifier {
    keys: Cache<KeyDigest, CachedKey, BuildHasherDefault<PassThrough>>,
    /// Permits for background reads of keys whose TTL is nearly over: [`REFRESHES_AT_ONCE`].
    refreshes: Arc<tokio::sync::Semaphore>,
    key_digests: RwLock<HashMap<KeyId, KeyDigest>>,
    owners: Cache<UserId, OwnerState, BuildHasherDefault<PassThrough>>,
    tenants: Cache<TenantId, TenantPolicy, BuildHasherDefault<PassThrough>>,
    pub(super) failures: FailureLimiter,
    pub(crate) usage: Arc<UsageBuffer>,
    pub(crate) refusals: RefusalLog,
    /// Verifications that succeeded (for `/metrics`; refusals are counted per code in `refusals`).
    pub(super) accepted: Striped,
    /// Of those, calls then refused `insufficient_permission` by what they asked for.
    pub(super) retracted: Striped,
    ttl: Duration,
}

impl Verifier {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        Self {
            keys: Cache::new(config.key_cache_capacity),
            refreshes: Arc::new(tokio::sync::Semaphore::new(REFRESHES_AT_ONCE)),
            key_digests: RwLock::default(),
            owners: Cache::new(config.key_cache_capacity),
            tenants: Cache::new(config.key_cache_capacity),
            failures: FailureLimiter::with_capacity(
                config.max_failures_per_ip,
                config.failure_block,
                config.failure_capacity,
            ),
            usage: Arc::default(),
            refusals: RefusalLog::default(),
            accepted: Striped::default(),
            retracted: Striped::default(),
            ttl: config.cache_ttl,
        }
    }

    /// What usage is due for writing ([`UsageBuffer::take`]), gathered from the keys cached now.
    pub(crate) fn take_usage(
        &self,
        with_counts: bool,
    ) -> (Vec<keygate_store::UsageUpdate>, Vec<keygate_store::DailyCount>) {
        self.usage.take(with_counts, |id| {
            let digest = *self.key_digests.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id)?;
            self.keys.get_stale(&digest).filter(|entry| entry.id() == id)
        })
    }

    pub(crate) fn forget_key(&self, id: KeyId) {
        let digest = self.key_digests.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        match digest {
            Some(d) => self.keys.remove(&d),
            // Not cached, but a load may be in flight: bump the epoch all the same.
            None => self.keys.invalidate_loads(),
        }
    }

    pub(crate) fn failure_map(&self) -> (usize, usize, usize) {
        (self.failures.len(), self.failures.capacity(), self.failures.memory_bytes())
    }

    /// Database reads each cache has made since the start: keys, users, tenants.
    pub(crate) fn loads(&self) -> [(&'static str, u64); 3] {
        [("key", self.keys.loads()), ("user", self.owners.loads()), ("tenant", self.tenants.loads())]
    }

    /// Lookups each cache answered without a database read since the start: keys, users, tenants.
    pub(crate) fn hits(&self) -> [(&'static str, u64); 3] {
        [("key", self.keys.hits()), ("user", self.owners.hits()), ("tenant", self.tenants.hits())]
    }

    /// Keys cached now, the most the key cache holds, and keys evicted to make room since the start.
    pub(crate) fn key_cache(&self) -> (usize, usize, u64) {
        self.keys.size()
    }

    /// Verifications that succeeded since the start.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.get().saturating_sub(self.retracted.get())
    }

    /// Charges `n` calls another node accepted for `id` at `at` to this node's bucket of that key;
    /// false when it has none (the cluster keeps the charge until this node serves the key).
    pub(crate) fn debit_key(&self, id: KeyId, n: u32, at: Instant) -> bool {
        let digest = self.key_digests.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).copied();
        let Some(entry) = digest.and_then(|d| self.keys.get_stale(&d)) else { return false };
        let mut live = entry.live();
        let Some(bucket) = live.bucket.as_mut() else { return false };
        bucket.debit(n, at);
        true
    }

    /// Counts `n` failed verifications another node saw from `source`.
    pub(crate) fn failed_elsewhere(&self, source: [u64; 2], n: u32, now: Instant) {
        self.failures.failed_times(source, n, now);
    }

    pub(crate) fn forget_user(&self, id: UserId) {
        self.owners.remove(&id);
    }

    pub(crate) fn forget_tenant(&self, id: TenantId) {
        self.tenants.remove(&id);
    }
}

/// `load`, or an error once `deadline` has passed (the load is dropped, its turn passed on).
async fn bounded<T>(
    deadline: tokio::time::Instant,
    load: impl std::future::Future<Output = ServiceResult<T>>,
) -> ServiceResult<T> {
    match tokio::time::timeout_at(deadline, load).await {
        Ok(result) => result,
        Err(_) => Err(crate::ServiceError::Internal(format!(
            "the database did not answer within {} ms",
            VERIFY_DB_WAIT.as_millis()
        ))),
    }
}

impl Keygate {
    /// The key from the cache, or else read before `deadline` (the hit costs no timer).
    pub(super) async fn cached_key(
        &self,
        digest: &KeyDigest,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<CachedKey>>> {
        let v = &self.inner.verifier;
        match v.keys.get_counted_aged(digest, now, v.ttl) {
            Some((k, age)) => {
                if age >= v.ttl - v.ttl / 4 {
                    self.refresh_ahead(*digest, &k);
                }
                Ok(Some(k))
            }
            None => Box::pin(bounded(deadline, self.load_key(digest, now))).await,
        }
    }

    /// Reads a key in use again in the background once three quarters of its TTL are over, so
    /// that the calls on a key in steady use never wait for the read its TTL would otherwise make
    /// one of them do. What is served is never older than the TTL allows: an unchanged record
    /// renews the entry from when the read began, a changed or missing one drops it (the next call
    /// reads it), and an invalidation during the read wins (the entry is not renewed). One refresh
    /// per entry at a time and [`REFRESHES_AT_ONCE`] in all; when none is free, nothing is started
    /// and the TTL runs out as it would have.
    fn refresh_ahead(&self, digest: KeyDigest, entry: &Arc<CachedKey>) {
        if !entry.claim_refresh() {
            return;
        }
        let Ok(permit) = Arc::clone(&self.inner.verifier.refreshes).try_acquire_owned() else {
            entry.refresh_over();
            return;
        };
        let (keygate, entry) = (self.clone(), Arc::clone(entry));
        tokio::spawn(async move {
            keygate.refresh_key(digest, &entry).await;
            entry.refresh_over();
            drop(permit);
        });
    }

    async fn refresh_key(&self, digest: KeyDigest, entry: &Arc<CachedKey>) {
        let v = &self.inner.verifier;
        let epoch = v.keys.epoch();
        let read_at = Instant::now();
        v.keys.counted_load();
        let read = tokio::time::timeout(VERIFY_DB_WAIT, self.db().keys().by_digest(&digest)).await;
        match read {
            Ok(Ok(Some(record))) if unchanged(&entry.record, &record) => {
                v.keys.renew_if_unchanged(&digest, entry, epoch, read_at);
            }
            Ok(Ok(_)) => v.forget_key(entry.id()),
            // The database did not answer: the TTL runs out as before, and a call reads the key.
            Ok(Err(e)) => tracing::debug!(error = %e, "a key could not be read ahead of its TTL"),
            Err(_) => tracing::debug!("a key's read ahead of its TTL took too long"),
        }
    }

    async fn load_key(&self, digest: &KeyDigest, now: Instant) -> ServiceResult<Option<Arc<CachedKey>>> {
        let v = &self.inner.verifier;
        let _turn = v.keys.load_turn(*digest).await;
        if let Some(k) = v.keys.get_counted(digest, now, v.ttl) {
            return Ok(Some(k));
        }
        let epoch = v.keys.epoch();
        v.keys.counted_load();
        let Some(record) = self.db().keys().by_digest(digest).await? else { return Ok(None) };
        // An entry whose TTL ran out hands its state on (a change removes the entry instead, so
        // its successor starts afresh).
        let live = match v.keys.get_stale(digest) {
            Some(old) if old.record.id == record.id => old.live().successor(),
            _ => LiveKey::default(),
        };
        let sink: std::sync::Weak<dyn super::key_usage::UsageSink> = Arc::<UsageBuffer>::downgrade(&v.usage);
        let entry = Arc::new(CachedKey::new(record, live, sink));
        let id = entry.record.id;
        // Known by id before it is cached, so that a change of the key arriving meanwhile finds it.
        v.key_digests.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, *digest);
        let stored = v.keys.insert_if_unchanged(*digest, Arc::clone(&entry), epoch, now);
        let gone: Vec<(KeyId, KeyDigest)> = match stored {
            Some(evicted) => evicted.into_iter().map(|(d, e)| (e.record.id, d)).collect(),
            None => vec![(id, *digest)],
        };
        if !gone.is_empty() {
            let mut digests = v.key_digests.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, digest) in gone {
                if digests.get(&id) == Some(&digest) && v.keys.get_stale(&digest).is_none() {
                    digests.remove(&id);
                }
            }
        }
        Ok(Some(entry))
    }

    pub(super) async fn cached_owner(
        &self,
        id: UserId,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<OwnerState>>> {
        let v = &self.inner.verifier;
        match v.owners.get_counted(&id, now, v.ttl) {
            Some(o) => Ok(Some(o)),
            None => Box::pin(bounded(deadline, self.load_owner(id, now))).await,
        }
    }

    async fn load_owner(&self, id: UserId, now: Instant) -> ServiceResult<Option<Arc<OwnerState>>> {
        let v = &self.inner.verifier;
        let _turn = v.owners.load_turn(id).await;
        if let Some(o) = v.owners.get_counted(&id, now, v.ttl) {
            return Ok(Some(o));
        }
        let epoch = v.owners.epoch();
        v.owners.counted_load();
        let Some(owner) = self.db().users().owner_state(id).await? else { return Ok(None) };
        let owner = Arc::new(owner);
        v.owners.insert_if_unchanged(id, Arc::clone(&owner), epoch, now);
        Ok(Some(owner))
    }

    pub(super) async fn cached_tenant(
        &self,
        id: TenantId,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<TenantPolicy>>> {
        let v = &self.inner.verifier;
        match v.tenants.get_counted(&id, now, v.ttl) {
            Some(t) => Ok(Some(t)),
            None => Box::pin(bounded(deadline, self.load_tenant(id, now))).await,
        }
    }

    async fn load_tenant(&self, id: TenantId, now: Instant) -> ServiceResult<Option<Arc<TenantPolicy>>> {
        let v = &self.inner.verifier;
        let _turn = v.tenants.load_turn(id).await;
        if let Some(t) = v.tenants.get_counted(&id, now, v.ttl) {
            return Ok(Some(t));
        }
        let epoch = v.tenants.epoch();
        v.tenants.counted_load();
        let Some(tenant) = self.db().tenants().by_id(id).await? else { return Ok(None) };
        let policy = Arc::new(tenant.policy);
        v.tenants.insert_if_unchanged(id, Arc::clone(&policy), epoch, now);
        Ok(Some(policy))
    }
}

/// Whether a record read again says what the cached one says, apart from its last use (the
/// write-behind changes it, and nothing the cache serves reads it).
fn unchanged(cached: &KeyRecord, read: &KeyRecord) -> bool {
    let read =
        KeyRecord { last_used_at: cached.last_used_at, last_used_ip: cached.last_used_ip.clone(), ..read.clone() };
    read == *cached
}

#[cfg(test)]
mod tests {
    use keygate_domain::KeyId;

    use super::*;
    use crate::ServiceConfig;

    #[tokio::test]
    async fn with_four_reads_ahead_under_way_a_fifth_key_is_not_read_and_not_left_claimed() {
        let db = keygate_store::testing::fresh_sqlite().await.expect("a scratch database");
        let keygate = Keygate::new(db.db.clone(), ServiceConfig::default());
        let v = &keygate.inner.verifier;
        // The four permits, as four reads ahead under way would hold them.
        let busy = Arc::clone(&v.refreshes).try_acquire_many_owned(4).expect("four permits");
        assert_eq!(REFRESHES_AT_ONCE, 4);
        let entry = CachedKey::for_test(KeyId(7));
        let digest = entry.record.digest;
        keygate.refresh_ahead(digest, &entry);
        tokio::task::yield_now().await;
        assert_eq!(v.keys.loads(), 0, "no database read was started");
        assert!(entry.claim_refresh(), "the entry was let go, so a later call can start its read");
        entry.refresh_over();
        drop(busy);
        // One read ahead per entry: a second call while the first is under way starts nothing.
        assert!(entry.claim_refresh());
        keygate.refresh_ahead(digest, &entry);
        tokio::task::yield_now().await;
        assert_eq!(v.keys.loads(), 0, "the entry's own read ahead was under way");
        assert_eq!(v.refreshes.available_permits(), 4);
        entry.refresh_over();
        keygate.refresh_ahead(digest, &entry);
        for _ in 0..100 {
            if v.keys.loads() == 1 && v.refreshes.available_permits() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(v.keys.loads(), 1, "with a permit free and the entry unclaimed, the key is read");
        assert_eq!(v.refreshes.available_permits(), 4, "and the permit is given back");
        assert!(entry.claim_refresh(), "and the entry let go");
    }
}
