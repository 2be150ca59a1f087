//! Writing behind: last-used times, per-day call counts and refused-call audit entries are
//! gathered from the verifier every flush (5 s; counts once a minute) and written in batches; a
//! failed write keeps what it held and retries with a backoff. Also the queues as `/metrics` sees
//! them: what waits to be written (and on PostgreSQL the cluster's counts), how long since each
//! was last written whole, and how many writes failed. Nothing here runs on the verification
//! path.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::Keygate;

/// Refused-call audit entries kept after a failed write, at most this many (then counted only).
const MAX_UNWRITTEN: usize = 10_000;

/// Audit entries a flush could not write, and when to try again (exponential backoff from one
/// flush interval to a minute; at shutdown, a few quick tries whatever the backoff).
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    entries: Vec<keygate_domain::AuditEntry>,
    /// Entries given up on because [`MAX_UNWRITTEN`] was reached, not yet reported in the audit log.
    dropped: u64,
    /// Entries given up on since the start (for `/metrics`).
    dropped_total: u64,
    failures: u32,
    next_try: Option<std::time::Instant>,
}

impl Keygate {
    /// Writes pending last-used times and refusal counts now.
    pub async fn flush(&self) {
        self.flush_due(true).await;
    }

    /// Writes what is due: first uses and uses from a new address always, counts and the latest
    /// use of each key once a minute, refused calls always; with `everything`, all that is pending.
    pub(crate) async fn flush_due(&self, everything: bool) {
        let now = keygate_domain::Timestamp::now();
        let with_counts = {
            let mut last = self.inner.last_counts_flush.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = now.0 - *last >= 60_000;
            if due || everything {
                *last = now.0;
            }
            due
        };
        let started = std::time::Instant::now();
        let (usage, daily) = self.inner.verifier.take_usage(with_counts || everything);
        let (written_usage, written_daily) = (usage.len(), daily.len());
        let usage_failed = self.inner.db.keys().record_usage(&usage).await.err();
        let daily_failed = self.inner.db.usage().add_daily(&daily).await.err();
        let flushes = &self.inner.flushes;
        if let Some(e) = &usage_failed {
            flushes.last_used.failed();
            tracing::warn!(error = %e, count = written_usage, "writing last-used times failed; kept for the next flush");
        } else {
            flushes.last_used.written(started);
        }
        if let Some(e) = &daily_failed {
            flushes.call_counts.failed();
            tracing::warn!(error = %e, count = written_daily, "writing per-day call counts failed; kept for the next flush");
        } else if with_counts || everything {
            flushes.call_counts.written(started);
        }
        // Each write is one transaction: a failed one wrote nothing, so what it held is given back
        // whole and neither lost nor counted twice.
        if usage_failed.is_some() || daily_failed.is_some() {
            let usage = if usage_failed.is_some() { usage } else { Vec::new() };
            let daily = if daily_failed.is_some() { daily } else { Vec::new() };
            self.inner.verifier.usage.give_back(usage, daily);
        }
        if with_counts || everything {
            let before = now.plus_millis(-keygate_store::CHANGE_RETENTION_MS);
            if let Err(e) = self.inner.db.changes().prune(before).await {
                tracing::warn!(error = %e, "pruning the change feed failed");
            }
            match self.prune_login_throttle(now).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned the log-in throttle"),
                Err(e) => tracing::warn!(error = %e, "pruning the log-in throttle failed"),
            }
            self.prune_audit(now).await;
            self.prune_idempotency(now).await;
        }
        let refusals = self.write_refusals(everything).await;
        if written_usage > 0 || written_daily > 0 || refusals > 0 {
            tracing::debug!(
                last_used = written_usage,
                daily_counts = written_daily,
                refusals,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "usage written behind"
            );
        }
    }

    /// Writes the refused calls recorded since the last flush, with those a failed write left.
    /// A failed write keeps them (up to [`MAX_UNWRITTEN`]) and backs off; at shutdown
    /// (`everything`) it tries four times: at once, then 100 ms, 400 ms and 1.6 s later. Returns
    /// how many were written.
    async fn write_refusals(&self, everything: bool) -> usize {
        let now = std::time::Instant::now();
        let fresh = self.inner.verifier.refusals.take_audit_entries(now);
        let mut batch = {
            let mut unwritten = self.inner.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let waiting = unwritten.next_try.is_some_and(|at| at > now) && !everything;
            if waiting {
                Self::keep_unwritten(&mut unwritten, fresh);
                return 0;
            }
            let mut batch = std::mem::take(&mut unwritten.entries);
            batch.extend(fresh);
            let dropped = std::mem::take(&mut unwritten.dropped);
            if dropped > 0 {
                batch.push(
                    keygate_domain::AuditEntry::new(None, keygate_domain::Actor::System("api"), "call.refused", "lost")
                        .details(format!("{dropped} refused-call entries could not be written and were dropped")),
                );
            }
            batch
        };
        if batch.is_empty() {
            self.inner.flushes.refused_calls.written(now);
            return 0;
        }
        let tries = if everything { 4 } else { 1 };
        let mut pause = Duration::from_millis(100);
        for attempt in 1..=tries {
            match self.inner.db.audit().append(&batch).await {
                Ok(()) => {
                    let mut unwritten = self.inner.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    unwritten.failures = 0;
                    unwritten.next_try = None;
                    self.inner.flushes.refused_calls.written(now);
                    return batch.len();
                }
                Err(e) => {
                    self.inner.flushes.refused_calls.failed();
                    tracing::warn!(error = %e, count = batch.len(), attempt, "writing refused calls to the audit log failed; kept for a retry");
                    if attempt < tries {
                        tokio::time::sleep(pause).await;
                        pause *= 4;
                    }
                }
            }
        }
        let mut unwritten = self.inner.unwritten.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        unwritten.failures = unwritten.failures.saturating_add(1);
        let backoff =
            (self.inner.config.flush_every * 2u32.saturating_pow(unwritten.failures - 1)).min(Duration::from_secs(60));
        unwritten.next_try = Some(std::time::Instant::now() + backoff);
        let later = std::mem::take(&mut unwritten.entries);
        batch.extend(later);
        Self::keep_unwritten(&mut unwritten, batch);
        0
    }

    fn keep_unwritten(unwritten: &mut Unwritten, entries: Vec<keygate_domain::AuditEntry>) {
        for entry in entries {
            if unwritten.entries.len() < MAX_UNWRITTEN {
                unwritten.entries.push(entry);
            } else {
                unwritten.dropped += 1;
                unwritten.dropped_total += 1;
            }
        }
    }
}

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
