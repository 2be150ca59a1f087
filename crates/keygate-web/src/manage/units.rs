//! `/v1/units…`: the tenant's units (the `{unitId}` of the Public API) over the management API:
//! list, create, read, rename, delete. Needs `admin:users:write` to change (`admin:users:read`
//! or `admin:keys:read` to read); a unit that holds records is never deleted.

#![allow(clippy::result_large_err, reason = "a handler's early answer is a Response, made once per request")]

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
    routing::get,
};
use keygate_domain::UnitId;
use serde::{Deserialize, Serialize};

use super::{
    extract::{Admin, JsonBody, Page, paged},
    users::{cursor, limit, not_found, page_by_id, path_id, query},
};
use crate::{AppState, rest::auth::authenticated};

/// The units routes, merged by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/units", get(list_units).post(create_unit))
        .route("/v1/units/{id}", get(get_unit).patch(rename_unit).delete(delete_unit))
}

/// A unit as the API shows it.
#[derive(Debug, Serialize)]
struct UnitJson {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewUnitBody {
    #[serde(default)]
    id: Option<i64>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RenameUnitBody {
    name: String,
}

/// `GET /v1/units?cursor=&limit=`: the tenant's units by number. Needs `admin:users:read` (or
/// `admin:keys:read`).
async fn list_units(admin: Admin, State(state): State<AppState>, uri: Uri, RawQuery(raw): RawQuery) -> Response {
    let q = match query(&admin, raw, &["cursor", "limit"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (after, limit) = match (cursor(&admin, &q), limit(&admin, &q)) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match state.keygate.list_units(&admin.caller, admin.tenant()).await {
        Ok(units) => {
            let (units, next) = page_by_id(units, |(u, _)| u.0, after, limit);
            let items = units.into_iter().map(|(id, name)| UnitJson { id: id.0, name }).collect();
            paged(&admin, &uri, &Page { items, next_cursor: next })
        }
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/units` {id?, name}: a unit numbered `id` or the next free number (201). Needs
/// `admin:users:write`.
async fn create_unit(admin: Admin, State(state): State<AppState>, JsonBody(body): JsonBody<NewUnitBody>) -> Response {
    match state.keygate.create_unit(&admin.caller, admin.tenant(), body.id, &body.name).await {
        Ok(id) => answer_unit(&admin, &state, id, StatusCode::CREATED).await,
        Err(e) => admin.failed(e),
    }
}

/// `GET /v1/units/{id}`, with its version in `ETag`. Needs `admin:users:read` (or
/// `admin:keys:read`).
async fn get_unit(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "unit", &id) };
    answer_unit(&admin, &state, UnitId(id), StatusCode::OK).await
}

/// `PATCH /v1/units/{id}` {name}: renames the unit; `If-Match` → `412` when it changed. Needs
/// `admin:users:write`.
async fn rename_unit(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RenameUnitBody>,
) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "unit", &id) };
    let current = match unit(&admin, &state, UnitId(id)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = admin.if_match(&headers, &current) {
        return r;
    }
    match state.keygate.rename_unit(&admin.caller, admin.tenant(), UnitId(id), &body.name).await {
        Ok(()) => answer_unit(&admin, &state, UnitId(id), StatusCode::OK).await,
        Err(e) => admin.failed(e),
    }
}

/// `DELETE /v1/units/{id}`: `204`; a unit with records, or the tenant's only unit, is refused
/// (`409`). Needs `admin:users:write`.
async fn delete_unit(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "unit", &id) };
    match state.keygate.delete_unit(&admin.caller, admin.tenant(), UnitId(id)).await {
        Ok(()) => authenticated(&admin.v, StatusCode::NO_CONTENT),
        Err(e) => admin.failed(e),
    }
}

async fn unit(admin: &Admin, state: &AppState, id: UnitId) -> Result<UnitJson, Response> {
    let units = state.keygate.list_units(&admin.caller, admin.tenant()).await.map_err(|e| admin.failed(e))?;
    units
        .into_iter()
        .find(|(u, _)| *u == id)
        .map(|(u, name)| UnitJson { id: u.0, name })
        .ok_or_else(|| not_found(admin, "unit", &id.0.to_string()))
}

async fn answer_unit(admin: &Admin, state: &AppState, id: UnitId, status: StatusCode) -> Response {
    match unit(admin, state, id).await {
        Ok(u) => admin.answer_versioned(status, &u),
        Err(r) => r,
    }
}
