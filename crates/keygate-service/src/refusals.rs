//! Refused calls: counted per reason, and written to the audit log aggregated per flush interval
//! and per (tenant, key, reason, source prefix, claimed prefix). A source is known by its IPv6 /64
//! or its IPv4 /24: addresses rotated inside one prefix (and every call of a prefix the failure
//! throttle blocks) add one row per interval, not one per request; the row names the address when
//! only one was seen, else the prefix. The rows themselves are bounded per minute: at most
//! [`STRANGER_ROWS_PER_MINUTE`] for calls refused before any key of a tenant was known, and
//! [`KEYED_ROWS_PER_MINUTE`] for those naming a tenant's key; what does not fit is summed up in
//! one row (calls and groups) when there is room again. Failed console log-ins, the other rows a
//! stranger causes, get their own [`LOGIN_FAILURE_ROWS_PER_MINUTE`]. No SQL here.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keygate_domain::{Actor, AuditEntry, KeyId, RefusalCode, TenantId, Timestamp, UserId};

/// At most this many distinct groups per flush interval; the rest are only counted.
const MAX_GROUPS: usize = 10_000;

/// Refused-call rows from strangers (no key of a tenant known: no credential, a malformed or
/// unknown key, a blocked source) this node writes in any minute, their summary row included.
pub(crate) const STRANGER_ROWS_PER_MINUTE: usize = 60;

/// Refused-call rows naming a tenant's key (disabled, expired, rate-limited, from a foreign
/// address, …) this node writes in any minute, their summary row included.
pub(crate) const KEYED_ROWS_PER_MINUTE: usize = 600;

/// Failed log-in rows this node writes in any minute, their summary row included.
pub(crate) const LOGIN_FAILURE_ROWS_PER_MINUTE: usize = 60;

const MINUTE: Duration = Duration::from_secs(60);

/// The network a source is known by in the audit log: its IPv4 /24 or its IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Prefix(IpAddr);

impl Prefix {
    fn of(ip: IpAddr) -> Self {
        Self(match keygate_domain::ip::normalise(ip) {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        })
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}/24"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// The addresses of one prefix a group saw: the first, and whether there were others.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: IpAddr,
    several: bool,
}

impl Seen {
    fn new(ip: IpAddr) -> Self {
        Self { first: ip, several: false }
    }

    fn add(&mut self, ip: IpAddr) {
        self.several |= ip != self.first;
    }

    /// The address when only one was seen, else its prefix.
    fn shown(&self) -> String {
        if self.several { Prefix::of(self.first).to_string() } else { self.first.to_string() }
    }
}

/// Tenant, key, reason, source prefix, and the prefix of the address a verifying service
/// claimed, if any.
type GroupKey = (Option<TenantId>, Option<(KeyId, UserId)>, RefusalCode, Prefix, Option<Prefix>);

#[derive(Debug)]
struct Group {
    count: u64,
    first: Timestamp,
    detail: &'static str,
    source: Seen,
    claimed: Option<Seen>,
}

/// The rows of one class handed out in the last minute, and the refused calls left out of them.
#[derive(Debug)]
struct Budget {
    per_minute: usize,
    /// When rows were handed out and how many: one entry per second at most, so at most 61.
    spent: VecDeque<(Instant, usize)>,
    /// Refused calls, and their groups, not listed in any row yet for want of room.
    unlisted_calls: u64,
    unlisted_groups: u64,
}

impl Budget {
    fn new(per_minute: usize) -> Self {
        Self { per_minute, spent: VecDeque::new(), unlisted_calls: 0, unlisted_groups: 0 }
    }

    /// Rows that may still be handed out now.
    fn room(&mut self, now: Instant) -> usize {
        while self.spent.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= MINUTE) {
            self.spent.pop_front();
        }
        self.per_minute.saturating_sub(self.spent.iter().map(|(_, n)| n).sum())
    }

    fn spend(&mut self, now: Instant, rows: usize) {
        match self.spent.back_mut() {
            Some((at, n)) if now.saturating_duration_since(*at) < Duration::from_secs(1) => *n += rows,
            _ => self.spent.push_back((now, rows)),
        }
    }

    /// The rows that fit, groups with the most calls first; when some do not (or some of an
    /// earlier batch did not), one row of the room sums them up, made by `summary(calls, groups)`.
    fn admit(
        &mut self,
        now: Instant,
        mut rows: Vec<(u64, AuditEntry)>,
        summary: impl Fn(u64, u64) -> AuditEntry,
    ) -> Vec<AuditEntry> {
        let room = self.room(now);
        if rows.len() > room || (self.unlisted_calls > 0 && rows.len() >= room) {
            rows.sort_by_key(|row| std::cmp::Reverse(row.0));
            for (calls, _) in rows.drain(room.saturating_sub(1).min(rows.len())..) {
                self.unlisted_calls += calls;
                self.unlisted_groups += 1;
            }
        }
        let mut out: Vec<AuditEntry> = rows.into_iter().map(|(_, entry)| entry).collect();
        if self.unlisted_calls > 0 && out.len() < room {
            out.push(summary(self.unlisted_calls, self.unlisted_groups));
            self.unlisted_calls = 0;
            self.unlisted_groups = 0;
        }
        self.spend(now, out.len());
        out
    }
}

#[derive(Debug)]
pub(crate) struct RefusalLog {
    counts: [AtomicU64; RefusalCode::ALL.len()],
    groups: Mutex<HashMap<GroupKey, Group>>,
    overflow: AtomicU64,
    budgets: Mutex<Budgets>,
}

#[derive(Debug)]
struct Budgets {
    /// Calls refused before any key of a tenant was known.
    strangers: Budget,
    /// Calls refused naming a tenant's key.
    keyed: Budget,
    /// Failed console log-ins.
    logins: Budget,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            groups: Mutex::default(),
            overflow: AtomicU64::new(0),
            budgets: Mutex::new(Budgets {
                strangers: Budget::new(STRANGER_ROWS_PER_MINUTE),
                keyed: Budget::new(KEYED_ROWS_PER_MINUTE),
                logins: Budget::new(LOGIN_FAILURE_ROWS_PER_MINUTE),
            }),
        }
    }
}

impl RefusalLog {
    pub(crate) fn record(
        &self,
        tenant: Option<TenantId>,
        key: Option<(KeyId, UserId)>,
        code: RefusalCode,
        ip: IpAddr,
        claimed: Option<IpAddr>,
        detail: &'static str,
    ) {
        // Every code has its own counter (`RefusalCode::ALL` holds each: a test in the domain).
        if let Some(count) = self.counts.get(code.index()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let group_key = (tenant, key, code, Prefix::of(ip), claimed.map(Prefix::of));
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = groups.len();
        match groups.get_mut(&group_key) {
            Some(group) => {
                group.count += 1;
                group.source.add(ip);
                if let (Some(seen), Some(c)) = (&mut group.claimed, claimed) {
                    seen.add(c);
                }
            }
            None if len < MAX_GROUPS => {
                let group = Group {
                    count: 1,
                    first: Timestamp::now(),
                    detail,
                    source: Seen::new(ip),
                    claimed: claimed.map(Seen::new),
                };
                groups.insert(group_key, group);
            }
            None => {
                self.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Groups waiting for the next flush (for `/metrics`).
    pub(crate) fn pending(&self) -> usize {
        self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        RefusalCode::ALL.iter().zip(&self.counts).map(|(c, n)| (c.code(), n.load(Ordering::Relaxed))).collect()
    }

    /// The audit entries for everything recorded since the last call, within the rows a minute
    /// allows each class (`now`: when they are handed out).
    pub(crate) fn take_audit_entries(&self, now: Instant) -> Vec<AuditEntry> {
        let groups = std::mem::take(&mut *self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let (mut keyed, mut strangers) = (Vec::new(), Vec::new());
        for ((tenant, key, code, _, _), g) in groups {
            let (actor, target) = match key {
                Some((id, user_id)) => (Actor::Key { id, user_id }, format!("key {id}")),
                None => (Actor::System("api"), "unknown key".to_owned()),
            };
            let claim =
                g.claimed.map(|c| format!("; checked for the claimed address {}", c.shown())).unwrap_or_default();
            let mut entry = AuditEntry::new(tenant, actor, "call.refused", target)
                .details(format!("{}: {} (×{}){claim}", code.code(), g.detail, g.count))
                .from_ip(Some(g.source.shown()));
            entry.at = g.first;
            if key.is_some() { &mut keyed } else { &mut strangers }.push((g.count, entry));
        }
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let overflow = self.overflow.swap(0, Ordering::Relaxed);
        if overflow > 0 {
            budgets.strangers.unlisted_calls += overflow;
            budgets.strangers.unlisted_groups += 1;
        }
        let summary = |whose: &'static str, limit: usize| {
            move |calls: u64, groups: u64| {
                AuditEntry::new(None, Actor::System("api"), "call.refused", "many sources").details(format!(
                    "{calls} further refused calls {whose} ({groups} sources and reasons) not listed one by one: \
                     at most {limit} rows a minute"
                ))
            }
        };
        let mut out = budgets.strangers.admit(now, strangers, summary("without a known key", STRANGER_ROWS_PER_MINUTE));
        out.extend(budgets.keyed.admit(now, keyed, summary("of tenants' keys", KEYED_ROWS_PER_MINUTE)));
        // Failed log-ins left out earlier, summed up once there is room.
        out.extend(budgets.logins.admit(now, Vec::new(), login_summary));
        out.sort_by_key(|e| e.at);
        out
    }

    /// The rows to write now for a failed log-in: itself while the minute has room, else nothing
    /// (it is summed up in a later row, here or at a flush).
    pub(crate) fn admit_login_failure(&self, entry: AuditEntry, now: Instant) -> Vec<AuditEntry> {
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        budgets.logins.admit(now, vec![(1, entry)], login_summary)
    }
}

fn login_summary(attempts: u64, _: u64) -> AuditEntry {
    AuditEntry::new(None, Actor::System("console"), "session.login_failed", "many log-ins").details(format!(
        "{attempts} further failed log-ins not listed one by one: at most {LOGIN_FAILURE_ROWS_PER_MINUTE} rows a minute"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stranger(log: &RefusalLog, ip: &str) {
        log.record(None, None, RefusalCode::UnknownKey, ip.parse().expect("ip"), None, "no key has this digest");
    }

    #[test]
    fn each_refusal_code_is_counted_under_its_own_name() {
        let log = RefusalLog::default();
        for (i, code) in RefusalCode::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                log.record(None, None, code, "192.0.2.1".parse().expect("ip"), None, "test");
            }
        }
        let counts = log.counts();
        assert_eq!(counts.len(), 15, "one counter per code");
        for (i, (name, n)) in counts.into_iter().enumerate() {
            assert_eq!((name, n), (RefusalCode::ALL[i].code(), i as u64 + 1));
        }
    }

    #[test]
    fn addresses_rotated_inside_one_ipv6_64_or_ipv4_24_make_one_row_that_names_the_prefix() {
        let log = RefusalLog::default();
        for i in 0..1_000u32 {
            stranger(&log, &format!("2001:db8:0:1:{:x}::{:x}", i % 7, i));
            stranger(&log, &format!("198.51.100.{}", i % 256));
        }
        stranger(&log, "203.0.113.9");
        let rows = log.take_audit_entries(Instant::now());
        let mut sources: Vec<&str> = rows.iter().filter_map(|r| r.source_ip.as_deref()).collect();
        sources.sort_unstable();
        assert_eq!(sources, ["198.51.100.0/24", "2001:db8:0:1::/64", "203.0.113.9"], "2 001 calls, 3 sources");
        assert!(rows.iter().any(|r| r.details.contains("(×1000)")));
    }

    #[test]
    fn strangers_from_ever_new_prefixes_get_at_most_60_rows_a_minute_and_one_of_them_sums_up_the_rest() {
        let log = RefusalLog::default();
        let start = Instant::now();
        let mut per_minute = vec![0usize; 3];
        let mut listed_calls = 0u64;
        // 3 minutes, a flush every 5 s, 1 000 new /64s each time.
        for flush in 0..36u32 {
            for i in 0..1_000u32 {
                stranger(&log, &format!("2001:db8:{flush:x}:{i:x}::1"));
            }
            let now = start + Duration::from_secs(u64::from(flush) * 5);
            let rows = log.take_audit_entries(now);
            per_minute[flush as usize / 12] += rows.len();
            for row in &rows {
                let calls = row.details.split(['×', ' ']).find_map(|w| w.trim_end_matches(')').parse::<u64>().ok());
                listed_calls += calls.unwrap_or(0);
            }
        }
        assert_eq!(per_minute, [STRANGER_ROWS_PER_MINUTE; 3], "rows per minute, from 12 000 sources a minute");
        assert_eq!(STRANGER_ROWS_PER_MINUTE, 60);
        let rows = log.take_audit_entries(start + Duration::from_secs(240));
        for row in &rows {
            let calls = row.details.split(['×', ' ']).find_map(|w| w.trim_end_matches(')').parse::<u64>().ok());
            listed_calls += calls.unwrap_or(0);
        }
        assert_eq!(listed_calls, 36_000, "every refused call is in some row, listed or summed up");
    }

    #[test]
    fn a_minute_of_refused_calls_of_known_keys_is_bounded_apart_from_the_strangers() {
        let log = RefusalLog::default();
        let now = Instant::now();
        for i in 0..2_000u32 {
            let ip: IpAddr = format!("2001:db8:{i:x}::1").parse().expect("ip");
            log.record(Some(TenantId(1)), Some((KeyId(7), UserId(2))), RefusalCode::KeyDisabled, ip, None, "disabled");
            stranger(&log, &format!("2001:db8:{i:x}::2"));
        }
        let rows = log.take_audit_entries(now);
        let keyed = rows.iter().filter(|r| r.target == "key 7").count();
        assert_eq!(keyed, KEYED_ROWS_PER_MINUTE - 1, "one row of the 600 sums up the rest");
        assert_eq!(rows.len(), KEYED_ROWS_PER_MINUTE + STRANGER_ROWS_PER_MINUTE);
        assert!(log.take_audit_entries(now + Duration::from_secs(30)).is_empty(), "nothing new, and no room");
    }
}
