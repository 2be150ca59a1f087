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
    rest::auth::{authenticated, credential, parse_unit},
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
        Err(refused) => return Problem::refused(refused, id).into_response(),
    };
    let invalid = |detail: String| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", "The request body is not valid", id)
            .detail(detail)
            .into_response()
    };
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
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let unit = unit_of(uri);
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

/// The unit of a `/rest/v1/{unitId}/…` path, if the forwarded URI is one.
fn unit_of(uri: &str) -> Option<UnitId> {
    let path = uri.split('?').next().unwrap_or("");
    let rest = path.strip_prefix("/rest/v1/")?;
    parse_unit(rest.split('/').next().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unit_is_read_from_a_public_api_path_only() {
        assert_eq!(super::unit_of("/rest/v1/3/views/jobs?limit=5"), Some(keygate_domain::UnitId(3)));
        assert_eq!(super::unit_of("/other/3"), None);
        assert_eq!(super::unit_of("/rest/v1/x/views"), None);
    }
}
