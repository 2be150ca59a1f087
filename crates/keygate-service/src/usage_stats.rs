//! Calls per key and day, accepted or refused by reason, for the console's usage charts.
//! Read-only; the counts are written behind by the verification path (see `usage`).

use std::collections::BTreeMap;

use keygate_domain::{AdminScope, KeyId, TenantId, Timestamp};

use crate::{Caller, Keygate, ServiceResult, verify::day_of};

/// One key's calls over the last days, oldest day first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub key_id: KeyId,
    /// The first day shown (days since 1970-01-01, UTC).
    pub first_day: i64,
    /// Per day, outcome (`accepted` or a refusal code) → count; one entry per day.
    pub days: Vec<BTreeMap<String, i64>>,
}

impl KeyUsage {
    pub fn total(&self, outcome: &str) -> i64 {
        self.days.iter().filter_map(|d| d.get(outcome)).sum()
    }

    /// Every outcome that occurred, `accepted` first.
    pub fn outcomes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.days.iter().flat_map(|d| d.keys().cloned()).collect();
        all.sort_by_key(|o| (o != "accepted", o.clone()));
        all.dedup();
        all
    }
}

impl Keygate {
    /// Per key of the tenant, calls per day for the last `days` days (today included).
    /// Members of `Configurator`. Counts reach the database with the write-behind flush.
    pub async fn key_usage(&self, caller: &Caller, tenant: TenantId, days: i64) -> ServiceResult<Vec<KeyUsage>> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        let days = days.clamp(1, 366);
        let today = day_of(Timestamp::now());
        let first_day = today - days + 1;
        let rows = self.db().usage().daily_for_tenant(tenant, first_day).await?;
        let mut by_key: BTreeMap<i64, KeyUsage> = BTreeMap::new();
        for row in rows {
            let entry = by_key.entry(row.key_id).or_insert_with(|| KeyUsage {
                key_id: KeyId(row.key_id),
                first_day,
                days: vec![BTreeMap::new(); usize::try_from(days).unwrap_or(30)],
            });
            if let Ok(i) = usize::try_from(row.day - first_day)
                && let Some(day) = entry.days.get_mut(i)
            {
                *day.entry(row.outcome).or_insert(0) += row.count;
            }
        }
        Ok(by_key.into_values().collect())
    }
}
