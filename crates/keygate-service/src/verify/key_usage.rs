//! One key's usage between two gatherings: its accepted calls in the current day, its latest use
//! and the last use handed on for writing. It lives in the key's cache entry, under the entry's
//! lock; [`super::usage`] gathers it. No locks and no I/O here.

use std::net::IpAddr;

use keygate_domain::{KeyId, Timestamp};

/// The outcome recorded for an accepted call; refusals record their code.
pub(super) const ACCEPTED: &str = "accepted";

pub(super) const DAY_MS: i64 = 86_400_000;

/// The UTC day of `at`, counted from 1970-01-01.
pub fn day_of(at: Timestamp) -> i64 {
    at.0.div_euclid(DAY_MS)
}

/// A use of a key: when, and from where.
pub(super) type Use = (Timestamp, IpAddr);

/// Where a cache entry's ungathered usage goes when the entry is dropped: the usage buffer
/// ([`super::usage::UsageBuffer`]). A trait here, so that the entry does not know the buffer.
pub(crate) trait UsageSink: Send + Sync + std::fmt::Debug {
    /// Takes what [`KeyUsage::gather`] gave for `key`.
    fn absorb(&self, key: KeyId, gathered: (Option<(i64, u64)>, Option<Use>));
}

/// One key's accepted calls since its counts were last gathered.
#[derive(Debug, Default)]
pub(crate) struct KeyUsage {
    day: i64,
    accepted: u64,
    latest: Option<Use>,
    /// The last use handed to the buffer for writing.
    reported: Option<Use>,
    /// Whether the buffer holds this key among those to gather.
    listed: bool,
}

/// What the shared buffer must hear of after an accepted call. Usually nothing.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Notice {
    pub(super) list: bool,
    pub(super) last_used: Option<Use>,
    /// A finished day's count, when the first call of a new day arrives before the gathering.
    pub(super) finished_day: Option<(i64, u64)>,
}

impl KeyUsage {
    pub(crate) fn accept(&mut self, at: Timestamp, ip: IpAddr) -> Notice {
        let mut notice = Notice::default();
        let day = day_of(at);
        if day != self.day && self.accepted > 0 {
            notice.finished_day = Some((self.day, std::mem::take(&mut self.accepted)));
        }
        self.day = day;
        self.accepted += 1;
        self.latest = Some((at, ip));
        if !self.listed {
            self.listed = true;
            notice.list = true;
        }
        // The first use, and a use from a new address, are worth writing at once.
        if self.reported.is_none_or(|(_, reported_ip)| reported_ip != ip) {
            self.reported = self.latest;
            notice.last_used = self.latest;
        }
        notice
    }

    /// Takes back the latest accepted call (refused after all, for want of permission); false when
    /// the count was gathered meanwhile.
    pub(crate) fn retract(&mut self) -> bool {
        let counted = self.accepted > 0;
        if counted {
            self.accepted -= 1;
        }
        counted
    }

    /// For a reloaded cache entry: what was written stays written; counts stay to be gathered
    /// from the entry they were counted in.
    pub(crate) fn successor(&self) -> Self {
        Self { reported: self.reported, ..Self::default() }
    }

    /// The counts since the last gathering, and the latest use if it was not reported yet.
    pub(super) fn gather(&mut self) -> (Option<(i64, u64)>, Option<Use>) {
        self.listed = false;
        let count = (self.accepted > 0).then(|| (self.day, std::mem::take(&mut self.accepted)));
        let unreported = if self.latest == self.reported { None } else { self.latest };
        self.reported = self.latest;
        (count, unreported)
    }
}
