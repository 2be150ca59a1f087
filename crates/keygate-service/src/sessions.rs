//! Console sessions: log in, look a session up, log out, and throttle repeated failures.
//!
//! The cookie carries a random 256-bit token; the database keeps only its SHA-256 digest, so any
//! node on the same database knows the session and a copy of the database logs nobody in.
//! Unknown accounts, accounts without a password, inactive accounts and wrong passwords all give
//! the same answer after the same Argon2 work. No HTTP here: the web layer sets the cookie.

use std::{
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use keygate_domain::{Actor, AuditEntry, Email, TenantSlug, Timestamp};
use keygate_store::{NewSession, TenantRecord, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::{Caller, Keygate, ServiceError, ServiceResult, password};

/// A session ends this long after log-in, whatever happens.
pub const SESSION_ABSOLUTE_MS: i64 = 8 * 3_600_000;
/// A session ends after this long without a request.
pub const SESSION_IDLE_MS: i64 = 2 * 3_600_000;
/// Console sessions one user holds at most: a new log-in ends the user's oldest beyond these.
pub const MAX_SESSIONS_PER_USER: u32 = 20;
/// Failed log-ins of one account within [`THROTTLE_WINDOW_MS`] before it is locked.
pub const ACCOUNT_FAILURE_LIMIT: i64 = 10;
/// Failed log-ins from one IP address within the window before it is locked.
pub const IP_FAILURE_LIMIT: i64 = 50;
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60_000;
pub const THROTTLE_LOCK_MS: i64 = 15 * 60_000;
/// The longest email a log-in looks at (RFC 5321's path limit); longer is refused unread.
pub const MAX_EMAIL_LEN: usize = 254;
/// The longest password a log-in hashes; longer is refused unhashed.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// The longest tenant slug a log-in looks up.
pub const MAX_TENANT_LEN: usize = 63;
/// The idle timer is written at most this often, not on every page.
const TOUCH_EVERY_MS: i64 = 60_000;

/// What someone typed into the log-in form.
#[derive(Debug)]
pub struct LoginRequest {
    pub tenant: String,
    pub email: String,
    pub password: SecretString,
    pub ip: Option<IpAddr>,
}

/// Why a log-in failed. `Invalid` is the same for every wrong combination.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the tenant, email or password is wrong")]
    Invalid,
    #[error("too many failed log-ins; try again in {} minutes", retry_after_secs.div_ceil(60))]
    Throttled { retry_after_secs: u64 },
    /// Every password-hashing slot stayed taken while the attempt waited.
    #[error("too many log-ins at once; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A new session: the token goes into the cookie and nowhere else.
#[derive(Debug)]
pub struct LoggedIn {
    pub token: SecretString,
    pub max_age_secs: i64,
}

/// A live session with everything a console page needs about its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub user: UserRecord,
    pub tenant: TenantRecord,
    pub permissions: keygate_domain::Permissions,
    pub csrf_token: String,
    /// The one-shot message left by the previous action, if any.
    pub flash: Option<String>,
    digest: Vec<u8>,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of the session whose cookie carries `token`: a digest of it under its own
/// label, so it neither reveals the cookie's token nor matches the stored session digest.
fn csrf_for(token: &str) -> String {
    hex(&Sha256::digest(format!("keygate csrf\n{token}").as_bytes()))
}

/// 32 random bytes as 64 hex characters.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    let out = bytes.iter().map(|b| format!("{b:02x}")).collect();
    zeroize::Zeroize::zeroize(&mut bytes);
    out
}

/// The throttle row of an account: a digest of the normalised tenant and email, so the row has
/// the same size whatever was typed and the table holds no email address.
fn account_subject(tenant: &str, email: &str) -> String {
    let normalised = format!("{}\n{}", tenant.trim().to_ascii_lowercase(), email.trim().to_lowercase());
    let digest = Sha256::digest(normalised.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("account:{hex}")
}

fn ip_subject(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

/// Console log-in attempts since the start, by outcome (for `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct LoginCounts {
    succeeded: AtomicU64,
    failed: AtomicU64,
    throttled: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
}

impl LoginCounts {
    fn count(&self, outcome: &Result<LoggedIn, LoginError>) {
        let counter = match outcome {
            Ok(_) => &self.succeeded,
            Err(LoginError::Invalid) => &self.failed,
            Err(LoginError::Throttled { .. }) => &self.throttled,
            Err(LoginError::Busy { .. }) => &self.busy,
            Err(LoginError::Service(_)) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Keygate {
    /// Console log-in attempts since the start, by outcome: `succeeded`; `failed` (a wrong
    /// tenant, email or password: one answer for all); `throttled` (refused by the per-account or
    /// per-address log-in throttle, before any hashing); `busy` (no password-hashing slot came
    /// free in time); `error` (the database failed).
    pub fn login_counts(&self) -> [(&'static str, u64); 5] {
        let c = &self.inner.logins;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            ("succeeded", n(&c.succeeded)),
            ("failed", n(&c.failed)),
            ("throttled", n(&c.throttled)),
            ("busy", n(&c.busy)),
            ("error", n(&c.errors)),
        ]
    }

    /// Logs a user in with tenant, email and password. Anyone may try; failures are throttled
    /// per account and per IP address, and audited; every attempt is counted by its outcome.
    pub async fn login(&self, req: LoginRequest) -> Result<LoggedIn, LoginError> {
        let outcome = self.attempt_login(req).await;
        self.inner.logins.count(&outcome);
        outcome
    }

    async fn attempt_login(&self, req: LoginRequest) -> Result<LoggedIn, LoginError> {
        // Lengths first: an over-long input costs nothing, not even a throttle row.
        if req.tenant.len() > MAX_TENANT_LEN
            || req.email.len() > MAX_EMAIL_LEN
            || req.password.expose_secret().len() > MAX_PASSWORD_LEN
        {
            return Err(LoginError::Invalid);
        }
        let now = Timestamp::now();
        let sessions = self.db().sessions();
        let account = account_subject(&req.tenant, &req.email);
        let ip_key = req.ip.map(ip_subject);
        let mut locked = sessions.locked_until(&account, now).await.map_err(ServiceError::from)?;
        if let Some(ip_key) = &ip_key
            && let Some(until) = sessions.locked_until(ip_key, now).await.map_err(ServiceError::from)?
        {
            locked = Some(locked.map_or(until, |a| a.max(until)));
        }
        if let Some(until) = locked {
            return Err(LoginError::Throttled { retry_after_secs: retry_after(now, until) });
        }
        // The attempt is counted before the password is hashed, so a burst cannot all pass the
        // check above before the first failure is written; a success takes its count back.
        if let Some(until) = self.count_attempt(&account, ip_key.as_deref(), now).await? {
            return Err(LoginError::Throttled { retry_after_secs: retry_after(now, until) });
        }

        let tenant = match TenantSlug::parse(req.tenant.trim()) {
            Ok(slug) => self.db().tenants().by_slug(&slug).await.map_err(ServiceError::from)?,
            Err(_) => None,
        };
        let email = Email::parse(req.email.trim()).ok();
        let record = match (&tenant, &email) {
            (Some(t), Some(e)) => self.db().users().login_record(t.policy.id, e).await.map_err(ServiceError::from)?,
            _ => None,
        };
        // Always one Argon2 verification: against the user's hash, or a dummy one.
        let hash = record.as_ref().and_then(|(_, hash, _)| hash.clone());
        let password_ok = match self.inner.hashing.verify(req.password, hash).await {
            Ok(ok) => ok,
            Err(password::Busy) => return Err(LoginError::Busy { retry_after_secs: 1 }),
        };
        let user = match record {
            Some((id, Some(_), true)) if password_ok => Some(id),
            _ => None,
        };
        let (Some(tenant), Some(user)) = (tenant.as_ref(), user) else {
            self.login_failed(tenant.as_ref(), email.as_ref(), req.ip).await;
            return Err(LoginError::Invalid);
        };

        sessions.clear_failures(&account).await.map_err(ServiceError::from)?;
        if let Some(ip_key) = &ip_key {
            sessions.forgive_one(ip_key).await.map_err(ServiceError::from)?;
        }
        let _ = sessions.delete_expired(now, now.plus_millis(-SESSION_IDLE_MS)).await;
        let token = random_token();
        // The form token is derived from the cookie's token and only its digest is stored: a
        // copy of the database holds neither.
        let csrf_digest = hex(&digest(&csrf_for(&token)));
        let ip_text = req.ip.map(|ip| ip.to_string());
        sessions
            .insert(
                &NewSession {
                    digest: &digest(&token),
                    tenant_id: tenant.policy.id,
                    user_id: user,
                    csrf_token: &csrf_digest,
                    expires_at: now.plus_millis(SESSION_ABSOLUTE_MS),
                    ip: ip_text.as_deref(),
                },
                MAX_SESSIONS_PER_USER,
            )
            .await
            .map_err(ServiceError::from)?;
        let email = email.map(|e| e.to_string()).unwrap_or_default();
        let audit = AuditEntry::new(
            Some(tenant.policy.id),
            Actor::User { id: user, email: email.clone() },
            "session.login",
            format!("user {email}"),
        )
        .from_ip(ip_text);
        self.db().audit().append(&[audit]).await.map_err(ServiceError::from)?;
        Ok(LoggedIn { token: SecretString::from(token), max_age_secs: SESSION_ABSOLUTE_MS / 1000 })
    }

    /// Counts an attempt against the account and the address; the lock, if either is now locked.
    /// The limits allow that many failures: the attempt after them is the one refused.
    async fn count_attempt(
        &self,
        account: &str,
        ip_key: Option<&str>,
        now: Timestamp,
    ) -> ServiceResult<Option<Timestamp>> {
        let sessions = self.db().sessions();
        let window = now.plus_millis(-THROTTLE_WINDOW_MS);
        let lock = now.plus_millis(THROTTLE_LOCK_MS);
        let mut locked =
            sessions.count_failure(account, now, window, ACCOUNT_FAILURE_LIMIT + 1, lock).await?.locked_until;
        if let Some(ip_key) = ip_key {
            let by_ip = sessions.count_failure(ip_key, now, window, IP_FAILURE_LIMIT + 1, lock).await?.locked_until;
            locked = locked.max(by_ip);
        }
        Ok(locked)
    }

    /// Audits a failed log-in in the tenant it named, if that tenant exists; at most
    /// [`crate::refusals::LOGIN_FAILURE_ROWS_PER_MINUTE`] rows a minute.
    async fn login_failed(&self, tenant: Option<&TenantRecord>, email: Option<&Email>, ip: Option<IpAddr>) {
        if let Some(tenant) = tenant {
            let target = email.map_or_else(|| "an invalid email".to_owned(), |e| format!("user {e}"));
            let audit =
                AuditEntry::new(Some(tenant.policy.id), Actor::System("console"), "session.login_failed", target)
                    .details("wrong password, unknown or inactive user, or a user without a password")
                    .from_ip(ip.map(|ip| ip.to_string()));
            // A stranger's row: within the minute's budget of failed log-in rows.
            let rows = self.inner.verifier.refusals.admit_login_failure(audit, std::time::Instant::now());
            if let Err(e) = self.db().audit().append(&rows).await {
                tracing::warn!(error = %e, "auditing a failed log-in failed");
            }
        }
    }

    /// Forgets throttle rows whose window is over and whose lock, if any, has ended.
    pub(crate) async fn prune_login_throttle(&self, now: Timestamp) -> ServiceResult<u64> {
        let window_start = now.plus_millis(-THROTTLE_WINDOW_MS);
        Ok(self.db().sessions().prune_throttle(window_start, now).await?)
    }

    /// The live session behind a cookie's token, or `None` when it is unknown, expired, or its
    /// user has been deactivated since (the session is then deleted).
    pub async fn session(&self, token: &str, ip: Option<IpAddr>) -> ServiceResult<Option<Session>> {
        let now = Timestamp::now();
        let digest = digest(token);
        let sessions = self.db().sessions();
        let Some(row) = sessions.by_digest(&digest).await? else { return Ok(None) };
        if row.expires_at <= now.0 || row.last_seen_at + SESSION_IDLE_MS <= now.0 {
            sessions.delete(&digest).await?;
            return Ok(None);
        }
        let tenant_id = keygate_domain::TenantId(row.tenant_id);
        let user_id = keygate_domain::UserId(row.user_id);
        let (Some(owner), Some(user)) =
            (self.db().users().owner_state(user_id).await?, self.db().users().by_id(tenant_id, user_id).await?)
        else {
            sessions.delete(&digest).await?;
            return Ok(None);
        };
        if !owner.active || !user.has_password {
            sessions.delete(&digest).await?;
            return Ok(None);
        }
        if now.0 - row.last_seen_at >= TOUCH_EVERY_MS {
            sessions.touch(&digest, now).await?;
        }
        let tenant = self.tenant_by_id(tenant_id).await?;
        Ok(Some(Session {
            caller: Caller::User {
                id: user_id,
                tenant: tenant_id,
                email: owner.email.clone(),
                permissions: owner.permissions.clone(),
                units: owner.units.clone(),
                ip: ip.map(|ip| ip.to_string()),
            },
            user,
            tenant,
            permissions: owner.permissions,
            csrf_token: csrf_for(token),
            flash: row.flash,
            digest,
        }))
    }

    /// Ends the session: the cookie's token no longer opens anything, on any node.
    pub async fn logout(&self, session: &Session) -> ServiceResult<()> {
        self.db().sessions().delete(&session.digest).await?;
        let audit =
            session.caller.audit(session.tenant.policy.id, "session.logout", format!("user {}", session.user.email));
        self.db().audit().append(&[audit]).await?;
        Ok(())
    }

    /// Leaves a one-shot message for the next page (`None` clears it).
    pub async fn set_flash(&self, session: &Session, message: Option<&str>) -> ServiceResult<()> {
        Ok(self.db().sessions().set_flash(&session.digest, message).await?)
    }

    /// A fresh single-use nonce for a form whose answer must not repeat (a new key).
    pub async fn new_form_nonce(&self, session: &Session) -> ServiceResult<String> {
        let nonce = random_token();
        self.db().sessions().set_form_nonce(&session.digest, &nonce).await?;
        Ok(nonce)
    }

    /// True exactly once for the nonce last handed out in this session.
    pub async fn take_form_nonce(&self, session: &Session, nonce: &str) -> ServiceResult<bool> {
        Ok(self.db().sessions().take_form_nonce(&session.digest, nonce).await?)
    }

    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = session.csrf_token.as_bytes();
        expected.len() == submitted.len() && bool::from(expected.ct_eq(submitted.as_bytes()))
    }
}

fn retry_after(now: Timestamp, until: Timestamp) -> u64 {
    u64::try_from((until.0 - now.0).max(1000) / 1000).unwrap_or(1)
}
