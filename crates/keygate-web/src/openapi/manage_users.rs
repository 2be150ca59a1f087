//! The management API's users, groups, units and settings operations in the OpenAPI document
//! (issue 21): their paths, schemas and examples, merged by [`super::document`]. No I/O here.

use serde_json::{Map, Value, json};

use super::parts::{authenticated_headers, ref_schema, refusals, security};

const USER_ID: i64 = 42;
const GROUP_ID: i64 = 7;
const ETAG: &str = "\"9b2f6c0e41d7a35c8e10f4b2\"";

/// Adds the operations to `paths` and their schemas to `schemas`.
pub(super) fn merge(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    for (name, schema) in schemas_of() {
        schemas.insert(name.to_owned(), schema);
    }
    for (path, mut item) in paths_of() {
        link_created(&mut item);
        paths.insert(path.to_owned(), item);
    }
}

/// OpenAPI `links` from what a create answers to reading, changing and removing it by its id:
/// a client (and schemathesis's stateful phase) chains create → get → update → delete.
fn link_created(item: &mut Value) {
    let follow: &[(&str, &[&str])] = &[
        ("createUser", &["getUser", "updateUser", "deactivateUser", "activateUser", "listUserKeys"]),
        ("createGroup", &["getGroup", "updateGroup", "deleteGroup"]),
        ("createUnit", &["getUnit", "updateUnit", "deleteUnit"]),
    ];
    let Some(created) = item.get_mut("post").filter(|op| op["responses"]["201"].is_object()) else { return };
    let Some((_, targets)) = follow.iter().find(|(id, _)| created["operationId"] == *id) else { return };
    let links: Map<String, Value> = targets
        .iter()
        .map(|target| {
            let mut name = (*target).to_owned();
            name[..1].make_ascii_uppercase();
            (name, json!({ "operationId": target, "parameters": { "id": "$response.body#/id" } }))
        })
        .collect();
    created["responses"]["201"]["links"] = Value::Object(links);
}

fn user_example() -> Value {
    json!({
        "id": USER_ID,
        "email": "ci@acme.example",
        "name": "CI pipeline",
        "category": "programmatic",
        "active": true,
        "hasPassword": false,
        "groups": ["Invoice readers"],
        "units": [1, 2],
        "createdAt": "2026-11-03T08:15:00Z",
    })
}

fn group_example() -> Value {
    json!({
        "id": GROUP_ID,
        "name": "Invoice readers",
        "system": false,
        "grants": ["invoices:read:all", "companies:read:all"],
        "members": [USER_ID],
    })
}

fn settings_example() -> Value {
    json!({
        "publicApi": true,
        "ipWhitelist": ["203.0.113.0/24", "2001:db8::/32"],
        "rateLimitPerMinute": 600,
        "maxKeyLifetimeDays": 365,
    })
}

fn key_example() -> Value {
    json!({
        "id": 318,
        "display": "kg_4Fh2…",
        "status": "active",
        "user": { "id": USER_ID, "email": "ci@acme.example", "name": "CI pipeline" },
        "purpose": "nightly invoice export",
        "ipRanges": ["203.0.113.10/32"],
        "scopes": ["invoices:read"],
        "units": null,
        "rateLimitPerMinute": null,
        "createdAt": "2026-11-03T08:20:00Z",
        "expiresAt": "2027-11-03T00:00:00Z",
        "revokedAt": null,
        "lastUsedAt": "2026-12-06T23:00:04Z",
        "lastUsedIp": "203.0.113.10",
        "rolledFrom": null,
    })
}

fn nullable(ty: &str) -> Value {
    json!([ty, "null"])
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn unit_ids() -> Value {
    json!({ "type": nullable("array"), "items": { "type": "integer", "minimum": 0 }, "minItems": 1,
            "description": "the units the user reaches; null: every unit" })
}

fn page(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "nextCursor"],
        "additionalProperties": false,
        "properties": {
            "items": { "type": "array", "items": ref_schema(item) },
            "nextCursor": { "type": nullable("string"),
                "description": "the `cursor` of the next page (also in `Link: <…>; rel=\"next\"`); null on the last" },
        },
    })
}

fn schemas_of() -> Vec<(&'static str, Value)> {
    let time = json!({ "type": "string", "format": "date-time" });
    let time_or_null = json!({ "type": nullable("string"), "format": "date-time" });
    vec![
        (
            "User",
            json!({
                "type": "object",
                "required": ["id", "email", "name", "category", "active", "hasPassword", "groups", "units", "createdAt"],
                "additionalProperties": false,
                "properties": {
                    "id": { "type": "integer", "minimum": 1 },
                    "email": { "type": "string" },
                    "name": { "type": "string" },
                    "category": { "type": "string", "enum": ["personal", "programmatic"] },
                    "active": { "type": "boolean" },
                    "hasPassword": { "type": "boolean", "description": "the password itself is never returned" },
                    "groups": strings(),
                    "units": unit_ids(),
                    "createdAt": time,
                },
            }),
        ),
        (
            "UserCreate",
            json!({
                "type": "object",
                "required": ["email", "name", "category"],
                "additionalProperties": false,
                "properties": {
                    "email": { "type": "string", "maxLength": 254 },
                    "name": { "type": "string", "minLength": 1, "maxLength": 120 },
                    "category": { "type": "string", "enum": ["personal", "programmatic"] },
                    "groups": { "type": "array", "items": { "type": "string" }, "description": "group names, any case" },
                    "units": unit_ids(),
                    "active": { "type": "boolean", "default": true },
                    "password": { "type": "string", "description": "optional for a programmatic user; never returned" },
                },
            }),
        ),
        (
            "UserUpdate",
            json!({
                "type": "object",
                "additionalProperties": false,
                "description": "Every given field is written in one judged write, or none; absent fields stay.",
                "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 120 },
                    "category": { "type": "string", "enum": ["personal", "programmatic"] },
                    "groups": { "type": "array", "items": { "type": "string" }, "description": "replaces the groups" },
                    "units": unit_ids(),
                    "active": { "type": "boolean" },
                },
            }),
        ),
        (
            "UserPassword",
            json!({
                "type": "object",
                "required": ["password"],
                "additionalProperties": false,
                "properties": { "password": { "type": "string", "minLength": 1 } },
            }),
        ),
        ("UserPage", page("User")),
        (
            "UsersKey",
            json!({
                "type": "object",
                "required": ["id", "display", "status", "user", "purpose", "ipRanges", "scopes", "units",
                    "rateLimitPerMinute", "createdAt", "expiresAt", "revokedAt", "lastUsedAt", "lastUsedIp", "rolledFrom"],
                "additionalProperties": false,
                "properties": {
                    "id": { "type": "integer", "minimum": 1 },
                    "display": { "type": "string", "description": "the key's first characters, to recognise it" },
                    "status": { "type": "string",
                        "enum": ["active", "disabled", "expired", "revoked", "user inactive", "API off"] },
                    "user": {
                        "type": "object",
                        "required": ["id", "email", "name"],
                        "additionalProperties": false,
                        "properties": {
                            "id": { "type": "integer" }, "email": { "type": "string" }, "name": { "type": "string" },
                        },
                    },
                    "purpose": { "type": "string" },
                    "ipRanges": strings(),
                    "scopes": { "type": nullable("array"), "items": { "type": "string" },
                        "description": "null: the key inherits its user's permissions" },
                    "units": { "type": nullable("array"), "items": { "type": "integer" }, "description": "null: every unit" },
                    "rateLimitPerMinute": { "type": nullable("integer"), "description": "null: the tenant's default" },
                    "createdAt": time,
                    "expiresAt": time_or_null,
                    "revokedAt": time_or_null,
                    "lastUsedAt": time_or_null,
                    "lastUsedIp": { "type": nullable("string") },
                    "rolledFrom": { "type": nullable("integer") },
                },
            }),
        ),
        ("UsersKeyPage", page("UsersKey")),
        (
            "Group",
            json!({
                "type": "object",
                "required": ["id", "name", "system", "grants", "members"],
                "additionalProperties": false,
                "properties": {
                    "id": { "type": "integer", "minimum": 1 },
                    "name": { "type": "string" },
                    "system": { "type": "boolean", "description": "Supervisor, Configurator, User configurator: fixed meaning" },
                    "grants": { "type": "array", "items": { "type": "string" }, "description": "resource:read|write:own|all" },
                    "members": { "type": "array", "items": { "type": "integer" }, "description": "the members' user ids" },
                },
            }),
        ),
        (
            "GroupCreate",
            json!({
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": { "name": { "type": "string", "minLength": 1 }, "grants": strings() },
            }),
        ),
        (
            "GroupUpdate",
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "name": { "type": "string", "minLength": 1 },
                    "grants": { "type": "array", "items": { "type": "string" }, "description": "replaces the grants" },
                },
            }),
        ),
        ("GroupPage", page("Group")),
        (
            "Unit",
            json!({
                "type": "object",
                "required": ["id", "name"],
                "additionalProperties": false,
                "properties": { "id": { "type": "integer", "minimum": 0 }, "name": { "type": "string" } },
            }),
        ),
        (
            "UnitCreate",
            json!({
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": {
                    "id": { "type": "integer", "minimum": 0, "maximum": 2_147_483_647_i64,
                        "description": "default: the next free number" },
                    "name": { "type": "string", "minLength": 1, "maxLength": 120 },
                },
            }),
        ),
        (
            "UnitUpdate",
            json!({
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 120 } },
            }),
        ),
        ("UnitPage", page("Unit")),
        (
            "Settings",
            json!({
                "type": "object",
                "required": ["publicApi", "ipWhitelist", "rateLimitPerMinute", "maxKeyLifetimeDays"],
                "additionalProperties": false,
                "properties": {
                    "publicApi": { "type": "boolean", "description": "the tenant's Public API switch" },
                    "ipWhitelist": { "type": "array", "items": { "type": "string" },
                        "description": "CIDR ranges every call must come from, besides the key's own" },
                    "rateLimitPerMinute": { "type": "integer", "minimum": 1, "maximum": 1_000_000_000,
                        "description": "the default per key" },
                    "maxKeyLifetimeDays": { "type": nullable("integer"), "minimum": 1, "maximum": 36_500,
                        "description": "the longest lifetime of a new key; null: none" },
                },
            }),
        ),
        (
            "SettingsUpdate",
            json!({
                "type": "object",
                "additionalProperties": false,
                "description": "Every given field is checked first; all are written, or none.",
                "properties": {
                    "publicApi": { "type": "boolean" },
                    "ipWhitelist": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                    "rateLimitPerMinute": { "type": "integer", "minimum": 1, "maximum": 1_000_000_000 },
                    "maxKeyLifetimeDays": { "type": nullable("integer"), "minimum": 1, "maximum": 36_500 },
                },
            }),
        ),
    ]
}

fn id_parameter(what: &str, example: i64) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": format!("The {what}'s id."),
            "schema": { "type": "integer", "minimum": 0 }, "example": example })
}

fn page_parameters() -> Vec<Value> {
    vec![
        json!({ "name": "cursor", "in": "query", "required": false,
                "description": "The `nextCursor` of the previous page.", "schema": { "type": "string" }, "example": "40" }),
        json!({ "name": "limit", "in": "query", "required": false, "description": "Items per page (default 50).",
                "schema": { "type": "integer", "minimum": 1, "maximum": 200 }, "example": 50 }),
    ]
}

fn if_match() -> Value {
    json!({ "name": "If-Match", "in": "header", "required": false,
            "description": "The `ETag` of the resource as last read: `412 precondition_failed` and nothing written when it changed since.",
            "schema": { "type": "string" }, "example": ETAG })
}

/// A success answer with `schema`, its example, and `ETag` when `versioned`.
fn answer(description: &str, schema: &str, example: Value, versioned: bool, link: bool) -> Value {
    let mut headers = authenticated_headers();
    if versioned {
        headers["ETag"] =
            json!({ "description": "The resource's version, for `If-Match`.", "schema": { "type": "string" } });
    }
    if link {
        headers["Link"] = json!({ "description": "`<…cursor=…>; rel=\"next\"` when there is a next page.",
                                  "schema": { "type": "string" } });
    }
    json!({
        "description": description,
        "headers": headers,
        "content": { "application/json": { "schema": ref_schema(schema), "example": example } },
    })
}

fn no_content(description: &str) -> Value {
    json!({ "description": description, "headers": authenticated_headers() })
}

fn body(schema: &str, example: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": ref_schema(schema), "example": example } } })
}

/// One operation: `status` answers `success`; `extra` problem statuses beside the usual ones.
fn op(
    id: &str,
    summary: &str,
    power: &str,
    parameters: Vec<Value>,
    status: u16,
    success: Value,
    extra: &[u16],
) -> Value {
    let mut responses = refusals(extra);
    responses.insert(status.to_string(), success);
    json!({
        "operationId": id,
        "tags": ["management"],
        "summary": summary,
        "description": format!("Needs {power}. Acts in the key's own tenant: anything of another tenant is `404 not_found`."),
        "security": security(),
        "parameters": parameters,
        "responses": responses,
    })
}

fn with_body(mut operation: Value, body: Value) -> Value {
    operation["requestBody"] = body;
    operation
}

const USERS_READ: &str = "`admin:users:read` or `admin:keys:read` (a User configurator's or a Configurator's key)";
const USERS_WRITE: &str = "`admin:users:write` (a User configurator's key); what anyone gains must lie within the \
    key's own powers (`403 grant_exceeds_actor`, nothing written, audited)";
const SETTINGS_READ: &str = "`admin:settings:read` (a Configurator's key)";
const SETTINGS_WRITE: &str = "`admin:settings:write` (a Configurator's key)";

fn paths_of() -> Vec<(&'static str, Value)> {
    let user_page = json!({ "items": [user_example()], "nextCursor": "42" });
    let mut list_users_params = vec![
        json!({ "name": "active", "in": "query", "required": false, "schema": { "type": "boolean" }, "example": true }),
        json!({ "name": "category", "in": "query", "required": false,
                "schema": { "type": "string", "enum": ["personal", "programmatic"] }, "example": "programmatic" }),
        json!({ "name": "q", "in": "query", "required": false, "description": "Email or name contains this (any case).",
                "schema": { "type": "string", "maxLength": 200 }, "example": "ci@" }),
    ];
    list_users_params.extend(page_parameters());
    let user_id = || id_parameter("user", USER_ID);
    let group_id = || id_parameter("group", GROUP_ID);
    let unit_id = || id_parameter("unit", 2);
    vec![
        (
            "/v1/users",
            json!({
                "get": op("listUsers", "List the tenant's users, by id", USERS_READ, list_users_params, 200,
                    answer("a page of users", "UserPage", user_page, false, true), &[422]),
                "post": with_body(
                    op("createUser", "Create a user", USERS_WRITE, vec![], 201,
                        answer("the user", "User", json!({
                            "id": USER_ID, "email": "ci@acme.example", "name": "CI pipeline", "category": "programmatic",
                            "active": true, "hasPassword": false, "groups": ["Invoice readers"], "units": [1, 2],
                            "createdAt": "2026-11-03T08:15:00Z",
                        }), true, false), &[409, 422]),
                    body("UserCreate", json!({ "email": "ci@acme.example", "name": "CI pipeline",
                        "category": "programmatic", "groups": ["Invoice readers"], "units": [1, 2] })),
                ),
            }),
        ),
        (
            "/v1/users/{id}",
            json!({
                "get": op("getUser", "Read a user", USERS_READ, vec![user_id()], 200,
                    answer("the user", "User", user_example(), true, false), &[]),
                "patch": with_body(
                    op("updateUser", "Change a user's name, category, groups, units or active flag", USERS_WRITE,
                        vec![user_id(), if_match()], 200,
                        answer("the user as it is now", "User", json!({
                            "id": USER_ID, "email": "ci@acme.example", "name": "CI pipeline (EU)", "category": "programmatic",
                            "active": true, "hasPassword": false, "groups": ["Invoice readers"], "units": [2],
                            "createdAt": "2026-11-03T08:15:00Z",
                        }), true, false), &[409, 412, 422]),
                    body("UserUpdate", json!({ "name": "CI pipeline (EU)", "units": [2] })),
                ),
            }),
        ),
        (
            "/v1/users/{id}/deactivate",
            json!({ "post": op("deactivateUser", "Deactivate a user: their keys are refused from the next request on",
                USERS_WRITE, vec![user_id()], 200,
                answer("the user", "User", json!({
                    "id": USER_ID, "email": "ci@acme.example", "name": "CI pipeline", "category": "programmatic",
                    "active": false, "hasPassword": false, "groups": ["Invoice readers"], "units": [1, 2],
                    "createdAt": "2026-11-03T08:15:00Z",
                }), true, false), &[422]) }),
        ),
        (
            "/v1/users/{id}/activate",
            json!({ "post": op("activateUser", "Activate a user again (hands the user and their keys back: judged)",
                USERS_WRITE, vec![user_id()], 200, answer("the user", "User", user_example(), true, false), &[]) }),
        ),
        (
            "/v1/users/{id}/password",
            json!({
                "put": with_body(
                    op("setUserPassword", "Set a user's password (never returned; their console sessions end)",
                        USERS_WRITE, vec![user_id()], 204, no_content("the password is set"), &[422]),
                    body("UserPassword", json!({ "password": "a long passphrase of the user's own" })),
                ),
                "delete": op("removeUserPassword", "Remove a programmatic user's password", USERS_WRITE, vec![user_id()],
                    204, no_content("the password is removed"), &[422]),
            }),
        ),
        (
            "/v1/users/{id}/keys",
            json!({ "get": op("listUserKeys", "List a user's keys, newest first",
                "`admin:keys:read` (a Configurator's key)", [vec![user_id()], page_parameters()].concat(), 200,
                answer("a page of keys", "UsersKeyPage", json!({ "items": [key_example()], "nextCursor": null }), false, true),
                &[]) }),
        ),
        (
            "/v1/groups",
            json!({
                "get": op("listGroups", "List the tenant's groups, by id", USERS_READ, page_parameters(), 200,
                    answer("a page of groups", "GroupPage", json!({ "items": [group_example()], "nextCursor": null }),
                        false, true), &[]),
                "post": with_body(
                    op("createGroup", "Create a custom group", USERS_WRITE, vec![], 201,
                        answer("the group", "Group", json!({ "id": GROUP_ID, "name": "Invoice readers", "system": false,
                            "grants": ["invoices:read:all", "companies:read:all"], "members": [] }), true, false),
                        &[409, 422]),
                    body("GroupCreate", json!({ "name": "Invoice readers", "grants": ["invoices:read:all", "companies:read:all"] })),
                ),
            }),
        ),
        (
            "/v1/groups/{id}",
            json!({
                "get": op("getGroup", "Read a group and its members", USERS_READ, vec![group_id()], 200,
                    answer("the group", "Group", group_example(), true, false), &[]),
                "patch": with_body(
                    op("updateGroup", "Rename a custom group or replace its grants (every member's keys follow)",
                        USERS_WRITE, vec![group_id(), if_match()], 200,
                        answer("the group as it is now", "Group", json!({ "id": GROUP_ID, "name": "Finance readers",
                            "system": false, "grants": ["invoices:read:all"], "members": [USER_ID] }), true, false),
                        &[409, 412, 422]),
                    body("GroupUpdate", json!({ "name": "Finance readers", "grants": ["invoices:read:all"] })),
                ),
                "delete": op("deleteGroup", "Delete a custom group (with members only with `force=true`)", USERS_WRITE,
                    vec![group_id(), json!({ "name": "force", "in": "query", "required": false,
                        "description": "Also remove the group's memberships.", "schema": { "type": "boolean" }, "example": true })],
                    204, no_content("the group is gone"), &[409, 422]),
            }),
        ),
        (
            "/v1/units",
            json!({
                "get": op("listUnits", "List the tenant's units, by number", USERS_READ, page_parameters(), 200,
                    answer("a page of units", "UnitPage",
                        json!({ "items": [{ "id": 1, "name": "Main unit" }, { "id": 2, "name": "Prague office" }],
                                "nextCursor": null }), false, true), &[]),
                "post": with_body(
                    op("createUnit", "Create a unit", USERS_WRITE, vec![], 201,
                        answer("the unit", "Unit", json!({ "id": 2, "name": "Prague office" }), true, false), &[409, 422]),
                    body("UnitCreate", json!({ "name": "Prague office" })),
                ),
            }),
        ),
        (
            "/v1/units/{id}",
            json!({
                "get": op("getUnit", "Read a unit", USERS_READ, vec![unit_id()], 200,
                    answer("the unit", "Unit", json!({ "id": 2, "name": "Prague office" }), true, false), &[]),
                "patch": with_body(
                    op("updateUnit", "Rename a unit", USERS_WRITE, vec![unit_id(), if_match()], 200,
                        answer("the unit", "Unit", json!({ "id": 2, "name": "Brno office" }), true, false), &[412, 422]),
                    body("UnitUpdate", json!({ "name": "Brno office" })),
                ),
                "delete": op("deleteUnit", "Delete a unit that holds no records (never the last)", USERS_WRITE,
                    vec![unit_id()], 204, no_content("the unit is gone"), &[409]),
            }),
        ),
        (
            "/v1/settings",
            json!({
                "get": op("getSettings", "Read the tenant's Public API settings", SETTINGS_READ, vec![], 200,
                    answer("the settings", "Settings", settings_example(), true, false), &[]),
                "patch": with_body(
                    op("updateSettings", "Change the tenant's Public API settings: all given fields, or none",
                        SETTINGS_WRITE, vec![if_match()], 200,
                        answer("the settings as they are now", "Settings", json!({
                            "publicApi": true, "ipWhitelist": ["203.0.113.0/24", "2001:db8::/32"],
                            "rateLimitPerMinute": 1200, "maxKeyLifetimeDays": 90,
                        }), true, false), &[412, 422]),
                    body("SettingsUpdate", json!({ "rateLimitPerMinute": 1200, "maxKeyLifetimeDays": 90 })),
                ),
            }),
        ),
    ]
}
