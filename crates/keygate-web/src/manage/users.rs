//! `/v1/users…`: the tenant's users over the management API (list, create, read, change,
//! deactivate and activate, set and remove a password, the user's keys), and the small query
//! and path helpers the users, groups, units and settings files share.
//!
//! Every handler asks one use case of the service with the key as the caller: the service
//! checks the administrative power (`admin:users:*`, or `admin:keys:read` for reads) and the
//! grant ceiling. A password arrives in a body, goes to the service as a secret and appears in
//! no answer, log or audit detail.

#![allow(clippy::result_large_err, reason = "a handler's early answer is a Response, made once per request")]

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
    routing::{get, post, put},
};
use keygate_domain::{KeyId, UnitId, UserId};
use keygate_service::UserRecord;
use keygate_service::{CreateUser, KeyQuery, UserPatch, UserQuery};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    extract::{Admin, JsonBody, PAGE_DEFAULT, PAGE_MAX, Page, paged},
    keys::wire::KeyWire,
};
use crate::{AppState, problem_code::ProblemCode, rest::auth::authenticated};

/// The users routes, merged by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{id}", get(get_user).patch(change_user))
        .route("/v1/users/{id}/deactivate", post(deactivate_user))
        .route("/v1/users/{id}/activate", post(activate_user))
        .route("/v1/users/{id}/password", put(set_password).delete(remove_password))
        .route("/v1/users/{id}/keys", get(list_user_keys))
}

/// A user as the API shows it (the same names as `keygate users list --json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserJson {
    id: i64,
    email: String,
    name: String,
    category: &'static str,
    active: bool,
    has_password: bool,
    groups: Vec<String>,
    units: Option<Vec<i64>>,
    created_at: String,
}

impl From<UserRecord> for UserJson {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            name: u.name,
            category: u.category.as_str(),
            active: u.active,
            has_password: u.has_password,
            groups: u.groups,
            units: u.units.map(|u| u.into_iter().map(|u| u.0).collect()),
            created_at: u.created_at.to_rfc3339(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewUserBody {
    email: String,
    name: String,
    category: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    units: Option<Vec<i64>>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeUserBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    units: Option<Option<Vec<i64>>>,
    #[serde(default)]
    active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// `Some(None)` for an explicit `null`, so that absent (`None`) and null differ.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `GET /v1/users?active=&category=&q=&cursor=&limit=`: a page of the tenant's users by id.
/// Needs `admin:users:read` (or `admin:keys:read`).
async fn list_users(admin: Admin, State(state): State<AppState>, uri: Uri, RawQuery(raw): RawQuery) -> Response {
    let q = match query(&admin, raw, &["active", "category", "q", "cursor", "limit"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let parsed = (|| {
        Ok::<_, Response>(UserQuery {
            after: cursor(&admin, &q)?.map(UserId),
            limit: limit(&admin, &q)?,
            active: q.get("active").map(|v| boolean(&admin, "active", v)).transpose()?,
            category: q.get("category").cloned(),
            contains: q.get("q").cloned(),
        })
    })();
    let query = match parsed {
        Ok(query) => query,
        Err(r) => return r,
    };
    if let Some(c) = &query.category
        && c != "personal"
        && c != "programmatic"
    {
        return admin.problem(ProblemCode::InvalidParameter, "`category` is `personal` or `programmatic`");
    }
    match state.keygate.list_users_page(&admin.caller, admin.tenant(), query).await {
        Ok((users, next)) => {
            let page = Page {
                items: users.into_iter().map(UserJson::from).collect::<Vec<_>>(),
                next_cursor: next.map(|u| u.0.to_string()),
            };
            paged(&admin, &uri, &page)
        }
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/users`: creates a user (201). Needs `admin:users:write`; what the user gets through
/// their groups and units must lie within the key's own powers.
async fn create_user(admin: Admin, State(state): State<AppState>, JsonBody(body): JsonBody<NewUserBody>) -> Response {
    let keygate = &state.keygate;
    let (tenant, caller) = (admin.tenant(), &admin.caller);
    let new = CreateUser {
        inactive: body.active == Some(false),
        email: body.email,
        name: body.name,
        category: body.category,
        groups: body.groups,
        units: body.units.map(|u| u.into_iter().map(UnitId).collect()),
        password: body.password.map(SecretString::from),
    };
    let id = match keygate.create_user(caller, tenant, new).await {
        Ok(id) => id,
        Err(e) => return admin.failed(e),
    };
    match keygate.get_user(caller, tenant, id).await {
        Ok(user) => admin.answer_versioned(StatusCode::CREATED, &UserJson::from(user)),
        Err(e) => admin.failed(e),
    }
}

/// `GET /v1/users/{id}`, with its version in `ETag`. Needs `admin:users:read` (or
/// `admin:keys:read`).
async fn get_user(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "user", &id) };
    match state.keygate.get_user(&admin.caller, admin.tenant(), UserId(id)).await {
        Ok(user) => admin.answer_versioned(StatusCode::OK, &UserJson::from(user)),
        Err(e) => admin.failed(e),
    }
}

/// `PATCH /v1/users/{id}` {name?, category?, groups?, units?, active?}: all given fields in one
/// judged write, or none; `If-Match` → `412` when the user changed. Needs `admin:users:write`.
async fn change_user(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChangeUserBody>,
) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "user", &id) };
    let keygate = &state.keygate;
    let (tenant, caller, user) = (admin.tenant(), &admin.caller, UserId(id));
    let current = match keygate.get_user(caller, tenant, user).await {
        Ok(u) => UserJson::from(u),
        Err(e) => return admin.failed(e),
    };
    if let Err(r) = admin.if_match(&headers, &current) {
        return r;
    }
    let patch = UserPatch {
        name: body.name,
        category: body.category,
        groups: body.groups,
        units: body.units.map(|u| u.map(|u| u.into_iter().map(UnitId).collect())),
        active: body.active,
    };
    let empty = patch.name.is_none()
        && patch.category.is_none()
        && patch.groups.is_none()
        && patch.units.is_none()
        && patch.active.is_none();
    if !empty && let Err(e) = keygate.patch_user(caller, tenant, user, patch).await {
        return admin.failed(e);
    }
    answer_user(&admin, &state, user).await
}

/// `POST /v1/users/{id}/deactivate`: the user's keys are refused from the next request on.
/// Needs `admin:users:write`; nobody deactivates themselves.
async fn deactivate_user(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    set_active(admin, state, id, false).await
}

/// `POST /v1/users/{id}/activate`: hands the user (and their keys) back, judged by the ceiling.
/// Needs `admin:users:write`.
async fn activate_user(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    set_active(admin, state, id, true).await
}

async fn set_active(admin: Admin, state: AppState, id: String, active: bool) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "user", &id) };
    match state.keygate.set_user_active(&admin.caller, admin.tenant(), UserId(id), active).await {
        Ok(_) => answer_user(&admin, &state, UserId(id)).await,
        Err(e) => admin.failed(e),
    }
}

/// `PUT /v1/users/{id}/password` {password}: `204`; the password is never returned. Needs
/// `admin:users:write`, and the user's powers within the key's (whoever sets it can log in).
async fn set_password(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Response {
    password(admin, state, id, Some(SecretString::from(body.password))).await
}

/// `DELETE /v1/users/{id}/password`: `204` (programmatic users only). Needs `admin:users:write`.
async fn remove_password(admin: Admin, State(state): State<AppState>, Path(id): Path<String>) -> Response {
    password(admin, state, id, None).await
}

async fn password(admin: Admin, state: AppState, id: String, password: Option<SecretString>) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "user", &id) };
    match state.keygate.set_user_password(&admin.caller, admin.tenant(), UserId(id), password).await {
        Ok(()) => authenticated(&admin.v, StatusCode::NO_CONTENT),
        Err(e) => admin.failed(e),
    }
}

/// `GET /v1/users/{id}/keys?cursor=&limit=`: the user's keys, newest first. Needs
/// `admin:keys:read` (the keys listing's power).
async fn list_user_keys(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(id) = path_id(&id) else { return not_found(&admin, "user", &id) };
    let q = match query(&admin, raw, &["cursor", "limit"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (before, limit) = match (cursor(&admin, &q), limit(&admin, &q)) {
        (Ok(c), Ok(l)) => (c, l),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let keygate = &state.keygate;
    let (tenant, caller, user) = (admin.tenant(), &admin.caller, UserId(id));
    if let Err(e) = keygate.get_user(caller, tenant, user).await {
        return admin.failed(e);
    }
    let query = KeyQuery { user: Some(user), before: before.map(KeyId), limit, ..KeyQuery::default() };
    let (keys, next) = match keygate.list_keys_page(caller, tenant, &query).await {
        Ok(page) => page,
        Err(e) => return admin.failed(e),
    };
    let page =
        Page { items: keys.iter().map(KeyWire::from).collect::<Vec<_>>(), next_cursor: next.map(|k| k.0.to_string()) };
    paged(&admin, &uri, &page)
}

async fn answer_user(admin: &Admin, state: &AppState, user: UserId) -> Response {
    match state.keygate.get_user(&admin.caller, admin.tenant(), user).await {
        Ok(u) => admin.answer_versioned(StatusCode::OK, &UserJson::from(u)),
        Err(e) => admin.failed(e),
    }
}

/// A numeric id from the path; anything else names nothing.
pub(crate) fn path_id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|n| *n >= 0)
}

/// `404 not_found` for a path id that is not a number.
pub(crate) fn not_found(admin: &Admin, what: &str, id: &str) -> Response {
    admin.problem(ProblemCode::NotFound, format!("there is no {what} `{}` in this tenant", id.escape_debug()))
}

/// The query's parameters by name: `400 unknown_parameter` for a name not in `allowed`, `400
/// invalid_parameter` for a name given twice.
pub(crate) fn query(admin: &Admin, raw: Option<String>, allowed: &[&str]) -> Result<HashMap<String, String>, Response> {
    let mut out = HashMap::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(admin.problem(
                ProblemCode::UnknownParameter,
                format!(
                    "this operation takes no parameter `{}`; it takes: {}",
                    name.escape_debug(),
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(admin.problem(ProblemCode::InvalidParameter, format!("`{name}` is given more than once")));
        }
    }
    Ok(out)
}

/// `cursor`: the id the previous page ended with.
pub(crate) fn cursor(admin: &Admin, q: &HashMap<String, String>) -> Result<Option<i64>, Response> {
    q.get("cursor")
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                admin.problem(ProblemCode::InvalidParameter, "`cursor` is the `nextCursor` of a previous page")
            })
        })
        .transpose()
}

/// `limit`: 1 to [`PAGE_MAX`], [`PAGE_DEFAULT`] when absent.
pub(crate) fn limit(admin: &Admin, q: &HashMap<String, String>) -> Result<u32, Response> {
    match q.get("limit") {
        None => Ok(PAGE_DEFAULT),
        Some(l) => l.parse::<u32>().ok().filter(|n| (1..=PAGE_MAX).contains(n)).ok_or_else(|| {
            admin.problem(ProblemCode::InvalidParameter, format!("`limit` is a number from 1 to {PAGE_MAX}"))
        }),
    }
}

/// A `true`/`false` parameter.
pub(crate) fn boolean(admin: &Admin, name: &str, value: &str) -> Result<bool, Response> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(admin.problem(ProblemCode::InvalidParameter, format!("`{name}` is `true` or `false`"))),
    }
}

/// One page of `items` (sorted by id) after `cursor`, and the next cursor.
pub(crate) fn page_by_id<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> i64,
    after: Option<i64>,
    limit: u32,
) -> (Vec<T>, Option<String>) {
    let mut items: Vec<T> = items.into_iter().filter(|t| after.is_none_or(|a| id(t) > a)).collect();
    items.sort_by_key(|t| id(t));
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        let next = items.last().map(|t| id(t).to_string());
        (items, next)
    } else {
        (items, None)
    }
}
