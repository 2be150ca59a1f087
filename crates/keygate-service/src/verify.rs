//! Verification, the hot path: parse → digest → cached key, owner and tenant → validity rule →
//! rate limit. On a cache hit no database is read. Entries are dropped by explicit invalidation
//! (this process: at once; other processes: the change feed), with a TTL only as a safety net.

use std::{
    borrow::Cow,
    collections::HashMap,
    hash::{BuildHasherDefault, Hash, Hasher},
    net::IpAddr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::{
    KeyDigest, KeyId, KeyRecord, OwnerState, Permissions, RefusalCode, Requirement, TenantId, TenantPolicy, Timestamp,
    UnitId, UserId,
    api_key::check_format,
    validity::{Refusal, VerifyInput, check_validity},
};
use keygate_store::{ChangeKind, Database};

use crate::{
    Keygate, ServiceConfig, ServiceResult,
    counter::Striped,
    ratelimit::{Bucket, FailureLimiter, RateState},
    refusals::RefusalLog,
    usage::{KeyUsage, UsageBuffer},
};

/// The credential as it arrived, if any.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Missing,
    Key(&'a str),
    /// More than one, and not all the same: which one is meant cannot be known.
    Ambiguous,
}

#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    pub credential: Credential<'a>,
    pub client_ip: IpAddr,
    pub unit: Option<UnitId>,
    pub required: Option<Requirement>,
}

/// A key a verified service asks about (`POST /v1/keys/verify`).
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    pub key: &'a str,
    /// The address the service's own call came from.
    pub source: IpAddr,
    /// The address the service says the key is used from: a claim, checked against the key's
    /// ranges and used for nothing else.
    pub claimed_ip: Option<IpAddr>,
    pub unit: Option<UnitId>,
    pub required: Option<Requirement>,
}

/// The one tenant whose keys a verification may know.
#[derive(Debug, Clone, Copy)]
enum OnlyTenant<'a> {
    Id(TenantId),
    Slug(&'a str),
}

/// Whom a verification is for, and what it may touch.
#[derive(Debug, Clone, Copy)]
struct Scope<'a> {
    /// Only keys of this tenant exist: any other is `unknown_key`, and nothing of its tenant
    /// (last use, usage, rate budget, audit) is touched.
    tenant: Option<OnlyTenant<'a>>,
    /// Where the call came from: the failure throttle, usage and audit source use this alone.
    source: IpAddr,
    /// An address claimed for the key: its ranges are checked against it; audit says "claimed".
    claimed: Option<IpAddr>,
    /// Whether failures count against `source`. Not for a service asking about other keys: its
    /// own key was checked and paid for the call, and the answers are its clients' business.
    throttled: bool,
}

/// A call that may proceed, and as whom.
#[derive(Debug, Clone)]
pub struct Verified {
    entry: Arc<CachedKey>,
    pub owner: Arc<OwnerState>,
    pub tenant: Arc<TenantPolicy>,
    pub unit: Option<UnitId>,
    pub rate: RateState,
    scoped: Option<Permissions>,
    /// The key's [`Self::rendered`] bytes, when they were made under this owner and tenant.
    rendered: Option<Arc<[u8]>>,
    /// Where the call came from (usage and audit source).
    source: IpAddr,
}

impl Verified {
    /// The key, as stored.
    pub fn key(&self) -> &KeyRecord {
        &self.entry.record
    }

    /// The user's current permissions intersected with the key's scopes.
    pub fn permissions(&self) -> &Permissions {
        self.scoped.as_ref().unwrap_or(&self.owner.permissions)
    }

    /// Bytes that depend only on the key, its user and its tenant as verified here (never on the
    /// request), made once and kept with the cached key until one of the three changes. The
    /// capability answer keeps its fixed part here, rendered once per key instead of per call.
    /// The key has one such slot.
    pub fn rendered(&self, render: impl FnOnce(&Verified) -> Vec<u8>) -> Arc<[u8]> {
        if let Some(bytes) = &self.rendered {
            return Arc::clone(bytes);
        }
        let bytes: Arc<[u8]> = render(self).into();
        // The memo holds the owner and tenant it was made from, so neither allocation can be
        // reused for another value while `Memo::bytes_for` compares addresses.
        self.entry.live().memo =
            Some(Memo { owner: Arc::clone(&self.owner), tenant: Arc::clone(&self.tenant), bytes: Arc::clone(&bytes) });
        bytes
    }
}

/// A key as the cache holds it: the stored record; what accepted calls change (rate bucket and
/// usage not yet written), behind one lock; and the bytes of [`Verified::rendered`]. One
/// allocation, so a call on a key that is not in the CPU cache touches as little memory as can be.
#[derive(Debug)]
pub(crate) struct CachedKey {
    record: KeyRecord,
    live: Mutex<LiveKey>,
}

impl CachedKey {
    fn new(record: KeyRecord, live: LiveKey) -> Self {
        Self { record, live: Mutex::new(live) }
    }

    pub(crate) fn id(&self) -> KeyId {
        self.record.id
    }

    /// An entry for key `id` with a plain record, for tests of what hangs off an entry.
    #[cfg(test)]
    pub(crate) fn for_test(id: KeyId) -> Arc<Self> {
        use keygate_domain::{ApiKeySecret, IpRanges, Purpose, UserId};
        let secret = ApiKeySecret::generate();
        let record = KeyRecord {
            id,
            tenant_id: TenantId(1),
            user_id: UserId(2),
            created_by: None,
            purpose: Purpose::parse("test").expect("valid"),
            digest: secret.digest(),
            display: secret.display_form(),
            ip_ranges: IpRanges::any(),
            scopes: None,
            units: None,
            expires_at: None,
            enabled: true,
            revoked_at: None,
            created_at: Timestamp(0),
            last_used_at: None,
            last_used_ip: None,
            rolled_from: None,
            rate_limit_per_minute: None,
        };
        Arc::new(Self::new(record, LiveKey::default()))
    }

    /// The entry a TTL reload of `old` makes.
    #[cfg(test)]
    pub(crate) fn new_for_test_successor(old: &Self) -> Self {
        Self::new(old.record.clone(), old.live().successor())
    }

    pub(crate) fn live(&self) -> std::sync::MutexGuard<'_, LiveKey> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What accepted calls of one key change, and the bytes of [`Verified::rendered`]: one lock.
#[derive(Debug, Default)]
pub(crate) struct LiveKey {
    bucket: Option<Bucket>,
    pub(crate) usage: KeyUsage,
    memo: Option<Memo>,
}

impl LiveKey {
    /// The state of the entry that replaces this one when its TTL ran out: a reload is not a
    /// change, so the bucket is not refilled and a use already written is not written again.
    /// Counts not yet gathered stay here and are gathered from here.
    fn successor(&self) -> Self {
        Self { bucket: self.bucket.clone(), usage: self.usage.successor(), memo: None }
    }
}

struct Memo {
    owner: Arc<OwnerState>,
    tenant: Arc<TenantPolicy>,
    bytes: Arc<[u8]>,
}

impl Memo {
    /// The bytes, if they were made under this owner and tenant.
    fn bytes_for(&self, owner: &Arc<OwnerState>, tenant: &Arc<TenantPolicy>) -> Option<Arc<[u8]>> {
        (Arc::ptr_eq(&self.owner, owner) && Arc::ptr_eq(&self.tenant, tenant)).then(|| Arc::clone(&self.bytes))
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").field("owner", &self.owner.id).field("tenant", &self.tenant.id).finish_non_exhaustive()
    }
}

/// A refused call: the reason, plus rate-limit state when the key was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub code: RefusalCode,
    pub rate: Option<RateState>,
    pub retry_after_secs: Option<u64>,
    /// The key refused, once it is known to be one of the tenant's (a disabled, expired or
    /// rate-limited key, one from a foreign address, …): for the access log. Never set for an
    /// unknown key or another tenant's.
    pub key: Option<KeyId>,
    /// keygate could not judge the call: its database failed or did not answer within
    /// [`VERIFY_DB_WAIT`]. Not the key's fault, so not its refusal: answered `503` with
    /// `Retry-After` ([`Self::retry_after_secs`]), counted nowhere. `code` stays `unknown_key` so
    /// that whoever ignores this still refuses (fails closed).
    pub unavailable: bool,
}

impl From<RefusalCode> for Refused {
    fn from(code: RefusalCode) -> Self {
        Self { code, rate: None, retry_after_secs: None, key: None, unavailable: false }
    }
}

/// The longest a verification waits for its database reads (key, user and tenant together) on a
/// cache miss, whatever the pool's own acquire timeout: then it is answered as unavailable.
pub const VERIFY_DB_WAIT: Duration = Duration::from_millis(1500);

/// The `Retry-After` of a call keygate could not judge for want of its database.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// A SHA-256 digest hashes to its own first eight bytes: no need to hash it again. Integer ids
/// (written with `write_i64`/`write_u64`) are spread with a multiplication (Fibonacci hashing);
/// they come from the database, not from callers, so flooding is not a concern.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_i64(&mut self, n: i64) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by integer ids, hashed with [`PassThrough`].
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<PassThrough>>;

/// A map of cached values with a load epoch: a value loaded before an invalidation is not
/// stored after it, so a slow cache miss can never resurrect what a change just dropped.
/// Concurrent misses of one entry take turns ([`Cache::load_turn`]), so that a burst of calls
/// for an entry not cached (at a start, or when its TTL ran out) makes one database read, not one
/// per call.
#[derive(Debug)]
struct Cache<K, V, S = std::hash::RandomState> {
    map: RwLock<HashMap<K, (Arc<V>, Instant), S>>,
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
struct LoadTurn<'a, K: Eq + Hash + Copy, V, S: std::hash::BuildHasher> {
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
    fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::default()),
            epoch: AtomicU64::new(0),
            loading: Mutex::new(HashMap::default()),
            loads: AtomicU64::new(0),
            hits: Striped::default(),
        }
    }

    /// Waits until no other task is loading `k`. Whoever held the turn before has stored what it
    /// loaded (unless a change intervened), so look in the cache again before loading.
    async fn load_turn(&self, k: K) -> LoadTurn<'_, K, V, S> {
        let lock = {
            let mut loading = self.loading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(loading.entry(k).or_default())
        };
        LoadTurn { cache: self, key: k, _held: lock.lock_owned().await }
    }

    fn counted_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Self::get`], counting a hit when the entry is there: a lookup either hits or loads.
    fn get_counted(&self, k: &K, now: Instant, ttl: Duration) -> Option<Arc<V>> {
        let found = self.get(k, now, ttl);
        if found.is_some() {
            self.hits.add_one();
        }
        found
    }

    fn get(&self, k: &K, now: Instant, ttl: Duration) -> Option<Arc<V>> {
        let map = self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(k) {
            Some((v, at)) if now.saturating_duration_since(*at) < ttl => Some(Arc::clone(v)),
            _ => None,
        }
    }

    /// The entry even when its TTL has run out.
    fn get_stale(&self, k: &K) -> Option<Arc<V>> {
        let map = self.map.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(k).map(|(v, _)| Arc::clone(v))
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn insert_if_unchanged(&self, k: K, v: Arc<V>, epoch: u64, now: Instant) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.epoch.load(Ordering::Acquire) == epoch {
            map.insert(k, (v, now));
        }
    }

    fn remove(&self, k: &K) {
        let mut map = self.map.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        map.remove(k);
    }
}

#[derive(Debug)]
pub(crate) struct Verifier {
    keys: Cache<KeyDigest, CachedKey, BuildHasherDefault<PassThrough>>,
    key_digests: RwLock<HashMap<KeyId, KeyDigest>>,
    owners: Cache<UserId, OwnerState, BuildHasherDefault<PassThrough>>,
    tenants: Cache<TenantId, TenantPolicy, BuildHasherDefault<PassThrough>>,
    failures: FailureLimiter,
    pub(crate) usage: UsageBuffer,
    pub(crate) refusals: RefusalLog,
    /// Verifications that succeeded (for `/metrics`; refusals are counted per code in `refusals`).
    accepted: Striped,
    /// Of those, calls then refused `insufficient_permission` by what they asked for.
    retracted: Striped,
    ttl: Duration,
}

/// Where this process is in the change feed.
#[derive(Debug, Default)]
pub(crate) struct FeedCursor {
    last_seq: Option<i64>,
    seen: HashMap<i64, Instant>,
}

/// Changes committed out of sequence order within this window are still caught.
const FEED_WINDOW: Duration = Duration::from_secs(5);

impl Verifier {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        Self {
            keys: Cache::new(),
            key_digests: RwLock::default(),
            owners: Cache::new(),
            tenants: Cache::new(),
            failures: FailureLimiter::with_capacity(
                config.max_failures_per_ip,
                config.failure_block,
                config.failure_capacity,
            ),
            usage: UsageBuffer::default(),
            refusals: RefusalLog::default(),
            accepted: Striped::default(),
            retracted: Striped::default(),
            ttl: config.cache_ttl,
        }
    }

    pub(crate) fn forget_key(&self, id: KeyId) {
        let digest = self.key_digests.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        match digest {
            Some(d) => self.keys.remove(&d),
            // Not cached, but a load may be in flight: bump the epoch all the same.
            None => {
                self.keys.epoch.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    pub(crate) fn failure_map(&self) -> (usize, usize, usize) {
        (self.failures.len(), self.failures.capacity(), self.failures.memory_bytes())
    }

    /// Database reads each cache has made since the start: keys, users, tenants.
    pub(crate) fn loads(&self) -> [(&'static str, u64); 3] {
        [
            ("key", self.keys.loads.load(Ordering::Relaxed)),
            ("user", self.owners.loads.load(Ordering::Relaxed)),
            ("tenant", self.tenants.loads.load(Ordering::Relaxed)),
        ]
    }

    /// Lookups each cache answered without a database read since the start: keys, users, tenants.
    pub(crate) fn hits(&self) -> [(&'static str, u64); 3] {
        [("key", self.keys.hits.get()), ("user", self.owners.hits.get()), ("tenant", self.tenants.hits.get())]
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

    /// Reads the feed past `cursor` and drops what it names. Returns when each change it applied
    /// was made (the writer's clock), for the lag metric.
    pub(crate) async fn apply_changes(&self, db: &Database, cursor: &mut FeedCursor) -> ServiceResult<Vec<Timestamp>> {
        let now = Instant::now();
        let (last, starting) = match cursor.last_seq {
            Some(seq) => (seq, false),
            None => {
                // A new process has nothing cached yet: start from the end of the feed.
                let latest = db.changes().latest_seq().await?;
                cursor.last_seq = Some(latest);
                (latest, true)
            }
        };
        let mut applied = Vec::new();
        let since = Timestamp::now().plus_millis(-(FEED_WINDOW.as_millis() as i64));
        for change in db.changes().recent(last, since).await? {
            if cursor.seen.insert(change.seq, now).is_some() {
                continue;
            }
            // At the start, the window's changes up to the end of the feed are only marked seen:
            // they were made before this process cached anything (and are no lag of its own).
            if starting && change.seq <= last {
                continue;
            }
            match change.kind {
                ChangeKind::Key => self.forget_key(KeyId(change.entity_id)),
                ChangeKind::User => self.forget_user(UserId(change.entity_id)),
                ChangeKind::Tenant => self.forget_tenant(TenantId(change.entity_id)),
            }
            applied.push(change.at);
            cursor.last_seq = Some(cursor.last_seq.unwrap_or(0).max(change.seq));
        }
        cursor.seen.retain(|_, at| now.saturating_duration_since(*at) < FEED_WINDOW * 2);
        Ok(applied)
    }
}

impl Scope<'_> {
    /// The tenant a refusal without a key of it is audited in: the verifying service's own (it is
    /// that service's call), never one an unauthenticated caller named.
    fn audit_tenant(&self) -> Option<TenantId> {
        match self.tenant {
            Some(OnlyTenant::Id(t)) if !self.throttled => Some(t),
            _ => None,
        }
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
    /// Decides whether a call may proceed. Every refusal is counted and audited (aggregated).
    pub async fn verify(&self, req: VerifyRequest<'_>) -> Result<Verified, Refused> {
        let scope = Scope { tenant: None, source: req.client_ip, claimed: None, throttled: true };
        self.verify_scoped(req, scope).await
    }

    /// [`Self::verify`] for a caller that knows which tenant the key must be of (forward-auth
    /// with `?tenant=`): a key of any other tenant is `unknown_key`, and touches nothing there.
    pub async fn verify_in_tenant(&self, slug: &str, req: VerifyRequest<'_>) -> Result<Verified, Refused> {
        let scope =
            Scope { tenant: Some(OnlyTenant::Slug(slug)), source: req.client_ip, claimed: None, throttled: true };
        self.verify_scoped(req, scope).await
    }

    /// Checks a key on behalf of `caller`, a verified service: only keys of the caller's tenant
    /// are known. The claimed address feeds no throttle, usage or audit source: the key's use is
    /// recorded from the service's own address, and audited there with the claim as a detail.
    pub async fn check_key(&self, caller: &Verified, req: CheckRequest<'_>) -> Result<Verified, Refused> {
        let scope = Scope {
            tenant: Some(OnlyTenant::Id(caller.tenant.id)),
            source: req.source,
            claimed: req.claimed_ip,
            throttled: false,
        };
        let verify = VerifyRequest {
            credential: Credential::Key(req.key),
            client_ip: req.claimed_ip.unwrap_or(req.source),
            unit: req.unit,
            required: req.required,
        };
        self.verify_scoped(verify, scope).await
    }

    async fn verify_scoped(&self, req: VerifyRequest<'_>, scope: Scope<'_>) -> Result<Verified, Refused> {
        let v = &self.inner.verifier;
        let now = Instant::now();
        let source = scope.source;
        if scope.throttled
            && let Some(wait) = v.failures.blocked_shared(source, now, self.inner.cluster.share())
        {
            v.refusals.record(None, None, RefusalCode::TooManyFailures, source, None, "too many failed verifications");
            return Err(Refused { retry_after_secs: Some(wait), ..RefusalCode::TooManyFailures.into() });
        }
        let text = match req.credential {
            Credential::Missing => {
                let tenant = scope.audit_tenant();
                v.refusals.record(tenant, None, RefusalCode::MissingCredentials, source, None, "no credential sent");
                return Err(RefusalCode::MissingCredentials.into());
            }
            Credential::Ambiguous => {
                let tenant = scope.audit_tenant();
                let detail = "more than one credential sent";
                v.refusals.record(tenant, None, RefusalCode::AmbiguousCredentials, source, None, detail);
                return Err(RefusalCode::AmbiguousCredentials.into());
            }
            Credential::Key(text) => text,
        };
        // Checked and hashed where it lies in the request: a copy would only add one more place
        // the secret sits in memory.
        if check_format(text).is_err() {
            return Err(self.failed(&scope, RefusalCode::MalformedKey, "format or checksum wrong", now));
        }
        let digest = KeyDigest::of(text);
        let clock = Timestamp::now();
        // Cache misses read the database, together within one bounded wait: an unreachable
        // database is answered as such in about a second, not after the pool's acquire timeout.
        let deadline = tokio::time::Instant::from_std(now) + VERIFY_DB_WAIT;
        let entry = match self.cached_key(&digest, now, deadline).await {
            Ok(Some(k)) => k,
            Ok(None) => return Err(self.failed(&scope, RefusalCode::UnknownKey, "no key has this digest", now)),
            Err(e) => return Err(self.unavailable(e)),
        };
        let key = &entry.record;
        let other_tenant = "no key of this tenant has this digest";
        if let Some(OnlyTenant::Id(t)) = scope.tenant
            && t != key.tenant_id
        {
            // Another tenant's key, whatever its state: unknown here, and nothing of it is touched.
            return Err(self.failed(&scope, RefusalCode::UnknownKey, other_tenant, now));
        }
        let (owner, tenant) = match (
            self.cached_owner(key.user_id, now, deadline).await,
            self.cached_tenant(key.tenant_id, now, deadline).await,
        ) {
            (Ok(Some(o)), Ok(Some(t))) => (o, t),
            (Ok(None), _) | (_, Ok(None)) => {
                return Err(self.failed(&scope, RefusalCode::UnknownKey, "the key's user or tenant is gone", now));
            }
            (Err(e), _) | (_, Err(e)) => return Err(self.unavailable(e)),
        };
        if let Some(OnlyTenant::Slug(slug)) = scope.tenant
            && tenant.slug.as_str() != slug
        {
            return Err(self.failed(&scope, RefusalCode::UnknownKey, other_tenant, now));
        }
        let scoped = key.scopes.as_ref().map(|s| owner.permissions.narrowed_to(Some(s)));
        let effective = scoped.as_ref().map_or(Cow::Borrowed(&owner.permissions), Cow::Borrowed);
        let checked = check_validity(&VerifyInput {
            key,
            owner: &owner,
            tenant: &tenant,
            effective: &effective,
            client_ip: req.client_ip,
            unit: req.unit,
            required: req.required,
            now: clock,
        });
        if let Err(Refusal { code, admin_detail }) = checked {
            v.refusals.record(Some(tenant.id), Some((key.id, owner.id)), code, source, scope.claimed, admin_detail);
            v.usage.count_refusal(key.id, clock, code.code());
            return Err(Refused { key: Some(key.id), ..code.into() });
        }
        let limit = key.rate_limit_per_minute.unwrap_or(tenant.rate_limit_per_minute);
        let (taken, notice, rendered) = {
            let mut live = entry.live();
            let bucket = live.bucket.get_or_insert_with(|| self.inner.cluster.start_bucket(key.id, limit, now));
            let taken = bucket.take_shared(limit, now, self.inner.cluster.share());
            let notice = taken.is_ok().then(|| live.usage.accept(clock, source));
            let rendered = live.memo.as_ref().and_then(|m| m.bytes_for(&owner, &tenant));
            (taken, notice, rendered)
        };
        let rate = match taken {
            Ok(rate) => rate,
            Err(rate) => {
                let detail = "over the key's rate limit";
                v.refusals.record(
                    Some(tenant.id),
                    Some((key.id, owner.id)),
                    RefusalCode::RateLimited,
                    source,
                    scope.claimed,
                    detail,
                );
                v.usage.count_refusal(key.id, clock, RefusalCode::RateLimited.code());
                return Err(Refused {
                    code: RefusalCode::RateLimited,
                    rate: Some(rate),
                    retry_after_secs: rate.retry_after_secs,
                    key: Some(key.id),
                    unavailable: false,
                });
            }
        };
        if scope.throttled {
            v.failures.succeeded(source);
        }
        self.inner.cluster.accepted(key.id, limit);
        if let Some(notice) = notice {
            v.usage.note(&entry, notice);
        }
        v.accepted.add_one();
        Ok(Verified { entry, owner, tenant, unit: req.unit, rate, scoped, rendered, source })
    }

    /// A call whose key was verified, then refused `insufficient_permission` for what it asked
    /// (a data-API read or write its user or scopes do not permit): counted per day and code, and
    /// audited, as the validity rule's refusals are, and no longer counted as accepted.
    pub fn refused_for_permission(&self, v: &Verified) {
        let verifier = &self.inner.verifier;
        let (code, key, clock) = (RefusalCode::InsufficientPermission, v.key().id, Timestamp::now());
        let detail = "the key's user or scopes do not permit the resource and access asked for";
        verifier.refusals.record(Some(v.tenant.id), Some((key, v.owner.id)), code, v.source, None, detail);
        let retracted = v.entry.live().usage.retract();
        if !retracted {
            // Gathered for writing between the verification and now (once a minute).
            verifier.usage.retract_accepted(key, clock);
        }
        verifier.usage.count_refusal(key, clock, code.code());
        verifier.retracted.add_one();
    }

    /// A refusal before any key of a tenant was found (or one of another tenant): counted against
    /// the source when the scope throttles, audited in the scope's tenant (or none).
    fn failed(&self, scope: &Scope<'_>, code: RefusalCode, detail: &'static str, now: Instant) -> Refused {
        let v = &self.inner.verifier;
        if scope.throttled {
            v.failures.failed_shared(scope.source, now, self.inner.cluster.share());
            self.inner.cluster.failed(crate::ratelimit::FailureLimiter::source(scope.source));
        }
        v.refusals.record(scope.audit_tenant(), None, code, scope.source, scope.claimed, detail);
        code.into()
    }

    /// A call that could not be judged: not accepted (fail closed), and not blamed on its key.
    fn unavailable(&self, e: crate::ServiceError) -> Refused {
        tracing::error!(error = %e, "verification could not read storage");
        Refused {
            retry_after_secs: Some(UNAVAILABLE_RETRY_AFTER_SECS),
            unavailable: true,
            ..RefusalCode::UnknownKey.into()
        }
    }

    /// The key from the cache, or else read before `deadline` (the hit costs no timer).
    async fn cached_key(
        &self,
        digest: &KeyDigest,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<CachedKey>>> {
        let v = &self.inner.verifier;
        match v.keys.get_counted(digest, now, v.ttl) {
            Some(k) => Ok(Some(k)),
            None => bounded(deadline, self.load_key(digest, now)).await,
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
        let entry = Arc::new(CachedKey::new(record, live));
        v.key_digests.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(entry.record.id, *digest);
        v.keys.insert_if_unchanged(*digest, Arc::clone(&entry), epoch, now);
        Ok(Some(entry))
    }

    async fn cached_owner(
        &self,
        id: UserId,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<OwnerState>>> {
        let v = &self.inner.verifier;
        match v.owners.get_counted(&id, now, v.ttl) {
            Some(o) => Ok(Some(o)),
            None => bounded(deadline, self.load_owner(id, now)).await,
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

    async fn cached_tenant(
        &self,
        id: TenantId,
        now: Instant,
        deadline: tokio::time::Instant,
    ) -> ServiceResult<Option<Arc<TenantPolicy>>> {
        let v = &self.inner.verifier;
        match v.tenants.get_counted(&id, now, v.ttl) {
            Some(t) => Ok(Some(t)),
            None => bounded(deadline, self.load_tenant(id, now)).await,
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
