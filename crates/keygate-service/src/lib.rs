//! keygate's use cases: tenants, users, keys, verification, and the caches and limits around them.
//!
//! No HTTP types and no SQL here: the web layer and the command line call these functions, and
//! they call the store. Every change is authorised here (the first thing each function does),
//! audited through the store, and reflected in this process's caches at once.

mod audit_log;
mod audit_query;
mod caller;
mod ceiling;
mod cluster;
mod counter;
mod demo;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod groups;
mod idempotency;
mod keys;
mod keys_admin;
mod listener;
mod operations;
mod operators;
mod password;
mod query_limits;
mod ratelimit;
mod records;
mod refusals;
mod sessions;
mod tenants;
mod units;
mod usage_stats;
mod users;
mod verify;
mod write_behind;

use std::{sync::Arc, time::Duration};

use keygate_store::Database;

pub use caller::{Caller, SystemName};
pub use error::{BadRequest, Budget, FieldError, ServiceError, ServiceResult};
pub use groups::GroupView;
pub use idempotency::{
    IDEMPOTENCY_ABANDONED_AFTER, IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_MAX_ANSWER, IDEMPOTENCY_PER_KEY, IDEMPOTENCY_TTL,
    IdempotencyStart, StoredAnswer, WITHHELD_BODY, WITHHELD_SECRET,
};
/// The store's records and errors that the service's operations take and return.
pub use keygate_store::{
    AUDIT_SETTLE_MS, AuditFilter, AuditRecord, AuditSearch, Backend, FieldValue, GroupRecord, KeyListing, PoolStats,
    RecordWrite, StoreError, TenantRecord, UserRecord,
};
/// The operator plane's records (issue 21).
pub use keygate_store::{MAX_OPERATORS, MAX_PENDING_REMOVALS, OperatorRecord, TenantSummary};
/// Test databases and fixtures (feature `testing`, enabled by dev-dependencies only), so that
/// the layers above reach them through the service and never name the store.
#[cfg(feature = "testing")]
pub use keygate_store::{NewKey, Reservation, ReserveLimits, testing};
pub use keys::{IssueKey, IssuedKey, KeyChoices, KeyOwner, KeyView, MAX_ROLL_OVERLAP_DAYS, SELF_ROLL_MIN_AGE_MINUTES};
pub use keys_admin::{BULK_MAX, BulkDone, BulkKeys, KEY_PAGE_MAX, KeyQuery, KeyStateFilter, USAGE_DAYS_MAX, UpdateKey};
pub use listener::{CHANGE_LAG_BUCKETS, LagHistogram, ListenerHealth};
pub use operations::GroupSummary;
pub use operators::{
    CreateTenant, CreatedTenant, IssuedOperator, OPERATOR_PAGE_MAX, Operator, REMOVAL_CONFIRMATION_TTL_MS,
    RemovalConfirmation,
};
pub use password::{ARGON2_MEMORY_BYTES, generate_password, hash_password, verify_password};
pub use query_limits::PageHold;
pub use ratelimit::RateState;
pub use records::{Page, ViewParams};
pub use sessions::{LoggedIn, LoginError, LoginRequest, Session};
pub use tenants::{InitOutcome, MAX_KEY_LIFETIME_DAYS, SettingsChange};
pub use usage_stats::KeyUsage;
pub use users::{ChangeUser, CreateUser, Deactivated, USER_PAGE_MAX, UserPatch, UserQuery};
pub use verify::{
    CheckRequest, Credential, Refused, UNAVAILABLE_RETRY_AFTER_SECS, VERIFY_DB_WAIT, Verified, VerifyRequest, day_of,
};
pub use write_behind::QueueHealth;

/// Tunables of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How often the change feed is read (cross-process invalidation) where no listener pushes
    /// changes (SQLite).
    pub change_poll: Duration,
    /// On PostgreSQL, where every change is pushed to the change listener, the slower safety-net
    /// feed read; a node whose listener has been down longer than this is not ready.
    pub listener_poll: Duration,
    /// Whether to hold the PostgreSQL listening connection (off behind a transaction-mode
    /// pooler, which cannot carry `LISTEN`: every node then learns of changes from the poll).
    pub change_listener: bool,
    /// On PostgreSQL, whether rate limits and the failure throttle hold across nodes (counts
    /// exchanged every 100 ms); off, each node limits on its own.
    pub cluster_limits: bool,
    /// Safety net: a cached entry older than this is reloaded even without a change.
    pub cache_ttl: Duration,
    /// Keys the verification cache holds at most (and as many users and tenants); beyond, the
    /// keys used least are evicted (S3-FIFO: a scan of keys used once does not evict hot ones).
    pub key_cache_capacity: usize,
    /// How often last-used times and refusal counts are written.
    pub flush_every: Duration,
    /// Consecutive failed verifications from one IP before it is slowed down.
    pub max_failures_per_ip: u32,
    /// How long an IP that reached the failure limit is refused.
    pub failure_block: Duration,
    /// Sources the failed-verification map holds at most (IPv6 per /64); 32 bytes each plus
    /// their locks, allocated at the start (65 536: 2.2 MiB).
    pub failure_capacity: usize,
    /// The largest body a data-API page may have; the page is cut short before it.
    pub max_page_bytes: usize,
    /// Memory log-in password checks may take at once: `budget / 19 MiB` run concurrently (at
    /// least one), the rest wait.
    pub password_hash_memory: usize,
    /// How long a log-in waits for a hashing slot before it is refused as busy (503).
    pub password_hash_wait: Duration,
    /// Memory that the data-API pages being read and sent share; a page grows its share as its
    /// rows arrive (at least `max_page_bytes`).
    pub page_memory_budget: usize,
    /// How long a page waits for its first share before it is refused as busy (503).
    pub page_memory_wait: Duration,
    /// How long one data-API page read may run in the database.
    pub query_time_budget: Duration,
    /// Data queries (page and record reads) one key may run at once.
    pub queries_per_key: u32,
    /// How long audit rows are kept, per kind; older ones are pruned once a minute.
    pub audit_retention: AuditRetention,
    /// What one tenant's records may take, in units of 512 per record plus the characters of its
    /// custom properties; a write beyond is refused (409) with nothing written.
    pub record_storage_per_tenant: i64,
}

/// How long each kind of audit row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    /// Changes, log-ins and refused changes: everything but the refusals below.
    pub changes: Duration,
    /// Refused calls and failed log-ins: the rows strangers cause.
    pub refusals: Duration,
}

impl Default for AuditRetention {
    /// A year of changes, 90 days of refusals.
    fn default() -> Self {
        Self { changes: Duration::from_secs(365 * 86_400), refusals: Duration::from_secs(90 * 86_400) }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            change_poll: Duration::from_millis(200),
            listener_poll: Duration::from_secs(2),
            change_listener: true,
            cluster_limits: true,
            cache_ttl: Duration::from_secs(60),
            key_cache_capacity: 500_000,
            flush_every: Duration::from_secs(5),
            max_failures_per_ip: 100,
            failure_block: Duration::from_secs(60),
            failure_capacity: ratelimit::DEFAULT_FAILURE_CAPACITY,
            max_page_bytes: 10 * 1024 * 1024,
            password_hash_memory: 4 * password::ARGON2_MEMORY_BYTES,
            password_hash_wait: Duration::from_secs(2),
            page_memory_budget: 64 * 1024 * 1024,
            page_memory_wait: Duration::from_secs(2),
            query_time_budget: Duration::from_secs(2),
            queries_per_key: 4,
            audit_retention: AuditRetention::default(),
            record_storage_per_tenant: 2048 * 1024 * 1024,
        }
    }
}

/// The log-in password-hashing gate, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingGateHealth {
    /// Hashings that may run at once (the memory budget / 19 MiB).
    pub slots: usize,
    /// Slots taken now.
    pub in_use: usize,
    /// Hashings started since the start.
    pub started: u64,
    /// Attempts that found every slot taken and waited (then ran, or were refused as busy).
    pub queued: u64,
}

/// The service handle: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Keygate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    config: ServiceConfig,
    verifier: verify::Verifier,
    page_hints: records::PageHints,
    /// Data queries running per key.
    key_queries: query_limits::KeyQueries,
    /// The memory budget of pages being read and sent.
    page_memory: query_limits::PageMemory,
    /// Log-in password checks, bounded by their memory.
    hashing: password::HashingGate,
    /// When per-day counts were last written (Unix ms).
    last_counts_flush: std::sync::Mutex<i64>,
    /// Refused-call audit entries whose write failed, kept for the next flush.
    unwritten: std::sync::Mutex<write_behind::Unwritten>,
    /// Where this process is in the change feed; read by the poll and by [`Keygate::catch_up`].
    feed: tokio::sync::Mutex<verify::FeedCursor>,
    listener: listener::ListenerState,
    /// What the hot path counted for the next exchange with the other nodes.
    cluster: cluster::ClusterCounts,
    /// When each write-behind queue was last written whole, and its failed writes.
    flushes: write_behind::QueueFlushes,
    /// Console log-in outcomes.
    logins: sessions::LoginCounts,
}

impl Keygate {
    pub fn new(db: Database, config: ServiceConfig) -> Self {
        let verifier = verify::Verifier::new(&config);
        let hashing = password::HashingGate::new(config.password_hash_memory, config.password_hash_wait);
        let key_queries =
            query_limits::KeyQueries::new(config.queries_per_key, query_limits::DEFAULT_KEY_QUERY_CAPACITY);
        let page_memory = query_limits::PageMemory::new(
            config.page_memory_budget.max(config.max_page_bytes),
            config.page_memory_wait,
        );
        Self {
            inner: Arc::new(Inner {
                hashing,
                db,
                config,
                verifier,
                page_hints: records::PageHints::default(),
                key_queries,
                page_memory,
                last_counts_flush: std::sync::Mutex::new(0),
                unwritten: std::sync::Mutex::default(),
                feed: tokio::sync::Mutex::default(),
                listener: listener::ListenerState::default(),
                cluster: cluster::ClusterCounts::default(),
                flushes: write_behind::QueueFlushes::default(),
                logins: sessions::LoginCounts::default(),
            }),
        }
    }

    /// The store: the service's own. Tests reach it through `store_for_tests` (feature `testing`).
    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Starts the background work of a serving process: reading the change feed, and writing
    /// last-used times and refusal counts behind. Stops when `shutdown` fires, after a final flush.
    pub fn spawn_background(&self, shutdown: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.background(shutdown).await })
    }

    async fn background(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        // On PostgreSQL changes are pushed; the poll is only the safety net then.
        let pushed = self.db().backend() == keygate_store::Backend::Postgres && self.inner.config.change_listener;
        let listening = {
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { this.listen(shutdown).await })
        };
        let reconciling = {
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { this.reconcile(shutdown).await })
        };
        let every = if pushed { self.inner.config.listener_poll } else { self.inner.config.change_poll };
        let mut poll = tokio::time::interval(every);
        let mut flush = tokio::time::interval(self.inner.config.flush_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "reading the change feed failed; caches fall back to their TTL");
                    }
                }
                _ = flush.tick() => self.flush_due(false).await,
                _ = shutdown.changed() => break,
            }
        }
        let _ = listening.await;
        let _ = reconciling.await;
        self.flush().await;
    }

    /// Refused calls since start, per code (for metrics).
    pub fn refusal_counts(&self) -> Vec<(&'static str, u64)> {
        self.inner.verifier.refusals.counts()
    }

    /// The page memory budget now: (bytes held by pages, budget in bytes).
    pub fn page_memory(&self) -> (usize, usize) {
        (self.inner.page_memory.in_use_bytes(), self.inner.page_memory.budget_bytes())
    }

    /// Log-in password checks that may run at once, and how many have been started.
    pub fn password_hashing(&self) -> (usize, u64) {
        (self.inner.hashing.limit(), self.inner.hashing.started())
    }

    /// The log-in password-hashing gate now: slots, slots taken, hashings started, and attempts
    /// that had to wait for a slot.
    pub fn password_hashing_gate(&self) -> HashingGateHealth {
        let gate = &self.inner.hashing;
        HashingGateHealth { slots: gate.limit(), in_use: gate.in_use(), started: gate.started(), queued: gate.queued() }
    }

    /// Verifications that succeeded since the start (refusals: [`Self::refusal_counts`]).
    pub fn accepted_count(&self) -> u64 {
        self.inner.verifier.accepted()
    }

    /// Lookups the verification caches answered without reading the database since the start,
    /// per cache (`key`, `user`, `tenant`); with [`Self::cache_loads`], every lookup is one or the
    /// other (a call that waited for another's load of the same entry is a hit).
    pub fn cache_hits(&self) -> [(&'static str, u64); 3] {
        self.inner.verifier.hits()
    }

    /// The database connection pools and how they are used now (no query).
    pub fn pool_stats(&self) -> Vec<keygate_store::PoolStats> {
        self.inner.db.pool_stats()
    }

    /// Sources the failed-verification map tracks now, its capacity, and the bytes it takes (fixed).
    pub fn failure_map(&self) -> (usize, usize, usize) {
        self.inner.verifier.failure_map()
    }

    /// Keys cached now, the most the key cache holds, and keys evicted to make room since the start.
    pub fn key_cache(&self) -> (usize, usize, u64) {
        self.inner.verifier.key_cache()
    }

    /// Database reads the verification caches have made since the start, per cache (`key`,
    /// `user`, `tenant`): cache misses, concurrent misses of one entry counted once.
    pub fn cache_loads(&self) -> [(&'static str, u64); 3] {
        self.inner.verifier.loads()
    }

    /// Keys in use read again in the background ahead of their TTL since the start, by outcome:
    /// `renewed` (unchanged), `dropped` (changed or gone), `superseded` (an invalidation came
    /// during the read), `failed` (the database failed or was slow), `skipped` (as many reads
    /// were under way as may be). Not counted in [`Self::cache_loads`].
    pub fn key_reads_ahead(&self) -> [(&'static str, u64); 5] {
        self.inner.verifier.reads_ahead()
    }
}
