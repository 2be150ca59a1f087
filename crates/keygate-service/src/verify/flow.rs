//! The verify flow: throttle → credential → format → cached key, owner and tenant → validity rule
//! → rate limit → usage. Every refusal is counted and audited here; the state it reads and feeds
//! is the verifier's.

use std::{borrow::Cow, net::IpAddr, time::Instant};

use keygate_domain::{
    KeyDigest, RefusalCode, TenantId, Timestamp,
    api_key::check_format,
    validity::{Refusal, VerifyInput, check_validity},
};

use super::{
    outcome::{Refused, UNAVAILABLE_RETRY_AFTER_SECS, VERIFY_DB_WAIT, Verified},
    request::{CheckRequest, Credential, VerifyRequest},
};
use crate::Keygate;

/// The one tenant whose keys a verification may know.
#[derive(Debug, Clone, Copy)]
enum OnlyTenant<'a> {
    Id(TenantId),
    Slug(&'a str),
}

/// Whom a verification is for, and what it may touch.
#[derive(Debug, Clone, Copy)]
struct Scope<'a> {
    /// Only keys of this tenant exist: any other is `unknown_key`, and nothing of its tenant
    /// (last use, usage, rate budget, audit) is touched.
    tenant: Option<OnlyTenant<'a>>,
    /// Where the call came from: the failure throttle, usage and audit source use this alone.
    source: IpAddr,
    /// An address claimed for the key: its ranges are checked against it; audit says "claimed".
    claimed: Option<IpAddr>,
    /// Whether failures count against `source`. Not for a service asking about other keys: its
    /// own key was checked and paid for the call, and the answers are its clients' business.
    throttled: bool,
}

impl Scope<'_> {
    /// The tenant a refusal without a key of it is audited in: the verifying service's own (it is
    /// that service's call), never one an unauthenticated caller named.
    fn audit_tenant(&self) -> Option<TenantId> {
        match self.tenant {
            Some(OnlyTenant::Id(t)) if !self.throttled => Some(t),
            _ => None,
        }
    }
}

impl Keygate {
    /// Decides whether a call may proceed. Every refusal is counted and audited (aggregated).
    pub async fn verify(&self, req: VerifyRequest<'_>) -> Result<Verified, Refused> {
        let scope = Scope { tenant: None, source: req.client_ip, claimed: None, throttled: true };
        self.verify_scoped(req, scope).await
    }

    /// [`Self::verify`] for a caller that knows which tenant the key must be of (forward-auth
    /// with `?tenant=`): a key of any other tenant is `unknown_key`, and touches nothing there.
    pub async fn verify_in_tenant(&self, slug: &str, req: VerifyRequest<'_>) -> Result<Verified, Refused> {
        let scope =
            Scope { tenant: Some(OnlyTenant::Slug(slug)), source: req.client_ip, claimed: None, throttled: true };
        self.verify_scoped(req, scope).await
    }

    /// Checks a key on behalf of `caller`, a verified service: only keys of the caller's tenant
    /// are known. The claimed address feeds no throttle, usage or audit source: the key's use is
    /// recorded from the service's own address, and audited there with the claim as a detail.
    pub async fn check_key(&self, caller: &Verified, req: CheckRequest<'_>) -> Result<Verified, Refused> {
        let scope = Scope {
            tenant: Some(OnlyTenant::Id(caller.tenant.id)),
            source: req.source,
            claimed: req.claimed_ip,
            throttled: false,
        };
        let verify = VerifyRequest {
            credential: Credential::Key(req.key),
            client_ip: req.claimed_ip.unwrap_or(req.source),
            unit: req.unit,
            required: req.required,
        };
        self.verify_scoped(verify, scope).await
    }

    async fn verify_scoped(&self, req: VerifyRequest<'_>, scope: Scope<'_>) -> Result<Verified, Refused> {
        let v = &self.inner.verifier;
        let now = Instant::now();
        let source = scope.source;
        if scope.throttled
            && let Some(wait) = v.failures.blocked_shared(source, now, self.inner.cluster.share())
        {
            v.refusals.record(None, None, RefusalCode::TooManyFailures, source, None, "too many failed verifications");
            return Err(Refused { retry_after_secs: Some(wait), ..RefusalCode::TooManyFailures.into() });
        }
        let text = match req.credential {
            Credential::Missing => {
                let tenant = scope.audit_tenant();
                v.refusals.record(tenant, None, RefusalCode::MissingCredentials, source, None, "no credential sent");
                return Err(RefusalCode::MissingCredentials.into());
            }
            Credential::Ambiguous => {
                let tenant = scope.audit_tenant();
                let detail = "more than one credential sent";
                v.refusals.record(tenant, None, RefusalCode::AmbiguousCredentials, source, None, detail);
                return Err(RefusalCode::AmbiguousCredentials.into());
            }
            Credential::Key(text) => text,
        };
        // Checked and hashed where it lies in the request: a copy would only add one more place
        // the secret sits in memory.
        if check_format(text).is_err() {
            return Err(self.failed(&scope, RefusalCode::MalformedKey, "format or checksum wrong", now));
        }
        let digest = KeyDigest::of(text);
        let clock = Timestamp::now();
        // Cache misses read the database, together within one bounded wait: an unreachable
        // database is answered as such in about a second, not after the pool's acquire timeout.
        let deadline = tokio::time::Instant::from_std(now) + VERIFY_DB_WAIT;
        let entry = match self.cached_key(&digest, now, deadline).await {
            Ok(Some(k)) => k,
            Ok(None) => return Err(self.failed(&scope, RefusalCode::UnknownKey, "no key has this digest", now)),
            Err(e) => return Err(self.unavailable(e)),
        };
        let key = &entry.record;
        let other_tenant = "no key of this tenant has this digest";
        if let Some(OnlyTenant::Id(t)) = scope.tenant
            && t != key.tenant_id
        {
            // Another tenant's key, whatever its state: unknown here, and nothing of it is touched.
            return Err(self.failed(&scope, RefusalCode::UnknownKey, other_tenant, now));
        }
        let (owner, tenant) = match (
            self.cached_owner(key.user_id, now, deadline).await,
            self.cached_tenant(key.tenant_id, now, deadline).await,
        ) {
            (Ok(Some(o)), Ok(Some(t))) => (o, t),
            (Ok(None), _) | (_, Ok(None)) => {
                return Err(self.failed(&scope, RefusalCode::UnknownKey, "the key's user or tenant is gone", now));
            }
            (Err(e), _) | (_, Err(e)) => return Err(self.unavailable(e)),
        };
        if let Some(OnlyTenant::Slug(slug)) = scope.tenant
            && tenant.slug.as_str() != slug
        {
            return Err(self.failed(&scope, RefusalCode::UnknownKey, other_tenant, now));
        }
        let scoped = key.scopes.as_ref().map(|s| owner.permissions.narrowed_to(Some(s)));
        let effective = scoped.as_ref().map_or(Cow::Borrowed(&owner.permissions), Cow::Borrowed);
        let checked = check_validity(&VerifyInput {
            key,
            owner: &owner,
            tenant: &tenant,
            effective: &effective,
            client_ip: req.client_ip,
            unit: req.unit,
            required: req.required,
            now: clock,
        });
        if let Err(Refusal { code, admin_detail }) = checked {
            v.refusals.record(Some(tenant.id), Some((key.id, owner.id)), code, source, scope.claimed, admin_detail);
            v.usage.count_refusal(key.id, clock, code.code());
            return Err(Refused { key: Some(key.id), ..code.into() });
        }
        let limit = key.rate_limit_per_minute.unwrap_or(tenant.rate_limit_per_minute);
        let (taken, notice, rendered) = {
            let mut live = entry.live();
            let bucket = live.bucket.get_or_insert_with(|| self.inner.cluster.start_bucket(key.id, limit, now));
            let taken = bucket.take_shared(limit, now, self.inner.cluster.share());
            let notice = taken.is_ok().then(|| live.usage.accept(clock, source));
            let rendered = live.memo.as_ref().and_then(|m| m.bytes_for(&owner, &tenant));
            (taken, notice, rendered)
        };
        let rate = match taken {
            Ok(rate) => rate,
            Err(rate) => {
                let detail = "over the key's rate limit";
                v.refusals.record(
                    Some(tenant.id),
                    Some((key.id, owner.id)),
                    RefusalCode::RateLimited,
                    source,
                    scope.claimed,
                    detail,
                );
                v.usage.count_refusal(key.id, clock, RefusalCode::RateLimited.code());
                return Err(Refused {
                    code: RefusalCode::RateLimited,
                    rate: Some(rate),
                    retry_after_secs: rate.retry_after_secs,
                    key: Some(key.id),
                    unavailable: false,
                });
            }
        };
        if scope.throttled {
            v.failures.succeeded(source);
        }
        self.inner.cluster.accepted(key.id, limit);
        if let Some(notice) = notice {
            v.usage.note(&entry, notice);
        }
        v.accepted.add_one();
        Ok(Verified { entry, owner, tenant, unit: req.unit, rate, scoped, rendered, source })
    }

    /// A call whose key was verified, then refused `insufficient_permission` for what it asked
    /// (a data-API read or write its user or scopes do not permit): counted per day and code, and
    /// audited, as the validity rule's refusals are, and no longer counted as accepted.
    pub fn refused_for_permission(&self, v: &Verified) {
        let verifier = &self.inner.verifier;
        let (code, key, clock) = (RefusalCode::InsufficientPermission, v.key().id, Timestamp::now());
        let detail = "the key's user or scopes do not permit the resource and access asked for";
        verifier.refusals.record(Some(v.tenant.id), Some((key, v.owner.id)), code, v.source, None, detail);
        let retracted = v.entry.live().usage.retract();
        if !retracted {
            // Gathered for writing between the verification and now (once a minute).
            verifier.usage.retract_accepted(key, clock);
        }
        verifier.usage.count_refusal(key, clock, code.code());
        verifier.retracted.add_one();
    }

    /// A refusal before any key of a tenant was found (or one of another tenant): counted against
    /// the source when the scope throttles, audited in the scope's tenant (or none).
    fn failed(&self, scope: &Scope<'_>, code: RefusalCode, detail: &'static str, now: Instant) -> Refused {
        let v = &self.inner.verifier;
        if scope.throttled {
            v.failures.failed_shared(scope.source, now, self.inner.cluster.share());
            self.inner.cluster.failed(crate::ratelimit::FailureLimiter::source(scope.source));
        }
        v.refusals.record(scope.audit_tenant(), None, code, scope.source, scope.claimed, detail);
        code.into()
    }

    /// The failure throttle's gate for a credential that is not a key (an operator's): the
    /// refusal to send while `source` is blocked, as for keys.
    pub(crate) fn throttle_gate(&self, source: IpAddr) -> Result<(), Refused> {
        let v = &self.inner.verifier;
        match v.failures.blocked_shared(source, Instant::now(), self.inner.cluster.share()) {
            None => Ok(()),
            Some(wait) => {
                v.refusals.record(
                    None,
                    None,
                    RefusalCode::TooManyFailures,
                    source,
                    None,
                    "too many failed verifications",
                );
                Err(Refused { retry_after_secs: Some(wait), ..RefusalCode::TooManyFailures.into() })
            }
        }
    }

    /// A credential that is not a key refused: counted against `source` like a bad key, and
    /// audited (aggregated) outside any tenant.
    pub(crate) fn failed_from(&self, source: IpAddr, code: RefusalCode, detail: &'static str) -> Refused {
        let scope = Scope { tenant: None, source, claimed: None, throttled: true };
        self.failed(&scope, code, detail, Instant::now())
    }

    /// A credential refused without counting against `source` (none sent, two sent, or a tenant's
    /// key on the operator plane: none of them is a guess at an operator credential), audited
    /// (aggregated) outside any tenant, as a missing key is.
    pub(crate) fn refused_from(&self, source: IpAddr, code: RefusalCode, detail: &'static str) -> Refused {
        let scope = Scope { tenant: None, source, claimed: None, throttled: false };
        self.failed(&scope, code, detail, Instant::now())
    }

    /// A credential that is not a key accepted: its source's failures are forgiven, as for keys.
    pub(crate) fn succeeded_from(&self, source: IpAddr) {
        self.inner.verifier.failures.succeeded(source);
    }

    /// A call that could not be judged: not accepted (fail closed), and not blamed on its key.
    fn unavailable(&self, e: crate::ServiceError) -> Refused {
        tracing::error!(error = %e, "verification could not read storage");
        Refused {
            retry_after_secs: Some(UNAVAILABLE_RETRY_AFTER_SECS),
            unavailable: true,
            ..RefusalCode::UnknownKey.into()
        }
    }
}
