//! Rate limits: a token bucket per key (the tenant's default rate, or the key's own), and a
//! failure limiter per source IP so that guessing keys is slowed down (NIST SP 800-63B §5.2.2
//! allows at most 100 consecutive failures).

use std::{
    collections::HashMap,
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
}

impl Bucket {
    /// A full bucket: a key starts with its whole quota.
    pub(crate) fn full(per_minute: u32, now: Instant) -> Self {
        Self { tokens: f64::from(per_minute.max(1)), last: now }
    }

    /// Takes one token if there is one; either way reports the state for the rate headers.
    pub(crate) fn take(&mut self, per_minute: u32, now: Instant) -> Result<RateState, RateState> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.last = now;
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

#[derive(Debug)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// Counts consecutive failed verifications per IP and blocks an IP that reaches the limit.
#[derive(Debug)]
pub(crate) struct FailureLimiter {
    max: u32,
    block: Duration,
    entries: Mutex<HashMap<IpAddr, Failures>>,
    /// Lets the hot path skip the lock entirely while no IP has failed.
    tracked: AtomicUsize,
}

impl FailureLimiter {
    pub(crate) fn new(max: u32, block: Duration) -> Self {
        Self { max, block, entries: Mutex::new(HashMap::new()), tracked: AtomicUsize::new(0) }
    }

    /// Seconds the IP must still wait, if it is blocked.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get_mut(&ip)?;
        match entry.blocked_until {
            Some(until) if until > now => Some(until.duration_since(now).as_secs().max(1)),
            Some(_) => {
                // The block is over; the next failures count from zero again.
                entry.blocked_until = None;
                entry.count = 0;
                None
            }
            None => None,
        }
    }

    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= 100_000 {
            let horizon = self.block * 10;
            entries.retain(|_, f| {
                now.saturating_duration_since(f.last) < horizon || f.blocked_until.is_some_and(|u| u > now)
            });
        }
        let entry = entries.entry(ip).or_insert(Failures { count: 0, blocked_until: None, last: now });
        entry.count += 1;
        entry.last = now;
        if entry.count >= self.max {
            entry.blocked_until = Some(now + self.block);
        }
        self.tracked.store(entries.len(), Ordering::Relaxed);
    }

    pub(crate) fn succeeded(&self, ip: IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(&ip);
        self.tracked.store(entries.len(), Ordering::Relaxed);
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
