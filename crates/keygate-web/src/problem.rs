//! RFC 9457 problem responses: the one place where refusals and errors become the Public API's
//! HTTP answers. What each code means and which status it has is [`crate::problem_code`]'s.

use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::RefusalCode;
use keygate_service::{FieldError, RateState, Refused, ServiceError};
use serde_json::json;

use crate::{
    RequestId,
    problem_code::{ProblemCode, classify},
};

/// A problem document with its status and extra headers.
#[derive(Debug)]
pub(crate) struct Problem {
    code: ProblemCode,
    detail: Option<String>,
    request_id: RequestId,
    headers: HeaderMap,
    /// Field-level errors of a rejected write (RFC 9457 extension member `errors`).
    errors: Vec<FieldError>,
    /// The key a refusal was about, when it is one of the tenant's: for the access log.
    key: Option<keygate_domain::KeyId>,
}

impl Problem {
    /// A problem with the code's own status and title; its `detail` is the code's advice until
    /// [`Self::detail`] gives a more precise one.
    pub(crate) fn new(code: ProblemCode, request_id: RequestId) -> Self {
        Self { code, detail: None, request_id, headers: HeaderMap::new(), errors: Vec::new(), key: None }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A service error, as [`classify`] classifies it (internal causes are logged there with the
    /// request id, never sent).
    pub(crate) fn from_service(e: ServiceError, request_id: RequestId) -> Self {
        let c = classify(e, request_id);
        let mut p = Self::new(c.code, request_id).detail(c.detail);
        p.errors = c.errors;
        if c.code == ProblemCode::Refusal(RefusalCode::InsufficientPermission) {
            p.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"keygate\", error=\"insufficient_scope\""),
            );
        }
        if let Some(secs) = c.retry_after_secs {
            p.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        p
    }

    /// `503 unavailable`: keygate cannot judge the call now; retry after `retry_after_secs`.
    pub(crate) fn unavailable(retry_after_secs: Option<u64>, request_id: RequestId) -> Self {
        let mut p = Self::new(ProblemCode::Unavailable, request_id);
        let secs = retry_after_secs.unwrap_or(keygate_service::UNAVAILABLE_RETRY_AFTER_SECS);
        p.headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        p
    }

    /// Says which address keygate judged, on `ip_not_allowed` (the caller may be behind a proxy or
    /// NAT and not know what address it calls from).
    pub(crate) fn seen_from(mut self, ip: std::net::IpAddr) -> Self {
        if self.code == ProblemCode::Refusal(RefusalCode::IpNotAllowed) {
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
        let mut p = Self::new(ProblemCode::Refusal(code), request_id);
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
        let status = self.status();
        let code = self.code.code();
        let mut body = json!({
            // A reference to keygate's own page about the code (`GET /problems/{code}`).
            "type": format!("/problems/{code}"),
            "title": self.code.title(),
            "status": status.as_u16(),
            // Every problem says what to do: the code's advice when there is nothing more precise.
            "detail": self.detail.as_deref().unwrap_or(self.code.advice()),
            "code": code,
            "requestId": self.request_id.to_string(),
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response.headers_mut().extend(self.headers);
        if let Some(key) = self.key {
            crate::request_scope::note_key(key, None);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/v1/keys/verify` refused a key without `keys:verify` with no `detail`; every refusal and
    /// every other problem carries one now (its code's advice when nothing more precise is known).
    #[tokio::test]
    async fn every_refusal_and_every_problem_carries_a_detail() {
        let id = RequestId::Own { prefix: 1, n: 2 };
        let refusals = RefusalCode::ALL.into_iter().map(|code| Problem::refused(Refused::from(code), id));
        let others = crate::ProblemCode::ALL.into_iter().map(|code| Problem::new(code, id));
        for problem in refusals.chain(others) {
            let code = problem.code;
            let bytes = axum::body::to_bytes(problem.into_response().into_body(), 1 << 16).await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(detail.len() >= 20, "{}: `{detail}`", code.code());
        }
    }
}
