//! The conventions every management API handler shares: who asks ([`Admin`]), JSON bodies
//! ([`JsonBody`]), answers with the key's rate headers, problems from service errors, cursor
//! pages with `Link: <…>; rel="next"` ([`paged`]), and resource versions (`ETag`, `If-Match`).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
};
use keygate_domain::TenantId;
use keygate_service::{Caller, ServiceError, Verified, VerifyRequest};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::{
    AppState, RequestId,
    client_ip::client_ip,
    problem::Problem,
    problem_code::ProblemCode,
    rest::auth::{authenticated, credential},
};

/// The largest management API body: a bulk call of 100 items fits many times over.
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

/// A management API call's key, verified (active user, enabled key, its ranges, the tenant's
/// switch and whitelist, its rate limit) and made the caller of the service's use cases. Which
/// administrative power the call needs is the service's to judge (`admin:…` scopes, groups).
pub(crate) struct Admin {
    pub(crate) v: Verified,
    pub(crate) caller: Caller,
    pub(crate) id: RequestId,
    pub(crate) ip: IpAddr,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let id = request_id(parts);
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
            return Err(Problem::new(ProblemCode::InternalError, id).into_response());
        };
        let ip = client_ip(peer, &parts.headers, &state.config.trusted_proxies);
        let request =
            VerifyRequest { credential: credential(&parts.headers), client_ip: ip, unit: None, required: None };
        match state.keygate.verify(request).await {
            Ok(v) => {
                let caller = v.caller(Some(ip.to_string()));
                Ok(Self { v, caller, id, ip })
            }
            Err(refused) => Err(Problem::refused(refused, id).seen_from(ip).into_response()),
        }
    }
}

impl Admin {
    /// The key's tenant: every management call acts there and nowhere else.
    pub(crate) fn tenant(&self) -> TenantId {
        self.v.tenant.id
    }

    /// `body` as JSON with `status`, the key's rate headers and its id noted for the access log.
    pub(crate) fn answer(&self, status: StatusCode, body: &impl Serialize) -> Response {
        authenticated(&self.v, (status, json(body)))
    }

    /// As [`Self::answer`], with the resource's version in `ETag`.
    pub(crate) fn answer_versioned(&self, status: StatusCode, body: &impl Serialize) -> Response {
        let mut response = self.answer(status, body);
        if let Ok(tag) = HeaderValue::from_str(&etag(body)) {
            response.headers_mut().insert(header::ETAG, tag);
        }
        response
    }

    /// A service error as a problem document, with the key's rate headers.
    pub(crate) fn failed(&self, e: ServiceError) -> Response {
        authenticated(&self.v, Problem::from_service(e, self.id))
    }

    /// A problem of `code` saying `detail`, with the key's rate headers.
    pub(crate) fn problem(&self, code: ProblemCode, detail: impl Into<String>) -> Response {
        authenticated(&self.v, Problem::new(code, self.id).detail(detail))
    }

    /// `Ok` when `If-Match` is absent, `*`, or names `current`'s version; otherwise the `412
    /// precondition_failed` to send (nothing may be written).
    #[allow(clippy::result_large_err)]
    pub(crate) fn if_match(&self, headers: &HeaderMap, current: &impl Serialize) -> Result<(), Response> {
        let Some(wanted) = headers.get(header::IF_MATCH) else { return Ok(()) };
        let now = etag(current);
        let wanted = wanted.to_str().unwrap_or("");
        let matches =
            wanted.split(',').map(str::trim).any(|t| t == "*" || t == now || t.strip_prefix("W/") == Some(&now));
        if matches {
            Ok(())
        } else {
            Err(self.problem(
                ProblemCode::PreconditionFailed,
                format!("If-Match named {wanted}, but the resource is now {now}; nothing was written"),
            ))
        }
    }
}

/// The request id the application gave this request.
pub(crate) fn request_id(parts: &Parts) -> RequestId {
    parts.extensions.get::<RequestId>().copied().unwrap_or(RequestId::Own { prefix: 0, n: 0 })
}

fn json(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A resource's version: a strong tag of the SHA-256 of its JSON representation, so that any
/// change a reader could see changes it.
pub(crate) fn etag(body: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A JSON request body of at most [`BODY_LIMIT`] bytes, read into `T` (whose `serde` attributes
/// should deny unknown fields). A body that is not JSON, or not `T`, is `400 invalid_input` with
/// serde's own words and what was expected.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let id = request_id(&parts);
        let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
            Ok(b) => b,
            Err(_) => {
                return Err(Problem::new(ProblemCode::BodyTooLarge, id)
                    .detail(format!("the body is over {BODY_LIMIT} bytes or did not arrive in time"))
                    .into_response());
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(e) => Err(Problem::new(ProblemCode::InvalidInput, id)
                .detail(format!("the body is not what this operation takes: {e}"))
                .into_response()),
        }
    }
}

/// The most items one page holds, and the default.
pub(crate) const PAGE_MAX: u32 = 200;
pub(crate) const PAGE_DEFAULT: u32 = 50;

/// One page of a listing: the items, and the cursor of the next page (`None`: this is the last).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_cursor: Option<String>,
}

/// A page answered with `Link: <this path with cursor=next>; rel="next"` when there is a next.
pub(crate) fn paged<T: Serialize>(admin: &Admin, uri: &Uri, page: &Page<T>) -> Response {
    let mut response = admin.answer(StatusCode::OK, page);
    if let Some(next) = &page.next_cursor
        && let Ok(link) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", with_cursor(uri, next)))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// `uri`'s path and query with `cursor` set to `next` (any earlier `cursor` dropped).
fn with_cursor(uri: &Uri, next: &str) -> String {
    let mut query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().filter(|(k, _)| k != "cursor").collect())
        .unwrap_or_default();
    query.push(("cursor".to_owned(), next.to_owned()));
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    format!("{}?{encoded}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_keeps_the_filters_and_replaces_the_cursor() {
        let uri: Uri = "/v1/keys?state=active&cursor=12&limit=2".parse().expect("uri");
        assert_eq!(with_cursor(&uri, "40"), "/v1/keys?state=active&limit=2&cursor=40");
    }

    #[test]
    fn a_version_changes_with_any_field_and_is_a_quoted_strong_tag() {
        let a = etag(&serde_json::json!({"purpose": "a"}));
        assert_ne!(a, etag(&serde_json::json!({"purpose": "b"})));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 26, "{a}");
    }
}
