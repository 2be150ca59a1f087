//! `Idempotency-Key` on the management API's POSTs: a retried request gets the first answer, a
//! different request under the same name is refused, and a duplicate that arrives while the first
//! still runs is told so. Entries belong to the verified key that made them (never to its
//! secret), live [`IDEMPOTENCY_TTL`], number at most [`IDEMPOTENCY_PER_KEY`] per key (the oldest
//! are evicted), and keep at most [`IDEMPOTENCY_MAX_ANSWER`] bytes of an answer. A secret the
//! answer showed (an issued or rolled key's `secret`) is never stored: the stored answer has it
//! removed, and says so. No SQL here.

use std::time::Duration;

use keygate_domain::Timestamp;
use keygate_store::{IdempotentEntry, Reservation, ReserveLimits};

use crate::{BadRequest, Keygate, ServiceError, ServiceResult, Verified};

/// How long an entry is kept: a retry within a day gets the first answer.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3_600);

/// The most entries one key holds; a key's 1 001st entry evicts its oldest. Eviction rather than
/// a refusal: a client retries a request within minutes, never 1 000 requests later.
pub const IDEMPOTENCY_PER_KEY: u32 = 1_000;

/// The largest answer body stored (64 KiB; a bulk call of 100 keys fits). A larger answer is
/// stored without its body: a retry gets the status and a header saying the body is not kept.
pub const IDEMPOTENCY_MAX_ANSWER: usize = 64 * 1024;

/// An entry still in progress after this long belongs to a request that died (a crash): the next
/// request with its name runs again.
pub const IDEMPOTENCY_ABANDONED_AFTER: Duration = Duration::from_secs(300);

/// The longest Idempotency-Key, in bytes.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// The JSON field of an answer that holds a secret shown once; never stored.
const SECRET_FIELD: &str = "secret";

/// What a stored answer left out: the secret it showed, or its whole body (over the size cap).
pub const WITHHELD_SECRET: &str = "secret";
pub const WITHHELD_BODY: &str = "body";

/// What to do with a request that carries an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// The first request under this name: run it, then [`Keygate::idempotency_answer`].
    Proceed,
    /// A retry of an answered request: send this answer again.
    Replay(StoredAnswer),
}

/// A stored answer, as it is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    /// Content type, location and version headers of the first answer.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// What the stored answer left out (`secret`, `body`), empty when nothing.
    pub withheld: String,
}

impl From<IdempotentEntry> for StoredAnswer {
    fn from(e: IdempotentEntry) -> Self {
        Self {
            status: e.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            headers: serde_json::from_str(&e.headers).unwrap_or_default(),
            body: e.body,
            withheld: e.withheld,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Keygate {
    /// Starts a management POST that carries `idem_key`, for key `v`, whose method, path, query
    /// and body digest to `hash`. A name that is empty, longer than [`IDEMPOTENCY_KEY_MAX`] or has
    /// control characters is refused; the same name with another request is
    /// `idempotency_key_reused`; a duplicate while the first is in progress is a conflict.
    pub async fn idempotency_begin(
        &self,
        v: &Verified,
        idem_key: &str,
        hash: &[u8; 32],
    ) -> ServiceResult<IdempotencyStart> {
        if idem_key.is_empty() || idem_key.len() > IDEMPOTENCY_KEY_MAX || idem_key.chars().any(char::is_control) {
            return Err(ServiceError::BadRequest {
                kind: BadRequest::InvalidParameter,
                detail: format!("the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters"),
            });
        }
        let now = Timestamp::now().0;
        let limits = ReserveLimits {
            now,
            expired_before: now - millis(IDEMPOTENCY_TTL),
            abandoned_before: now - millis(IDEMPOTENCY_ABANDONED_AFTER),
            per_key: IDEMPOTENCY_PER_KEY,
        };
        let reservation =
            self.db().management_idempotency().reserve(v.tenant.id.0, v.key().id.0, idem_key, hash, limits).await?;
        match reservation {
            Reservation::Reserved => Ok(IdempotencyStart::Proceed),
            Reservation::Existing(e) if e.request_hash.as_slice() != hash.as_slice() => Err(ServiceError::BadRequest {
                kind: BadRequest::IdempotencyKeyReused,
                detail: "this Idempotency-Key was already used for a different request (method, path or body); \
                             use a new key for a new request"
                    .to_owned(),
            }),
            Reservation::Existing(e) if e.status.is_none() => Err(ServiceError::Conflict(
                "a request with this Idempotency-Key is still in progress; retry when it has been answered".to_owned(),
            )),
            Reservation::Existing(e) => Ok(IdempotencyStart::Replay(e.into())),
        }
    }

    /// Keeps the answer of the request [`Self::idempotency_begin`] let proceed. A server error
    /// (5xx) or a rate refusal (429) is not kept: the reservation is dropped and a retry runs
    /// again. A JSON answer's `secret` fields are removed before it is stored; a body over
    /// [`IDEMPOTENCY_MAX_ANSWER`] is not stored. Returns what was withheld.
    pub async fn idempotency_answer(
        &self,
        v: &Verified,
        idem_key: &str,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> ServiceResult<&'static str> {
        if status >= 500 || status == 429 {
            self.idempotency_release(v, idem_key).await?;
            return Ok("");
        }
        let (body, withheld) = storable(body);
        let headers = serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned());
        self.db().management_idempotency().answer(v.key().id.0, idem_key, status, &headers, &body, withheld).await?;
        Ok(withheld)
    }

    /// Drops the reservation of a request that has no answer to keep.
    pub async fn idempotency_release(&self, v: &Verified, idem_key: &str) -> ServiceResult<()> {
        Ok(self.db().management_idempotency().release(v.key().id.0, idem_key).await?)
    }

    /// Deletes entries older than [`IDEMPOTENCY_TTL`] as of `now`, in batches like the audit
    /// log's; returns how many. A failure is logged and left for the next run.
    pub(crate) async fn prune_idempotency(&self, now: Timestamp) -> u64 {
        let before = now.0 - millis(IDEMPOTENCY_TTL);
        let mut deleted = 0;
        for _ in 0..crate::audit_log::PRUNE_BATCHES {
            match self.db().management_idempotency().prune(before, crate::audit_log::PRUNE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(crate::audit_log::PRUNE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning expired Idempotency-Key entries failed; retried in a minute");
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        deleted
    }
}

/// `body` as it may be stored, and what was left out: a JSON body without its `secret` fields (at
/// any depth: a bulk answer holds one per item); nothing of a body over the size cap or not text.
fn storable(body: &[u8]) -> (String, &'static str) {
    let mut withheld = "";
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut json) => {
            if remove_secrets(&mut json) {
                withheld = WITHHELD_SECRET;
            }
            json.to_string()
        }
        Err(_) => match std::str::from_utf8(body) {
            // Not JSON: a secret could sit anywhere in it, so a text that looks like it holds a
            // key is not stored at all.
            Ok(t) if !t.contains("kg_") => t.to_owned(),
            _ => return (String::new(), WITHHELD_BODY),
        },
    };
    if text.len() > IDEMPOTENCY_MAX_ANSWER {
        return (String::new(), WITHHELD_BODY);
    }
    (text, withheld)
}

/// Removes every `secret` field from `json`; whether there was one.
fn remove_secrets(json: &mut serde_json::Value) -> bool {
    match json {
        serde_json::Value::Object(map) => {
            let mut found = map.remove(SECRET_FIELD).is_some();
            for value in map.values_mut() {
                found |= remove_secrets(value);
            }
            found
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |found, item| remove_secrets(item) | found),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_keys_secret_is_removed_at_any_depth_before_it_is_stored() {
        let answer = br#"{"key":{"id":"7"},"secret":"kg_live_abc","items":[{"secret":"kg_x","key":{"id":"8"}}]}"#;
        let (stored, withheld) = storable(answer);
        assert_eq!(withheld, WITHHELD_SECRET);
        assert!(!stored.contains("kg_"), "{stored}");
        assert!(stored.contains("\"id\":\"8\""), "{stored}");
    }

    #[test]
    fn an_answer_over_64_kib_is_stored_without_its_body_and_one_at_64_kib_whole() {
        let at_cap = format!("\"{}\"", "a".repeat(IDEMPOTENCY_MAX_ANSWER - 2));
        assert_eq!(storable(at_cap.as_bytes()), (at_cap.clone(), ""));
        let over = format!("\"{}\"", "a".repeat(IDEMPOTENCY_MAX_ANSWER - 1));
        assert_eq!(storable(over.as_bytes()), (String::new(), WITHHELD_BODY));
    }

    #[test]
    fn a_plain_answer_is_kept_unless_it_could_hold_a_key() {
        assert_eq!(storable(b"ok"), ("ok".to_owned(), ""));
        assert_eq!(storable(b"here kg_abc"), (String::new(), WITHHELD_BODY));
    }
}
