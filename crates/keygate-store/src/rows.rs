//! Row shapes as the database returns them, and their conversion into domain values.
//! A row that does not convert is reported as corrupt rather than guessed at.

use keygate_domain::{
    Grant, GroupId, IpRanges, KeyDigest, KeyId, KeyRecord, Purpose, Scopes, SystemGroup, TenantId, Timestamp, UnitId,
    UserId,
};

use crate::{StoreError, StoreResult};

pub(crate) fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn from_json(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt(format!("{what} is not a JSON list")))
}

pub(crate) fn units_to_json(units: &Option<Vec<UnitId>>) -> Option<String> {
    units.as_ref().map(|u| serde_json::to_string(&u.iter().map(|u| u.0).collect::<Vec<_>>()).unwrap_or_default())
}

pub(crate) fn units_from_json(text: Option<&str>) -> StoreResult<Option<Vec<UnitId>>> {
    text.map(|t| {
        serde_json::from_str::<Vec<i64>>(t)
            .map(|v| v.into_iter().map(UnitId).collect())
            .map_err(|_| StoreError::Corrupt("a unit list is not JSON".to_owned()))
    })
    .transpose()
}

pub(crate) const KEY_COLUMNS: &str = "id, tenant_id, user_id, created_by, purpose, digest, display, ip_ranges, scopes, units, \
     expires_at, enabled, revoked_at, created_at, last_used_at, last_used_ip, rolled_from, rate_limit_per_minute";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: i64,
    tenant_id: i64,
    user_id: i64,
    created_by: Option<i64>,
    purpose: String,
    digest: Vec<u8>,
    display: String,
    ip_ranges: String,
    scopes: Option<String>,
    units: Option<String>,
    expires_at: Option<i64>,
    enabled: bool,
    revoked_at: Option<i64>,
    created_at: i64,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    rolled_from: Option<i64>,
    rate_limit_per_minute: Option<i64>,
}

impl KeyRow {
    #[cfg(test)]
    pub(crate) fn id_of(&self) -> i64 {
        self.id
    }

    /// The same row read through rusqlite (`SELECT KEY_COLUMNS …`, in that order): the cache-miss
    /// read of verification on SQLite (`sqlite_reader`).
    pub(crate) fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            user_id: row.get(2)?,
            created_by: row.get(3)?,
            purpose: row.get(4)?,
            digest: row.get(5)?,
            display: row.get(6)?,
            ip_ranges: row.get(7)?,
            scopes: row.get(8)?,
            units: row.get(9)?,
            expires_at: row.get(10)?,
            enabled: row.get(11)?,
            revoked_at: row.get(12)?,
            created_at: row.get(13)?,
            last_used_at: row.get(14)?,
            last_used_ip: row.get(15)?,
            rolled_from: row.get(16)?,
            rate_limit_per_minute: row.get(17)?,
        })
    }
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> StoreResult<Self> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("key {}: {what}", r.id));
        Ok(KeyRecord {
            id: KeyId(r.id),
            tenant_id: TenantId(r.tenant_id),
            user_id: UserId(r.user_id),
            created_by: r.created_by.map(UserId),
            purpose: Purpose::parse(&r.purpose).map_err(|_| corrupt("purpose"))?,
            digest: KeyDigest::from_slice(&r.digest).ok_or_else(|| corrupt("digest length"))?,
            display: r.display.clone(),
            ip_ranges: IpRanges::parse(&from_json(&r.ip_ranges, "ip ranges")?).map_err(|_| corrupt("ip ranges"))?,
            scopes: match &r.scopes {
                Some(s) => Some(Scopes::parse(&from_json(s, "scopes")?).map_err(|_| corrupt("scopes"))?),
                None => None,
            },
            units: units_from_json(r.units.as_deref())?,
            expires_at: r.expires_at.map(Timestamp),
            enabled: r.enabled,
            revoked_at: r.revoked_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
            last_used_at: r.last_used_at.map(Timestamp),
            last_used_ip: r.last_used_ip.clone(),
            rolled_from: r.rolled_from.map(KeyId),
            rate_limit_per_minute: r.rate_limit_per_minute.and_then(|n| u32::try_from(n).ok()),
        })
    }
}

/// A group: a system group, or a custom one with its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    pub system: Option<SystemGroup>,
    pub grants: Vec<Grant>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    id: i64,
    name: String,
    system: Option<String>,
    grants: String,
}

impl GroupRow {
    pub(crate) fn into_record(self) -> StoreResult<GroupRecord> {
        group_record(self.id, self.name, self.system, self.grants)
    }
}

/// A group from its columns.
pub(crate) fn group_record(id: i64, name: String, system: Option<String>, grants: String) -> StoreResult<GroupRecord> {
    let grants = from_json(&grants, "group grants")?
        .iter()
        .map(|g| g.parse::<Grant>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("group {id}: {e}")))?;
    Ok(GroupRecord { id: GroupId(id), system: system.as_deref().and_then(SystemGroup::from_name), name, grants })
}
