//! Rate limits: a token bucket per key (the tenant's default rate, or the key's own), and a
//! failure limiter per source IP so that guessing keys is slowed down (NIST SP 800-63B §5.2.2
//! allows at most 100 consecutive failures).

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

/// One key's token bucket: capacity = the per-minute limit, refilled continuously. It lives in
/// the key's cache entry, beside its usage, so an accepted call takes one lock for both.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    /// The per-minute limit of the last call (it can change with the key or the tenant).
    per_minute: u32,
}

impl Bucket {
    /// A full bucket: a key starts with its whole quota.
    pub(crate) fn full(per_minute: u32, now: Instant) -> Self {
        Self { tokens: f64::from(per_minute.max(1)), last: now, per_minute }
    }

    /// Takes away `n` tokens that other nodes spent for this key (cluster-wide limits). The bucket
    /// may go into debt, at most one whole quota, which the refill pays back before the next call.
    pub(crate) fn debit(&mut self, n: u32, now: Instant) {
        let capacity = f64::from(self.per_minute.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity) - f64::from(n);
        self.tokens = self.tokens.max(-capacity);
        self.last = now;
    }

    /// Takes one token if there is one; either way reports the state for the rate headers.
    pub(crate) fn take(&mut self, per_minute: u32, now: Instant) -> Result<RateState, RateState> {
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
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
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
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let source = Self::source(ip);
        let second = self.second(now);
        let mut bucket = self.bucket(source);
        let slot = bucket.iter_mut().find(|s| s.last != 0 && s.source == source)?;
        match slot.blocked_until {
            0 => None,
            until if until > second => Some(u64::from(until - second)),
            _ => {
                // The block is over; the next failures count from zero again.
                slot.blocked_until = 0;
                slot.count = 0;
                None
            }
        }
    }

    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        self.failed_times(Self::source(ip), 1, now);
    }

    /// Counts `n` failures of `source` at once: those other nodes saw (cluster-wide limits).
    pub(crate) fn failed_times(&self, source: [u64; 2], n: u32, now: Instant) {
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
