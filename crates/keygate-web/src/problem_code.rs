//! The vocabulary of problems keygate answers with, and the one classification of a service
//! error: every `code`, its HTTP status, its title, what it means and what to do about it. The
//! Public API's problem documents ([`crate::problem`]), the console's error pages, the OpenAPI
//! document and the `/problems/{code}` pages all read it here, so that they cannot disagree.
//!
//! Owns no HTTP types and renders nothing; it logs only the internal causes it keeps from view.

use keygate_domain::RefusalCode;
use keygate_service::{BadRequest, Budget, FieldError, ServiceError};

use crate::RequestId;

/// A problem's stable `code`: a refusal of the validity rule, or one of keygate's other answers.
/// The `code` strings are a public contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// A call refused by the validity rule (or the rate limits around it).
    Refusal(RefusalCode),
    InvalidParameter,
    UnknownParameter,
    InvalidFilter,
    UnknownColumn,
    TypeMismatch,
    IdempotencyKeyReused,
    UnreadableUnit,
    Forbidden,
    GrantExceedsActor,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// `If-Match` named a version of the resource that is no longer current (412).
    PreconditionFailed,
    BodyTooLarge,
    PageTooLarge,
    InvalidFields,
    InvalidInput,
    TooManyQueries,
    PageMemoryBusy,
    QueryTimeout,
    InternalError,
    Busy,
    Unavailable,
}

/// How many refusal codes lead [`ProblemCode::ALL`].
pub(crate) const REFUSALS: usize = RefusalCode::ALL.len();

impl ProblemCode {
    /// Every code keygate sends: the refusals in [`RefusalCode::ALL`]'s order, then the others.
    /// A test with an exhaustive match does not compile while a variant is missing.
    pub const ALL: [ProblemCode; REFUSALS + 23] = {
        let own = [
            Self::InvalidParameter,
            Self::UnknownParameter,
            Self::InvalidFilter,
            Self::UnknownColumn,
            Self::TypeMismatch,
            Self::IdempotencyKeyReused,
            Self::UnreadableUnit,
            Self::Forbidden,
            Self::GrantExceedsActor,
            Self::NotFound,
            Self::MethodNotAllowed,
            Self::Conflict,
            Self::BodyTooLarge,
            Self::PageTooLarge,
            Self::InvalidFields,
            Self::InvalidInput,
            Self::TooManyQueries,
            Self::PageMemoryBusy,
            Self::QueryTimeout,
            Self::InternalError,
            Self::Busy,
            Self::Unavailable,
            Self::PreconditionFailed,
        ];
        let mut all = [Self::Busy; REFUSALS + 23];
        let mut i = 0;
        while i < REFUSALS {
            all[i] = Self::Refusal(RefusalCode::ALL[i]);
            i += 1;
        }
        while i < all.len() {
            all[i] = own[i - REFUSALS];
            i += 1;
        }
        all
    };

    /// The stable `code` of the problem document.
    pub fn code(self) -> &'static str {
        match self {
            Self::Refusal(r) => r.code(),
            Self::InvalidParameter => "invalid_parameter",
            Self::UnknownParameter => "unknown_parameter",
            Self::InvalidFilter => "invalid_filter",
            Self::UnknownColumn => "unknown_column",
            Self::TypeMismatch => "type_mismatch",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::UnreadableUnit => "unreadable_unit",
            Self::Forbidden => "forbidden",
            Self::GrantExceedsActor => "grant_exceeds_actor",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PreconditionFailed => "precondition_failed",
            Self::BodyTooLarge => "body_too_large",
            Self::PageTooLarge => "page_too_large",
            Self::InvalidFields => "invalid_fields",
            Self::InvalidInput => "invalid_input",
            Self::TooManyQueries => "too_many_queries",
            Self::InternalError => "internal_error",
            Self::PageMemoryBusy => "page_memory_busy",
            Self::QueryTimeout => "query_timeout",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
        }
    }

    /// The code named `code`, if keygate sends one.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The HTTP status the code is sent with, in the API and on console pages alike.
    pub fn status(self) -> u16 {
        match self {
            Self::Refusal(r) => r.status(),
            Self::InvalidParameter
            | Self::UnknownParameter
            | Self::InvalidFilter
            | Self::UnknownColumn
            | Self::TypeMismatch
            | Self::IdempotencyKeyReused
            | Self::UnreadableUnit => 400,
            Self::Forbidden | Self::GrantExceedsActor => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PreconditionFailed => 412,
            Self::BodyTooLarge | Self::PageTooLarge => 413,
            Self::InvalidFields | Self::InvalidInput => 422,
            Self::TooManyQueries => 429,
            Self::InternalError => 500,
            Self::PageMemoryBusy | Self::QueryTimeout | Self::Busy | Self::Unavailable => 503,
        }
    }

    /// The problem document's `title`: one sentence, the same for every problem of the code.
    pub fn title(self) -> &'static str {
        match self {
            Self::Refusal(r) => r.title(),
            Self::InvalidParameter
            | Self::UnknownParameter
            | Self::InvalidFilter
            | Self::UnknownColumn
            | Self::TypeMismatch
            | Self::IdempotencyKeyReused => "The request cannot be run",
            Self::UnreadableUnit => "The forwarded URI addresses the Public API in a form keygate does not read",
            Self::Forbidden => "Forbidden",
            Self::GrantExceedsActor => "This would give a power the caller does not hold",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "This endpoint does not answer this method",
            Self::Conflict => "Conflict",
            Self::PreconditionFailed => "Precondition failed",
            Self::BodyTooLarge => "The request body is too large or could not be read",
            Self::PageTooLarge => "The answer would exceed the size limit",
            Self::InvalidFields => "Some fields are not valid; nothing was written",
            Self::InvalidInput => "The input is not valid",
            Self::TooManyQueries => "The key runs as many data queries as it may at once",
            Self::InternalError => "Something went wrong on our side",
            Self::PageMemoryBusy => "The pages being read take the page memory budget; retry shortly",
            Self::QueryTimeout => "The query ran past its time budget",
            Self::Busy => "keygate is at one of its bounds; retry in a moment",
            Self::Unavailable => "keygate cannot check the key now (its database does not answer); retry later",
        }
    }

    /// What the code means: the OpenAPI document's description of it, and the first part of its
    /// page.
    pub fn about(self) -> &'static str {
        match self {
            Self::Refusal(r) => refusal_about(r),
            Self::InvalidParameter => "a query parameter or header has a value the endpoint does not take",
            Self::UnknownParameter => "a query parameter the endpoint does not know (it names the accepted ones)",
            Self::InvalidFilter => {
                "`externalFilter` does not parse (with the character position and what was expected)"
            }
            Self::UnknownColumn => "a column that the view does not have, in `columns`, `properties` or the filter",
            Self::TypeMismatch => "a filter value of the wrong type for its column",
            Self::IdempotencyKeyReused => "this `Idempotency-Key` was already used for a different request",
            Self::UnreadableUnit => {
                "forward-auth: the forwarded URI reaches `/rest/v1/` only in some reading of it (case, escapes, \
                 dot or empty segments, `;`, `\\`), so its unit cannot be read as keygate's router reads it; \
                 refused, never judged without a unit"
            }
            Self::Forbidden => "the change is not allowed",
            Self::GrantExceedsActor => "the write would give a power that the key's user does not hold",
            Self::NotFound => "no such view, resource or record (a record outside the key's view is 404, never 403)",
            Self::MethodNotAllowed => "the path does not answer this method (`Allow` names the ones it does)",
            Self::Conflict => "the write conflicts with existing data, or an idempotent request is still in progress",
            Self::PreconditionFailed => {
                "the resource changed since the version named in `If-Match` was read; nothing was written"
            }
            Self::BodyTooLarge => "the request body is over 2 MiB",
            Self::PageTooLarge => "one row alone is larger than the page size limit",
            Self::InvalidFields => "some fields of a write are not valid (listed in `errors`); nothing was written",
            Self::InvalidInput => "the request body is not valid",
            Self::TooManyQueries => {
                "the key already runs `queries_per_key` data queries (`Retry-After` says when to retry)"
            }
            Self::InternalError => "something went wrong on keygate's side (logged with the request id)",
            Self::PageMemoryBusy => {
                "the pages being read take the page memory budget (`Retry-After` says when to retry)"
            }
            Self::QueryTimeout => "the query ran past its time budget, `query_time_budget_ms` (`Retry-After`)",
            Self::Busy => {
                "keygate is at one of its bounds (e.g. every password-hashing slot is taken); retry after \
                 `Retry-After`"
            }
            Self::Unavailable => {
                "keygate cannot judge the call now: its database does not answer in time (`Retry-After` says \
                 when to retry); never a verdict on the key"
            }
        }
    }

    /// What to do about it: the second part of the code's page, and the `detail` of a problem
    /// that has no more precise one.
    pub fn advice(self) -> &'static str {
        match self {
            Self::Refusal(r) => refusal_advice(r),
            Self::InvalidParameter | Self::UnknownParameter => {
                "Correct the parameter named in `detail`; the endpoint's parameters are listed in /openapi.json."
            }
            Self::InvalidFilter => {
                "Correct the filter at the position named in `detail`; the filter language is described in \
                 /openapi.json and on the console's API reference page."
            }
            Self::UnknownColumn | Self::TypeMismatch => {
                "Use the view's own columns with values of their types; every view's columns are in /openapi.json."
            }
            Self::IdempotencyKeyReused => {
                "Send a new `Idempotency-Key` for a new request; repeat a key only to retry the very same request."
            }
            Self::UnreadableUnit => {
                "Have the proxy forward the path as /rest/v1/{unitId}/… with the unit in plain digits, without \
                 percent-escapes, dot segments, `;` parameters or backslashes."
            }
            Self::Forbidden => {
                "The caller may not make this change; `detail` says which group or permission it would need. Ask \
                 an administrator of the tenant."
            }
            Self::GrantExceedsActor => {
                "The change would give someone a power the caller does not hold itself; `detail` says what is \
                 lacking. Ask someone who holds it, or give less."
            }
            Self::NotFound => {
                "Check the path and the id; a record the key's user may not see is answered as if it did not exist."
            }
            Self::MethodNotAllowed => "Use one of the methods the `Allow` header names.",
            Self::Conflict => {
                "Read the current data and change your request (a name or number may already be taken), or retry \
                 an idempotent request once the first one has finished."
            }
            Self::PreconditionFailed => {
                "Read the resource again (its `ETag` names the current version), apply your change to what it \
                 holds now, and send the update with the new `If-Match`."
            }
            Self::BodyTooLarge => "Send a body of at most 2 MiB, in full and without pauses.",
            Self::PageTooLarge => "Ask for fewer columns (`columns`), so that one row fits in a page.",
            Self::InvalidFields => "Correct every field listed in `errors` and send the write again.",
            Self::InvalidInput => "Correct the input as `detail` says and send it again.",
            Self::TooManyQueries => {
                "Wait for the key's running queries to finish (`Retry-After` says how long), or run fewer at once."
            }
            Self::InternalError => {
                "Retry in a moment. If it keeps happening, give keygate's operator the request id: the log has the \
                 cause under it."
            }
            Self::PageMemoryBusy | Self::Busy => "Retry after the seconds that `Retry-After` names.",
            Self::QueryTimeout => {
                "Narrow the query (a filter on fewer rows, a smaller `limit`) or retry after `Retry-After`."
            }
            Self::Unavailable => {
                "Retry after `Retry-After`; the key was not judged. If it lasts, keygate's operator should check \
                 its database."
            }
        }
    }
}

/// What a refusal means, beyond its title.
fn refusal_about(code: RefusalCode) -> &'static str {
    match code {
        RefusalCode::MissingCredentials => "the call carried no API key",
        RefusalCode::MalformedKey => {
            "the API key is not one keygate could have issued (its length, characters or checksum are wrong): \
             usually a key cut short or copied with extra characters"
        }
        RefusalCode::UnknownKey => "no key of this tenant has this secret (it never existed, or it was rolled)",
        RefusalCode::KeyRevoked => "the key was revoked; revocation is final",
        RefusalCode::KeyDisabled => "an administrator of the tenant disabled the key",
        RefusalCode::KeyExpired => "the key is past the expiry it was issued with",
        RefusalCode::UserInactive => "the user the key belongs to was deactivated, and its keys with it",
        RefusalCode::ApiDisabled => "the tenant's Public API is switched off: every key of the tenant is refused",
        RefusalCode::IpNotAllowed => {
            "the call came from an address outside the key's IP ranges or the tenant's API whitelist"
        }
        RefusalCode::UnknownUnit => "the unit in the path does not exist in the key's tenant",
        RefusalCode::UnitNotAllowed => "the key, or its user, may not reach this unit",
        RefusalCode::InsufficientPermission => {
            "the key's user, or the key's scopes, do not permit this read or write (or verifying other keys)"
        }
        RefusalCode::RateLimited => "the key made more calls than its rate limit allows in the current window",
        RefusalCode::TooManyFailures => {
            "too many calls with bad keys came from this address; it is refused for a while"
        }
        RefusalCode::AmbiguousCredentials => {
            "the call carried more than one credential, and keygate does not pick one of them"
        }
    }
}

/// What to do about a refusal.
fn refusal_advice(code: RefusalCode) -> &'static str {
    match code {
        RefusalCode::MissingCredentials => "Send the key as `Authorization: Bearer <key>` (or `X-API-Key: <key>`).",
        RefusalCode::MalformedKey | RefusalCode::UnknownKey => {
            "Check that the whole key is sent as it was shown when it was generated; a rolled key's old secret \
             stops working once its grace period ends."
        }
        RefusalCode::KeyRevoked => "Ask an administrator of the tenant for a new key.",
        RefusalCode::KeyDisabled => "Ask an administrator of the tenant to enable the key, or use another key.",
        RefusalCode::KeyExpired => "Ask an administrator of the tenant for a new key (or to roll this one).",
        RefusalCode::UserInactive => "Ask an administrator of the tenant to reactivate the user, or use another key.",
        RefusalCode::ApiDisabled => "Ask an administrator of the tenant to switch the Public API on.",
        RefusalCode::IpNotAllowed => {
            "Call from an allowed address, or ask an administrator to widen the key's IP ranges or the tenant's \
             whitelist; `detail` names the address keygate saw."
        }
        RefusalCode::UnknownUnit => "Use the number of one of the tenant's units in the path (/rest/v1/{unitId}/…).",
        RefusalCode::UnitNotAllowed => {
            "Use a unit the key may reach (`GET /rest/v1/{unitId}/capability` lists them), or ask an \
             administrator for one that reaches this unit."
        }
        RefusalCode::InsufficientPermission => {
            "Use a key whose user and scopes grant this access, or ask an administrator for one; \
             `GET /rest/v1/{unitId}/capability` shows what this key may do."
        }
        RefusalCode::RateLimited => {
            "Slow down: retry after `Retry-After`; the `RateLimit` headers show the quota left."
        }
        RefusalCode::TooManyFailures => "Stop sending bad keys from this address and retry after `Retry-After`.",
        RefusalCode::AmbiguousCredentials => {
            "Send exactly one key: one `Authorization` header, or one `X-API-Key` header (the same key if both)."
        }
    }
}

/// A service error as whoever asked is told it: its code, the detail that may be shown, and what
/// goes with it. Never carries an internal cause.
#[derive(Debug)]
pub(crate) struct Classified {
    pub(crate) code: ProblemCode,
    /// What went wrong and how to fix it, for the caller or the person.
    pub(crate) detail: String,
    /// Field-level errors of a rejected write.
    pub(crate) errors: Vec<FieldError>,
    /// When to retry, for answers that say so.
    pub(crate) retry_after_secs: Option<u64>,
}

/// The one classification of a service error, for the Public API and the console alike. An
/// internal cause (a store or internal error) is logged here with the request id, and the
/// detail only names that id.
pub(crate) fn classify(e: ServiceError, request_id: RequestId) -> Classified {
    let plain = |code, detail| Classified { code, detail, errors: Vec::new(), retry_after_secs: None };
    match e {
        ServiceError::InsufficientPermission(detail) => {
            plain(ProblemCode::Refusal(RefusalCode::InsufficientPermission), detail)
        }
        ServiceError::BadRequest { kind, detail } => plain(bad_request_code(kind), detail),
        ServiceError::InvalidFields(errors) => {
            let detail = format!(
                "{} field(s) are not valid: {}; nothing was written",
                errors.len(),
                errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", ")
            );
            Classified { code: ProblemCode::InvalidFields, detail, errors, retry_after_secs: None }
        }
        ServiceError::Invalid(detail) => plain(ProblemCode::InvalidInput, detail),
        ServiceError::NotFound(what) => plain(ProblemCode::NotFound, format!("{what} was not found")),
        ServiceError::Conflict(detail) => plain(ProblemCode::Conflict, detail),
        ServiceError::Forbidden(detail) => plain(ProblemCode::Forbidden, detail),
        ServiceError::GrantExceedsActor(detail) => plain(ProblemCode::GrantExceedsActor, detail),
        ServiceError::TooLarge(detail) => plain(ProblemCode::PageTooLarge, detail),
        ServiceError::Busy(detail) => Classified { retry_after_secs: Some(1), ..plain(ProblemCode::Busy, detail) },
        ServiceError::Overloaded { budget, detail, retry_after_secs } => {
            let code = match budget {
                Budget::PageMemory => ProblemCode::PageMemoryBusy,
                Budget::QueryTime => ProblemCode::QueryTimeout,
                Budget::KeyQueries => ProblemCode::TooManyQueries,
            };
            Classified { retry_after_secs: Some(retry_after_secs), ..plain(code, detail) }
        }
        e @ (ServiceError::Store(_) | ServiceError::Internal(_)) => {
            tracing::error!(request_id = %request_id, error = ?e, "request failed");
            plain(
                ProblemCode::InternalError,
                format!(
                    "something went wrong on keygate's side; the cause is logged under request id {request_id}: \
                     retry in a moment, or give the id to keygate's operator"
                ),
            )
        }
    }
}

/// The stable code of each kind of bad request.
pub(crate) fn bad_request_code(kind: BadRequest) -> ProblemCode {
    match kind {
        BadRequest::InvalidFilter => ProblemCode::InvalidFilter,
        BadRequest::UnknownColumn => ProblemCode::UnknownColumn,
        BadRequest::TypeMismatch => ProblemCode::TypeMismatch,
        BadRequest::InvalidParameter => ProblemCode::InvalidParameter,
        BadRequest::UnknownParameter => ProblemCode::UnknownParameter,
        BadRequest::IdempotencyKeyReused => ProblemCode::IdempotencyKeyReused,
    }
}
