//! Key verification for services (`POST /v1/keys/verify`) and for reverse proxies
//! (`/v1/forward-auth`: nginx `auth_request`, Caddy `forward_auth`, Traefik `ForwardAuth`).

use std::net::{IpAddr, SocketAddr};

use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use keygate_domain::{Requirement, Scope, UnitId};
use keygate_service::{CheckRequest, VerifyRequest};
use serde::Deserialize;
use serde_json::json;

use crate::{
    AppState, RequestId,
    client_ip::client_ip,
    problem::Problem,
    problem_code::ProblemCode,
    rest::{
        auth::{authenticated, credential, parse_unit},
        decoded,
    },
};

/// A verify body is a key and three short fields.
const VERIFY_BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VerifyBody {
    key: String,
    ip: Option<String>,
    unit_id: Option<i64>,
    permission: Option<String>,
}

/// Verifies another key of the caller's tenant. Requires a key with the `keys:verify` scope.
/// Without `ip`, the target key's ranges are checked against the calling service's address. A
/// key of another tenant is `unknown_key` whatever its state, and nothing of it is touched; `ip`
/// is a claim, checked against the key's ranges and used for nothing else.
pub(crate) async fn verify_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let caller = match state
        .keygate
        .verify(VerifyRequest {
            credential: credential(&headers),
            client_ip: ip,
            unit: None,
            required: Some(Requirement::VerifyKeys),
        })
        .await
    {
        Ok(v) => v,
        Err(refused) if refused.code == keygate_domain::RefusalCode::InsufficientPermission => {
            return Problem::refused(refused, id)
                .detail("verifying other keys needs a key with the keys:verify scope; this key does not have it")
                .into_response();
        }
        Err(refused) => return Problem::refused(refused, id).into_response(),
    };
    let invalid = |detail: String| Problem::new(ProblemCode::InvalidInput, id).detail(detail).into_response();
    // Read only now that the caller is known: an unauthenticated client cannot make keygate wait
    // for a body.
    let bytes = match axum::body::to_bytes(body, VERIFY_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return invalid(format!("the body is over {VERIFY_BODY_LIMIT} bytes or did not arrive in time")),
    };
    let body: VerifyBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => return invalid(format!("{e}; expected {{\"key\", \"ip\"?, \"unitId\"?, \"permission\"?}}")),
    };
    let claimed_ip = match body.ip.as_deref().map(str::parse::<IpAddr>) {
        None => None,
        Some(Ok(addr)) => Some(keygate_domain::ip::normalise(addr)),
        Some(Err(_)) => return invalid(format!("`{}` is not an IP address", body.ip.unwrap_or_default())),
    };
    let required = match body.permission.as_deref().map(str::parse::<Scope>) {
        None => None,
        Some(Ok(Scope::Resource(r, a))) => Some(Requirement::Resource(r, a)),
        Some(Ok(Scope::KeysVerify)) => Some(Requirement::VerifyKeys),
        Some(Ok(Scope::Admin(a))) => {
            return invalid(format!("`{a}` is a management API scope, not a permission a service asks of a key"));
        }
        Some(Err(e)) => return invalid(e.0),
    };
    let unit = match body.unit_id {
        None => None,
        Some(n) if n > 0 => Some(UnitId(n)),
        Some(n) => return invalid(format!("unitId {n} is not a unit number")),
    };
    let result =
        state.keygate.check_key(&caller, CheckRequest { key: &body.key, source: ip, claimed_ip, unit, required }).await;
    let answer = match result {
        Ok(v) => json!({
            "valid": true,
            "code": null,
            "keyId": v.key().id,
            "userId": v.owner.id,
            "tenant": v.tenant.slug.as_str(),
            "permissions": v.permissions().to_strings(),
        }),
        // No verdict on the key at all: the service is told to retry, never that the key is bad.
        Err(refused) if refused.unavailable => return authenticated(&caller, Problem::refused(refused, id)),
        Err(refused) => {
            json!({ "valid": false, "code": refused.code.code(), "keyId": null, "userId": null, "tenant": null, "permissions": [] })
        }
    };
    authenticated(&caller, Json(answer))
}

/// Verifies the key of the request a proxy is about to forward. Answers 200 with identity
/// headers, or the refusal (401/403/429) for the proxy to return. With `?tenant=SLUG` in the
/// proxy's auth URL, a key of any other tenant is `unknown_key` and touches nothing there.
///
/// The forwarded URI (from a trusted proxy only) decides the unit: `/rest/v1/{unitId}/…` read
/// exactly as keygate's own router reads it. A URI that reaches `/rest/v1/` in any other spelling
/// (case, percent-escapes, dot or empty segments, `;` parameters, backslashes) is refused with
/// `400 unreadable_unit` before the key is looked at: the upstream might read a unit there that
/// keygate did not judge, so it is never accepted as a call without a unit.
pub(crate) async fn forward_auth(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(id): Extension<RequestId>,
    own: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let trusted = state.config.trusted_proxies.contains(peer.ip());
    let uri = trusted
        .then(|| headers.get("x-forwarded-uri").or_else(|| headers.get("x-original-uri")))
        .flatten()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .unwrap_or_default();
    let unit = match forwarded(&uri) {
        Forwarded::Elsewhere => None,
        Forwarded::Unit(unit) => Some(unit),
        Forwarded::Unreadable => return unreadable_unit(id),
    };
    let tenant = own.query().and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("tenant=")));
    let req = VerifyRequest { credential: credential(&headers), client_ip: ip, unit, required: None };
    let verified = match tenant {
        Some(slug) => state.keygate.verify_in_tenant(slug, req).await,
        None => state.keygate.verify(req).await,
    };
    match verified {
        Ok(v) => {
            let mut response = authenticated(&v, StatusCode::OK);
            let h = response.headers_mut();
            let mut set = |name: &'static str, value: String| {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    h.insert(HeaderName::from_static(name), value);
                }
            };
            set("x-keygate-tenant", v.tenant.slug.to_string());
            set("x-keygate-user-id", v.owner.id.to_string());
            set("x-keygate-key-id", v.key().id.to_string());
            set("x-keygate-permissions", v.permissions().to_strings().join(" "));
            response
        }
        Err(refused) => Problem::refused(refused, id).seen_from(ip).into_response(),
    }
}

/// The refusal of a forwarded URI under `/rest/v1/` whose unit keygate cannot read.
fn unreadable_unit(id: RequestId) -> Response {
    Problem::new(ProblemCode::UnreadableUnit, id)
        .detail(
            "the forwarded URI reaches /rest/v1/ only in some reading of it (case, percent-escapes, dot or empty \
         segments, `;` parameters, backslashes), so keygate cannot tell which unit the application will see; \
         send /rest/v1/{unitId}/… with the unit in plain digits and no such spellings",
        )
        .into_response()
}

/// What a forwarded URI addresses, for forward-auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    /// Not the Public API in any reading: judged without a unit.
    Elsewhere,
    /// `/rest/v1/{unitId}/…`, spelled as keygate's router reads it, so every reading names this
    /// unit.
    Unit(UnitId),
    /// The Public API in some reading, but not spelled so that its unit can be read: refused.
    Unreadable,
}

/// Reads a forwarded URI (path and query, as nginx's `$request_uri` or Caddy's and Traefik's
/// `X-Forwarded-Uri`).
fn forwarded(uri: &str) -> Forwarded {
    let path = uri.split('?').next().unwrap_or_default();
    if let Some(unit) = canonical_unit(path) {
        Forwarded::Unit(unit)
    } else if reaches_public_api(path) {
        Forwarded::Unreadable
    } else {
        Forwarded::Elsewhere
    }
}

/// The unit of a path spelled exactly as keygate's router reads `/rest/v1/{unitId}/…`, and that
/// no decoding or normalising of the rest of it can move to another unit: the unit in plain
/// decimal digits (no sign, no leading zero), and after it no empty segment but a final one, no
/// segment that is or decodes to `.` or `..` (blanks around them too), and none whose escapes decode to `/`, `\`, `;`, `%`,
/// `?`, `#` or a control character.
fn canonical_unit(path: &str) -> Option<UnitId> {
    let rest = path.strip_prefix("/rest/v1/")?;
    let mut segments = rest.split('/');
    let unit = segments.next()?;
    if unit.is_empty() || unit.starts_with('0') || !unit.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let unit = parse_unit(unit)?;
    let mut segments = segments.peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() && segments.peek().is_some() {
            return None;
        }
        let text = decoded(segment)?;
        let moves = |c: char| matches!(c, '/' | '\\' | ';' | '%' | '?' | '#') || c.is_control();
        let bare = text.trim_matches(char::is_whitespace);
        if bare == "." || bare == ".." || text.contains(moves) {
            return None;
        }
    }
    Some(unit)
}

/// Whether some server could read `path` as `/rest/v1/…`: after decoding percent-escapes (again
/// and again, for double encodings), reading `\` as `/`, ignoring case, `;` parameters and
/// surrounding blanks of a segment, an absolute URI's scheme and host, and removing empty and dot
/// segments. Deliberately generous: it only decides whether a path that is not in the canonical
/// form is refused.
fn reaches_public_api(path: &str) -> bool {
    let mut text = path.to_owned();
    for _ in 0..8 {
        let once = decode_lossy(&text);
        if once == text {
            break;
        }
        text = once;
    }
    // `ſ` (long s) is `s` to case-insensitive matchers such as Java's equalsIgnoreCase.
    let text = text.replace('\\', "/").to_lowercase().replace('\u{17f}', "s");
    let text = match text.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            rest.find('/').map_or("", |slash| &rest[slash..])
        }
        _ => &text,
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or_default();
        match segment.trim_matches(|c: char| c.is_whitespace() || c.is_control()) {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    segments.first() == Some(&"rest") && segments.get(1) == Some(&"v1")
}

/// `text` with every `%XX` escape decoded, invalid UTF-8 replaced.
fn decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// For the fuzz target: reads `uri` as forward-auth does, asserting what must hold: a unit is read
/// only from a path that reaches the Public API, and it is the unit keygate's router reads there.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_forwarded(uri: &str) {
    if let Forwarded::Unit(unit) = forwarded(uri) {
        let path = uri.split('?').next().unwrap_or_default();
        assert!(reaches_public_api(path), "a unit read from a path outside the Public API: {uri}");
        let raw = path.strip_prefix("/rest/v1/").and_then(|rest| rest.split('/').next());
        assert_eq!(raw.and_then(parse_unit), Some(unit), "forward-auth and the router read different units: {uri}");
    }
}

#[cfg(test)]
mod tests {
    use keygate_domain::UnitId;

    use super::{Forwarded, forwarded};

    #[test]
    fn the_unit_is_read_from_a_public_api_path_only() {
        assert_eq!(forwarded("/rest/v1/3/views/jobs?limit=5"), Forwarded::Unit(UnitId(3)));
        assert_eq!(forwarded("/rest/v1/3/views/my%20jobs"), Forwarded::Unit(UnitId(3)));
        assert_eq!(forwarded("/rest/v1/3/capability/"), Forwarded::Unit(UnitId(3)));
        assert_eq!(forwarded("/rest/v1/12"), Forwarded::Unit(UnitId(12)));
        assert_eq!(forwarded("/rest/v1/3/views/jobs?next=../../1"), Forwarded::Unit(UnitId(3)));
        for elsewhere in ["", "/", "/other/3", "/v1/things?a=1", "/rest/v2/3/views", "/restv1/3", "/api/rest/x"] {
            assert_eq!(forwarded(elsewhere), Forwarded::Elsewhere, "{elsewhere}");
        }
    }

    #[test]
    fn a_public_api_path_in_any_other_spelling_is_unreadable() {
        for uri in [
            "/rest/v1/x/views",
            "/rest/v1/",
            "/rest/v1",
            "/rest/v1//views/jobs",
            "/rest/v1/+2/views/jobs",
            "/rest/v1/02/views/jobs",
            "/rest/v1/-2/views/jobs",
            "/rest/v1/99999999999999999999/views/jobs",
            "/rest/v1/%32/views/jobs",
            "/rest/v1/%2532/views/jobs",
            "/rest/v1/2;x=1/views/jobs",
            "/rest;x/v1/2/views/jobs",
            "/REST/v1/2/views/jobs",
            "/rest/V1/2/views/jobs",
            "/re%73t/v1/2/views/jobs",
            "/re\u{17f}t/v1/2/views/jobs",
            "/rest/v1/1/../2/views/jobs",
            "/rest/v1/1/%2e%2e/2/views/jobs",
            "/rest/v1/1/views/..%2f..%2f2%2fviews%2fjobs",
            "/rest/v1/1/views/%252e%252e/jobs",
            "/rest/v1/./2/views/jobs",
            "//rest/v1/2/views/jobs",
            "/rest//v1/2/views/jobs",
            "/rest/v1/1//../2/views/jobs",
            "/x/../rest/v1/2/views/jobs",
            "/rest%2fv1%2f2/views/jobs",
            "\\rest\\v1\\2\\views\\jobs",
            "/rest/v1\\2/views/jobs",
            "rest/v1/2/views/jobs",
            "http://example.com/rest/v1/2/views/jobs",
            "/rest%20/v1/2/views/jobs",
            "/rest/v1/1/views/jobs%00/../../2",
            "/rest/v1/1/%20..%20/%20..%20/%20..%20/rest/v1/2/views/jobs",
        ] {
            assert_eq!(forwarded(uri), Forwarded::Unreadable, "{uri}");
        }
    }

    /// Every path of up to five segments from pieces that servers read in different ways: a unit is
    /// only ever read where every reading reaches the Public API, and it is the router's unit.
    #[test]
    fn a_unit_is_read_only_where_every_reading_agrees_with_the_router() {
        const PIECES: [&str; 14] =
            ["rest", "REST", "v1", "1", "2", "%32", "", ".", "..", "%2e%2e", "%20..", "x;y", "a%2fb", "a\\b"];
        let mut units = 0;
        let mut paths = vec![String::new()];
        for _ in 0..5 {
            let mut longer = Vec::new();
            for path in &paths {
                for piece in PIECES {
                    let next = format!("{path}/{piece}");
                    super::fuzz_forwarded(&next);
                    units += usize::from(matches!(forwarded(&next), Forwarded::Unit(_)));
                    longer.push(next);
                }
            }
            paths = longer;
        }
        assert!(units >= 100, "the pieces make canonical paths too: {units}");
    }
}
