//! The write-behind queues as `/metrics` sees them: what waits to be written (last-used times,
//! per-day call counts, refused-call audit entries, and on PostgreSQL the cluster's counts), how
//! long since each was last written whole, and how many writes failed. Reading this takes each
//! queue's lock once; nothing here runs on the verification path, and nothing here writes.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::Keygate;

/// One write-behind queue, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueHealth {
    /// `last_used`, `call_counts`, `refused_calls` or `cluster_counts`.
    pub name: &'static str,
    /// Items waiting: last uses, (key, day, outcome) counts and keys with counts to gather,
    /// audit entries and refusal groups, or cluster counts.
    pub depth: usize,
    /// Since the queue was last written whole (an empty queue's flush counts): the oldest item
    /// waiting is at most this old. Normally below the queue's interval (5 s; 1 min for the
    /// per-day counts; 100 ms for the cluster's counts); it grows while writes fail.
    pub since_written: Duration,
    /// Writes of this queue that failed (what they held was kept for the next one).
    pub failed_writes: u64,
    /// Items given up on because a bound was reached while writes failed (refused-call audit
    /// entries beyond 10 000; cluster counts beyond their per-exchange bounds).
    pub dropped: u64,
}

/// When a queue was last written whole and how many of its writes failed.
#[derive(Debug)]
pub(crate) struct Flushes {
    start: Instant,
    /// Milliseconds after `start` of the last complete write.
    written_at_ms: AtomicU64,
    failed: AtomicU64,
}

impl Default for Flushes {
    fn default() -> Self {
        Self { start: Instant::now(), written_at_ms: AtomicU64::new(0), failed: AtomicU64::new(0) }
    }
}

impl Flushes {
    /// Everything the queue held when `taken_at` has been written.
    pub(crate) fn written(&self, taken_at: Instant) {
        let ms = u64::try_from(taken_at.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX);
        self.written_at_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn since_written(&self, now: Instant) -> Duration {
        let at = self.start + Duration::from_millis(self.written_at_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(at)
    }

    fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The flush records of the queues a serving process writes behind.
#[derive(Debug, Default)]
pub(crate) struct QueueFlushes {
    pub(crate) last_used: Flushes,
    pub(crate) call_counts: Flushes,
    pub(crate) refused_calls: Flushes,
    pub(crate) cluster_counts: Flushes,
}

impl Keygate {
    /// The write-behind queues' depth, time since last written and failed writes (the cluster's
    /// counts only where they are exchanged: PostgreSQL with cluster-wide limits on).
    pub fn write_behind(&self) -> Vec<QueueHealth> {
        let now = Instant::now();
        let flushes = &self.inner.flushes;
        let (last_used, call_counts) = self.inner.verifier.usage.depth();
        let (unwritten, dropped) = {
            let u = self.inner.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (u.entries.len(), u.dropped_total)
        };
        let refused = self.inner.verifier.refusals.pending() + unwritten;
        let queue = |name, depth, f: &Flushes, dropped| QueueHealth {
            name,
            depth,
            since_written: f.since_written(now),
            failed_writes: f.failures(),
            dropped,
        };
        let mut out = vec![
            queue("last_used", last_used, &flushes.last_used, 0),
            queue("call_counts", call_counts, &flushes.call_counts, 0),
            queue("refused_calls", refused, &flushes.refused_calls, dropped),
        ];
        if let Some((depth, dropped)) = self.inner.cluster.depth() {
            out.push(queue("cluster_counts", depth, &flushes.cluster_counts, dropped));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_written_whole_counts_from_when_it_was_taken_and_never_goes_back() {
        let f = Flushes::default();
        let later = f.start + Duration::from_secs(10);
        f.written(f.start + Duration::from_secs(4));
        assert_eq!(f.since_written(later), Duration::from_secs(6));
        f.written(f.start + Duration::from_secs(2));
        assert_eq!(f.since_written(later), Duration::from_secs(6), "an older write finishing late changes nothing");
        f.failed();
        assert_eq!(f.failures(), 1);
    }
}
