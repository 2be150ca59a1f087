//! Keys as the management API reads and writes them: the wire shapes (the CLI's
//! `keygate keys list --json` names), a key's version for `ETag`, and the answers that carry a key.
//! A leaf of [`super`], which the key routes, bulk calls and self-rotation share.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use keygate_domain::{KeyId, KeyRecord, UnitId, UserId};
use keygate_service::{IssueKey, IssuedKey, KeyOwner, KeyView};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::manage::extract::{Admin, etag};

/// A key's user as the wire shows it.
#[derive(Debug, Serialize)]
pub(crate) struct UserRef {
    id: i64,
    email: String,
    name: String,
}

/// A key on the wire (the CLI's `keygate keys list --json` names).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyWire {
    id: i64,
    display: String,
    status: &'static str,
    user: UserRef,
    purpose: String,
    ip_ranges: Vec<String>,
    scopes: Option<Vec<String>>,
    units: Option<Vec<i64>>,
    rate_limit_per_minute: Option<u32>,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
    last_used_ip: Option<String>,
    rolled_from: Option<i64>,
}

impl From<&KeyView> for KeyWire {
    fn from(v: &KeyView) -> Self {
        let key = &v.listing.key;
        Self {
            id: key.id.0,
            display: key.display.clone(),
            status: v.status,
            user: UserRef { id: key.user_id.0, email: v.listing.user_email.clone(), name: v.listing.user_name.clone() },
            purpose: key.purpose.as_str().to_owned(),
            ip_ranges: key.ip_ranges.to_strings(),
            scopes: key.scopes.as_ref().map(|s| s.to_strings()),
            units: key.units.as_ref().map(|u| u.iter().map(|u| u.0).collect()),
            rate_limit_per_minute: key.rate_limit_per_minute,
            created_at: key.created_at.to_rfc3339(),
            expires_at: key.expires_at.map(|t| t.to_rfc3339()),
            revoked_at: key.revoked_at.map(|t| t.to_rfc3339()),
            last_used_at: key.last_used_at.map(|t| t.to_rfc3339()),
            last_used_ip: key.last_used_ip.clone(),
            rolled_from: key.rolled_from.map(|k| k.0),
        }
    }
}

/// An issued or rolled key: the secret, shown this once.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedWire {
    key: KeyWire,
    secret: String,
    warnings: Vec<String>,
}

/// `issued` as the wire shows it, with `view` (the new key as the service now shows it).
pub(crate) fn issued_wire(view: &KeyView, issued: IssuedKey) -> IssuedWire {
    IssuedWire { key: KeyWire::from(view), secret: issued.secret.expose().to_owned(), warnings: issued.warnings }
}

/// What a key's `ETag` versions: its own settings and state.
pub(crate) fn version(key: &KeyRecord) -> String {
    etag(&json!([
        key.id.0,
        key.purpose.as_str(),
        key.ip_ranges.to_strings(),
        key.scopes.as_ref().map(|s| s.to_strings()),
        key.units.as_ref().map(|u| u.iter().map(|u| u.0).collect::<Vec<_>>()),
        key.expires_at.map(|t| t.0),
        key.enabled,
        key.revoked_at.map(|t| t.0),
        key.rate_limit_per_minute,
    ]))
}

/// `view` as a 200 (or `status`) answer with its `ETag`.
pub(crate) fn answer_key(admin: &Admin, status: StatusCode, view: &KeyView) -> Response {
    let mut response = admin.answer(status, &KeyWire::from(view));
    if let Ok(tag) = HeaderValue::from_str(&version(&view.listing.key)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

/// An issue request (a bulk issue's item too).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IssueBody {
    user: i64,
    purpose: String,
    ip_ranges: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    units: Option<Vec<i64>>,
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
}

impl From<IssueBody> for IssueKey {
    fn from(b: IssueBody) -> Self {
        IssueKey {
            owner: KeyOwner::Id(UserId(b.user)),
            purpose: b.purpose,
            ip_ranges: b.ip_ranges,
            expires: b.expires_at,
            scopes: b.scopes,
            units: b.units.map(|u| u.into_iter().map(UnitId).collect()),
            rate_limit_per_minute: b.rate_limit_per_minute,
        }
    }
}

/// `201` with `body` and `Location: /v1/keys/{id}`.
pub(crate) fn created(admin: &Admin, body: &impl Serialize, id: KeyId) -> Response {
    let mut response = admin.answer(StatusCode::CREATED, body);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/keys/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A roll's body: how long the old key keeps working.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RollBody {
    /// 0 to 168; default 24.
    #[serde(default)]
    pub(crate) overlap_hours: Option<i64>,
}

impl RollBody {
    /// A roll's body: none at all (a bare `POST`, as a CI script sends it) takes the defaults.
    pub(crate) fn read(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(bytes).map_err(|e| {
            format!("the body is not what this operation takes: {}", crate::manage::extract::without_values(&e))
        })
    }
}

/// The default overlap of a roll, as the command line's.
pub(crate) const DEFAULT_OVERLAP_HOURS: i64 = 24;
