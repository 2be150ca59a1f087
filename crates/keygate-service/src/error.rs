//! The service layer's one error type. The web layer maps it to problem responses.

use keygate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input was wrong; the message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this; the message says which group or permission is missing.
    #[error("{0}")]
    Forbidden(String),
    /// The act would give a power the caller does not hold (docs/design.md §6); nothing was written.
    #[error("{0}")]
    GrantExceedsActor(String),
    /// A request the data API cannot run; the kind is what the caller gets as a stable code.
    #[error("{detail}")]
    BadRequest { kind: BadRequest, detail: String },
    /// The key's user or scopes do not permit this; the message says which resource and access.
    #[error("{0}")]
    InsufficientPermission(String),
    /// Field-by-field validation failures of a record write; nothing was written.
    #[error("{} field(s) are not valid", .0.len())]
    InvalidFields(Vec<FieldError>),
    /// Even one row would exceed the response size cap.
    #[error("{0}")]
    TooLarge(String),
    /// keygate is at a bound it keeps (e.g. every password-hashing slot is taken): retry soon.
    #[error("{0}")]
    Busy(String),
    /// A data query over one of its budgets; nothing was read or the read was stopped. The
    /// detail names the budget and its setting.
    #[error("{detail}")]
    Overloaded { budget: Budget, detail: String, retry_after_secs: u64 },
    #[error("storage failed")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(msg) => Self::Conflict(msg),
            StoreError::IdempotencyKeyTaken => {
                Self::Conflict("the idempotent request is still in progress; retry".to_owned())
            }
            other => Self::Store(other),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Why the data API cannot run a request. Each kind is one stable problem `code`, which the web
/// layer names; no string is matched to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The filter text is not in the filter language.
    InvalidFilter,
    /// The filter or `columns` names a column the view does not have.
    UnknownColumn,
    /// A filter value is not of its column's type.
    TypeMismatch,
    /// A parameter's value is not valid (`limit`, `offset`, `id`, `Idempotency-Key`, …).
    InvalidParameter,
    /// A query parameter the endpoint does not take.
    UnknownParameter,
    /// An `Idempotency-Key` already used for a different request.
    IdempotencyKeyReused,
}

/// The budget a data query ran into; each is one stable problem `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The memory that concurrent pages share (`page_memory_budget_mib`).
    PageMemory,
    /// The time a query may run (`query_time_budget_ms`).
    QueryTime,
    /// The queries one key may run at once (`queries_per_key`).
    KeyQueries,
}

/// `Invalid` from any displayable validation error.
pub(crate) fn invalid(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(e.to_string())
}

/// One field's validation failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}
