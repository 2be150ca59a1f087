//! Last-used time and IP per key, and calls per key, day and outcome, kept in memory and written
//! behind in batches: at most one write per key (and per day and outcome) per flush interval. A
//! crash loses at most one interval of this data. The hot path takes one lock and touches one or
//! two map entries.

use std::{collections::HashMap, net::IpAddr, sync::Mutex};

use keygate_domain::{KeyId, Timestamp};
use keygate_store::{DailyCount, UsageUpdate};

/// The outcome recorded for an accepted call; refusals record their code.
pub(crate) const ACCEPTED: &str = "accepted";

const DAY_MS: i64 = 86_400_000;

/// The UTC day of `at`, counted from 1970-01-01.
pub fn day_of(at: Timestamp) -> i64 {
    at.0.div_euclid(DAY_MS)
}

#[derive(Debug, Default)]
struct Pending {
    last_used: HashMap<KeyId, (Timestamp, IpAddr)>,
    counts: HashMap<(KeyId, i64, &'static str), u64>,
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
        *pending.counts.entry((key, day_of(at), ACCEPTED)).or_insert(0) += 1;
    }

    /// A refused call of a known key, counted under its refusal code.
    pub(crate) fn count_refusal(&self, key: KeyId, at: Timestamp, code: &'static str) {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *pending.counts.entry((key, day_of(at), code)).or_insert(0) += 1;
    }

    pub(crate) fn take(&self) -> (Vec<UsageUpdate>, Vec<DailyCount>) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let last_used = pending
            .last_used
            .into_iter()
            .map(|(key_id, (at, ip))| UsageUpdate { key_id, at, ip: ip.to_string() })
            .collect();
        let counts = pending
            .counts
            .into_iter()
            .map(|((key, day, outcome), count)| DailyCount {
                key_id: key.0,
                day,
                outcome: outcome.to_owned(),
                count: i64::try_from(count).unwrap_or(i64::MAX),
            })
            .collect();
        (last_used, counts)
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
        let (last, mut counts) = buffer.take();
        counts.sort_by(|a, b| (a.day, &a.outcome).cmp(&(b.day, &b.outcome)));
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].at, day1.plus_days(1));
        let seen: Vec<(i64, &str, i64)> = counts.iter().map(|c| (c.day, c.outcome.as_str(), c.count)).collect();
        assert_eq!(seen, vec![(10, "accepted", 2), (10, "key_disabled", 1), (11, "accepted", 1)]);
        assert!(buffer.take().1.is_empty(), "a flush takes the counts away");
    }
}
