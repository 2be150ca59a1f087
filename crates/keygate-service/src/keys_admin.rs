//! The management API's key use cases: one key and a filtered page of keys (read in the store
//! with `LIMIT`), a change of a key's settings, one key's usage, bulk issue/disable/revoke (at
//! most [`BULK_MAX`] items, all or nothing), and a key reading and rolling itself.
//!
//! Every use case authorises first (`admin:keys:read|write`, except a key's own reading and
//! rolling), stays in the caller's tenant (another tenant's key is not found), and writes through
//! the grant ceiling with its audit events in the same transaction. No SQL and no HTTP here.
//!
//! Bulk writes are ONE store transaction each (lock the tenant, write every item, judge the
//! whole outcome, commit): a refusal or an error of any item leaves nothing written. Every item is
//! checked before the transaction starts, and the ceiling judges the outcome of all of them at
//! once, which refuses exactly when some item gives or hands over a power the actor lacks.

use keygate_domain::{AdminScope, ApiKeySecret, IpRanges, KeyId, Purpose, TenantId, Timestamp, UserId};
pub use keygate_store::KeyStateFilter;
use keygate_store::{HandsOver, KeyChange, KeyFilter, KeySwitch};

use crate::{
    Caller, IssueKey, IssuedKey, KeyUsage, Keygate, ServiceError, ServiceResult, Verified,
    ceiling::Affects,
    error::invalid,
    keys::{KeyView, MAX_ROLL_OVERLAP_DAYS, SELF_ROLL_MIN_AGE_MINUTES, describe, successor, warnings},
    verify::day_of,
};

/// The most keys one page of a listing holds.
pub const KEY_PAGE_MAX: u32 = 200;
/// The most items one bulk call takes.
pub const BULK_MAX: usize = 100;
/// The most days of usage one call reads.
pub const USAGE_DAYS_MAX: i64 = 366;

/// Which keys of the tenant a page holds.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub user: Option<UserId>,
    pub state: Option<KeyStateFilter>,
    /// Keys whose purpose contains this text.
    pub purpose: Option<String>,
    /// The cursor: keys older than this one (the last of the previous page).
    pub before: Option<KeyId>,
    /// 1 to [`KEY_PAGE_MAX`].
    pub limit: u32,
}

/// A change of a key's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateKey {
    pub purpose: Option<String>,
    pub ip_ranges: Option<Vec<String>>,
    /// `Some(None)`: no expiry (or the tenant's maximum); otherwise `YYYY-MM-DD` or RFC 3339.
    pub expires: Option<Option<String>>,
    /// `Some(None)`: the tenant's default.
    pub rate_limit_per_minute: Option<Option<u32>>,
}

/// What a bulk call does.
#[derive(Debug, Clone)]
pub enum BulkKeys {
    Issue(Vec<IssueKey>),
    Disable(Vec<KeyId>),
    Revoke(Vec<KeyId>),
}

/// What a bulk call did: the issued keys (secrets shown once), or the keys as they now are.
#[derive(Debug)]
pub enum BulkDone {
    Issued(Vec<IssuedKey>),
    Switched(Vec<KeyView>),
}

impl Keygate {
    /// One key of the tenant with its effective status. `admin:keys:read`.
    pub async fn key_view(&self, caller: &Caller, tenant: TenantId, id: KeyId) -> ServiceResult<KeyView> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        self.view_of(tenant, id).await
    }

    async fn view_of(&self, tenant: TenantId, id: KeyId) -> ServiceResult<KeyView> {
        let api_on = self.tenant_by_id(tenant).await?.policy.public_api;
        let listing =
            self.db().keys().listing(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("key {id}")))?;
        Ok(KeyView::of(listing, api_on, Timestamp::now()))
    }

    /// A page of the tenant's keys matching `query`, newest first, and the cursor of the next
    /// page. `admin:keys:read`. The store reads at most `limit + 1` rows.
    pub async fn list_keys_page(
        &self,
        caller: &Caller,
        tenant: TenantId,
        query: &KeyQuery,
    ) -> ServiceResult<(Vec<KeyView>, Option<KeyId>)> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        if !(1..=KEY_PAGE_MAX).contains(&query.limit) {
            return Err(ServiceError::BadRequest {
                kind: crate::BadRequest::InvalidParameter,
                detail: format!("limit must be between 1 and {KEY_PAGE_MAX}, not {}", query.limit),
            });
        }
        let api_on = self.tenant_by_id(tenant).await?.policy.public_api;
        let filter = KeyFilter { user: query.user, state: query.state, purpose: query.purpose.clone() };
        let (rows, next) = self.db().keys().page(tenant, &filter, query.before, query.limit).await?;
        let now = Timestamp::now();
        Ok((rows.into_iter().map(|l| KeyView::of(l, api_on, now)).collect(), next))
    }

    /// Changes a key's purpose, ranges, expiry or rate limit, audited `key.updated`.
    /// `admin:keys:write`. Judged by the ceiling: an expiry moved later may make an expired key
    /// work again, which needs every power it reaches. `expect` sees the key as it is in the
    /// writing transaction; when it says no, nothing is written and the answer is `None`.
    pub async fn update_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: KeyId,
        req: UpdateKey,
        expect: &(dyn Fn(&keygate_domain::KeyRecord) -> bool + Send + Sync),
    ) -> ServiceResult<Option<KeyView>> {
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        let policy = self.tenant_by_id(tenant).await?.policy;
        let change = KeyChange {
            purpose: req.purpose.as_deref().map(Purpose::parse).transpose().map_err(invalid)?,
            ip_ranges: req.ip_ranges.as_deref().map(IpRanges::parse).transpose().map_err(invalid)?,
            expires_at: match &req.expires {
                None => None,
                Some(text) => Some(self.expiry(&policy, text.as_deref())?),
            },
            rate_limit_per_minute: match req.rate_limit_per_minute {
                Some(Some(0)) => {
                    return Err(ServiceError::Invalid(
                        "a key's rate limit must be at least 1 request per minute".into(),
                    ));
                }
                other => other,
            },
        };
        let mut said = Vec::new();
        if let Some(p) = &change.purpose {
            said.push(format!("purpose \"{}\"", p.as_str()));
        }
        if let Some(r) = &change.ip_ranges {
            said.push(format!("ranges {r}"));
        }
        if let Some(e) = &change.expires_at {
            said.push(format!("expires {}", e.map_or("never".to_owned(), |t| t.to_rfc3339())));
        }
        if let Some(r) = &change.rate_limit_per_minute {
            said.push(format!("rate limit {}", r.map_or("the tenant's".to_owned(), |n| format!("{n}/min"))));
        }
        if said.is_empty() {
            return Err(ServiceError::Invalid("the change names no setting to change".into()));
        }
        let target = format!("key {id}");
        let audit = caller.audit(tenant, "key.updated", target.clone()).details(said.join("; "));
        let written = self
            .judged(caller, tenant, &target, Affects::key(id), async |guard| {
                self.db().keys().update(tenant, id, &change, expect, guard, &audit).await
            })
            .await?;
        if !written {
            return Ok(None);
        }
        self.inner.verifier.forget_key(id);
        self.view_of(tenant, id).await.map(Some)
    }

    /// One key's calls per day (accepted, or refused by code) over the last `days` days, today
    /// included, with the key itself (its last use). `admin:keys:read`.
    pub async fn usage_of_key(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: KeyId,
        days: i64,
    ) -> ServiceResult<(KeyView, KeyUsage)> {
        caller.require_admin(tenant, AdminScope::KeysRead)?;
        if !(1..=USAGE_DAYS_MAX).contains(&days) {
            return Err(ServiceError::BadRequest {
                kind: crate::BadRequest::InvalidParameter,
                detail: format!("days must be between 1 and {USAGE_DAYS_MAX}, not {days}"),
            });
        }
        let view = self.view_of(tenant, id).await?;
        let first_day = day_of(Timestamp::now()) - days + 1;
        let mut usage =
            KeyUsage { key_id: id, first_day, days: vec![Default::default(); usize::try_from(days).unwrap_or(1)] };
        for row in self.db().usage().daily_for_key(tenant, id, first_day).await? {
            if let Ok(i) = usize::try_from(row.day - first_day)
                && let Some(day) = usage.days.get_mut(i)
            {
                *day.entry(row.outcome).or_insert(0) += row.count;
            }
        }
        Ok((view, usage))
    }

    /// Issues, disables or revokes up to [`BULK_MAX`] keys in one transaction: all, or nothing.
    /// `admin:keys:write`. Each issued key is judged by the ceiling as a hand-over; an item that
    /// exceeds the caller's power refuses the whole call (`grant_exceeds_actor`, audited).
    pub async fn bulk_keys(&self, caller: &Caller, tenant: TenantId, bulk: BulkKeys) -> ServiceResult<BulkDone> {
        caller.require_admin(tenant, AdminScope::KeysWrite)?;
        let n = match &bulk {
            BulkKeys::Issue(items) => items.len(),
            BulkKeys::Disable(ids) | BulkKeys::Revoke(ids) => ids.len(),
        };
        if !(1..=BULK_MAX).contains(&n) {
            return Err(ServiceError::BadRequest {
                kind: crate::BadRequest::InvalidParameter,
                detail: format!("items: a bulk call takes 1 to {BULK_MAX} items, not {n}; nothing was written"),
            });
        }
        match bulk {
            BulkKeys::Issue(items) => self.bulk_issue(caller, tenant, &items).await.map(BulkDone::Issued),
            BulkKeys::Disable(ids) => self.bulk_switch(caller, tenant, &ids, KeySwitch::Disable).await,
            BulkKeys::Revoke(ids) => self.bulk_switch(caller, tenant, &ids, KeySwitch::Revoke).await,
        }
    }

    async fn bulk_issue(&self, caller: &Caller, tenant: TenantId, items: &[IssueKey]) -> ServiceResult<Vec<IssuedKey>> {
        let policy = self.tenant_by_id(tenant).await?.policy;
        let mut prepared = Vec::with_capacity(items.len());
        let mut owners = Vec::new();
        for (i, req) in items.iter().enumerate() {
            let (secret, new, owner) = self.prepare_key(caller, tenant, &policy, req).await.map_err(|e| match e {
                ServiceError::Invalid(m) => ServiceError::Invalid(format!("item {}: {m}; nothing was written", i + 1)),
                ServiceError::NotFound(m) => ServiceError::NotFound(format!("item {}: {m}", i + 1)),
                other => other,
            })?;
            let audit = caller.audit(tenant, "key.issued", "key").details(describe(&new, &owner.email));
            owners.push(owner.id);
            prepared.push((secret, new, audit));
        }
        owners.sort_unstable();
        owners.dedup();
        let rows: Vec<_> = prepared.iter().map(|(_, new, audit)| (new.clone(), audit.clone())).collect();
        let affects = Affects { users: owners, ..Affects::nothing() }.handing_over(HandsOver::TheNewKey);
        let target = format!("bulk issue of {} keys", items.len());
        let ids = self
            .judged(caller, tenant, &target, affects, async |guard| {
                self.db().keys().insert_many(tenant, &rows, guard).await
            })
            .await?;
        let mut issued = Vec::with_capacity(ids.len());
        for ((secret, _, _), id) in prepared.into_iter().zip(ids) {
            let record = self.key(tenant, id).await?;
            issued.push(IssuedKey { warnings: warnings(&record), secret, record });
        }
        Ok(issued)
    }

    async fn bulk_switch(
        &self,
        caller: &Caller,
        tenant: TenantId,
        ids: &[KeyId],
        switch: KeySwitch,
    ) -> ServiceResult<BulkDone> {
        let mut seen = ids.to_vec();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != ids.len() {
            return Err(ServiceError::Invalid("a bulk call names each key once".into()));
        }
        let action = match switch {
            KeySwitch::Disable => "key.disabled",
            KeySwitch::Revoke => "key.revoked",
        };
        let audits: Vec<_> = ids.iter().map(|id| caller.audit(tenant, action, format!("key {id}"))).collect();
        let affects = Affects { keys: ids.to_vec(), ..Affects::nothing() };
        let target = format!("bulk {} of {} keys", &action[4..], ids.len());
        self.judged(caller, tenant, &target, affects, async |guard| {
            self.db().keys().switch_many(tenant, ids, switch, &audits, guard).await
        })
        .await?;
        for id in ids {
            self.inner.verifier.forget_key(*id);
        }
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            views.push(self.view_of(tenant, *id).await?);
        }
        Ok(BulkDone::Switched(views))
    }

    /// The verified key itself, as an administrator would see it. Any valid key; no admin power.
    pub async fn own_key(&self, v: &Verified) -> ServiceResult<KeyView> {
        self.view_of(v.tenant.id, v.key().id).await
    }

    /// The verified key rolls itself: a successor with exactly its owner, scopes, units, ranges,
    /// purpose, expiry and rate limit; the old key works for `overlap_hours` (0 to 7 days) more.
    /// Any valid key; no admin power (the successor carries nothing the key does not). A key rolls
    /// itself once: a second roll (a leaked copy racing its owner), even concurrent with the
    /// first, is refused as a conflict and audited `key.roll_refused`; so is the roll of a key
    /// made by a roll less than [`SELF_ROLL_MIN_AGE_MINUTES`] ago. As every roll, it ends the rest
    /// of the key's line of rolls: the rolling key's own predecessor stops working now.
    /// The answer holds the successor as [`Self::own_key`] would show it.
    pub async fn roll_own_key(&self, v: &Verified, overlap_hours: i64) -> ServiceResult<(IssuedKey, KeyView)> {
        let caller = v.caller(Some(v.source().to_string()));
        let tenant = v.tenant.id;
        let id = v.key().id;
        if !(0..=MAX_ROLL_OVERLAP_DAYS * 24).contains(&overlap_hours) {
            return Err(ServiceError::Invalid(format!(
                "the overlap must be between 0 and {} hours",
                MAX_ROLL_OVERLAP_DAYS * 24
            )));
        }
        let old = self.key(tenant, id).await?;
        let secret = ApiKeySecret::generate();
        let new = successor(&old, &caller, &secret);
        let until = Timestamp::now().plus_millis(overlap_hours * 3_600_000);
        let target = format!("key {id}");
        let audit = caller
            .audit(tenant, "key.rolled", target.clone())
            .details(format!("rolled by itself; old key works until {until}"));
        let affects = Affects::key(id).handing_over(HandsOver::TheNewKey);
        let ready_at = old.created_at.plus_millis(SELF_ROLL_MIN_AGE_MINUTES * 60_000);
        let rolled = if old.rolled_from.is_some() && Timestamp::now() < ready_at {
            Err(ServiceError::Conflict(format!(
                "key {id} was made by a roll less than {SELF_ROLL_MIN_AGE_MINUTES} minutes ago; it can roll itself \
                 from {ready_at}"
            )))
        } else {
            self.judged(&caller, tenant, &target, affects, async |guard| {
                self.db().keys().roll_once(id, &new, until, guard, &audit).await
            })
            .await
        };
        let rolled = match rolled {
            Ok(rolled) => rolled,
            Err(ServiceError::Conflict(why)) => {
                let refusal = caller.audit(tenant, "key.roll_refused", target).details(why.clone());
                if let Err(e) = self.db().audit().append(&[refusal]).await {
                    tracing::error!(error = %e, "writing the audit event of a refused roll failed");
                }
                return Err(ServiceError::Conflict(why));
            }
            Err(e) => return Err(e),
        };
        self.forget_rolled(id, &rolled);
        let view = self.view_of(tenant, rolled.new).await?;
        let record = view.listing.key.clone();
        Ok((IssuedKey { warnings: warnings(&record), secret, record }, view))
    }
}
