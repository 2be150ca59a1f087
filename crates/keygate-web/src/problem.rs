//! RFC 9457 problem responses: the one place where refusals and errors become HTTP.

use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::RefusalCode;
use keygate_service::{BadRequest, Budget, FieldError, RateState, Refused, ServiceError};
use serde_json::json;

use crate::RequestId;

/// A problem document with its status and extra headers.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    code: &'static str,
    title: String,
    detail: Option<String>,
    request_id: RequestId,
    headers: HeaderMap,
    /// Field-level errors of a rejected write (RFC 9457 extension member `errors`).
    errors: Vec<FieldError>,
    /// The key a refusal was about, when it is one of the tenant's: for the access log.
    key: Option<keygate_domain::KeyId>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &'static str, title: impl Into<String>, request_id: RequestId) -> Self {
        Self {
            status,
            code,
            title: title.into(),
            detail: None,
            request_id,
            headers: HeaderMap::new(),
            errors: Vec::new(),
            key: None,
        }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A service error. Internal causes are logged with the request id, never sent.
    pub(crate) fn from_service(e: ServiceError, request_id: RequestId) -> Self {
        match e {
            ServiceError::InsufficientPermission(detail) => {
                let mut p = Self::new(
                    StatusCode::FORBIDDEN,
                    "insufficient_permission",
                    RefusalCode::InsufficientPermission.title(),
                    request_id,
                )
                .detail(detail);
                p.headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keygate\", error=\"insufficient_scope\""),
                );
                p
            }
            ServiceError::BadRequest { kind, detail } => {
                Self::new(StatusCode::BAD_REQUEST, bad_request_code(kind), "The request cannot be run", request_id)
                    .detail(detail)
            }
            ServiceError::InvalidFields(errors) => {
                let mut p = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_fields",
                    "Some fields are not valid; nothing was written",
                    request_id,
                );
                p.errors = errors;
                p
            }
            ServiceError::Invalid(detail) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", "The input is not valid", request_id)
                    .detail(detail)
            }
            ServiceError::NotFound(what) => Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", request_id)
                .detail(format!("{what} was not found")),
            ServiceError::Conflict(detail) => {
                Self::new(StatusCode::CONFLICT, "conflict", "Conflict", request_id).detail(detail)
            }
            ServiceError::Forbidden(detail) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", request_id).detail(detail)
            }
            ServiceError::GrantExceedsActor(detail) => Self::new(
                StatusCode::FORBIDDEN,
                "grant_exceeds_actor",
                "This would give a power the caller does not hold",
                request_id,
            )
            .detail(detail),
            ServiceError::TooLarge(detail) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "page_too_large",
                "The answer would exceed the size limit",
                request_id,
            )
            .detail(detail),
            ServiceError::Busy(detail) => {
                let mut p = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "keygate is at one of its bounds; retry in a moment",
                    request_id,
                )
                .detail(detail);
                p.headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                p
            }
            ServiceError::Overloaded { budget, detail, retry_after_secs } => {
                let (status, code, title) = match budget {
                    Budget::PageMemory => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "page_memory_busy",
                        "The pages being read take the page memory budget; retry shortly",
                    ),
                    Budget::QueryTime => {
                        (StatusCode::SERVICE_UNAVAILABLE, "query_timeout", "The query ran past its time budget")
                    }
                    Budget::KeyQueries => (
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_queries",
                        "The key runs as many data queries as it may at once",
                    ),
                };
                let mut p = Self::new(status, code, title, request_id).detail(detail);
                p.headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                p
            }
            other => {
                tracing::error!(error = ?other, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Something went wrong on our side",
                    request_id,
                )
            }
        }
    }

    /// `503 unavailable`: keygate cannot judge the call now; retry after `retry_after_secs`.
    pub(crate) fn unavailable(retry_after_secs: Option<u64>, request_id: RequestId) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "keygate cannot check the key now (its database does not answer); retry later",
            request_id,
        );
        let secs = retry_after_secs.unwrap_or(keygate_service::UNAVAILABLE_RETRY_AFTER_SECS);
        p.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        p
    }

    /// Says which address keygate judged, on `ip_not_allowed` (the caller may be behind a proxy or
    /// NAT and not know what address it calls from).
    pub(crate) fn seen_from(mut self, ip: std::net::IpAddr) -> Self {
        if self.code == RefusalCode::IpNotAllowed.code() {
            self.detail = Some(format!(
                "keygate saw this call come from {ip}, which is outside the key's IP ranges or the tenant's API whitelist"
            ));
        }
        self
    }

    /// A refused call, with RFC 6750 `WWW-Authenticate` on 401/403 and rate headers on 429.
    /// A call keygate could not judge (its database is unreachable) is `503 unavailable` with
    /// `Retry-After`, never a code that blames the key.
    pub(crate) fn refused(refused: Refused, request_id: RequestId) -> Self {
        if refused.unavailable {
            return Self::unavailable(refused.retry_after_secs, request_id);
        }
        let code = refused.code;
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::FORBIDDEN);
        let mut p = Self::new(status, code.code(), code.title(), request_id);
        p.key = refused.key;
        let challenge = match code {
            RefusalCode::MissingCredentials => Some("Bearer realm=\"keygate\"".to_owned()),
            RefusalCode::AmbiguousCredentials => Some("Bearer realm=\"keygate\", error=\"invalid_request\"".to_owned()),
            c if c.is_invalid_token() => {
                Some(format!("Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{}\"", c.code()))
            }
            RefusalCode::InsufficientPermission => {
                Some("Bearer realm=\"keygate\", error=\"insufficient_scope\"".to_owned())
            }
            c if c.status() == 403 => {
                Some(format!("Bearer realm=\"keygate\", error=\"invalid_token\", error_description=\"{}\"", c.code()))
            }
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            p.headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(rate) = refused.rate {
            rate_headers(&mut p.headers, &rate);
        }
        if let Some(secs) = refused.retry_after_secs {
            p.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        p
    }
}

/// The stable `code` of each kind of bad request.
pub(crate) fn bad_request_code(kind: BadRequest) -> &'static str {
    match kind {
        BadRequest::InvalidFilter => "invalid_filter",
        BadRequest::UnknownColumn => "unknown_column",
        BadRequest::TypeMismatch => "type_mismatch",
        BadRequest::InvalidParameter => "invalid_parameter",
        BadRequest::UnknownParameter => "unknown_parameter",
        BadRequest::IdempotencyKeyReused => "idempotency_key_reused",
    }
}

/// IETF `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub(crate) fn rate_headers(headers: &mut HeaderMap, rate: &RateState) {
    static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    static LIMIT: HeaderName = HeaderName::from_static("ratelimit");
    // Numbers written with itoa straight into the header's buffer: this runs on every
    // authenticated answer, and `format!` would cost more than the rest of the header work.
    let value = |a: &str, x: u64, b: &str, y: u64| {
        let (mut x_text, mut y_text) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (x, y) = (x_text.format(x), y_text.format(y));
        let mut text = String::with_capacity(a.len() + x.len() + b.len() + y.len());
        for part in [a, x, b, y] {
            text.push_str(part);
        }
        HeaderValue::from_maybe_shared(axum::body::Bytes::from(text)).ok()
    };
    if let Some(v) = value("\"key\";q=", rate.limit.into(), ";w=", rate.window_secs.into()) {
        headers.insert(POLICY.clone(), v);
    }
    if let Some(v) = value("\"key\";r=", rate.remaining.into(), ";t=", rate.reset_secs) {
        headers.insert(LIMIT.clone(), v);
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            // A reference to keygate's own page about the code (`GET /problems/{code}`).
            "type": format!("/problems/{}", self.code),
            "title": self.title,
            "status": self.status.as_u16(),
            "code": self.code,
            "requestId": self.request_id.to_string(),
        });
        if let Some(detail) = self.detail {
            body["detail"] = json!(detail);
        }
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response.headers_mut().extend(self.headers);
        if let Some(key) = self.key {
            crate::app::note_key(&mut response, key, None);
        }
        response
    }
}
