//! Last-used time and IP per key, and calls per key, day and outcome, kept in memory and written
//! behind in batches.
//!
//! An accepted call updates only its key's own usage ([`super::key_usage`], in the key's cache
//! entry, under the lock its rate bucket already takes). The shared buffer hears of a key when it
//! is first used in a count period, and when it is used from a new address. Once a minute the
//! counts are gathered from the keys used in that minute, together with their latest use: a busy
//! key costs one last-used write a minute, not one per call. A crash loses at most that minute; a
//! shutdown writes everything.
//!
//! The buffer keeps the *ids* of the keys to gather (8 bytes each), not their cache entries: an
//! entry that leaves the cache before the gathering hands its counts over as it goes
//! ([`UsageBuffer::absorb`], from its `Drop`), so evicted entries are freed at once and the
//! memory of the key cache stays within its capacity.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use keygate_domain::{KeyId, Timestamp};
use keygate_store::{DailyCount, UsageUpdate};

use super::{
    cache::IdMap,
    entry::CachedKey,
    key_usage::{ACCEPTED, Notice, UsageSink, Use, day_of},
};

#[derive(Debug, Default)]
struct Pending {
    last_used: IdMap<KeyId, Use>,
    counts: HashMap<(KeyId, i64, &'static str), u64>,
    /// Keys with accepted calls not yet gathered (an id may repeat; a second gathering finds
    /// nothing).
    listed: Vec<KeyId>,
}

#[derive(Debug, Default)]
pub(crate) struct UsageBuffer {
    pending: Mutex<Pending>,
}

impl UsageBuffer {
    /// Takes in what an accepted call of `key` left to note; locks only when there is something.
    pub(crate) fn note(&self, entry: &Arc<CachedKey>, notice: Notice) {
        if !notice.list && notice.last_used.is_none() && notice.finished_day.is_none() {
            return;
        }
        let key = entry.id();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if notice.list {
            pending.listed.push(key);
        }
        if let Some(used) = notice.last_used {
            pending.last_used.insert(key, used);
        }
        if let Some((day, n)) = notice.finished_day {
            *pending.counts.entry((key, day, ACCEPTED)).or_insert(0) += n;
        }
    }

    /// Takes back one accepted call of `key` gathered but not yet written. One gathered and
    /// written in the instant between its verification and its refusal stays counted.
    pub(crate) fn retract_accepted(&self, key: KeyId, at: Timestamp) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = pending.counts.get_mut(&(key, day_of(at), ACCEPTED)).filter(|n| **n > 0) {
            *n -= 1;
        }
    }

    /// A refused call of a known key, counted under its refusal code.
    pub(crate) fn count_refusal(&self, key: KeyId, at: Timestamp, code: &'static str) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.counts.entry((key, day_of(at), code)).or_insert(0) += 1;
    }
}

impl UsageSink for UsageBuffer {
    /// What an entry leaving the cache had not had gathered: its count and its latest use
    /// (a later use already noted wins).
    fn absorb(&self, key: KeyId, (count, unreported): (Option<(i64, u64)>, Option<Use>)) {
        if count.is_none() && unreported.is_none() {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((day, n)) = count {
            *pending.counts.entry((key, day, ACCEPTED)).or_insert(0) += n;
        }
        if let Some(used) = unreported {
            let newer = pending.last_used.get(&key).is_none_or(|(at, _)| *at <= used.0);
            if newer {
                pending.last_used.insert(key, used);
            }
        }
    }
}

impl UsageBuffer {
    /// What is due for writing: the last uses reported since the last call, and, when
    /// `with_counts` (once a minute, and at shutdown), the counts and latest uses gathered from
    /// every key used since the last gathering that `entry_of` still finds cached (one that left
    /// the cache handed its usage over as it went).
    pub(crate) fn take(
        &self,
        with_counts: bool,
        entry_of: impl Fn(KeyId) -> Option<Arc<CachedKey>>,
    ) -> (Vec<UsageUpdate>, Vec<DailyCount>) {
        let listed = if with_counts {
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut pending.listed)
        } else {
            Vec::new()
        };
        // Each key's lock is taken with the buffer's released: the hot path takes them in the
        // other order (key, then buffer), never both at once.
        let gathered: Vec<_> = listed
            .iter()
            .filter_map(|id| entry_of(*id))
            .map(|entry| (entry.id(), entry.live().usage.gather()))
            .collect();
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Pending { last_used, counts, .. } = &mut *pending;
        for (key, (count, unreported)) in gathered {
            if let Some((day, n)) = count {
                *counts.entry((key, day, ACCEPTED)).or_insert(0) += n;
            }
            if let Some(used) = unreported {
                last_used.insert(key, used);
            }
        }
        let due = last_used.drain().map(|(key_id, (at, ip))| UsageUpdate { key_id, at, ip: ip.to_string() }).collect();
        let counts = if with_counts {
            counts
                .drain()
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

impl UsageBuffer {
    /// What waits to be written (for `/metrics`): last uses; and (key, day, outcome) counts plus
    /// keys with accepted calls not yet gathered.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (pending.last_used.len(), pending.counts.len() + pending.listed.len())
    }

    /// Puts back what [`UsageBuffer::take`] gave out when writing it failed (the database was
    /// unreachable: the transaction wrote nothing), so that the next flush writes it. A newer last
    /// use noted meanwhile wins over a given-back one; counts add up.
    pub(crate) fn give_back(&self, last_used: Vec<UsageUpdate>, counts: Vec<DailyCount>) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for update in last_used {
            let Ok(ip) = update.ip.parse::<IpAddr>() else { continue };
            pending.last_used.entry(update.key_id).or_insert((update.at, ip));
        }
        for c in counts {
            let outcome = if c.outcome == ACCEPTED {
                ACCEPTED
            } else if let Some(code) = keygate_domain::RefusalCode::from_code(&c.outcome) {
                code.code()
            } else {
                continue;
            };
            *pending.counts.entry((KeyId(c.key_id), c.day, outcome)).or_insert(0) +=
                u64::try_from(c.count).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{entry::LiveKey, key_usage::DAY_MS};

    /// A cache entry of key 1 that hands its usage to `buffer` when dropped.
    fn entry(buffer: &Arc<UsageBuffer>) -> Arc<CachedKey> {
        let plain = CachedKey::for_test(KeyId(1));
        Arc::new(CachedKey::new(plain.record.clone(), LiveKey::default(), Arc::<UsageBuffer>::downgrade(buffer)))
    }

    /// [`UsageBuffer::take`] with `cached` as what the key cache holds.
    fn take(buffer: &UsageBuffer, cached: &Arc<CachedKey>, with_counts: bool) -> (Vec<UsageUpdate>, Vec<DailyCount>) {
        buffer.take(with_counts, |id| (id == cached.id()).then(|| Arc::clone(cached)))
    }

    #[test]
    fn usage_given_back_after_a_failed_write_is_written_next_time_without_counting_twice() {
        let buffer = Arc::new(UsageBuffer::default());
        let live = entry(&buffer);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let t = Timestamp(10 * DAY_MS);
        accept(&buffer, &live, t, ip);
        accept(&buffer, &live, t.plus_millis(1), ip);
        buffer.count_refusal(KeyId(1), t, "key_disabled");
        let (last, counts) = take(&buffer, &live, true);
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 3);
        buffer.give_back(last, counts);
        accept(&buffer, &live, t.plus_millis(2), ip);
        let (last, counts) = take(&buffer, &live, true);
        assert_eq!(last.len(), 1);
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 4, "three given back, one new");
        assert!(take(&buffer, &live, true).1.is_empty());
    }

    fn accept(buffer: &UsageBuffer, entry: &Arc<CachedKey>, at: Timestamp, ip: IpAddr) {
        let notice = entry.live().usage.accept(at, ip);
        buffer.note(entry, notice);
    }

    #[test]
    fn calls_are_counted_per_key_day_and_outcome() {
        let buffer = Arc::new(UsageBuffer::default());
        let live = entry(&buffer);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let day1 = Timestamp(10 * DAY_MS + 5);
        accept(&buffer, &live, day1, ip);
        accept(&buffer, &live, day1.plus_millis(1000), ip);
        buffer.count_refusal(KeyId(1), day1, "key_disabled");
        accept(&buffer, &live, day1.plus_days(1), ip);
        let (last, mut counts) = take(&buffer, &live, true);
        counts.sort_by(|a, b| (a.day, &a.outcome).cmp(&(b.day, &b.outcome)));
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].at, day1.plus_days(1));
        let seen: Vec<(i64, &str, i64)> = counts.iter().map(|c| (c.day, c.outcome.as_str(), c.count)).collect();
        assert_eq!(seen, vec![(10, "accepted", 2), (10, "key_disabled", 1), (11, "accepted", 1)]);
        assert!(take(&buffer, &live, true).1.is_empty(), "a gathering takes the counts away");
        accept(&buffer, &live, day1.plus_days(1).plus_millis(1), ip);
        assert_eq!(take(&buffer, &live, true).1.len(), 1, "a key gathered once is gathered again when used again");
    }

    #[test]
    fn a_busy_key_is_written_once_a_minute_or_when_its_address_changes() {
        let buffer = Arc::new(UsageBuffer::default());
        let live = entry(&buffer);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().expect("ip"), "192.0.2.2".parse().expect("ip"));
        let t = Timestamp(1_000_000);
        accept(&buffer, &live, t, a);
        assert_eq!(take(&buffer, &live, false).0.len(), 1, "the first use is written at once");
        accept(&buffer, &live, t.plus_millis(5_000), a);
        assert!(take(&buffer, &live, false).0.is_empty(), "more calls from the same address wait for the minute");
        accept(&buffer, &live, t.plus_millis(6_000), b);
        assert_eq!(take(&buffer, &live, false).0[0].ip, "192.0.2.2", "a new address is written at once");
        accept(&buffer, &live, t.plus_millis(7_000), b);
        let (last, _) = take(&buffer, &live, true);
        assert_eq!(last.len(), 1, "the minute's gathering writes the latest use");
        assert_eq!(last[0].at, t.plus_millis(7_000));
        assert!(take(&buffer, &live, true).0.is_empty(), "nothing new, nothing written");
    }

    #[test]
    fn a_reloaded_entry_neither_loses_counts_nor_writes_a_written_use_again() {
        let buffer = Arc::new(UsageBuffer::default());
        let old = entry(&buffer);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let t = Timestamp(1_000_000);
        accept(&buffer, &old, t, ip);
        assert_eq!(take(&buffer, &old, false).0.len(), 1, "the first use is written at once");
        let new = Arc::new(CachedKey::new_for_test_successor(&old));
        accept(&buffer, &new, t.plus_millis(1_000), ip);
        assert!(take(&buffer, &new, false).0.is_empty(), "the successor knows this use was written");
        drop(old);
        let (_, counts) = take(&buffer, &new, true);
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 2, "calls counted in both entries are gathered");
    }

    #[test]
    fn an_entry_that_leaves_the_cache_hands_its_counts_over_and_the_buffer_keeps_nothing_of_it() {
        let buffer = Arc::new(UsageBuffer::default());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let t = Timestamp(1_000_000);
        let evicted = entry(&buffer);
        for n in 0..3 {
            accept(&buffer, &evicted, t.plus_millis(n * 1_000), ip);
        }
        let gone = Arc::downgrade(&evicted);
        drop(evicted);
        assert!(gone.upgrade().is_none(), "the buffer held no reference: the entry's memory is freed");
        let (last, counts) = buffer.take(true, |_| None);
        assert_eq!(counts.iter().map(|c| c.count).sum::<i64>(), 3, "its three calls are counted");
        assert_eq!(last.len(), 1, "its latest use, not yet written, is written");
        assert_eq!(last[0].at, t.plus_millis(2_000));
    }
}
