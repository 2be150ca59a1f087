//! The verifier's state: the caches of keys, owners and tenants, and how they are filled (a read
//! within the call's bounded wait) and emptied (explicit invalidation); the failure throttle, the
//! usage buffer and the refusal log the flow feeds; the counts `/metrics` reads.

use std::{
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use keygate_domain::{KeyDigest, KeyId, OwnerState, TenantId, TenantPolicy, UserId};

use super::{
    ahead::{self, ReadsAhead},
    cache::{Cache, PassThrough},
    entry::{CachedKey, LiveKey},
    outcome::VERIFY_DB_WAIT,
    usage::UsageBuffer,
};
use crate::{Keygate, ServiceConfig, ServiceResult, counter::Striped, ratelimit::FailureLimiter, refusals::RefusalLog};

/// What verification keeps between calls.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(super) keys: Cache<KeyDigest, CachedKey, BuildHasherDefault<PassThrough>>,
    /// Reads of keys in use whose TTL is nearly over, in the background.
    pub(super) ahead: ReadsAhead,
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
    pub(super) ttl: Duration,
}

impl Verifier {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        Self {
            keys: Cache::new(config.key_cache_capacity),
            ahead: ReadsAhead::new(),
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

    /// Reads of keys ahead of their TTL since the start, by outcome.
    pub(crate) fn reads_ahead(&self) -> [(&'static str, u64); 5] {
        self.ahead.counts()
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
                if ahead::due(age, v.ttl) {
                    self.read_ahead(*digest, &k);
                }
                Ok(Some(k))
            }
            None => Box::pin(bounded(deadline, self.load_key(digest, now))).await,
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
