//! Pushed invalidation across nodes: on PostgreSQL each serving process keeps one listening
//! connection and reads the change feed as soon as a change is committed anywhere, instead of
//! waiting for its next poll. On every (re)connect it reads the feed from the last sequence it
//! applied *before* it trusts notifications again, so a change made while it was deaf is never
//! missed. The periodic feed read (every [`ServiceConfig::listener_poll`]) and the cache TTL stay
//! as safety nets. Nothing here runs on the verification path. It also keeps, for `/metrics`,
//! when the feed was last read and how long changes took to arrive (on SQLite too, where the
//! feed is polled).
//!
//! [`ServiceConfig::listener_poll`]: crate::ServiceConfig::listener_poll

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::Keygate;

/// The listener's state, for readiness and metrics.
#[derive(Debug, Default)]
pub(crate) struct ListenerState {
    enabled: AtomicBool,
    connected: AtomicBool,
    /// When the listener last connected or lost its connection.
    changed_at: Mutex<Option<Instant>>,
    /// When the feed was last read successfully (by a notification, a reconnect or the poll).
    read_at: Mutex<Option<Instant>>,
    notifications: AtomicU64,
    reconnects: AtomicU64,
    /// How long changes took from being made to being applied here.
    lag: Mutex<LagHistogram>,
}

/// Upper bounds of the change-lag buckets, in seconds: from 1 ms (a pushed change on one
/// machine) past the 1 s promise to the 60 s TTL.
pub const CHANGE_LAG_BUCKETS: [f64; 14] =
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Changes applied from the feed, by how long after they were made: a histogram, counts per
/// bucket (not cumulative), the last one for everything beyond [`CHANGE_LAG_BUCKETS`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LagHistogram {
    pub counts: [u64; CHANGE_LAG_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl LagHistogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = CHANGE_LAG_BUCKETS.iter().position(|le| seconds <= *le).unwrap_or(CHANGE_LAG_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// What `/readyz` and `/metrics` are told about the listener.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ListenerHealth {
    /// False on SQLite: there is no listener to have.
    pub enabled: bool,
    pub connected: bool,
    /// How long the listener has been down (zero while connected).
    pub down_for: Duration,
    /// How long ago the change feed was last read successfully, if ever.
    pub feed_read_ago: Option<Duration>,
    pub notifications: u64,
    pub reconnects: u64,
    /// From a change being made (the writing process's clock, just before it committed) to this
    /// process applying it from the feed. Between nodes their clocks' difference is in it too.
    pub change_lag: LagHistogram,
}

impl ListenerState {
    fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::AcqRel) != connected || self.changed_at_unset() {
            *self.changed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        }
    }

    fn changed_at_unset(&self) -> bool {
        self.changed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_none()
    }

    /// The feed was read; `applied` are the times the changes it applied were made.
    pub(crate) fn feed_read(&self, applied: &[keygate_domain::Timestamp]) {
        *self.read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        if applied.is_empty() {
            return;
        }
        let now = keygate_domain::Timestamp::now();
        let mut lag = self.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for at in applied {
            // A writer whose clock is ahead would give a negative lag: counted as none.
            lag.observe((now.0 - at.0).max(0) as f64 / 1000.0);
        }
    }
}

/// Waits between reconnection attempts: 50 ms, doubling, at most 1 s.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MAX: Duration = Duration::from_secs(1);

impl Keygate {
    /// The listener's health (always "not enabled" on SQLite).
    pub fn listener_health(&self) -> ListenerHealth {
        let s = &self.inner.listener;
        let now = Instant::now();
        let connected = s.connected.load(Ordering::Acquire);
        let since = |m: &Mutex<Option<Instant>>| {
            m.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map(|at| now.saturating_duration_since(at))
        };
        ListenerHealth {
            enabled: s.enabled.load(Ordering::Acquire),
            connected,
            down_for: if connected { Duration::ZERO } else { since(&s.changed_at).unwrap_or(Duration::ZERO) },
            feed_read_ago: since(&s.read_at),
            notifications: s.notifications.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            change_lag: *s.lag.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    /// True when this process has been without its listener for longer than the safety-net poll:
    /// it may then learn of other nodes' changes late, and should not be sent traffic.
    pub fn listener_lost(&self) -> bool {
        let h = self.listener_health();
        h.enabled && !h.connected && h.down_for > self.inner.config.listener_poll
    }

    /// Listens until `shutdown` fires. Returns at once on SQLite.
    pub(crate) async fn listen(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let state = &self.inner.listener;
        if self.db().backend() != keygate_store::Backend::Postgres || !self.inner.config.change_listener {
            return;
        }
        state.enabled.store(true, Ordering::Release);
        state.set_connected(false);
        let mut wait = RECONNECT_FIRST;
        loop {
            let attempt = async {
                let Some(listener) = self.db().listen_for_changes().await? else { return Ok(None) };
                // Catch up before trusting notifications: whatever changed while we were deaf.
                self.catch_up().await?;
                Ok::<_, crate::ServiceError>(Some(listener))
            };
            let listener = tokio::select! {
                got = attempt => got,
                _ = shutdown.changed() => return,
            };
            let mut listener = match listener {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "the change listener cannot connect");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        _ = shutdown.changed() => return,
                    }
                    wait = (wait * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            if state.reconnects.fetch_add(1, Ordering::Relaxed) > 0 {
                tracing::info!("the change listener is connected again and has read the feed");
            }
            state.set_connected(true);
            wait = RECONNECT_FIRST;
            loop {
                let next = tokio::select! {
                    n = listener.next() => n,
                    _ = shutdown.changed() => return,
                };
                match next {
                    Ok(Some(seq)) => {
                        tracing::debug!(seq, "change notified");
                        state.notifications.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = self.catch_up().await {
                            tracing::warn!(error = %e, "reading the change feed after a notification failed");
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!("the change listener lost its connection; reconnecting");
                        state.set_connected(false);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_lag_lands_in_the_first_bucket_that_holds_it() {
        let mut h = LagHistogram::default();
        for seconds in [0.0, 0.001, 0.003, 1.0, 61.0] {
            h.observe(seconds);
        }
        assert_eq!(h.count, 5);
        assert_eq!(h.counts[0], 2, "0 and 1 ms are within 1 ms");
        assert_eq!(h.counts[2], 1, "3 ms is within 5 ms");
        assert_eq!(h.counts[9], 1, "1 s is within 1 s");
        assert_eq!(h.counts[CHANGE_LAG_BUCKETS.len()], 1, "beyond the last bound");
        assert!((h.sum_seconds - 62.004).abs() < 1e-9);
    }
}
