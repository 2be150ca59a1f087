//! Who a Public API call runs as: the key from the request's headers, checked by the service for
//! the call's unit and client address. Verification for services and proxies (`crate::verify`)
//! reads credentials the same way.

use std::net::IpAddr;

use axum::{
    http::{HeaderMap, HeaderName, header},
    response::{IntoResponse, Response},
};
use keygate_domain::UnitId;
use keygate_service::{Credential, Verified, VerifyRequest};

use super::Call;
use crate::{
    client_ip::client_ip,
    problem::{Problem, rate_headers},
};

/// The key from `Authorization: Bearer <key>` (RFC 6750) or `X-API-Key: <key>`. Two
/// `Authorization` headers, two `X-API-Key` headers, or a Bearer key and a different `X-API-Key`
/// are [`Credential::Ambiguous`]: the first is not silently preferred.
pub(crate) fn credential(headers: &HeaderMap) -> Credential<'_> {
    // A name given as text would be parsed and lower-cased on every call.
    static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let mut api_key = headers.get_all(&X_API_KEY).iter();
    let (bearer, second) = (authorization.next(), authorization.next());
    let (x_api_key, second_x) = (api_key.next(), api_key.next());
    if second.is_some() || second_x.is_some() {
        return Credential::Ambiguous;
    }
    let bearer = bearer.and_then(|v| v.to_str().ok()).and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
    });
    let x_api_key = x_api_key.and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty());
    match (bearer, x_api_key) {
        (Some(a), Some(b)) if a != b => Credential::Ambiguous,
        (Some(key), _) | (None, Some(key)) => Credential::Key(key),
        (None, None) => Credential::Missing,
    }
}

/// `{unitId}` must be a positive integer; anything else names no unit.
pub(crate) fn parse_unit(text: &str) -> Option<UnitId> {
    text.parse::<i64>().ok().filter(|n| *n > 0).map(UnitId)
}

/// Verifies the call's key for its unit from the client's address: who the call runs as and
/// that address, or the refusal to send.
pub(crate) async fn authenticate(call: &Call, headers: &HeaderMap) -> Result<(Verified, IpAddr), Response> {
    let ip = client_ip(call.peer, headers, &call.state.config.trusted_proxies);
    let request =
        VerifyRequest { credential: credential(headers), client_ip: ip, unit: Some(call.unit), required: None };
    match call.state.keygate.verify(request).await {
        Ok(verified) => Ok((verified, ip)),
        Err(refused) => Err(Problem::refused(refused, call.id).seen_from(ip).into_response()),
    }
}

/// An answer to an authenticated call: the body plus the rate-limit headers, and the key's id
/// noted for the access log.
pub(crate) fn authenticated(v: &Verified, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    rate_headers(response.headers_mut(), &v.rate);
    crate::request_scope::note_key(v.key().id, Some(v.owner.id));
    response
}
