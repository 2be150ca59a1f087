//! Last-used time and IP per key, and calls per key, day and outcome, kept in memory and written
//! behind in batches. Last-used times are kept to the minute: a key's row is written again only
//! when a minute has passed since its last write or the address changed, so a busy key costs one
//! write a minute, not one per flush. Counts are written once a minute. A crash loses at most that
//! minute; a shutdown writes everything. The hot path takes one lock and touches two map entries.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use keygate_domain::{KeyId, Timestamp};
use keygate_store::{DailyCount, UsageUpdate};

use crate::verify::IdMap;

/// The outcome recorded for an accepted call; refusals record their code.
pub(crate) const ACCEPTED: &str = "accepted";

const DAY_MS: i64 = 86_400_000;

/// The UTC day of `at`, counted from 1970-01-01.
pub fn day_of(at: Timestamp) -> i64 {
    at.0.div_euclid(DAY_MS)
}

/// How stale a stored last-used time may be.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

#[derive(Debug, Default)]
struct Pending {
    last_used: IdMap<KeyId, (Timestamp, IpAddr)>,
    /// Accepted calls per key and day: the hot path's count, kept apart from refusals so that an
    /// accepted call hashes only an integer id.
    accepted: IdMap<KeyId, (i64, u64)>,
    counts: HashMap<(KeyId, i64, &'static str), u64>,
    /// What was last written per key, to skip writes that would change nothing a reader needs.
    written: HashMap<KeyId, (Timestamp, IpAddr)>,
}

#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    pending: Mutex<Pending>,
}

impl UsageBuffer {
    /// An accepted call: remembers the last use and counts the call.
    pub(crate) fn touch(&self, key: KeyId, at: Timestamp, ip: IpAddr) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.last_used.insert(key, (at, ip));
        let day = day_of(at);
        let Pending { accepted, counts, .. } = &mut *pending;
        match accepted.get_mut(&key) {
            Some((d, n)) if *d == day => *n += 1,
            Some(entry) => {
                // A new day: the old day's count moves to the general counts.
                let (old_day, n) = std::mem::replace(entry, (day, 1));
                *counts.entry((key, old_day, ACCEPTED)).or_insert(0) += n;
            }
            None => {
                accepted.insert(key, (day, 1));
            }
        }
    }

    /// A refused call of a known key, counted under its refusal code.
    pub(crate) fn count_refusal(&self, key: KeyId, at: Timestamp, code: &'static str) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.counts.entry((key, day_of(at), code)).or_insert(0) += 1;
    }

    /// What is due for writing at `now`: last-used times at least a minute newer than what was
    /// written (or from a new address), and the counts when `with_counts`. With `everything`
    /// (shutdown, tests) all of it.
    pub(crate) fn take(
        &self,
        now: Timestamp,
        with_counts: bool,
        everything: bool,
    ) -> (Vec<UsageUpdate>, Vec<DailyCount>) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Pending { last_used, accepted, counts, written } = &mut *pending;
        let mut due = Vec::new();
        last_used.retain(|key, (at, ip)| {
            let fresh =
                written.get(key).is_some_and(|(w_at, w_ip)| w_ip == ip && at.0 - w_at.0 < LAST_USED_RESOLUTION_MS);
            if fresh && !everything {
                return true;
            }
            written.insert(*key, (*at, *ip));
            due.push(UsageUpdate { key_id: *key, at: *at, ip: ip.to_string() });
            false
        });
        // Forget old writes so the map stays as small as the set of recently used keys.
        if written.len() > 10_000 {
            written.retain(|_, (at, _)| now.0 - at.0 < 10 * LAST_USED_RESOLUTION_MS);
        }
        let counts = if with_counts || everything {
            for (key, (day, n)) in accepted.drain() {
                *counts.entry((key, day, ACCEPTED)).or_insert(0) += n;
            }
            std::mem::take(counts)
                .into_iter()
                .map(|((key, day, outcome), count)| DailyCount {
                    key_id: key.0,
                    day,
                    outcome: outcome.to_owned(),
                    count: i64::try_from(count).unwrap_or(i64::MAX),
                })
                .collect()
        } else {
            Vec::new()
        };
        (due, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_key_day_and_outcome() {
        let buffer = UsageBuffer::default();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let day1 = Timestamp(10 * DAY_MS + 5);
        buffer.touch(KeyId(1), day1, ip);
        buffer.touch(KeyId(1), day1.plus_millis(1000), ip);
        buffer.count_refusal(KeyId(1), day1, "key_disabled");
        buffer.touch(KeyId(1), day1.plus_days(1), ip);
        let (last, mut counts) = buffer.take(day1, true, true);
        counts.sort_by(|a, b| (a.day, &a.outcome).cmp(&(b.day, &b.outcome)));
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].at, day1.plus_days(1));
        let seen: Vec<(i64, &str, i64)> = counts.iter().map(|c| (c.day, c.outcome.as_str(), c.count)).collect();
        assert_eq!(seen, vec![(10, "accepted", 2), (10, "key_disabled", 1), (11, "accepted", 1)]);
        assert!(buffer.take(day1, true, true).1.is_empty(), "a flush takes the counts away");
    }

    #[test]
    fn a_busy_key_is_written_again_only_after_a_minute_or_from_a_new_address() {
        let buffer = UsageBuffer::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().expect("ip"), "192.0.2.2".parse().expect("ip"));
        let t = Timestamp(1_000_000);
        buffer.touch(KeyId(1), t, a);
        assert_eq!(buffer.take(t, false, false).0.len(), 1, "the first use is written");
        buffer.touch(KeyId(1), t.plus_millis(5_000), a);
        assert!(buffer.take(t.plus_millis(5_000), false, false).0.is_empty(), "five seconds later: nothing to write");
        buffer.touch(KeyId(1), t.plus_millis(61_000), a);
        assert_eq!(buffer.take(t.plus_millis(61_000), false, false).0.len(), 1, "a minute later it is");
        buffer.touch(KeyId(1), t.plus_millis(62_000), b);
        assert_eq!(buffer.take(t.plus_millis(62_000), false, false).0[0].ip, "192.0.2.2", "a new address at once");
        buffer.touch(KeyId(1), t.plus_millis(63_000), b);
        assert_eq!(buffer.take(t.plus_millis(63_000), false, true).0.len(), 1, "shutdown writes everything");
    }
}
