//! `GET /rest/v1/{unitId}/capability`: who am I.

use std::net::IpAddr;

use axum::{
    body::Bytes,
    extract::Request,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::UnitId;
use keygate_service::Verified;

use super::{
    Call,
    auth::{authenticate, authenticated},
    body::Parts,
};

/// Who am I: the key, its user, tenant, unit, effective permissions and the client IP as seen.
/// Any valid key may call it for a unit it may reach.
pub(crate) async fn capability(call: Call, request: Request) -> Response {
    let (verified, ip) = match authenticate(&call, request.headers()).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let fixed = verified.rendered(render_capability_rest);
    if fixed.is_empty() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    // The per-call head, then the bytes shared with the cache, without joining them.
    let body = Parts::new([Bytes::from(capability_head(ip, call.unit)), Bytes::from_owner(fixed)], ());
    authenticated(&verified, ([(header::CONTENT_TYPE, super::call::JSON.clone())], axum::body::Body::new(body)))
}

/// The capability answer is `{"clientIp":…,"unit":…` + the rest. Only the two leading fields
/// vary per call; the rest depends only on the key, its user and its tenant, so it is rendered
/// once per (key, user, tenant) and kept with the cached key ([`Verified::rendered`]), and sent
/// from there: it is not copied per call.
fn capability_head(ip: IpAddr, unit: UnitId) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"clientIp":""#;
    const UNIT: &[u8] = br#"","unit":"#;
    // The longest IPv6 text is 45 bytes, the longest unit number 19.
    let mut out = Vec::with_capacity(HEAD.len() + 45 + UNIT.len() + 19);
    out.extend_from_slice(HEAD);
    // An IP address and a number never need JSON escaping.
    match ip {
        IpAddr::V4(v4) => {
            // Four small numbers: cheaper than the formatting machinery of `Display`.
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
    out.extend_from_slice(UNIT);
    out.extend_from_slice(itoa::Buffer::new().format(unit.0).as_bytes());
    out
}

/// `,"key":{…},"permissions":[…],"tenant":"…","user":{…}}`; empty if serialising failed.
fn render_capability_rest(v: &Verified) -> Vec<u8> {
    let render = || -> serde_json::Result<Vec<u8>> {
        let key = v.key();
        let scopes = key.scopes.as_ref();
        let mut out = br#","dormantScopes":"#.to_vec();
        serde_json::to_writer(&mut out, &v.owner.permissions.dormant_scopes(scopes))?;
        out.extend_from_slice(br#","key":"#);
        serde_json::to_writer(
            &mut out,
            &KeyBody {
                display: &key.display,
                expires_at: key.expires_at.map(|t| t.to_rfc3339()),
                id: key.id,
                ip_ranges: Displayed(&key.ip_ranges),
                purpose: key.purpose.as_str(),
                scopes: key.scopes.as_ref().map(|s| s.to_strings()),
            },
        )?;
        out.extend_from_slice(br#","permissions":"#);
        // The own-records rule spelled out: what the key really reaches, not only its grants.
        serde_json::to_writer(&mut out, &v.owner.permissions.effective_list(scopes))?;
        out.extend_from_slice(br#","tenant":"#);
        serde_json::to_writer(&mut out, v.tenant.slug.as_str())?;
        out.extend_from_slice(br#","user":"#);
        let owner = &v.owner;
        serde_json::to_writer(
            &mut out,
            &UserBody { category: owner.category.as_str(), email: &owner.email, id: owner.id, name: &owner.name },
        )?;
        out.push(b'}');
        Ok(out)
    };
    render().unwrap_or_else(|e| {
        tracing::error!(error = %e, key = %v.key().id, "serialising a capability answer failed");
        Vec::new()
    })
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

struct AsStr<'a, T: std::fmt::Display>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for AsStr<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_around_the_rendered_rest_is_one_json_document_for_either_ip_version() {
        let rest = br#","tenant":"acme"}"#;
        for (ip, text) in [("203.0.113.255", "203.0.113.255"), ("2001:db8::1", "2001:db8::1"), ("0.0.0.0", "0.0.0.0")] {
            let mut body = capability_head(ip.parse().expect("ip"), UnitId(4_000_000_000));
            body.extend_from_slice(rest);
            let json: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(json["clientIp"], text);
            assert_eq!(json["unit"], 4_000_000_000_i64);
            assert_eq!(json["tenant"], "acme");
        }
    }
}
