//! `/v1/settings`: the tenant's Public API settings over the management API (the switch, the IP
//! whitelist, the default rate limit, the longest key lifetime). Needs `admin:settings:read` to
//! read and `admin:settings:write` to change; a change applies every given field, or none.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::get,
};
use keygate_domain::TenantPolicy;
use keygate_service::SettingsChange;
use serde::{Deserialize, Serialize};

use super::{
    extract::{Admin, JsonBody},
    users::nullable,
};
use crate::AppState;

/// The settings routes, merged by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/v1/settings", get(get_settings).patch(change_settings))
}

/// The settings as the API shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsJson {
    public_api: bool,
    ip_whitelist: Vec<String>,
    rate_limit_per_minute: u32,
    max_key_lifetime_days: Option<u32>,
}

/// A field that, when present, must hold a value (`null` is a type error).
fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl From<TenantPolicy> for SettingsJson {
    fn from(p: TenantPolicy) -> Self {
        Self {
            public_api: p.public_api,
            ip_whitelist: p.ip_whitelist.to_strings(),
            rate_limit_per_minute: p.rate_limit_per_minute,
            max_key_lifetime_days: p.max_key_lifetime_days,
        }
    }
}

/// A PATCH of the settings: an absent field is left as it is; `null` is refused for the fields
/// that cannot be empty (it would otherwise read as absent, which the document does not allow).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeSettingsBody {
    #[serde(default, deserialize_with = "not_null")]
    public_api: Option<bool>,
    #[serde(default, deserialize_with = "not_null")]
    ip_whitelist: Option<Vec<String>>,
    #[serde(default, deserialize_with = "not_null")]
    rate_limit_per_minute: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    max_key_lifetime_days: Option<Option<u64>>,
}

/// `GET /v1/settings`, with its version in `ETag`. Needs `admin:settings:read`.
async fn get_settings(admin: Admin, State(state): State<AppState>) -> Response {
    match state.keygate.tenant_settings(&admin.caller, admin.tenant()).await {
        Ok(p) => admin.answer_versioned(StatusCode::OK, &SettingsJson::from(p)),
        Err(e) => admin.failed(e),
    }
}

/// `PATCH /v1/settings` {publicApi?, ipWhitelist?, rateLimitPerMinute?, maxKeyLifetimeDays?}:
/// every field is checked first and all are written at once, or none (`422` naming each wrong
/// field). `If-Match` → `412` when the settings changed. Needs `admin:settings:write`.
async fn change_settings(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangeSettingsBody>,
) -> Response {
    let keygate = &state.keygate;
    let (tenant, caller) = (admin.tenant(), &admin.caller);
    let change = SettingsChange {
        public_api: body.public_api,
        ip_whitelist: body.ip_whitelist,
        rate_limit_per_minute: body.rate_limit_per_minute,
        max_key_lifetime_days: body.max_key_lifetime_days,
    };
    // A bad body is refused before any version is compared (422 whatever If-Match names).
    if let Err(e) = keygate_service::Keygate::check_settings(&change) {
        return admin.failed(e);
    }
    if headers.contains_key(axum::http::header::IF_MATCH) {
        let current = match keygate.tenant_settings(caller, tenant).await {
            Ok(p) => SettingsJson::from(p),
            Err(e) => return admin.failed(e),
        };
        if let Err(r) = admin.if_match(&headers, &current) {
            return r;
        }
    }
    match keygate.update_settings(caller, tenant, change).await {
        Ok(p) => admin.answer_versioned(StatusCode::OK, &SettingsJson::from(p)),
        Err(e) => admin.failed(e),
    }
}
