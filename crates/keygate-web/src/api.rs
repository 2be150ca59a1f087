//! The authenticated Public API (`/rest/v1/{unitId}/…`).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::UnitId;
use keygate_service::{Credential, Verified, VerifyRequest};

use crate::{
    AppState,
    client_ip::client_ip,
    problem::{Problem, rate_headers},
};

/// The key from `Authorization: Bearer <key>` (RFC 6750) or `X-API-Key: <key>`.
pub(crate) fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.trim().is_empty()
        {
            return Credential::Key(token.trim());
        }
    }
    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        Some(key) if !key.trim().is_empty() => Credential::Key(key.trim()),
        _ => Credential::Missing,
    }
}

/// `{unitId}` must be a positive integer; anything else names no unit.
pub(crate) fn parse_unit(text: &str) -> Option<UnitId> {
    text.parse::<i64>().ok().filter(|n| *n > 0).map(UnitId)
}

/// Who am I: the key, its user, tenant, unit, effective permissions and the client IP as seen.
/// Any valid key may call it for a unit it may reach.
pub(crate) async fn capability(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(unit): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let Some(unit) = parse_unit(&unit) else {
        return Problem::new(StatusCode::NOT_FOUND, "unknown_unit", "There is no such unit", state.next_request_id())
            .detail(format!("`{unit}` is not a unit number"))
            .into_response();
    };
    let verified = match state
        .keygate
        .verify(VerifyRequest { credential: credential(&headers), client_ip: ip, unit: Some(unit), required: None })
        .await
    {
        Ok(v) => v,
        Err(refused) => return Problem::refused(refused, state.next_request_id()).into_response(),
    };
    let v = &verified;
    // Typed, borrowed fields: no serde_json::Value tree (BTreeMap + owned Strings) per request.
    // Field order is alphabetical, so the bytes are the same as the json! version produced.
    let body = CapabilityBody {
        client_ip: ip,
        key: KeyBody {
            display: &v.key.display,
            expires_at: v.key.expires_at.map(|t| t.to_rfc3339()),
            id: v.key.id,
            ip_ranges: Displayed(&v.key.ip_ranges),
            purpose: v.key.purpose.as_str(),
            scopes: v.key.scopes.as_ref().map(|s| s.to_strings()),
        },
        permissions: PermissionList(v.permissions()),
        tenant: v.tenant.slug.as_str(),
        unit,
        user: UserBody {
            category: v.owner.category.as_str(),
            email: &v.owner.email,
            id: v.owner.id,
            name: &v.owner.name,
        },
    };
    // Sized once for a typical answer instead of grown from axum's default.
    let mut bytes = Vec::with_capacity(512);
    if let Err(e) = serde_json::to_writer(&mut bytes, &body) {
        tracing::error!(error = %e, "serialising a capability answer failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    authenticated(&verified, ([(header::CONTENT_TYPE, "application/json")], bytes))
}

/// A list serialised element by element through `Display`, without collecting strings first.
struct Displayed<'a>(&'a keygate_domain::IpRanges);

impl serde::Serialize for Displayed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for net in self.0.iter() {
            seq.serialize_element(&AsStr(net))?;
        }
        seq.end()
    }
}

/// The permission list as `Permissions::to_strings` spells it, written without allocating.
struct PermissionList<'a>(&'a keygate_domain::Permissions);

impl serde::Serialize for PermissionList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let p = self.0;
        let mut seq = s.serialize_seq(None)?;
        for (on, name) in [
            (p.supervisor, "supervisor"),
            (p.configurator, "configurator"),
            (p.user_configurator, "user-configurator"),
            (p.verify_keys, "keys:verify"),
        ] {
            if on {
                seq.serialize_element(name)?;
            }
        }
        for grant in p.grants() {
            seq.serialize_element(&AsStr(grant))?;
        }
        seq.end()
    }
}

struct AsStr<'a, T: std::fmt::Display>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for AsStr<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CapabilityBody<'a> {
    client_ip: std::net::IpAddr,
    key: KeyBody<'a>,
    permissions: PermissionList<'a>,
    tenant: &'a str,
    unit: UnitId,
    user: UserBody<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyBody<'a> {
    display: &'a str,
    expires_at: Option<String>,
    id: keygate_domain::KeyId,
    ip_ranges: Displayed<'a>,
    purpose: &'a str,
    scopes: Option<Vec<String>>,
}

#[derive(serde::Serialize)]
struct UserBody<'a> {
    category: &'a str,
    email: &'a str,
    id: keygate_domain::UserId,
    name: &'a str,
}

/// An answer to an authenticated call: the body plus the rate-limit headers.
pub(crate) fn authenticated(v: &Verified, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    rate_headers(response.headers_mut(), &v.rate);
    response
}
