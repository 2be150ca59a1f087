//! Cluster-wide limits: with several nodes on one PostgreSQL, a key's rate limit and the
//! per-source failed-verification throttle hold across all of them, not per node. This module owns
//! the counts the nodes exchange, what a node knows of keys it does not serve yet, and the exchange.
//!
//! The hot path never waits for the database: it only counts, in memory, what it accepted per key
//! and what failed per source. Every [`RECONCILE`] a background task appends those counts to
//! `cluster_counts` (or a heartbeat when there are none) and reads what the other nodes appended
//! since its last read: it charges that to its own buckets and failure table, or, for a key it has
//! no bucket for, to a *shadow* bucket that a bucket of that key starts from when this node begins
//! to serve it (a node starting up reads the last minute of reports first). Each node keeps what it
//! spent and the others have not seen yet within its share of what is left (`1 / (nodes + 1)`, see
//! [`Share`]), so the nodes together never spend more than one bucket holds: over any window a key
//! limited to L a minute is accepted at most what one bucket admits (L + L/60 per second), plus one
//! call per node, as long as every exchange completes within 100 ms. The README states the bound
//! and how it is measured. On SQLite nothing of this runs.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::KeyId;
use keygate_store::{Count, CountKind};

use crate::{
    Keygate,
    ratelimit::{Bucket, Share},
};

/// How often counts are exchanged.
pub(crate) const RECONCILE: Duration = Duration::from_millis(100);
/// Reports older than this are pruned.
const KEEP_REPORTS: Duration = Duration::from_secs(120);
/// Keys counted per interval: beyond this a key's calls are not reported (counted in `dropped`).
const MAX_KEYS: usize = 100_000;
/// Sources counted per interval: a flood of new sources cannot grow the report without bound.
const MAX_SOURCES: usize = 4096;
/// Keys whose budget this node tracks without serving them: beyond this, others' calls of a new
/// key are not tracked (counted in `dropped`) until whole buckets are pruned.
const MAX_SHADOWS: usize = 100_000;
/// Nodes tracked as live: reports from more (a misconfiguration) are not told apart.
const MAX_NODES: usize = 1024;
/// A node not heard of for this long no longer takes a share.
const LIVE: Duration = Duration::from_secs(2);
/// A node starting up reads this far back: a bucket spent earlier is whole again.
const HISTORY: Duration = Duration::from_secs(60);
const SHARDS: usize = 16;

/// Calls accepted per key since the last exchange, with the key's per-minute limit.
type KeyCounts = HashMap<KeyId, (u32, u32)>;

/// The counts the hot path keeps for the next exchange, and what this node knows of the others.
#[derive(Debug)]
pub(crate) struct ClusterCounts {
    enabled: AtomicBool,
    /// Per key: calls accepted since the last exchange, and the key's per-minute limit.
    keys: Box<[Mutex<KeyCounts>]>,
    failures: Mutex<HashMap<[u64; 2], u32>>,
    /// Buckets of keys this node has no bucket for, charged with what the other nodes spent.
    shadows: Box<[Mutex<HashMap<KeyId, Bucket>>]>,
    /// Exchanges completed.
    epoch: AtomicU32,
    /// Live nodes (this one included) + 1, or 0 while no other node is live.
    ways: AtomicU32,
    /// Events not reported because a bound was reached.
    pub(crate) dropped: AtomicU64,
}

impl Default for ClusterCounts {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            keys: (0..SHARDS).map(|_| Mutex::default()).collect(),
            failures: Mutex::default(),
            shadows: (0..SHARDS).map(|_| Mutex::default()).collect(),
            epoch: AtomicU32::new(0),
            ways: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

fn shard_of(key: KeyId) -> usize {
    (key.0.unsigned_abs() as usize) % SHARDS
}

impl ClusterCounts {
    /// How this node shares budgets now ([`Share::ALONE`] when the cluster is off).
    pub(crate) fn share(&self) -> Share {
        if !self.enabled.load(Ordering::Relaxed) {
            return Share::ALONE;
        }
        Share { epoch: self.epoch.load(Ordering::Acquire), ways: self.ways.load(Ordering::Relaxed) }
    }

    /// The bucket this node starts `key` with: what the other nodes left of it, or a full one.
    pub(crate) fn start_bucket(&self, key: KeyId, per_minute: u32, now: Instant) -> Bucket {
        if !self.enabled.load(Ordering::Relaxed) {
            return Bucket::full(per_minute, now);
        }
        let shadow = self.shadows[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        shadow.unwrap_or_else(|| Bucket::full(per_minute, now))
    }

    /// Charges `n` calls another node accepted at `at` for `key`, which this node has no bucket for.
    fn debit_shadow(&self, key: KeyId, per_minute: u32, n: u32, at: Instant) {
        let mut map = self.shadows[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() < MAX_SHADOWS / SHARDS || map.contains_key(&key) {
            map.entry(key).or_insert_with(|| Bucket::full(per_minute, at)).debit(n, at);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops shadow buckets that are whole again; how many are left.
    fn prune_shadows(&self, now: Instant) -> usize {
        let mut left = 0;
        for shard in &*self.shadows {
            let mut map = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.retain(|_, b| !b.is_full_at(now));
            left += map.len();
        }
        left
    }

    /// An accepted call of `key`, limited to `per_minute` (a single atomic read when the cluster is
    /// off).
    pub(crate) fn accepted(&self, key: KeyId, per_minute: u32) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut map = self.keys[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() < MAX_KEYS / SHARDS || map.contains_key(&key) {
            let counted = map.entry(key).or_insert((0, per_minute));
            counted.0 += 1;
            counted.1 = per_minute;
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
            let drained: Vec<(KeyId, (u32, u32))> =
                shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain().collect();
            out.extend(drained.into_iter().map(|(key, (n, per_minute))| Count {
                kind: CountKind::Key,
                subject: [&key.0.to_le_bytes()[..], &per_minute.to_le_bytes()].concat(),
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
                (CountKind::Key, Subject::Key(key, Some(per_minute))) => {
                    let mut map = self.keys[shard_of(key)].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    map.entry(key).or_insert((0, per_minute)).0 += n;
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
    /// A key, with its per-minute limit (not sent by nodes before the limit was reported).
    Key(KeyId, Option<u32>),
    Source([u64; 2]),
    /// A node that had nothing to report says it is there.
    Heartbeat,
    Unknown,
}

/// The count a node with nothing else to report writes, so that the others count it as live.
fn heartbeat() -> Count {
    Count { kind: CountKind::Key, subject: Vec::new(), n: 0 }
}

fn decode(c: &Count) -> Subject {
    match (c.kind, c.subject.len()) {
        (CountKind::Key, 0) => Subject::Heartbeat,
        (CountKind::Key, 8 | 12) => {
            let id: [u8; 8] = c.subject[..8].try_into().unwrap_or([0; 8]);
            let per_minute = c.subject.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
            Subject::Key(KeyId(i64::from_le_bytes(id)), per_minute)
        }
        (CountKind::Failure, 16) => {
            let hi: [u8; 8] = c.subject[..8].try_into().unwrap_or([0; 8]);
            let lo: [u8; 8] = c.subject[8..].try_into().unwrap_or([0; 8]);
            Subject::Source([u64::from_le_bytes(hi), u64::from_le_bytes(lo)])
        }
        _ => Subject::Unknown,
    }
}

/// The nodes heard of lately (bounded by [`MAX_NODES`]).
#[derive(Debug, Default)]
struct LiveNodes(HashMap<String, Instant>);

impl LiveNodes {
    fn heard(&mut self, node: &str, at: Instant) {
        if let Some(seen) = self.0.get_mut(node) {
            *seen = (*seen).max(at);
        } else if self.0.len() < MAX_NODES {
            self.0.insert(node.to_owned(), at);
        }
    }

    /// Ways to split a budget: live nodes, this one included, + 1; 0 when no other is live.
    fn ways(&mut self, now: Instant) -> u32 {
        self.0.retain(|_, at| now.saturating_duration_since(*at) < LIVE);
        if self.0.is_empty() { 0 } else { self.0.len() as u32 + 2 }
    }
}

/// When, on this node's clock, a report another node stamped `at` was made (never in the future).
fn reported_at(at: keygate_domain::Timestamp, wall: keygate_domain::Timestamp, now: Instant) -> Instant {
    let age = u64::try_from(wall.0.saturating_sub(at.0)).unwrap_or(0).min(KEEP_REPORTS.as_millis() as u64);
    now.checked_sub(Duration::from_millis(age)).unwrap_or(now)
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
        let mut live = LiveNodes::default();
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
                None => {
                    let since = keygate_domain::Timestamp::now().plus_millis(-(HISTORY.as_millis() as i64));
                    match self.db().count_seq_before(since).await {
                        Ok(Some(seq)) => {
                            after = Some(seq);
                            seq
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster counts cannot be read yet");
                            continue;
                        }
                    }
                }
            };
            let taken_at = Instant::now();
            let mut mine = counts.take();
            let reported = mine.len();
            if mine.is_empty() {
                mine.push(heartbeat());
            }
            match self.db().exchange_counts(&node, &mine, cursor).await {
                Ok(Some(others)) => {
                    self.inner.flushes.cluster_counts.written(taken_at);
                    let (now, wall) = (Instant::now(), keygate_domain::Timestamp::now());
                    for r in others {
                        after = Some(after.unwrap_or(0).max(r.seq));
                        let at = reported_at(r.at, wall, now);
                        live.heard(&r.node, at);
                        let n = u32::try_from(r.count.n).unwrap_or(u32::MAX);
                        match decode(&r.count) {
                            Subject::Key(key, per_minute) => {
                                if !self.inner.verifier.debit_key(key, n, at)
                                    && let Some(per_minute) = per_minute
                                {
                                    counts.debit_shadow(key, per_minute, n, at);
                                }
                            }
                            Subject::Source(source) => self.inner.verifier.failed_elsewhere(source, n, now),
                            Subject::Heartbeat | Subject::Unknown => {}
                        }
                    }
                    counts.ways.store(live.ways(now), Ordering::Relaxed);
                    // Only now are this exchange's counts written: what was spent before is one
                    // exchange closer to being seen by every node.
                    counts.epoch.fetch_add(1, Ordering::AcqRel);
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "exchanging cluster counts failed; kept for the next exchange");
                    self.inner.flushes.cluster_counts.failed();
                    mine.truncate(reported);
                    counts.give_back(mine);
                }
            }
            if stopping {
                return;
            }
            if pruned.elapsed() > Duration::from_secs(10) {
                pruned = Instant::now();
                counts.prune_shadows(pruned);
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
        counts.accepted(KeyId(1), 60);
        counts.failed([1, 2]);
        assert!(counts.take().is_empty());
    }

    #[test]
    fn a_report_round_trips_its_subject() {
        let counts = ClusterCounts::default();
        counts.enabled.store(true, Ordering::Relaxed);
        counts.accepted(KeyId(-7), 300);
        counts.accepted(KeyId(-7), 300);
        counts.failed([3, 4]);
        let taken = counts.take();
        assert!(taken.iter().any(|c| matches!(decode(c), Subject::Key(KeyId(-7), Some(300))) && c.n == 2));
        assert!(taken.iter().any(|c| matches!(decode(c), Subject::Source([3, 4])) && c.n == 1));
        counts.give_back(taken);
        assert_eq!(counts.take().len(), 2, "given back whole");
        assert!(matches!(decode(&heartbeat()), Subject::Heartbeat));
        let old_node = Count { kind: CountKind::Key, subject: 9i64.to_le_bytes().to_vec(), n: 1 };
        assert!(
            matches!(decode(&old_node), Subject::Key(KeyId(9), None)),
            "a report without the limit still names its key"
        );
    }

    #[test]
    fn a_node_that_starts_serving_a_key_starts_from_what_the_others_left_of_its_bucket() {
        let counts = ClusterCounts::default();
        let now = Instant::now();
        assert_eq!(counts.start_bucket(KeyId(5), 300, now).take(300, now).map(|s| s.remaining), Ok(299), "cluster off");
        counts.enabled.store(true, Ordering::Relaxed);
        counts.debit_shadow(KeyId(5), 300, 250, now);
        let mut bucket = counts.start_bucket(KeyId(5), 300, now);
        let accepted = (0..300).take_while(|_| bucket.take(300, now).is_ok()).count();
        assert_eq!(accepted, 50, "300 less the 250 spent elsewhere, not a full bucket");
        let fresh = (0..400).take_while(|_| counts.start_bucket(KeyId(6), 300, now).take(300, now).is_ok()).count();
        assert_eq!(fresh, 400, "a key nobody spent starts full");
    }

    #[test]
    fn shadow_buckets_are_bounded_and_pruned_once_whole_again() {
        let counts = ClusterCounts::default();
        counts.enabled.store(true, Ordering::Relaxed);
        let now = Instant::now();
        for id in 0..(MAX_SHADOWS as i64 + 5_000) {
            counts.debit_shadow(KeyId(id), 60, 1, now);
        }
        let held: usize = counts.shadows.iter().map(|s| s.lock().expect("lock").len()).sum();
        assert!(held <= MAX_SHADOWS, "{held} shadow buckets, at most {MAX_SHADOWS}");
        assert!(counts.dropped.load(Ordering::Relaxed) >= 5_000);
        assert_eq!(counts.prune_shadows(now), held, "nothing is whole yet");
        assert_eq!(counts.prune_shadows(now + Duration::from_secs(2)), 0, "one token of 60/min is back in 1 s");
    }

    #[test]
    fn a_node_counts_the_nodes_heard_of_in_the_last_two_seconds() {
        let mut live = LiveNodes::default();
        let now = Instant::now();
        assert_eq!(live.ways(now), 0, "no other node: alone");
        live.heard("a", now);
        live.heard("b", now - Duration::from_secs(3));
        assert_eq!(live.ways(now), 3, "itself and a, + 1");
        for i in 0..2 * MAX_NODES {
            live.heard(&i.to_string(), now);
        }
        assert_eq!(live.0.len(), MAX_NODES);
        let wall = keygate_domain::Timestamp::now();
        assert_eq!(reported_at(wall.plus_millis(5_000), wall, now), now, "a clock ahead is not the future");
        assert_eq!(reported_at(wall.plus_millis(-1_500), wall, now), now - Duration::from_millis(1_500));
    }
}
