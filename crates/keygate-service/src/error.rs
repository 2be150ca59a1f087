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
    /// The act would give a power the caller does not hold (DESIGN §6); nothing was written.
    #[error("{0}")]
    GrantExceedsActor(String),
    /// A request the data API cannot run, with a stable code (`invalid_filter`, `unknown_column`, …).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// Field-by-field validation failures of a record write; nothing was written.
    #[error("{} field(s) are not valid", .0.len())]
    InvalidFields(Vec<FieldError>),
    /// Even one row would exceed the response size cap.
    #[error("{0}")]
    TooLarge(String),
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
            other => Self::Store(other),
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

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
