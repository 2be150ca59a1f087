//! Refused calls: counted per reason, and written to the audit log aggregated per
//! (tenant, key, reason, source IP) and flush interval, so a flood of bad keys adds a bounded
//! number of rows rather than one per request.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use keygate_domain::{Actor, AuditEntry, KeyId, RefusalCode, TenantId, Timestamp, UserId};

/// At most this many distinct groups per flush interval; the rest are only counted.
const MAX_GROUPS: usize = 10_000;

/// Tenant, key, reason, source address, and the address a verifying service claimed, if any.
type GroupKey = (Option<TenantId>, Option<(KeyId, UserId)>, RefusalCode, IpAddr, Option<IpAddr>);

#[derive(Debug)]
struct Group {
    count: u64,
    first: Timestamp,
    detail: &'static str,
}

#[derive(Debug)]
pub(crate) struct RefusalLog {
    counts: [AtomicU64; RefusalCode::ALL.len()],
    groups: Mutex<HashMap<GroupKey, Group>>,
    overflow: AtomicU64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            groups: Mutex::default(),
            overflow: AtomicU64::new(0),
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
        let index = RefusalCode::ALL.iter().position(|c| *c == code).unwrap_or(0);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        let mut groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = groups.len();
        match groups.get_mut(&(tenant, key, code, ip, claimed)) {
            Some(group) => group.count += 1,
            None if len < MAX_GROUPS => {
                groups.insert((tenant, key, code, ip, claimed), Group { count: 1, first: Timestamp::now(), detail });
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

    /// The audit entries for everything recorded since the last call.
    pub(crate) fn take_audit_entries(&self) -> Vec<AuditEntry> {
        let groups = std::mem::take(&mut *self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut out: Vec<AuditEntry> = groups
            .into_iter()
            .map(|((tenant, key, code, ip, claimed), g)| {
                let (actor, target) = match key {
                    Some((id, user_id)) => (Actor::Key { id, user_id }, format!("key {id}")),
                    None => (Actor::System("api"), "unknown key".to_owned()),
                };
                let claim = claimed.map(|c| format!("; checked for the claimed address {c}")).unwrap_or_default();
                let mut entry = AuditEntry::new(tenant, actor, "call.refused", target)
                    .details(format!("{}: {} (×{}){claim}", code.code(), g.detail, g.count))
                    .from_ip(Some(ip.to_string()));
                entry.at = g.first;
                entry
            })
            .collect();
        let overflow = self.overflow.swap(0, Ordering::Relaxed);
        if overflow > 0 {
            out.push(
                AuditEntry::new(None, Actor::System("api"), "call.refused", "many sources")
                    .details(format!("{overflow} further refused calls from too many distinct sources to list")),
            );
        }
        out.sort_by_key(|e| e.at);
        out
    }
}
