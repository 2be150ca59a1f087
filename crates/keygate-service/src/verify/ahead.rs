//! Keys in use read again in the background once three quarters of their TTL are over, so that
//! the calls on a key in steady use never wait for the read its TTL would otherwise make one of
//! them do; and what became of each read, for `/metrics`.
//!
//! What is served is never older than the TTL allows: an unchanged record renews the entry from
//! when the read began, a changed or missing one drops it (the next call reads it), and an
//! invalidation during the read wins (the entry is not renewed). One read per entry at a time and
//! [`READS_AT_ONCE`] in all; when none is free, nothing is started and the TTL runs out as it
//! would have.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::{KeyDigest, KeyRecord};

use super::{entry::CachedKey, outcome::VERIFY_DB_WAIT};
use crate::Keygate;

/// Keys read ahead at once, at most: a quarter of a PostgreSQL pool, so that calls that miss the
/// cache always find a connection.
pub(crate) const READS_AT_ONCE: usize = 4;

/// Whether an entry of age `age` is due for a read ahead: three quarters of `ttl` are over.
pub(super) fn due(age: Duration, ttl: Duration) -> bool {
    age >= ttl - ttl / 4
}

/// What became of a read ahead: the `outcome` label of `keygate_key_reads_ahead_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The record was unchanged: the entry's TTL starts again from when the read began.
    Renewed,
    /// The record changed or is gone: the entry was dropped, and the next call reads it.
    Dropped,
    /// An invalidation or a newer entry came during the read: nothing was renewed.
    Superseded,
    /// The database failed or did not answer within the verification's wait: the TTL runs out.
    Failed,
    /// Every read ahead was under way already: none was started, and the TTL runs out.
    Skipped,
}

impl Outcome {
    const ALL: [Self; 5] = [Self::Renewed, Self::Dropped, Self::Superseded, Self::Failed, Self::Skipped];

    fn name(self) -> &'static str {
        match self {
            Self::Renewed => "renewed",
            Self::Dropped => "dropped",
            Self::Superseded => "superseded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// The reads ahead: their permits, and what became of them since the start.
#[derive(Debug)]
pub(crate) struct ReadsAhead {
    permits: Arc<tokio::sync::Semaphore>,
    outcomes: [AtomicU64; Outcome::ALL.len()],
}

impl ReadsAhead {
    pub(crate) fn new() -> Self {
        Self { permits: Arc::new(tokio::sync::Semaphore::new(READS_AT_ONCE)), outcomes: Default::default() }
    }

    /// Reads ahead since the start, by outcome (`renewed`, `dropped`, `superseded`, `failed`,
    /// `skipped`). They are not cache loads: a lookup either hits or loads, and a read ahead
    /// happens behind a hit.
    pub(crate) fn counts(&self) -> [(&'static str, u64); Outcome::ALL.len()] {
        Outcome::ALL.map(|o| (o.name(), self.outcomes[o as usize].load(Ordering::Relaxed)))
    }

    fn count(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }
}

impl Keygate {
    /// Starts a read of `entry` in the background, unless one is under way for it already or
    /// [`READS_AT_ONCE`] are (then it counts as skipped).
    pub(super) fn read_ahead(&self, digest: KeyDigest, entry: &Arc<CachedKey>) {
        if !entry.claim_refresh() {
            return;
        }
        let ahead = &self.inner.verifier.ahead;
        let Ok(permit) = Arc::clone(&ahead.permits).try_acquire_owned() else {
            entry.refresh_over();
            ahead.count(Outcome::Skipped);
            return;
        };
        let (keygate, entry) = (self.clone(), Arc::clone(entry));
        tokio::spawn(async move {
            let outcome = keygate.read_key_again(digest, &entry).await;
            keygate.inner.verifier.ahead.count(outcome);
            entry.refresh_over();
            drop(permit);
        });
    }

    async fn read_key_again(&self, digest: KeyDigest, entry: &Arc<CachedKey>) -> Outcome {
        let v = &self.inner.verifier;
        let epoch = v.keys.epoch();
        let read_at = Instant::now();
        let read = tokio::time::timeout(VERIFY_DB_WAIT, self.db().keys().by_digest(&digest)).await;
        match read {
            Ok(Ok(Some(record))) if unchanged(&entry.record, &record) => {
                if v.keys.renew_if_unchanged(&digest, entry, epoch, read_at) {
                    Outcome::Renewed
                } else {
                    Outcome::Superseded
                }
            }
            Ok(Ok(_)) => {
                v.forget_key(entry.id());
                Outcome::Dropped
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "a key could not be read ahead of its TTL");
                Outcome::Failed
            }
            Err(_) => {
                tracing::debug!("a key's read ahead of its TTL took too long");
                Outcome::Failed
            }
        }
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

    fn counted(keygate: &Keygate, outcome: Outcome) -> u64 {
        keygate.inner.verifier.ahead.counts()[outcome as usize].1
    }

    #[test]
    fn a_read_ahead_is_due_once_three_quarters_of_the_ttl_are_over() {
        let ttl = Duration::from_secs(60);
        assert!(!due(Duration::from_millis(44_999), ttl));
        assert!(due(Duration::from_secs(45), ttl));
    }

    #[tokio::test]
    async fn with_four_reads_ahead_under_way_a_fifth_key_is_not_read_and_not_left_claimed() {
        let db = keygate_store::testing::fresh_sqlite().await.expect("a scratch database");
        let keygate = Keygate::new(db.db.clone(), ServiceConfig::default());
        let ahead = &keygate.inner.verifier.ahead;
        // The four permits, as four reads ahead under way would hold them.
        let busy = Arc::clone(&ahead.permits).try_acquire_many_owned(4).expect("four permits");
        assert_eq!(READS_AT_ONCE, 4);
        let entry = CachedKey::for_test(KeyId(7));
        let digest = entry.record.digest;
        keygate.read_ahead(digest, &entry);
        tokio::task::yield_now().await;
        assert_eq!(counted(&keygate, Outcome::Skipped), 1, "no read was started");
        assert!(entry.claim_refresh(), "the entry was let go, so a later call can start its read");
        entry.refresh_over();
        drop(busy);
        // One read ahead per entry: a second call while the first is under way starts nothing.
        assert!(entry.claim_refresh());
        keygate.read_ahead(digest, &entry);
        tokio::task::yield_now().await;
        assert_eq!(ahead.permits.available_permits(), 4, "the entry's own read ahead was under way");
        assert_eq!(counted(&keygate, Outcome::Skipped), 1, "and that is not a skip");
        entry.refresh_over();
        keygate.read_ahead(digest, &entry);
        let read = || ahead.counts().iter().map(|(_, n)| n).sum::<u64>() - counted(&keygate, Outcome::Skipped);
        for _ in 0..100 {
            if read() == 1 && ahead.permits.available_permits() == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(read(), 1, "with a permit free and the entry unclaimed, the key is read");
        // The test entry's key is in no database: the read finds it gone and drops the entry.
        assert_eq!(counted(&keygate, Outcome::Dropped), 1);
        assert_eq!(ahead.permits.available_permits(), 4, "and the permit is given back");
        assert!(entry.claim_refresh(), "and the entry let go");
    }
}
