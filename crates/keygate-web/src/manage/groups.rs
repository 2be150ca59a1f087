//! `/v1/groups…`: the tenant's groups over the management API (list, create, read, rename and
//! change grants, delete). Needs `admin:users:write` to change (`admin:users:read` or
//! `admin:keys:read` to read); a group's grants are judged by the service's grant ceiling.

#![allow(clippy::result_large_err, reason = "a handler's early answer is a Response, made once per request")]

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
    routing::get,
};
use keygate_domain::{GroupId, UserId};
use keygate_service::GroupRecord;
use serde::{Deserialize, Serialize};

use super::{
    extract::{Admin, JsonBody, Page, paged},
    users::{boolean, cursor, limit, not_found, page_by_id, path_id, query},
};
use crate::{AppState, rest::auth::authenticated};

/// The groups routes, merged by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/groups", get(list_groups).post(create_group))
        .route("/v1/groups/{id}", get(get_group).patch(change_group).delete(delete_group))
}

/// A group as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson {
    id: i64,
    name: String,
    system: bool,
    grants: Vec<String>,
    members: Vec<i64>,
}

fn group_json(group: GroupRecord, members: &[UserId]) -> GroupJson {
    GroupJson {
        id: group.id.0,
        system: group.system.is_some(),
        grants: group.grants.iter().map(ToString::to_string).collect(),
        name: group.name,
        members: members.iter().map(|u| u.0).collect(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewGroupBody {
    name: String,
    #[serde(default)]
    grants: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeGroupBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    grants: Option<Vec<String>>,
}

/// `GET /v1/groups?cursor=&limit=`: the tenant's groups by id, each with its members' ids.
/// Needs `admin:users:read` (or `admin:keys:read`).
async fn list_groups(admin: Admin, State(state): State<AppState>, uri: Uri, RawQuery(raw): RawQuery) -> Response {
    let q = match query(&admin, raw, &["cursor", "limit"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (after, limit) = match (cursor(&admin, &q), limit(&admin, &q)) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let keygate = &state.keygate;
    let groups = match keygate.list_groups(&admin.caller, admin.tenant()).await {
        Ok(g) => g,
        Err(e) => return admin.failed(e),
    };
    let (groups, next) = page_by_id(groups, |g| g.id.0, after, limit);
    let mut items = Vec::with_capacity(groups.len());
    for group in groups {
        match keygate.group_by_id(&admin.caller, admin.tenant(), group.id).await {
            Ok((group, members)) => items.push(group_json(group, &members)),
            Err(e) => return admin.failed(e),
        }
    }
    paged(&admin, &uri, &Page { items, next_cursor: next })
}

/// `POST /v1/groups` {name, grants}: a custom group (201). Needs `admin:users:write`; every grant
/// must lie within the key's own powers.
async fn create_group(admin: Admin, State(state): State<AppState>, JsonBody(body): JsonBody<NewGroupBody>) -> Response {
    let keygate = &state.keygate;
    match keygate.create_group(&admin.caller, admin.tenant(), &body.name, &body.grants).await {
        Ok(group) => admin.answer_versioned(StatusCode::CREATED, &group_json(group, &[])),
        Err(e) => admin.failed(e),
    }
}

/// `GET /v1/groups/{id}`, with its version in `ETag`. Needs `admin:users:read` (or
/// `admin:keys:read`).
async fn get_group(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "group", &id) };
    match state.keygate.group_by_id(&admin.caller, admin.tenant(), GroupId(id)).await {
        Ok((group, members)) => admin.answer_versioned(StatusCode::OK, &group_json(group, &members)),
        Err(e) => admin.failed(e),
    }
}

/// `PATCH /v1/groups/{id}` {name?, grants?}: renames a custom group and/or sets its grants to
/// exactly `grants`, both in one write (judged: what every member gains must lie within the key's
/// powers; a refusal, or a name another group takes meanwhile, writes nothing). `If-Match` →
/// `412` when the group changed. Needs `admin:users:write`.
async fn change_group(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangeGroupBody>,
) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "group", &id) };
    let keygate = &state.keygate;
    let (tenant, caller) = (admin.tenant(), &admin.caller);
    let (group, members) = match keygate.group_by_id(caller, tenant, GroupId(id)).await {
        Ok(g) => g,
        Err(e) => return admin.failed(e),
    };
    let name = group.name.clone();
    if let Err(r) = admin.if_match(&headers, &group_json(group, &members)) {
        return r;
    }
    // With grants, the new name is written in the same judged write: a refusal, or a name
    // another group takes meanwhile, changes neither.
    let written = match (&body.grants, &body.name) {
        (Some(grants), new_name) => {
            keygate.set_group_grants(caller, tenant, &name, grants, new_name.as_deref()).await.map(drop)
        }
        (None, Some(new_name)) if name != new_name.trim() => {
            keygate.rename_group(caller, tenant, &name, new_name).await
        }
        (None, _) => Ok(()),
    };
    if let Err(e) = written {
        return admin.failed(e);
    }
    match keygate.group_by_id(caller, tenant, GroupId(id)).await {
        Ok((group, members)) => admin.answer_versioned(StatusCode::OK, &group_json(group, &members)),
        Err(e) => admin.failed(e),
    }
}

/// `DELETE /v1/groups/{id}?force=true`: `204`. A group with members is refused (`409`) unless
/// `force=true`, which removes the memberships. Needs `admin:users:write`.
async fn delete_group(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "group", &id) };
    let force = match query(&admin, raw, &["force"]) {
        Ok(q) => match q.get("force").map(|v| boolean(&admin, "force", v)).transpose() {
            Ok(f) => f.unwrap_or(false),
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    let keygate = &state.keygate;
    let (tenant, caller) = (admin.tenant(), &admin.caller);
    let (group, _) = match keygate.group_by_id(caller, tenant, GroupId(id)).await {
        Ok(g) => g,
        Err(e) => return admin.failed(e),
    };
    match keygate.delete_group(caller, tenant, &group.name, force).await {
        Ok(()) => authenticated(&admin.v, StatusCode::NO_CONTENT),
        Err(e) => admin.failed(e),
    }
}
