//! The operator plane's operations in the OpenAPI document (issue 21): `/v1/operator/tenants…`,
//! their schemas and realistic examples, under the `operatorCredential` security scheme (a
//! `kgop_…` credential; a tenant's key is refused there). No I/O here.

use serde_json::{Value, json};

use super::parts::ref_response;

/// A removal confirmation as the examples show it (its format and checksum are real).
const EXAMPLE_OPERATOR_CONFIRMATION: &str = "kgop_7Jq2mXcV9bLr4TnA8sKd1WfY3hGe6uZp2DKvVH";

fn security() -> Value {
    json!([{ "operatorCredential": [] }])
}

fn ref_schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The `operatorCredential` security scheme, for `components.securitySchemes`.
pub(super) fn security_scheme() -> Value {
    json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "kgop_ + 32 base62 characters + a 6-character base62 CRC-32",
        "description": "`Authorization: Bearer kgop_…`: an operator credential, issued by `keygate operators issue` \
            and shown once. Only the operator plane (`/v1/operator/…`) takes it; a tenant's key is refused there \
            and it is refused everywhere else.",
    })
}

fn tenant_example(slug: &str, name: &str, public_api: bool) -> Value {
    json!({ "id": 7, "slug": slug, "name": name, "publicApi": public_api, "createdAt": "2026-12-07T09:30:00Z" })
}

fn slug_parameter() -> Value {
    json!({
        "name": "slug",
        "in": "path",
        "required": true,
        "description": "The tenant's slug.",
        "schema": { "type": "string", "minLength": 2, "maxLength": 63, "pattern": "^[a-z0-9][a-z0-9-]*[a-z0-9]$" },
        "example": "globex",
    })
}

fn problems(statuses: &[u16]) -> serde_json::Map<String, Value> {
    statuses.iter().map(|s| (s.to_string(), ref_response(&format!("Problem{s}")))).collect()
}

fn responses(success: (&str, Value), statuses: &[u16]) -> Value {
    let mut out = problems(statuses);
    out.insert(success.0.to_owned(), success.1);
    Value::Object(out)
}

fn answer(description: &str, schema: &str, example: Value) -> Value {
    json!({
        "description": description,
        "headers": { "X-Request-Id": { "$ref": "#/components/headers/X-Request-Id" } },
        "content": { "application/json": { "schema": ref_schema(schema), "example": example } },
    })
}

/// The operations, by path.
pub(super) fn paths() -> Value {
    let created = json!({
        "tenant": tenant_example("globex", "Globex Corporation", false),
        "admin": {
            "id": 41,
            "email": "grace@globex.example",
            "name": "Grace Hopper",
            "category": "personal",
            "active": true,
            "hasPassword": true,
            "groups": ["Configurator", "Supervisor", "User configurator"],
            "units": null,
            "createdAt": "2026-12-07T09:30:00Z",
        },
    });
    json!({
        "/v1/operator/tenants": {
            "get": {
                "operationId": "operatorListTenants",
                "tags": ["management"],
                "summary": "Every tenant, by slug, a page at a time (operator plane)",
                "description": "Pages of at most 200 tenants; the next page's URL is in `Link: <…>; rel=\"next\"` \
                    and its cursor in `nextCursor`.",
                "security": security(),
                "parameters": [
                    { "name": "limit", "in": "query", "required": false, "description": "Tenants per page (default 50).",
                      "schema": { "type": "integer", "minimum": 1, "maximum": 200 }, "example": 2 },
                    { "name": "cursor", "in": "query", "required": false,
                      "description": "The `nextCursor` of the previous page.", "schema": { "type": "string" } },
                ],
                "responses": responses(
                    ("200", answer("a page of tenants", "OperatorTenantPage", json!({
                        "items": [tenant_example("acme", "Acme Agency", true), tenant_example("globex", "Globex Corporation", false)],
                        "nextCursor": "globex",
                    }))),
                    &[400, 401, 429, 503],
                ),
            },
            "post": {
                "operationId": "operatorCreateTenant",
                "tags": ["management"],
                "summary": "Create a tenant with its first administrator (operator plane)",
                "description": "One transaction: the tenant (its Public API off, as `keygate init` leaves it), unit 1, \
                    the system groups and the administrator in Supervisor, Configurator and User configurator. A bad \
                    field or a taken slug writes nothing. Without `admin.password`, one is generated and answered \
                    once as `generatedPassword`.",
                "security": security(),
                "requestBody": {
                    "required": true,
                    "content": { "application/json": {
                        "schema": ref_schema("OperatorNewTenant"),
                        "example": {
                            "slug": "globex",
                            "name": "Globex Corporation",
                            "admin": { "email": "grace@globex.example", "name": "Grace Hopper", "password": "correct horse battery staple" },
                        },
                    } },
                },
                "responses": responses(
                    ("201", answer("the tenant and its administrator", "OperatorTenantCreated", created)),
                    &[400, 401, 409, 413, 422, 429, 503],
                ),
            },
        },
        "/v1/operator/tenants/{slug}/api-off": {
            "post": {
                "operationId": "operatorSwitchApiOff",
                "tags": ["management"],
                "summary": "Switch a tenant's Public API off: its keys are refused from the next request on",
                "security": security(),
                "parameters": [slug_parameter()],
                "responses": responses(
                    ("200", answer("the tenant, its API off", "OperatorTenant", tenant_example("globex", "Globex Corporation", false))),
                    &[401, 404, 429, 503],
                ),
            },
        },
        "/v1/operator/tenants/{slug}/removal": {
            "post": {
                "operationId": "operatorRequestTenantRemoval",
                "tags": ["management"],
                "summary": "Ask to remove a tenant: a one-time confirmation, valid 10 minutes (first of two steps)",
                "description": "Asking again replaces the tenant's earlier confirmation. At most 100 removals are \
                    pending at once (`409` beyond).",
                "security": security(),
                "parameters": [slug_parameter()],
                "responses": responses(
                    ("200", answer("the confirmation, shown once", "TenantRemoval", json!({
                        "confirmation": EXAMPLE_OPERATOR_CONFIRMATION,
                        "expiresAt": "2026-12-07T09:40:00Z",
                    }))),
                    &[401, 404, 409, 429, 503],
                ),
            },
        },
        "/v1/operator/tenants/{slug}": {
            "delete": {
                "operationId": "operatorRemoveTenant",
                "tags": ["management"],
                "summary": "Remove a tenant and every row of it (second step, with the confirmation)",
                "description": "Deletes the tenant's users, groups, units, keys, sessions, records, usage and audit \
                    events in one transaction; its keys are refused at once on every node. A wrong, expired or \
                    used confirmation is `409` and removes nothing.",
                "security": security(),
                "parameters": [
                    slug_parameter(),
                    { "name": "confirmation", "in": "query", "required": true,
                      "description": "The confirmation `POST …/removal` answered.",
                      "schema": { "type": "string", "minLength": 1, "maxLength": 100 },
                      "example": EXAMPLE_OPERATOR_CONFIRMATION },
                ],
                "responses": responses(
                    ("204", json!({
                        "description": "the tenant and all its data are gone",
                        "headers": { "X-Request-Id": {
                            "description": "The request's id, as in the access log.",
                            "schema": { "type": "string" },
                            "example": "3f4b0cb7-2c",
                        } },
                    })),
                    &[400, 401, 404, 409, 429, 503],
                ),
            },
        },
    })
}

/// The schemas the operations name.
pub(super) fn schemas() -> Value {
    let time = json!({ "type": "string", "description": "RFC 3339, UTC" });
    json!({
        "OperatorTenant": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "slug", "name", "publicApi", "createdAt"],
            "properties": {
                "id": { "type": "integer" },
                "slug": { "type": "string" },
                "name": { "type": "string" },
                "publicApi": { "type": "boolean" },
                "createdAt": time,
            },
        },
        "OperatorTenantPage": {
            "type": "object",
            "additionalProperties": false,
            "required": ["items", "nextCursor"],
            "properties": {
                "items": { "type": "array", "maxItems": 200, "items": ref_schema("OperatorTenant") },
                "nextCursor": { "type": ["string", "null"] },
            },
        },
        "OperatorNewTenant": {
            "type": "object",
            "additionalProperties": false,
            "required": ["slug", "name", "admin"],
            "properties": {
                "slug": { "type": "string", "minLength": 2, "maxLength": 63, "description": "lowercase letters, digits and inner hyphens" },
                "name": { "type": "string", "minLength": 1, "maxLength": 120 },
                "admin": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["email", "name"],
                    "properties": {
                        "email": { "type": "string" },
                        "name": { "type": "string", "minLength": 1, "maxLength": 120 },
                        "password": { "type": "string", "minLength": 12, "description": "without it, one is generated" },
                    },
                },
            },
        },
        "TenantAdministrator": {
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "email", "name", "category", "active", "hasPassword", "groups", "units", "createdAt"],
            "properties": {
                "id": { "type": "integer" },
                "email": { "type": "string" },
                "name": { "type": "string" },
                "category": { "type": "string", "enum": ["personal", "programmatic"] },
                "active": { "type": "boolean" },
                "hasPassword": { "type": "boolean" },
                "groups": { "type": "array", "items": { "type": "string" } },
                "units": { "type": ["array", "null"], "items": { "type": "integer" } },
                "createdAt": time,
            },
        },
        "OperatorTenantCreated": {
            "type": "object",
            "additionalProperties": false,
            "required": ["tenant", "admin"],
            "properties": {
                "tenant": ref_schema("OperatorTenant"),
                "admin": ref_schema("TenantAdministrator"),
                "generatedPassword": { "type": "string", "description": "only when no password was given; shown once" },
            },
        },
        "TenantRemoval": {
            "type": "object",
            "additionalProperties": false,
            "required": ["confirmation", "expiresAt"],
            "properties": {
                "confirmation": { "type": "string", "description": "one-time; only its digest is stored" },
                "expiresAt": time,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_confirmation_has_the_real_format_and_checksum() {
        assert!(keygate_domain::OperatorSecret::parse(super::EXAMPLE_OPERATOR_CONFIRMATION).is_ok());
    }
}
