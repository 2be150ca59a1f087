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

/// A key a layer in front of the handler already verified (the `Idempotency-Key` layer), so
/// that [`Admin`] does not verify it (and count it against its rate limit) twice.
#[derive(Clone)]
pub(crate) struct AlreadyVerified {
    pub(crate) v: Verified,
    pub(crate) ip: IpAddr,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let id = request_id(parts);
        if let Some(AlreadyVerified { v, ip }) = parts.extensions.remove::<AlreadyVerified>() {
            let caller = v.caller(Some(ip.to_string()));
            return Ok(Self { v, caller, id, ip });
        }
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
    #[allow(clippy::result_large_err, reason = "the refusal is the response itself, sent at once")]
    pub(crate) fn if_match(&self, headers: &HeaderMap, current: &impl Serialize) -> Result<(), Response> {
        let Some(wanted) = headers.get(header::IF_MATCH) else { return Ok(()) };
        let now = etag(current);
        let wanted = wanted.to_str().unwrap_or("");
        if matches_version(wanted, &now) {
            Ok(())
        } else {
            Err(self.problem(
                ProblemCode::PreconditionFailed,
                format!("If-Match named {wanted}, but the resource is now {now}; nothing was written"),
            ))
        }
    }
}

/// Whether an `If-Match` value (`*`, or a list of tags) names the version `now`.
pub(crate) fn matches_version(wanted: &str, now: &str) -> bool {
    wanted.split(',').map(str::trim).any(|t| t == "*" || t == now || t.strip_prefix("W/") == Some(now))
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
        // Every management body is a JSON object: serde would also read a struct from an array
        // of its fields in order (`[null, null]`), which the document does not allow.
        let value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => {
                return Err(Problem::new(ProblemCode::InvalidInput, id)
                    .detail("the body must be a JSON object, as this operation's schema says")
                    .into_response());
            }
            Err(e) => Err(e),
        };
        match value.and_then(serde_json::from_value) {
            Ok(value) => Ok(Self(value)),
            Err(e) => Err(Problem::new(ProblemCode::InvalidInput, id)
                .detail(format!("the body is not what this operation takes: {}", without_values(&e)))
                .into_response()),
        }
    }
}

/// Query parameters read into `T` (whose `serde` attributes should deny unknown fields). A
/// parameter `T` does not take is `400 unknown_parameter`; a value it cannot read (a `limit`
/// that is not a number, an unknown `state`) is `400 invalid_parameter`; both with serde's words.
/// Never axum's plain-text rejection.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        read_query(&parts.uri)
            .map(Self)
            .map_err(|(code, detail)| Problem::new(code, request_id(parts)).detail(detail).into_response())
    }
}

/// `uri`'s query as `T`, or the problem code and detail of why not.
fn read_query<T: DeserializeOwned>(uri: &Uri) -> Result<T, (ProblemCode, String)> {
    axum::extract::Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|rejection| {
        let words = rejection.body_text();
        let words = words.strip_prefix("Failed to deserialize query string: ").unwrap_or(&words);
        let code =
            if words.contains("unknown field") { ProblemCode::UnknownParameter } else { ProblemCode::InvalidParameter };
        (code, format!("the query string is not what this operation takes: {words}"))
    })
}

/// serde's words for a body it could not read, without the value it quotes: a wrongly typed
/// field may be a secret (`{"password": 123456}`), and an answer never repeats one.
pub(crate) fn without_values(e: &serde_json::Error) -> String {
    let text = e.to_string();
    for lead in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = text.strip_prefix(lead)
            && let Some(at) = rest.find(", expected")
        {
            let kind = rest[..at].split([' ', '`', '"']).next().unwrap_or("value");
            return format!("{lead}{kind}{}", &rest[at..]);
        }
    }
    text
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Listing {
        limit: Option<u32>,
        state: Option<String>,
    }

    #[test]
    fn query_parameters_are_read_and_strangers_or_bad_values_are_named_problems() {
        let ok: Listing = read_query(&"/v1/keys?limit=200&state=active".parse().expect("uri")).expect("read");
        assert_eq!((ok.limit, ok.state.as_deref()), (Some(200), Some("active")));
        let none: Listing = read_query(&"/v1/keys".parse().expect("uri")).expect("no query");
        assert_eq!(none.limit, None);
        let (code, detail) = read_query::<Listing>(&"/v1/keys?colour=red".parse().expect("uri")).expect_err("unknown");
        assert_eq!(code, ProblemCode::UnknownParameter);
        assert!(detail.contains("colour") && detail.contains("limit"), "{detail}");
        let (code, detail) = read_query::<Listing>(&"/v1/keys?limit=lots".parse().expect("uri")).expect_err("bad");
        assert_eq!(code, ProblemCode::InvalidParameter);
        assert!(detail.contains("limit"), "{detail}");
    }

    #[test]
    fn a_body_error_names_the_type_it_got_but_never_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only read")]
        struct Body {
            password: String,
        }
        for body in [r#"{"password": 12345678}"#, r#"{"password": true}"#, r#"{"password": ["hunter2hunter2"]}"#] {
            let e = serde_json::from_str::<Body>(body).expect_err("a wrong type");
            let said = without_values(&e);
            assert!(said.starts_with("invalid type: ") && said.contains("expected a string"), "{said}");
            assert!(!said.contains("12345678") && !said.contains("hunter2"), "{said}");
        }
    }

    #[test]
    fn a_version_changes_with_any_field_and_is_a_quoted_strong_tag() {
        let a = etag(&serde_json::json!({"purpose": "a"}));
        assert_ne!(a, etag(&serde_json::json!({"purpose": "b"})));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 26, "{a}");
    }
}
