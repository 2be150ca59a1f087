//! What verification answers: a call that may proceed ([`Verified`], with the bytes it may keep
//! per key) or a refusal ([`Refused`]), and the bounds of an answer keygate could not judge.

use std::{net::IpAddr, sync::Arc, time::Duration};

use keygate_domain::{KeyId, KeyRecord, OwnerState, Permissions, RefusalCode, TenantPolicy, UnitId};

use super::entry::{CachedKey, Memo};
use crate::ratelimit::RateState;

/// A call that may proceed, and as whom.
#[derive(Debug, Clone)]
pub struct Verified {
    pub(super) entry: Arc<CachedKey>,
    pub owner: Arc<OwnerState>,
    pub tenant: Arc<TenantPolicy>,
    pub unit: Option<UnitId>,
    pub rate: RateState,
    pub(super) scoped: Option<Permissions>,
    /// The key's [`Self::rendered`] bytes, when they were made under this owner and tenant.
    pub(super) rendered: Option<Arc<[u8]>>,
    /// Where the call came from (usage and audit source).
    pub(super) source: IpAddr,
}

impl Verified {
    /// The key, as stored.
    pub fn key(&self) -> &KeyRecord {
        &self.entry.record
    }

    /// Where the call came from, as keygate judged it (never a claimed address).
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// The user's current permissions intersected with the key's scopes.
    pub fn permissions(&self) -> &Permissions {
        self.scoped.as_ref().unwrap_or(&self.owner.permissions)
    }

    /// Bytes that depend only on the key, its user and its tenant as verified here (never on the
    /// request), made once and kept with the cached key until one of the three changes. The
    /// capability answer keeps its fixed part here, rendered once per key instead of per call.
    /// The key has one such slot.
    pub fn rendered(&self, render: impl FnOnce(&Verified) -> Vec<u8>) -> Arc<[u8]> {
        if let Some(bytes) = &self.rendered {
            return Arc::clone(bytes);
        }
        let bytes: Arc<[u8]> = render(self).into();
        // The memo holds the owner and tenant it was made from, so neither allocation can be
        // reused for another value while `Memo::bytes_for` compares addresses.
        self.entry.live().memo =
            Some(Memo { owner: Arc::clone(&self.owner), tenant: Arc::clone(&self.tenant), bytes: Arc::clone(&bytes) });
        bytes
    }
}

/// A refused call: the reason, plus rate-limit state when the key was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub code: RefusalCode,
    pub rate: Option<RateState>,
    pub retry_after_secs: Option<u64>,
    /// The key refused, once it is known to be one of the tenant's (a disabled, expired or
    /// rate-limited key, one from a foreign address, …): for the access log. Never set for an
    /// unknown key or another tenant's.
    pub key: Option<KeyId>,
    /// keygate could not judge the call: its database failed or did not answer within
    /// [`VERIFY_DB_WAIT`]. Not the key's fault, so not its refusal: answered `503` with
    /// `Retry-After` ([`Self::retry_after_secs`]), counted nowhere. `code` stays `unknown_key` so
    /// that whoever ignores this still refuses (fails closed).
    pub unavailable: bool,
}

impl From<RefusalCode> for Refused {
    fn from(code: RefusalCode) -> Self {
        Self { code, rate: None, retry_after_secs: None, key: None, unavailable: false }
    }
}

/// The longest a verification waits for its database reads (key, user and tenant together) on a
/// cache miss, whatever the pool's own acquire timeout: then it is answered as unavailable.
pub const VERIFY_DB_WAIT: Duration = Duration::from_millis(1500);

/// The `Retry-After` of a call keygate could not judge for want of its database.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;
