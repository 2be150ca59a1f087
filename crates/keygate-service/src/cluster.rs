//! Cluster-wide limits: with several nodes on one PostgreSQL, a key's rate limit and the
//! per-source failed-verification throttle hold across all of them, not per node.
//!
//! The hot path never waits for the database: it only counts, in memory, what it accepted per key
//! and what failed per source. Every [`RECONCILE`] a background task appends those counts to
//! `cluster_counts` and reads what the other nodes appended since its last read, and charges that
//! to its own buckets (which may go into debt, at most one quota) and failure table. A key limited
//! to L calls a minute is then accepted at most L per minute across the cluster, plus each node's
//! first full bucket, plus what the other nodes accept during one exchange (a few hundredths of L
//! at 100 ms); the bound is stated and measured in the README. On SQLite nothing of this runs.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::KeyId;
use keygate_store::{Count, CountKind};

use crate::Keygate;

/// How often counts are exchanged.
pub(crate) const RECONCILE: Duration = Duration::from_millis(100);
/// Reports older than this are pruned.
const KEEP_REPORTS: Duration = Duration::from_secs(120);
/// Keys counted per interval: beyond this a key's calls are not reported (counted in `dropped`).
const MAX_KEYS: usize = 100_000;
/// Sources counted per interval: a flood of new sources cannot grow the report without bound.
const MAX_SOURCES: usize = 4096;
const SHARDS: usize = 16;

/// The counts the hot path keeps for the next exchange.
#[derive(Debug)]
pub(crate) struct ClusterCounts {
    enabled: AtomicBool,
    keys: Box<[Mutex<HashMap<KeyId, u32>>]>,
    failures: Mutex<HashMap<[u64; 2], u32>>,
    /// Events not reported because a bound was reached.
    pub(crate) dropped: AtomicU64,
}

impl Default for ClusterCounts {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            keys: (0..SHARDS).map(|_| Mutex::default()).collect(),
            failures: Mutex::default(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl ClusterCounts {
    /// An accepted call of `key` (a single atomic read when the cluster is off).
    pub(crate) fn accepted(&self, key: KeyId) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let shard = (key.0.unsigned_abs() as usize) % SHARDS;
        let mut map = self.keys[shard].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() < MAX_KEYS / SHARDS || map.contains_key(&key) {
            *map.entry(key).or_insert(0) += 1;
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A failed verification from `source`.
    pub(crate) fn failed(&self, source: [u64; 2]) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() < MAX_SOURCES || map.contains_key(&source) {
            *map.entry(source).or_insert(0) += 1;
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts waiting for the next exchange and events dropped so far, while the exchange runs
    /// (for `/metrics`); `None` when it does not (SQLite, or cluster-wide limits off).
    pub(crate) fn depth(&self) -> Option<(usize, u64)> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let keys: usize =
            self.keys.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum();
        let sources = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        Some((keys + sources, self.dropped.load(Ordering::Relaxed)))
    }

    fn take(&self) -> Vec<Count> {
        let mut out = Vec::new();
        for shard in &*self.keys {
            let drained: Vec<(KeyId, u32)> =
                shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
            out.extend(drained.into_iter().map(|(key, n)| Count {
                kind: CountKind::Key,
                subject: key.0.to_le_bytes().to_vec(),
                n: i64::from(n),
            }));
        }
        let failures: Vec<([u64; 2], u32)> =
            self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
        out.extend(failures.into_iter().map(|(source, n)| Count {
            kind: CountKind::Failure,
            subject: [source[0].to_le_bytes(), source[1].to_le_bytes()].concat(),
            n: i64::from(n),
        }));
        out
    }

    /// Puts back counts an exchange could not write, so the next one reports them.
    fn give_back(&self, counts: Vec<Count>) {
        for c in counts {
            let n = u32::try_from(c.n).unwrap_or(u32::MAX);
            match (c.kind, decode(&c)) {
                (CountKind::Key, Subject::Key(key)) => {
                    let shard = (key.0.unsigned_abs() as usize) % SHARDS;
                    *self.keys[shard]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(key)
                        .or_insert(0) += n;
                }
                (CountKind::Failure, Subject::Source(source)) => {
                    *self
                        .failures
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(source)
                        .or_insert(0) += n;
                }
                _ => {}
            }
        }
    }
}

enum Subject {
    Key(KeyId),
    Source([u64; 2]),
    Unknown,
}

fn decode(c: &Count) -> Subject {
    match (c.kind, c.subject.len()) {
        (CountKind::Key, 8) => {
            let bytes: [u8; 8] = c.subject[..].try_into().unwrap_or([0; 8]);
            Subject::Key(KeyId(i64::from_le_bytes(bytes)))
        }
        (CountKind::Failure, 16) => {
            let hi: [u8; 8] = c.subject[..8].try_into().unwrap_or([0; 8]);
            let lo: [u8; 8] = c.subject[8..].try_into().unwrap_or([0; 8]);
            Subject::Source([u64::from_le_bytes(hi), u64::from_le_bytes(lo)])
        }
        _ => Subject::Unknown,
    }
}

impl Keygate {
    /// Exchanges counts with the other nodes until `shutdown` fires (PostgreSQL only).
    pub(crate) async fn reconcile(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let counts = &self.inner.cluster;
        if self.db().backend() != keygate_store::Backend::Postgres || !self.inner.config.cluster_limits {
            return;
        }
        counts.enabled.store(true, Ordering::Release);
        let node = crate::sessions::random_token();
        let mut after = None;
        let mut tick = tokio::time::interval(RECONCILE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned = Instant::now();
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = shutdown.changed() => true,
            };
            let cursor = match after {
                Some(seq) => seq,
                None => match self.db().newest_count_seq().await {
                    Ok(Some(seq)) => {
                        after = Some(seq);
                        seq
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster counts cannot be read yet");
                        continue;
                    }
                },
            };
            let taken_at = Instant::now();
            let mine = counts.take();
            match self.db().exchange_counts(&node, &mine, cursor).await {
                Ok(Some(reported)) => {
                    self.inner.flushes.cluster_counts.written(taken_at);
                    let now = Instant::now();
                    for r in reported {
                        after = Some(after.unwrap_or(0).max(r.seq));
                        let n = u32::try_from(r.count.n).unwrap_or(u32::MAX);
                        match decode(&r.count) {
                            Subject::Key(key) => self.inner.verifier.debit_key(key, n, now),
                            Subject::Source(source) => self.inner.verifier.failed_elsewhere(source, n, now),
                            Subject::Unknown => {}
                        }
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "exchanging cluster counts failed; kept for the next exchange");
                    self.inner.flushes.cluster_counts.failed();
                    counts.give_back(mine);
                }
            }
            if stopping {
                return;
            }
            if pruned.elapsed() > Duration::from_secs(10) {
                pruned = Instant::now();
                let before = keygate_domain::Timestamp::now().plus_millis(-(KEEP_REPORTS.as_millis() as i64));
                if let Err(e) = self.db().prune_counts(before).await {
                    tracing::warn!(error = %e, "pruning cluster counts failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded_whoever_sends_them() {
        let counts = ClusterCounts::default();
        counts.enabled.store(true, Ordering::Relaxed);
        for i in 0..(MAX_SOURCES as u64 + 1000) {
            counts.failed([i, 0]);
        }
        let taken = counts.take();
        assert_eq!(taken.len(), MAX_SOURCES, "at most {MAX_SOURCES} sources per exchange");
        assert_eq!(counts.dropped.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn nothing_is_counted_while_the_cluster_is_off() {
        let counts = ClusterCounts::default();
        counts.accepted(KeyId(1));
        counts.failed([1, 2]);
        assert!(counts.take().is_empty());
    }

    #[test]
    fn a_report_round_trips_its_subject() {
        let counts = ClusterCounts::default();
        counts.enabled.store(true, Ordering::Relaxed);
        counts.accepted(KeyId(-7));
        counts.accepted(KeyId(-7));
        counts.failed([3, 4]);
        let taken = counts.take();
        assert!(taken.iter().any(|c| matches!(decode(c), Subject::Key(KeyId(-7))) && c.n == 2));
        assert!(taken.iter().any(|c| matches!(decode(c), Subject::Source([3, 4])) && c.n == 1));
        counts.give_back(taken);
        assert_eq!(counts.take().len(), 2, "given back whole");
    }
}
