//! The management API's keys (`/v1/keys…`): list (filters, cursor pages with `Link`), issue
//! (the secret shown once), read (`ETag`), change settings (`If-Match`, else `412`), disable,
//! enable, revoke, roll, usage; bulk calls in [`bulk`], a key's own reading and rolling in
//! [`self_key`]. Parses, asks one use case of the service with the key as the caller, renders the
//! wire format (the CLI's `--json` names). No rules, audit or SQL here.
//!
//! A key's version (`ETag`) covers its own settings and state (purpose, ranges, scopes, units,
//! expiry, enabled, revoked, rate limit), not its last use: a key in use is not "changed" by
//! every call it makes. `If-Match` is compared inside the writing transaction, so two changes that
//! read the same version cannot both be written.

mod bulk;
mod self_key;
pub(crate) mod wire;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::Response,
    routing::{get, post},
};
use keygate_domain::{KeyId, KeyRecord, UserId};
use keygate_service::{IssuedKey, KeyQuery, KeyStateFilter, KeyUsage, KeyView, UpdateKey};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::extract::{Admin, JsonBody, PAGE_DEFAULT, Page, QueryParams, matches_version, paged};
use crate::{AppState, problem_code::ProblemCode};
use wire::{DEFAULT_OVERLAP_HOURS, IssueBody, KeyWire, RollBody, answer_key, created, issued_wire, version};

/// The key routes, merged by `manage::routes`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/keys", get(list_keys).post(issue_key))
        .route("/v1/keys/bulk", post(bulk::bulk_keys))
        .route("/v1/keys/self", get(self_key::show_own_key))
        .route("/v1/keys/self/roll", post(self_key::roll_own_key))
        .route("/v1/keys/{id}", get(show_key).patch(update_key))
        .route("/v1/keys/{id}/disable", post(disable_key))
        .route("/v1/keys/{id}/enable", post(enable_key))
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route("/v1/keys/{id}/roll", post(roll_key))
        .route("/v1/keys/{id}/usage", get(key_usage))
}

/// `issued` answered `201`, with the new key as the caller (an administrator) reads it.
async fn answer_issued(admin: &Admin, state: &AppState, issued: IssuedKey) -> Response {
    let id = issued.record.id;
    match state.keygate.key_view(&admin.caller, admin.tenant(), id).await {
        Ok(view) => created(admin, &issued_wire(&view, issued), id),
        Err(e) => admin.failed(e),
    }
}

/// A key id from the path; anything else names no key (see [`no_key`]).
pub(crate) fn key_id(text: &str) -> Option<KeyId> {
    text.parse::<i64>().ok().filter(|n| *n > 0).map(KeyId)
}

/// `404`: the path names no key.
pub(crate) fn no_key(admin: &Admin, text: &str) -> Response {
    admin.problem(ProblemCode::NotFound, format!("key {text} was not found"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum StateParam {
    Active,
    Disabled,
    Expired,
    Revoked,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    user: Option<i64>,
    state: Option<StateParam>,
    purpose: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/keys` — the tenant's keys, newest first. `admin:keys:read`.
async fn list_keys(
    admin: Admin,
    State(state): State<AppState>,
    uri: Uri,
    QueryParams(q): QueryParams<ListQuery>,
) -> Response {
    let before = match q.cursor.as_deref().map(|c| c.parse::<i64>().ok().filter(|n| *n > 0)) {
        None => None,
        Some(Some(n)) => Some(KeyId(n)),
        Some(None) => {
            return admin.problem(ProblemCode::InvalidParameter, "cursor must be a cursor this listing gave");
        }
    };
    let query = KeyQuery {
        user: q.user.map(UserId),
        state: q.state.map(|s| match s {
            StateParam::Active => KeyStateFilter::Active,
            StateParam::Disabled => KeyStateFilter::Disabled,
            StateParam::Expired => KeyStateFilter::Expired,
            StateParam::Revoked => KeyStateFilter::Revoked,
        }),
        purpose: q.purpose,
        before,
        limit: q.limit.unwrap_or(PAGE_DEFAULT),
    };
    match state.keygate.list_keys_page(&admin.caller, admin.tenant(), &query).await {
        Ok((views, next)) => {
            let page =
                Page { items: views.iter().map(KeyWire::from).collect(), next_cursor: next.map(|k| k.0.to_string()) };
            paged(&admin, &uri, &page)
        }
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/keys` — issues a key for a user of the tenant; `201` with its secret, shown once.
/// `admin:keys:write`; judged by the grant ceiling (a hand-over of everything the key reaches).
async fn issue_key(admin: Admin, State(state): State<AppState>, JsonBody(body): JsonBody<IssueBody>) -> Response {
    let issued = match state.keygate.issue_key(&admin.caller, admin.tenant(), body.into()).await {
        Ok(i) => i,
        Err(e) => return admin.failed(e),
    };
    answer_issued(&admin, &state, issued).await
}

/// `GET /v1/keys/{id}` — one key, with its `ETag`. `admin:keys:read`.
async fn show_key(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = key_id(&id) else { return no_key(&admin, &id) };
    match state.keygate.key_view(&admin.caller, admin.tenant(), id).await {
        Ok(view) => answer_key(&admin, StatusCode::OK, &view),
        Err(e) => admin.failed(e),
    }
}

/// `Some(value)` for a member that is present, even when it is `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    ip_ranges: Option<Vec<String>>,
    /// `null`: no expiry (or the tenant's maximum).
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<String>>,
    /// `null`: the tenant's default.
    #[serde(default, deserialize_with = "present")]
    rate_limit_per_minute: Option<Option<u32>>,
}

/// `PATCH /v1/keys/{id}` — changes purpose, ranges, expiry or rate limit; with `If-Match`, only
/// when the key is still that version (`412` otherwise, nothing written). `admin:keys:write`.
async fn update_key(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Response {
    let Some(id) = key_id(&id) else { return no_key(&admin, &id) };
    let wanted = headers.get(header::IF_MATCH).map(|v| v.to_str().unwrap_or("").to_owned());
    let expect = |key: &KeyRecord| wanted.as_deref().is_none_or(|w| matches_version(w, &version(key)));
    let req = UpdateKey {
        purpose: body.purpose,
        ip_ranges: body.ip_ranges,
        expires: body.expires_at,
        rate_limit_per_minute: body.rate_limit_per_minute,
    };
    match state.keygate.update_key(&admin.caller, admin.tenant(), id, req, &expect).await {
        Ok(Some(view)) => answer_key(&admin, StatusCode::OK, &view),
        Ok(None) => admin.problem(
            ProblemCode::PreconditionFailed,
            format!(
                "If-Match named {}, but key {id} changed since; nothing was written (read it again)",
                wanted.unwrap_or_default()
            ),
        ),
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/keys/{id}/disable` — refused from its next request on. `admin:keys:write`.
async fn disable_key(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    switch(admin, &state, &id, Switch::Disable).await
}

/// `POST /v1/keys/{id}/enable` — works again (judged as a hand-over). `admin:keys:write`.
async fn enable_key(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    switch(admin, &state, &id, Switch::Enable).await
}

/// `POST /v1/keys/{id}/revoke` — refused for good from its next request on. `admin:keys:write`.
async fn revoke_key(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    switch(admin, &state, &id, Switch::Revoke).await
}

enum Switch {
    Disable,
    Enable,
    Revoke,
}

async fn switch(admin: Admin, state: &AppState, id: &str, switch: Switch) -> Response {
    let Some(id) = key_id(id) else { return no_key(&admin, id) };
    let k = &state.keygate;
    let t = Some(admin.tenant());
    let done = match switch {
        Switch::Disable => k.set_key_enabled(&admin.caller, t, id, false).await,
        Switch::Enable => k.set_key_enabled(&admin.caller, t, id, true).await,
        Switch::Revoke => k.revoke_key(&admin.caller, t, id).await,
    };
    if let Err(e) = done {
        return admin.failed(e);
    }
    match k.key_view(&admin.caller, admin.tenant(), id).await {
        Ok(view) => answer_key(&admin, StatusCode::OK, &view),
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/keys/{id}/roll` — a successor (`201`, its secret shown once); the old key works
/// for `overlapHours` more. `admin:keys:write`; judged as a hand-over.
async fn roll_key(admin: Admin, State(state): State<AppState>, Path(id): Path<String>, bytes: Bytes) -> Response {
    let Some(id) = key_id(&id) else { return no_key(&admin, &id) };
    let body = match RollBody::read(&bytes) {
        Ok(b) => b,
        Err(detail) => return admin.problem(ProblemCode::InvalidInput, detail),
    };
    let hours = body.overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
    let issued = match state.keygate.roll_key(&admin.caller, Some(admin.tenant()), id, hours).await {
        Ok(i) => i,
        Err(e) => return admin.failed(e),
    };
    answer_issued(&admin, &state, issued).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    days: Option<i64>,
}

/// The default number of days of a usage answer.
const DEFAULT_USAGE_DAYS: i64 = 30;

/// `GET /v1/keys/{id}/usage?days=N` — calls per day, accepted or refused by code, and the last
/// use. `admin:keys:read`.
async fn key_usage(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<UsageQuery>,
) -> Response {
    let Some(id) = key_id(&id) else { return no_key(&admin, &id) };
    let days = q.days.unwrap_or(DEFAULT_USAGE_DAYS);
    match state.keygate.usage_of_key(&admin.caller, admin.tenant(), id, days).await {
        Ok((view, usage)) => admin.answer(StatusCode::OK, &usage_wire(&view, &usage)),
        Err(e) => admin.failed(e),
    }
}

fn usage_wire(view: &KeyView, usage: &KeyUsage) -> Value {
    let date = |day: i64| keygate_domain::Timestamp(day * 86_400_000).to_date_string();
    let refused = |counts: &std::collections::BTreeMap<String, i64>| -> serde_json::Map<String, Value> {
        counts.iter().filter(|(o, _)| o.as_str() != "accepted").map(|(o, n)| (o.clone(), json!(n))).collect()
    };
    let days: Vec<Value> = usage
        .days
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            json!({
                "date": date(usage.first_day + i as i64),
                "accepted": counts.get("accepted").copied().unwrap_or(0),
                "refused": refused(counts),
            })
        })
        .collect();
    let mut totals = std::collections::BTreeMap::new();
    for counts in &usage.days {
        for (outcome, n) in counts {
            *totals.entry(outcome.clone()).or_insert(0) += n;
        }
    }
    let key = &view.listing.key;
    json!({
        "keyId": key.id.0,
        "from": date(usage.first_day),
        "to": date(usage.first_day + usage.days.len() as i64 - 1),
        "days": days,
        "totals": { "accepted": totals.get("accepted").copied().unwrap_or(0), "refused": refused(&totals) },
        "lastUsedAt": key.last_used_at.map(|t| t.to_rfc3339()),
        "lastUsedIp": key.last_used_ip,
    })
}
