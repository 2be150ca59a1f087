//! Rate limits: a token bucket per key (the tenant's default rate, or the key's own), and a
//! failure limiter per source IP so that guessing keys is slowed down (NIST SP 800-63B §5.2.2
//! allows at most 100 consecutive failures).
//!
//! On a cluster (see `cluster`) both take a [`Share`]: a node may have spent, unconfirmed (not yet
//! seen by the other nodes), at most its share of what it knows is left, so that what all nodes
//! spend before they hear of each other never exceeds what is left. No I/O here.

use std::{
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// The state reported in `RateLimit` / `RateLimit-Policy` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window, in seconds.
    pub window_secs: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_secs: u64,
    /// Seconds until the next request may pass (only when refused).
    pub retry_after_secs: Option<u64>,
}

/// How this node shares cluster-wide budgets: the exchange it is at, and how many ways what is left
/// of a budget is split. Spends of the last [`UNCONFIRMED_EXCHANGES`] exchanges may not have been
/// seen by the other nodes yet; a node keeps them below `1 / ways` of what it knows is left.
///
/// Why that is enough: with `n` nodes spending and each keeping its unconfirmed spend `u_i` to
/// `u_i · ways ≤ b_i`, where `b_i` is what it knows is left before its own unconfirmed spends, and
/// `b_i ≤ T + Σu` (it misses only the others' unconfirmed spends; `T` is what is really left), the
/// sum gives `Σu · ways ≤ n · (T + Σu)`, so with `ways ≥ n + 1`: `T ≥ Σu / n ≥ 0`. What is really
/// left never goes below zero: the cluster admits what one bucket admits. Each node may also hold
/// one unconfirmed spend whatever its share (else a budget smaller than `ways` could never be
/// used): at most one call per node more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Share {
    /// Exchanges this node has completed (wrapping).
    pub(crate) epoch: u32,
    /// Live nodes + 1; 0 when this node is alone (SQLite, cluster-wide limits off, or no other node
    /// seen): then the whole budget is its own and nothing is tracked.
    pub(crate) ways: u32,
}

impl Share {
    /// A node alone: the whole budget is its own.
    pub(crate) const ALONE: Self = Self { epoch: 0, ways: 0 };

    /// Whether one more spend fits, with `unconfirmed` spent already and `left` known to be left
    /// after them.
    fn allows(self, unconfirmed: f64, left: f64) -> bool {
        self.ways == 0 || unconfirmed < 1.0 || (unconfirmed + 1.0) * f64::from(self.ways) <= left + unconfirmed
    }
}

/// Exchanges after which a spend is taken to be seen by every node: written at the next exchange,
/// read by the others within their next one (every 100 ms), and one more for a late reader.
pub(crate) const UNCONFIRMED_EXCHANGES: u32 = 3;

/// A node's spends of the last [`UNCONFIRMED_EXCHANGES`] exchanges: `counts[i]` at `epoch - i`.
#[derive(Debug, Clone, Copy, Default)]
struct Unconfirmed {
    epoch: u32,
    counts: [u32; UNCONFIRMED_EXCHANGES as usize],
}

impl Unconfirmed {
    /// Moves to `epoch`, forgetting spends the other nodes have seen by now; what is left.
    fn at(&mut self, epoch: u32) -> u32 {
        let moved = epoch.wrapping_sub(self.epoch) as usize;
        if moved > 0 {
            let len = self.counts.len();
            let keep = len.saturating_sub(moved);
            self.counts.copy_within(0..keep, len - keep);
            self.counts[..len - keep].fill(0);
            self.epoch = epoch;
        }
        self.counts.iter().sum()
    }
}

/// One key's token bucket: capacity = the per-minute limit, refilled continuously. It lives in
/// the key's cache entry, beside its usage, so an accepted call takes one lock for both.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    /// The per-minute limit of the last call (it can change with the key or the tenant).
    per_minute: u32,
    /// This node's spends the other nodes may not have seen yet (cluster-wide limits only).
    unconfirmed: Unconfirmed,
}

impl Bucket {
    /// A full bucket: a key starts with its whole quota.
    pub(crate) fn full(per_minute: u32, now: Instant) -> Self {
        Self { tokens: f64::from(per_minute.max(1)), last: now, per_minute, unconfirmed: Unconfirmed::default() }
    }

    /// Whether the bucket is whole again at `now` (nothing of it is worth keeping).
    pub(crate) fn is_full_at(&self, now: Instant) -> bool {
        let capacity = f64::from(self.per_minute.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * capacity / 60.0 >= capacity
    }

    /// Takes away `n` tokens that other nodes spent for this key at `at` (cluster-wide limits). The
    /// bucket may go into debt, at most one whole quota, which the refill pays back before the next
    /// call. A report older than the bucket's last change is charged as of that change.
    pub(crate) fn debit(&mut self, n: u32, at: Instant) {
        let capacity = f64::from(self.per_minute.max(1));
        let elapsed = at.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity) - f64::from(n);
        self.tokens = self.tokens.max(-capacity);
        self.last = self.last.max(at);
    }

    /// Takes one token if there is one; either way reports the state for the rate headers.
    #[cfg(test)]
    pub(crate) fn take(&mut self, per_minute: u32, now: Instant) -> Result<RateState, RateState> {
        self.take_shared(per_minute, now, Share::ALONE)
    }

    /// Takes one token if there is one and, on a cluster, if this node's unconfirmed spends stay
    /// within its `share` of what is left; either way reports the state for the rate headers.
    pub(crate) fn take_shared(&mut self, per_minute: u32, now: Instant, share: Share) -> Result<RateState, RateState> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.last = now;
        self.per_minute = per_minute;
        let state = |tokens: f64, retry: Option<u64>| RateState {
            limit: per_minute,
            window_secs: 60,
            remaining: tokens.floor().max(0.0) as u32,
            reset_secs: ((capacity - tokens) / per_sec).ceil().max(0.0) as u64,
            retry_after_secs: retry,
        };
        let unconfirmed = if share.ways == 0 { 0 } else { self.unconfirmed.at(share.epoch) };
        if self.tokens >= 1.0 && !share.allows(f64::from(unconfirmed), self.tokens) {
            // Left, but perhaps spent by other nodes meanwhile: the next exchange tells.
            return Err(state(0.0, Some(1)));
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            if share.ways != 0 {
                self.unconfirmed.counts[0] = self.unconfirmed.counts[0].saturating_add(1);
            }
            Ok(state(self.tokens, None))
        } else {
            let wait = ((1.0 - self.tokens) / per_sec).ceil().max(1.0) as u64;
            Err(state(self.tokens, Some(wait)))
        }
    }
}

/// One source's failures, in 32 bytes: times are whole seconds since the limiter was made.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The source: an IPv4 address as `::ffff:a.b.c.d`, an IPv6 address as its /64 prefix.
    source: [u64; 2],
    count: u32,
    /// Second after which the source is no longer blocked; 0 when it is not blocked.
    blocked_until: u32,
    /// Second of the last failure, plus one; 0 marks an empty slot.
    last: u32,
    /// This node's failures of the source the other nodes may not have seen yet (in `count` too),
    /// as of exchange `unconfirmed_at` (cluster-wide limits only).
    unconfirmed: u16,
    unconfirmed_at: u16,
}

impl Slot {
    /// This node's failures not yet seen by the others, at exchange `epoch`.
    fn unconfirmed(&self, epoch: u32) -> u32 {
        let age = (epoch as u16).wrapping_sub(self.unconfirmed_at);
        if u32::from(age) < UNCONFIRMED_EXCHANGES { u32::from(self.unconfirmed) } else { 0 }
    }
}

/// Slots per bucket: a source is looked for, admitted and evicted among these four only.
const WAYS: usize = 4;

/// The failure map's default capacity: 65 536 sources in a fixed 2.2 MiB
/// ([`FailureLimiter::memory_bytes`]), allocated once at the start.
pub(crate) const DEFAULT_FAILURE_CAPACITY: usize = 65_536;

/// Counts consecutive failed verifications per source and blocks a source that reaches the limit.
///
/// Bounded by construction: a fixed table of `capacity` slots in buckets of [`WAYS`], each bucket
/// behind its own lock. A source hashes (with a per-process random key, so nobody can aim at one
/// bucket) to one bucket; looking it up, admitting it and evicting for it touch that bucket's
/// four slots and nothing else, however full the table is. When a bucket is full the victim is the
/// source not blocked whose last failure is oldest, so a flood of new sources cannot free a
/// blocked one; only when all four are blocked does the block that ends first go. IPv6 sources
/// are counted per /64, the smallest block a single subscriber is usually given.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    max: u32,
    block_secs: u32,
    origin: Instant,
    hasher: std::hash::RandomState,
    buckets: Box<[Mutex<[Slot; WAYS]>]>,
    /// Occupied slots. Lets the hot path skip the lock entirely while no source has failed.
    tracked: AtomicUsize,
}

impl FailureLimiter {
    #[cfg(test)]
    pub(crate) fn new(max: u32, block: Duration) -> Self {
        Self::with_capacity(max, block, DEFAULT_FAILURE_CAPACITY)
    }

    pub(crate) fn with_capacity(max: u32, block: Duration, capacity: usize) -> Self {
        let buckets = capacity.div_ceil(WAYS).max(1);
        Self {
            max: max.max(1),
            block_secs: u32::try_from(block.as_secs()).unwrap_or(u32::MAX).max(1),
            origin: Instant::now(),
            hasher: std::hash::RandomState::new(),
            buckets: (0..buckets).map(|_| Mutex::new([Slot::default(); WAYS])).collect(),
            tracked: AtomicUsize::new(0),
        }
    }

    /// Sources tracked now; never more than the capacity.
    pub(crate) fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    /// Sources the table can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// What the table takes in memory, whatever arrives: it is allocated in full at the start.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets) + std::mem::size_of::<Self>()
    }

    /// The 16 bytes a source is known by across nodes: an IPv4 address, or an IPv6 /64.
    pub(crate) fn source(ip: IpAddr) -> [u64; 2] {
        match keygate_domain::ip::normalise(ip) {
            IpAddr::V4(v4) => [0, 0xffff_0000_0000 | u64::from(u32::from(v4))],
            IpAddr::V6(v6) => [(u128::from(v6) >> 64) as u64, 0],
        }
    }

    /// Seconds since the start, plus one (so that 0 can mean "never").
    fn second(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.origin).as_secs()).unwrap_or(u32::MAX - 1) + 1
    }

    fn bucket(&self, source: [u64; 2]) -> std::sync::MutexGuard<'_, [Slot; WAYS]> {
        use std::hash::BuildHasher;
        let index = (self.hasher.hash_one(source) % self.buckets.len() as u64) as usize;
        self.buckets[index].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seconds the IP must still wait, if it is blocked.
    #[cfg(test)]
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        self.blocked_shared(ip, now, Share::ALONE)
    }

    /// Seconds the IP must still wait, if it is blocked; on a cluster also (for a second) while this
    /// node's unconfirmed failures of it have used up its `share` of the failures left.
    pub(crate) fn blocked_shared(&self, ip: IpAddr, now: Instant, share: Share) -> Option<u64> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let source = Self::source(ip);
        let second = self.second(now);
        let mut bucket = self.bucket(source);
        let slot = bucket.iter_mut().find(|s| s.last != 0 && s.source == source)?;
        match slot.blocked_until {
            0 => {
                let unconfirmed = slot.unconfirmed(share.epoch);
                let left = f64::from(self.max.saturating_sub(slot.count));
                (!share.allows(f64::from(unconfirmed), left)).then_some(1)
            }
            until if until > second => Some(u64::from(until - second)),
            _ => {
                // The block is over; the next failures count from zero again.
                slot.blocked_until = 0;
                slot.count = 0;
                None
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        self.failed_shared(ip, now, Share::ALONE);
    }

    /// A failure seen here; on a cluster it stays unconfirmed until the others have seen it.
    pub(crate) fn failed_shared(&self, ip: IpAddr, now: Instant, share: Share) {
        self.count_failures(Self::source(ip), 1, now, (share.ways != 0).then_some(share.epoch));
    }

    /// Counts `n` failures of `source` at once: those other nodes saw (cluster-wide limits).
    pub(crate) fn failed_times(&self, source: [u64; 2], n: u32, now: Instant) {
        self.count_failures(source, n, now, None);
    }

    /// Counts `n` failures of `source`; `mine` is the exchange a failure seen here was made at.
    fn count_failures(&self, source: [u64; 2], n: u32, now: Instant, mine: Option<u32>) {
        let second = self.second(now);
        let mut bucket = self.bucket(source);
        let index = match bucket.iter().position(|s| s.last != 0 && s.source == source) {
            Some(i) => i,
            None => {
                let victim = Self::victim(&bucket, second);
                if bucket[victim].last == 0 {
                    self.tracked.fetch_add(1, Ordering::Relaxed);
                }
                bucket[victim] = Slot { source, ..Slot::default() };
                victim
            }
        };
        let slot = &mut bucket[index];
        slot.count = slot.count.saturating_add(n);
        slot.last = second;
        if let Some(epoch) = mine {
            slot.unconfirmed = (slot.unconfirmed(epoch) as u16).saturating_add(1);
            slot.unconfirmed_at = epoch as u16;
        }
        if slot.count >= self.max {
            slot.blocked_until = second.saturating_add(self.block_secs);
        }
    }

    /// The slot a new source takes: an empty one, else the one not blocked (or no longer) whose
    /// last failure is oldest, else the one whose block ends first.
    fn victim(bucket: &[Slot; WAYS], second: u32) -> usize {
        let rank = |s: &Slot| match s.last {
            0 => (0, 0),
            _ if s.blocked_until <= second => (1, s.last),
            _ => (2, s.blocked_until),
        };
        (0..WAYS).min_by_key(|i| rank(&bucket[*i])).unwrap_or(0)
    }

    pub(crate) fn succeeded(&self, ip: IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let source = Self::source(ip);
        let mut bucket = self.bucket(source);
        if let Some(slot) = bucket.iter_mut().find(|s| s.last != 0 && s.source == source) {
            *slot = Slot::default();
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_then_is_told_when_to_retry() {
        let now = Instant::now();
        let mut bucket = Bucket::full(3, now);
        for i in 0..3 {
            let state = bucket.take(3, now).expect("within the limit");
            assert_eq!(state.remaining, 2 - i);
        }
        let refused = bucket.take(3, now).expect_err("over the limit");
        assert_eq!(refused.retry_after_secs, Some(20));
        assert!(bucket.take(3, now + Duration::from_secs(20)).is_ok(), "a token came back");
    }

    #[test]
    fn a_bucket_debited_by_other_nodes_refuses_until_the_refill_pays_the_debt() {
        let now = Instant::now();
        let mut bucket = Bucket::full(60, now);
        bucket.debit(90, now);
        assert!(bucket.take(60, now).is_err(), "the whole quota and more was spent elsewhere");
        assert!(bucket.take(60, now + Duration::from_secs(30)).is_err(), "30 s repay 30 of the 60 owed");
        assert!(bucket.take(60, now + Duration::from_secs(61)).is_ok(), "the debt never exceeds one quota");
    }

    /// N nodes, each exchanging every 100 ms at its own phase: what a node spent during one
    /// exchange period is written at its next exchange and read by the others at theirs. Each node
    /// calls the key every `gap` while it is loaded; returns the calls accepted in each second.
    fn cluster_run(nodes: usize, per_minute: u32, seconds: u64, loaded: impl Fn(usize, u64) -> bool) -> Vec<u64> {
        let start = Instant::now();
        let period = 100u64;
        let mut buckets: Vec<Bucket> = (0..nodes).map(|_| Bucket::full(per_minute, start)).collect();
        let mut epochs = vec![0u32; nodes];
        // Per node: spent since its last exchange; reports written: (written at ms, node, n).
        let mut spent = vec![0u32; nodes];
        let mut written: Vec<(u64, usize, u32)> = Vec::new();
        let mut read_up_to = vec![0usize; nodes];
        let mut per_second = vec![0u64; seconds as usize];
        let ways = nodes as u32 + 1;
        for ms in 0..seconds * 1000 {
            let now = start + Duration::from_millis(ms);
            for i in 0..nodes {
                // Phases spread over the period, as independent nodes' timers are.
                if ms % period == (i as u64 * 37) % period {
                    written.push((ms, i, std::mem::take(&mut spent[i])));
                    for &(_, from, n) in &written[read_up_to[i]..] {
                        if from != i && n > 0 {
                            buckets[i].debit(n, now);
                        }
                    }
                    read_up_to[i] = written.len();
                    epochs[i] = epochs[i].wrapping_add(1);
                }
                if loaded(i, ms) {
                    let share = Share { epoch: epochs[i], ways };
                    if buckets[i].take_shared(per_minute, now, share).is_ok() {
                        spent[i] += 1;
                        per_second[(ms / 1000) as usize] += 1;
                    }
                }
            }
        }
        per_second
    }

    /// The most any window of `window` seconds accepted.
    fn busiest(per_second: &[u64], window: usize) -> u64 {
        per_second.windows(window).map(|w| w.iter().sum()).max().unwrap_or(0)
    }

    #[test]
    fn a_key_loaded_evenly_on_3_or_10_nodes_gets_what_one_bucket_admits_and_no_burst_per_node() {
        for nodes in [3, 10] {
            let per_second = cluster_run(nodes, 300, 40, |_, _| true);
            for window in [10, 20] {
                // One bucket: 300 at once, then 5 a second.
                let one_bucket = 300 + 5 * window as u64;
                let most = busiest(&per_second, window);
                eprintln!("{nodes} nodes, every node calling every ms: {most} accepted in the busiest {window} s");
                assert!(most * 10 <= one_bucket * 11, "{nodes} nodes: {most} in {window} s, one bucket {one_bucket}");
            }
            let total: u64 = per_second.iter().sum();
            assert!(total >= 300 + 5 * 39, "{nodes} nodes: the key still gets its quota and refill: {total}");
        }
    }

    #[test]
    fn a_key_loaded_on_one_node_first_then_on_all_gets_no_burst_from_the_others() {
        for nodes in [3, 10] {
            let per_second = cluster_run(nodes, 300, 40, |i, ms| i == 0 || ms >= 10_000);
            let most = busiest(&per_second, 20);
            eprintln!("{nodes} nodes, one loaded for 10 s, then all: {most} accepted in the busiest 20 s");
            assert!(most <= 440, "{nodes} nodes: {most} in 20 s, one bucket 400");
            let first: u64 = per_second[..10].iter().sum();
            assert!(first >= 300, "one node alone still gets the whole quota within 10 s: {first}");
        }
    }

    #[test]
    fn a_share_refuses_for_a_second_what_the_others_may_have_spent_meanwhile() {
        let now = Instant::now();
        let mut bucket = Bucket::full(300, now);
        let share = Share { epoch: 7, ways: 4 };
        let taken = (0..300).take_while(|_| bucket.take_shared(300, now, share).is_ok()).count();
        assert_eq!(taken, 75, "a quarter of 300 (three nodes + 1) before the others have seen it");
        let refused = bucket.take_shared(300, now, share).expect_err("share spent");
        assert_eq!(refused.retry_after_secs, Some(1));
        let later = Share { epoch: 10, ways: 4 };
        let more = (0..300).take_while(|_| bucket.take_shared(300, now, later).is_ok()).count();
        assert_eq!(more, 56, "once seen, a quarter of the 225 left");
        let mut small = Bucket::full(2, now);
        assert!(small.take_shared(2, now, share).is_ok(), "a budget smaller than the share: one call");
        assert!(small.take_shared(2, now, share).is_err());
    }

    #[test]
    fn a_source_failing_on_a_cluster_node_is_held_back_at_its_share_of_the_failures_left() {
        let limiter = FailureLimiter::new(100, Duration::from_secs(60));
        let ip: IpAddr = "198.51.100.9".parse().expect("ip");
        let now = Instant::now();
        let share = Share { epoch: 3, ways: 11 };
        let mut failures = 0;
        while limiter.blocked_shared(ip, now, share).is_none() {
            limiter.failed_shared(ip, now, share);
            failures += 1;
            assert!(failures < 100);
        }
        assert_eq!(failures, 9, "100 / 11 ways, before the other nodes have seen them");
        assert_eq!(limiter.blocked_shared(ip, now, share), Some(1), "held back for a second, not blocked");
        assert_eq!(limiter.blocked_shared(ip, now, Share { epoch: 6, ways: 11 }), None, "seen by all: on again");
        assert_eq!(limiter.blocked(ip, now), None, "alone, 9 failures block nothing");
    }

    #[test]
    fn failures_seen_by_other_nodes_count_towards_the_block() {
        let limiter = FailureLimiter::new(100, Duration::from_secs(60));
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let now = Instant::now();
        limiter.failed_times(FailureLimiter::source(ip), 99, now);
        assert!(limiter.blocked(ip, now).is_none());
        limiter.failed(ip, now);
        assert!(limiter.blocked(ip, now).is_some(), "99 elsewhere and 1 here make 100");
    }

    #[test]
    fn a_bucket_never_holds_more_than_a_minute_of_quota() {
        let now = Instant::now();
        let mut bucket = Bucket::full(60, now);
        let state = bucket.take(60, now + Duration::from_secs(3600)).expect("within the limit");
        assert_eq!(state.remaining, 59, "an idle hour does not save up more than the limit");
    }

    #[test]
    fn an_ip_is_blocked_after_the_maximum_of_consecutive_failures_and_released_later() {
        let limiter = FailureLimiter::new(100, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let now = Instant::now();
        for _ in 0..99 {
            limiter.failed(ip, now);
        }
        assert_eq!(limiter.blocked(ip, now), None, "99 failures are still allowed");
        limiter.failed(ip, now);
        assert_eq!(limiter.blocked(ip, now), Some(60));
        assert_eq!(limiter.blocked("192.0.2.2".parse().expect("ip"), now), None);
        assert_eq!(limiter.blocked(ip, now + Duration::from_secs(61)), None);
    }

    #[test]
    fn the_failure_map_stays_within_its_capacity_and_a_failure_costs_the_same_when_it_is_full() {
        let capacity = 65_536;
        let limiter = FailureLimiter::with_capacity(100, Duration::from_secs(60), capacity);
        let now = Instant::now();
        let timed = |range: std::ops::Range<u32>| {
            let started = Instant::now();
            for i in range {
                limiter.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), now);
            }
            started.elapsed()
        };
        let first = timed(0..10_000);
        timed(10_000..190_000);
        let last = timed(190_000..200_000);
        eprintln!("10 000 failures: {first:?} into an empty map, {last:?} into a full one; {} sources", limiter.len());
        assert!(limiter.len() <= capacity, "{} entries after 200 000 distinct failures", limiter.len());
        assert!(limiter.memory_bytes() <= 2_400_000, "{} bytes for 65 536 sources", limiter.memory_bytes());
        assert!(
            last < first * 10 + Duration::from_secs(1),
            "the last 10 000 failures took {last:?}, the first {first:?}: a full map must not be scanned"
        );
    }

    #[test]
    fn ipv6_sources_are_counted_per_64_bit_prefix() {
        let limiter = FailureLimiter::with_capacity(100, Duration::from_secs(60), 1024);
        let now = Instant::now();
        for i in 0..1_000u128 {
            let ip = std::net::Ipv6Addr::from(0x2001_0db8_0000_0001_0000_0000_0000_0000_u128 + i * 7919);
            limiter.failed(IpAddr::V6(ip), now);
        }
        assert_eq!(limiter.len(), 1, "one /64, one entry");
        let any_in_prefix: IpAddr = "2001:db8:0:1:ffff::1".parse().expect("ip");
        assert_eq!(limiter.blocked(any_in_prefix, now), Some(60), "the whole /64 is blocked");
        assert_eq!(limiter.blocked("2001:db8:0:2::1".parse().expect("ip"), now), None, "its neighbour is not");
    }

    #[test]
    fn a_flood_of_new_sources_does_not_evict_a_blocked_one() {
        let limiter = FailureLimiter::with_capacity(3, Duration::from_secs(60), 1024);
        let now = Instant::now();
        let guesser: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..3 {
            limiter.failed(guesser, now);
        }
        for i in 0..100_000u32 {
            limiter.failed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)), now);
        }
        assert!(limiter.len() <= 1024);
        assert_eq!(limiter.blocked(guesser, now), Some(60), "still blocked after 100 000 other sources failed");
    }

    #[test]
    fn a_success_clears_the_failure_count() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let now = Instant::now();
        limiter.failed(ip, now);
        limiter.failed(ip, now);
        limiter.succeeded(ip);
        limiter.failed(ip, now);
        assert_eq!(limiter.blocked(ip, now), None);
    }
}
