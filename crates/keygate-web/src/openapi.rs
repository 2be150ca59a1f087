//! The API contract: an OpenAPI 3.1 document of everything outside the console, built from the
//! code's own catalogues so that it cannot drift from what the handlers do.
//!
//! - each view and its columns from `keygate_domain::views::VIEWS` (a row schema per view, one
//!   path per view so that each answer is checked against its own row);
//! - the record endpoints and their writable fields from the write specs that validate writes
//!   (`Keygate::writable_records`);
//! - every problem code from [`ProblemCode::ALL`] (the refusals of the validity rule among them);
//! - the problem document, the two ways to send a key, and the rate-limit headers.
//!
//! Served at `GET /openapi.json`, printed by `keygate openapi`, committed as `docs/openapi.json`
//! (a test compares the two), and rendered by the console's API reference page. No I/O here.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};
use keygate_domain::{
    RefusalCode,
    views::{ColumnType, Guard, VIEWS, View},
};
use keygate_service::Keygate;
use serde_json::{Map, Value, json};

use crate::ProblemCode;
use parts::{json_ok, ref_header, ref_response, ref_schema, refusals, security};

mod examples;
mod manage_audit;
mod manage_keys;
mod manage_operator;
mod manage_users;
mod parts;
pub use examples::EXAMPLE_KEY;

/// The document as pretty JSON with a final newline: what `keygate openapi` prints and
/// `docs/openapi.json` holds.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /openapi.json`. Anyone may read it: it describes the API, not any tenant's data.
pub(crate) async fn serve_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document_text()).into_response()
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert("Problem".into(), problem_schema());
    schemas.insert(
        "FieldError".into(),
        json!({
            "type": "object",
            "required": ["field", "message"],
            "properties": { "field": { "type": "string" }, "message": { "type": "string" } },
        }),
    );
    schemas.insert("Capability".into(), capability_schema());
    schemas.insert("VerifyRequest".into(), verify_request_schema());
    schemas.insert("VerifyAnswer".into(), verify_answer_schema());
    schemas.insert(
        "Created".into(),
        json!({
            "type": "object",
            "required": ["id"],
            "properties": { "id": { "type": "integer", "minimum": 1 } },
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "CreatedDocument".into(),
        json!({
            "type": "object",
            "required": ["id", "number"],
            "properties": { "id": { "type": "integer", "minimum": 1 }, "number": { "type": "string" } },
            "additionalProperties": false,
        }),
    );
    schemas.insert(
        "PageMetadata".into(),
        json!({
            "type": "object",
            "required": ["count", "limit", "nextOffset"],
            "properties": {
                "count": { "type": "integer", "minimum": 0, "description": "rows on this page" },
                "limit": { "type": "integer", "minimum": 1, "maximum": Keygate::MAX_VIEW_LIMIT },
                "nextOffset": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "the `offset` of the next page; null on the last page",
                },
            },
            "additionalProperties": false,
        }),
    );

    paths.insert("/rest/v1/{unitId}/capability".into(), capability_path());
    for view in VIEWS {
        let row = format!("{}Row", schema_name(view.name));
        let page = format!("{}Page", schema_name(view.name));
        schemas.insert(row.clone(), row_schema(view, false));
        schemas.insert(page.clone(), page_schema(&row));
        paths.insert(format!("/rest/v1/{{unitId}}/views/{}", view.name), view_path(view, &page));
    }
    let writable = Keygate::writable_records();
    for (resource, fields) in &writable {
        let fields: Vec<Field> = fields
            .iter()
            .map(|f| Field {
                name: f.name,
                required: f.required,
                nullable: f.nullable,
                json_type: f.json_type,
                format: f.format,
                max_length: f.max_length,
                one_of: f.one_of,
                minimum: f.minimum,
                maximum: f.maximum,
                about: f.about,
            })
            .collect();
        let name = schema_name(resource);
        let record_view = VIEWS.iter().find(|v| v.name == *resource);
        if let Some(view) = record_view {
            schemas.insert(name.clone(), row_schema(view, true));
        }
        let (create, update) = if *resource == "users" {
            (users_create_schema(), users_update_schema())
        } else {
            (write_schema(&fields, true), write_schema(&fields, false))
        };
        schemas.insert(format!("{name}Create"), create);
        schemas.insert(format!("{name}Update"), update);
        paths.insert(format!("/rest/v1/{{unitId}}/{resource}"), record_path(resource, &name, record_view.is_some()));
    }
    manage_keys::add(&mut paths, &mut schemas);
    manage_audit::add(&mut paths, &mut schemas);
    paths.insert("/v1/keys/verify".into(), verify_path());
    paths.insert("/v1/forward-auth".into(), forward_auth_path());
    manage_users::merge(&mut paths, &mut schemas);
    paths.insert("/healthz".into(), text_path("healthz", "Liveness: the process answers.", &[(200, "ok")]));
    paths.insert(
        "/readyz".into(),
        text_path(
            "readyz",
            "Readiness: the database answers within 1 s (and, on PostgreSQL, the change listener is connected).",
            &[(200, "ready"), (503, "not ready; the body says why")],
        ),
    );
    paths.insert(
        "/metrics".into(),
        text_path("metrics", "Prometheus metrics (text exposition format).", &[(200, "the metrics")]),
    );
    paths.insert(
        "/problems/{code}".into(),
        json!({ "get": {
            "operationId": "problem_type",
            "tags": ["ops"],
            "summary": "What a problem `code` means: the page a problem document's `type` points to",
            "security": [],
            "parameters": [{ "name": "code", "in": "path", "required": true, "schema": { "type": "string" } }],
            "responses": {
                "200": {
                    "description": "the code, its status, what it means and what to do: an HTML page for a \
                        request that accepts `text/html`, plain text (the code first) for any other",
                    "content": {
                        "text/plain": { "schema": { "type": "string" } },
                        "text/html": { "schema": { "type": "string" } },
                    },
                },
                "404": ref_response("Problem404"),
            },
        } }),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": {
            "operationId": "openapi",
            "tags": ["ops"],
            "summary": "This document",
            "security": [],
            "responses": { "200": {
                "description": "the OpenAPI 3.1 document of keygate's HTTP API",
                "content": { "application/json": { "schema": { "type": "object" } } },
            } },
        } }),
    );

    if let (Value::Object(p), Value::Object(s)) = (manage_operator::paths(), manage_operator::schemas()) {
        paths.extend(p);
        schemas.extend(s);
    }

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "keygate",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "The Public API with user-bound API keys",
            "description": "Every call of the Public API (`/rest/v1/{unitId}/…`) is verified first and then runs as \
                the key's user, with that user's current groups intersected with the key's scopes. Refusals and \
                errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code` and the \
                request id; 401 and 403 carry an RFC 6750 `WWW-Authenticate` challenge, 429 `Retry-After`, and \
                authenticated answers `RateLimit-Policy` and `RateLimit`. Keys are sent as \
                `Authorization: Bearer <key>` or `X-API-Key: <key>`, never in a query string; two different \
                credentials in one request are refused.",
            "license": { "name": "Apache License 2.0", "identifier": env!("CARGO_PKG_LICENSE") },
        },
        "servers": [{ "url": "/", "description": "this keygate server" }],
        "tags": [
            { "name": "public-api", "description": "Who the key is: `capability`." },
            { "name": "views", "description": "The data API's views: paged, filtered reads." },
            { "name": "records", "description": "One record by id; create and change records." },
            { "name": "verification", "description": "Key verification for services and reverse proxies." },
            { "name": "management", "description": "The management API (`/v1/…`): keys, users, groups, units, settings, audit events, and the operator plane." },
            { "name": "ops", "description": "Liveness, readiness, metrics and this document." },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "kg_ + 32 base62 characters + a 6-character base62 CRC-32",
                    "description": "`Authorization: Bearer <key>` (RFC 6750).",
                },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`." },
                "operatorCredential": manage_operator::security_scheme(),
            },
            "headers": headers(),
            "parameters": {
                "unitId": {
                    "name": "unitId",
                    "in": "path",
                    "required": true,
                    "description": "The unit (per-tenant integer id) the call is about.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": i64::MAX },
                },
                "recordId": {
                    "name": "id",
                    "in": "query",
                    "required": true,
                    "description": "The record's id.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": i64::MAX },
                },
                "idempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": false,
                    "description": "A retry with the same key and the same body gets the first answer; the same key \
                        with a different body is refused with `idempotency_key_reused`. 1 to 255 printable characters.",
                    "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$" },
                },
            },
            "responses": problem_responses(),
        },
    });
    examples::add(&mut doc);
    manage_audit::idempotent_posts(&mut doc);
    doc
}

/// `companies.client` → `CompaniesClient`.
fn schema_name(name: &str) -> String {
    name.split(['.', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Every problem code keygate sends, with its status and what it means (a refusal by its title).
pub(crate) fn all_problem_codes() -> Vec<(&'static str, u16, &'static str)> {
    ProblemCode::ALL
        .iter()
        .map(|c| match c {
            ProblemCode::Refusal(r) => (c.code(), c.status(), r.title()),
            _ => (c.code(), c.status(), c.about()),
        })
        .collect()
}

fn problem_schema() -> Value {
    let codes = all_problem_codes();
    let table: String = codes.iter().map(|(code, status, about)| format!("\n- `{code}` ({status}): {about}")).collect();
    json!({
        "type": "object",
        "description": "An RFC 9457 problem document with keygate's extension members.",
        "required": ["type", "title", "status", "code", "requestId"],
        "properties": {
            "type": { "type": "string", "format": "uri-reference", "description": "`/problems/{code}`: keygate's own page about the code" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string" },
            "code": {
                "type": "string",
                "enum": codes.iter().map(|(c, _, _)| *c).collect::<Vec<_>>(),
                "description": format!("A stable code; never renamed.{table}"),
            },
            "requestId": { "type": "string", "description": "Also sent as `X-Request-Id`; the logs carry it." },
            "errors": {
                "type": "array",
                "items": ref_schema("FieldError"),
                "description": "With `invalid_fields`: every field that is not valid.",
            },
        },
    })
}

fn headers() -> Value {
    json!({
        "RateLimit-Policy": {
            "description": "The key's rate policy (draft-ietf-httpapi-ratelimit-headers): `\"key\";q=<requests>;w=<seconds>`.",
            "schema": { "type": "string", "pattern": "^\"key\";q=[0-9]+;w=[0-9]+$" },
        },
        "RateLimit": {
            "description": "What is left of the key's quota: `\"key\";r=<remaining>;t=<seconds until reset>`.",
            "schema": { "type": "string", "pattern": "^\"key\";r=[0-9]+;t=[0-9]+$" },
        },
        "Retry-After": {
            "description": "Seconds to wait before retrying (RFC 9110).",
            "schema": { "type": "integer", "minimum": 0 },
        },
        "WWW-Authenticate": {
            "description": "An RFC 6750 Bearer challenge, e.g. `Bearer realm=\"keygate\", error=\"invalid_token\", \
                error_description=\"key_revoked\"`.",
            "schema": { "type": "string", "pattern": "^Bearer realm=\"keygate\"" },
        },
        "X-Request-Id": {
            "description": "The request id, sent with every answer; the same as a problem document's \
                `requestId`, and on every log line of the request.",
            "schema": { "type": "string" },
        },
        "Allow": { "description": "The methods the path answers.", "schema": { "type": "string" } },
    })
}

/// Reusable problem responses, one per status.
fn problem_responses() -> Value {
    let mut out = Map::new();
    let mut statuses: Vec<u16> = all_problem_codes().iter().map(|(_, s, _)| *s).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let codes: Vec<String> = all_problem_codes()
            .into_iter()
            .filter(|(_, s, _)| *s == status)
            .map(|(c, _, _)| format!("`{c}`"))
            .collect();
        let mut headers = Map::new();
        headers.insert("X-Request-Id".into(), ref_header("X-Request-Id"));
        if matches!(status, 401 | 403) {
            headers.insert("WWW-Authenticate".into(), ref_header("WWW-Authenticate"));
        }
        if matches!(status, 429 | 503) {
            headers.insert("Retry-After".into(), ref_header("Retry-After"));
        }
        if status == 405 {
            headers.insert("Allow".into(), ref_header("Allow"));
        }
        if status != 401 && status != 405 {
            headers.insert("RateLimit".into(), ref_header("RateLimit"));
            headers.insert("RateLimit-Policy".into(), ref_header("RateLimit-Policy"));
        }
        out.insert(
            format!("Problem{status}"),
            json!({
                "description": format!("A problem document: {}.", codes.join(", ")),
                "headers": headers,
                "content": { "application/problem+json": { "schema": ref_schema("Problem") } },
            }),
        );
    }
    Value::Object(out)
}

fn capability_schema() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "type": "object",
        "required": ["clientIp", "unit", "dormantScopes", "key", "permissions", "tenant", "user"],
        "additionalProperties": false,
        "properties": {
            "clientIp": { "type": "string", "description": "The client's address as keygate sees it." },
            "unit": { "type": "integer", "minimum": 1 },
            "dormantScopes": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Scopes the key carries that its user holds no grant for now.",
            },
            "key": {
                "type": "object",
                "required": ["display", "expiresAt", "id", "ipRanges", "purpose", "scopes"],
                "additionalProperties": false,
                "properties": {
                    "display": { "type": "string", "description": "`kg_XXXX…YYYY`" },
                    "expiresAt": { "type": ["string", "null"], "format": "date-time" },
                    "id": { "type": "integer" },
                    "ipRanges": strings,
                    "purpose": { "type": "string" },
                    "scopes": { "type": ["array", "null"], "items": { "type": "string" },
                        "description": "null: the key has its user's permissions" },
                },
            },
            "permissions": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Effective permissions (the user's ∩ the key's scopes), the own-records rule spelled \
                    out, e.g. `companies:write:own`.",
            },
            "tenant": { "type": "string" },
            "user": {
                "type": "object",
                "required": ["category", "email", "id", "name"],
                "additionalProperties": false,
                "properties": {
                    "category": { "type": "string", "enum": ["personal", "programmatic"] },
                    "email": { "type": "string" },
                    "id": { "type": "integer" },
                    "name": { "type": "string" },
                },
            },
        },
    })
}

fn capability_path() -> Value {
    let mut responses = refusals(&[]);
    responses.insert("200".into(), json_ok("who the key is", ref_schema("Capability")));
    json!({ "get": {
        "operationId": "getCapability",
        "tags": ["public-api"],
        "summary": "Who am I: the key, its user, tenant, unit, effective permissions and the client IP",
        "description": "Any valid key may call it for a unit it may reach.",
        "security": security(),
        "parameters": [{ "$ref": "#/components/parameters/unitId" }],
        "responses": responses,
    } })
}

/// The JSON schema of a column's values as a row carries them; `null` for every column but `id`.
fn column_schema(ty: ColumnType, name: &str) -> Value {
    let (types, extra): (&str, Value) = match ty {
        ColumnType::Int => ("integer", json!({})),
        ColumnType::Text => ("string", json!({})),
        ColumnType::Bool => ("boolean", json!({})),
        ColumnType::Date => ("string", json!({ "format": "date" })),
        ColumnType::Money => ("number", json!({ "description": "an amount, e.g. 1250.50" })),
        ColumnType::Number => ("number", json!({})),
        ColumnType::JsonList => ("array", json!({ "items": { "type": "string" } })),
    };
    let mut schema = json!({ "type": if name == "id" { json!(types) } else { json!([types, "null"]) } });
    if let (Value::Object(s), Value::Object(e)) = (&mut schema, extra) {
        s.extend(e);
    }
    schema
}

/// A view's row. In a page (`full == false`) every member is optional, because `columns` picks
/// them; a record read by id carries every column (and `properties` when the view has them).
fn row_schema(view: &View, full: bool) -> Value {
    let mut properties = Map::new();
    for c in view.columns {
        properties.insert(c.name.into(), column_schema(c.ty, c.name));
    }
    if view.properties {
        properties.insert(
            "properties".into(),
            json!({ "type": "object", "description": "Custom properties; with `properties=a,b` only those (null when unset)." }),
        );
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if full {
        let required: Vec<&str> =
            view.columns.iter().map(|c| c.name).chain(view.properties.then_some("properties")).collect();
        schema["required"] = json!(required);
    }
    schema
}

/// `{"metadata":{"count","limit","nextOffset"},"data":[row…]}`
fn page_schema(row: &str) -> Value {
    json!({
        "type": "object",
        "required": ["metadata", "data"],
        "additionalProperties": false,
        "properties": {
            "metadata": ref_schema("PageMetadata"),
            "data": { "type": "array", "items": ref_schema(row) },
        },
    })
}

fn guard_text(view: &View) -> String {
    match view.guard {
        Guard::AnyKey => "Any valid key of the tenant.".to_owned(),
        Guard::Resource(r) => {
            format!("Read on `{}`: all rows with a grant, a personal user's own rows without one.", r.as_str())
        }
    }
}

fn view_path(view: &View, page: &str) -> Value {
    let columns: Vec<&str> = view.columns.iter().map(|c| c.name).collect();
    let mut parameters = vec![
        json!({ "$ref": "#/components/parameters/unitId" }),
        json!({
            "name": "columns",
            "in": "query",
            "description": format!("Comma-separated columns to return (default all): {}.", columns.join(", ")),
            "schema": { "type": "string" },
        }),
        json!({
            "name": "externalFilter",
            "in": "query",
            "description": format!(
                "A filter on this view's columns in keygate's filter language (AND, OR, NOT, ANY, IS NULL, LIKE), \
                 e.g. `{}`.",
                view.example
            ),
            "schema": { "type": "string" },
            "example": view.example,
        }),
        json!({
            "name": "limit",
            "in": "query",
            "description": "Rows per page (default 1000; empty: the default).",
            "schema": { "type": ["integer", "string"], "minimum": 1, "maximum": Keygate::MAX_VIEW_LIMIT, "maxLength": 0 },
        }),
        json!({
            "name": "offset",
            "in": "query",
            "description": "Rows to skip; `nextOffset` of the previous page (default 0; empty: the default).",
            "schema": { "type": ["integer", "string"], "minimum": 0, "maximum": i64::MAX, "maxLength": 0 },
        }),
    ];
    if view.properties {
        parameters.push(json!({
            "name": "properties",
            "in": "query",
            "description": "Comma-separated custom property names to return (letters, digits, `_` and `-`).",
            "schema": { "type": "string" },
        }));
    }
    let mut responses = refusals(&[413, 503]);
    let mut ok = json_ok("a page of rows in id order, at most 10 MB", ref_schema(page));
    // A view of a record endpoint's records links to reading its first row by id.
    if ["companies", "persons", "jobs", "tasks", "documents", "users"].contains(&view.name) {
        let name = schema_name(view.name);
        ok["links"] = json!({ format!("Get{name}FirstRow"): {
            "operationId": format!("get{name}Record"),
            "parameters": { "unitId": "$request.path.unitId", "id": "$response.body#/data/0/id" },
            "description": "the first row of the page, read by id",
        } });
    }
    responses.insert("200".into(), ok);
    json!({ "get": {
        "operationId": format!("readView{}", schema_name(view.name)),
        "tags": ["views"],
        "summary": format!("Read the view `{}`", view.name),
        "description": format!(
            "{} A page never exceeds 10 MB: the server stops adding rows before the cap and `nextOffset` continues \
             from there.",
            guard_text(view)
        ),
        "security": security(),
        "parameters": parameters,
        "responses": responses,
    } })
}

fn write_schema(fields: &[Field], creating: bool) -> Value {
    let mut properties = Map::new();
    for f in fields {
        let ty = if f.nullable { json!([f.json_type, "null"]) } else { json!(f.json_type) };
        let mut s = json!({ "type": ty });
        if let Some(format) = f.format {
            s["format"] = json!(format);
        }
        if let Some(max) = f.max_length {
            s["maxLength"] = json!(max);
        }
        if !f.one_of.is_empty() {
            s["enum"] = json!(f.one_of);
        }
        if let Some((min, exclusive)) = f.minimum {
            s[if exclusive { "exclusiveMinimum" } else { "minimum" }] = number(min);
        }
        if let Some((max, exclusive)) = f.maximum {
            s[if exclusive { "exclusiveMaximum" } else { "maximum" }] = number(max);
        }
        if f.json_type == "array" {
            s["items"] = json!({ "type": "string" });
            s["maxItems"] = json!(100);
        }
        if !f.about.is_empty() {
            s["description"] = json!(f.about);
        }
        if f.required && f.json_type == "string" && f.one_of.is_empty() && f.format.is_none() {
            s["minLength"] = json!(1);
            s["pattern"] = json!("\\S");
        }
        properties.insert(f.name.into(), s);
    }
    let mut schema = json!({ "type": "object", "properties": properties, "additionalProperties": false });
    if creating {
        schema["required"] = json!(fields.iter().filter(|f| f.required).map(|f| f.name).collect::<Vec<_>>());
    }
    schema
}

/// A writable field of a record endpoint, as `Keygate::writable_records` describes it.
struct Field {
    name: &'static str,
    required: bool,
    nullable: bool,
    json_type: &'static str,
    format: Option<&'static str>,
    max_length: Option<usize>,
    one_of: &'static [&'static str],
    minimum: Option<(f64, bool)>,
    maximum: Option<(f64, bool)>,
    about: &'static str,
}

/// A bound as an integer when it is one, so the document reads `24`, not `24.0`.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 { json!(n as i64) } else { json!(n) }
}

fn users_create_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "email"],
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "minLength": 1 },
            "email": { "type": "string", "format": "email" },
            "category": { "type": "string", "enum": ["personal", "programmatic"], "default": "programmatic" },
            "groups": { "type": "array", "items": { "type": "string" }, "description": "group names" },
            "groupNames": { "type": "array", "items": { "type": "string" }, "description": "the original's name for `groups`" },
            "units": {
                "type": ["array", "null"],
                "items": { "type": "integer", "minimum": 1 },
                "minItems": 1,
                "description": "unit numbers; null or absent: every unit",
            },
        },
        "not": { "required": ["groups", "groupNames"] },
        "description": "Under the grant ceiling: the key's user must hold every group and unit given. `groups` or \
            `groupNames`, not both.",
    })
}

fn users_update_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "active": { "type": "boolean", "description": "false deactivates the user and refuses every key of theirs on the next request" },
            "groups": { "type": "array", "items": { "type": "string" } },
            "groupNames": { "type": "array", "items": { "type": "string" } },
            "units": { "type": ["array", "null"], "items": { "type": "integer", "minimum": 1 }, "minItems": 1 },
        },
        "not": { "required": ["groups", "groupNames"] },
        "description": "Under the grant ceiling. `groups` or `groupNames`, not both.",
    })
}

fn record_path(resource: &str, name: &str, readable: bool) -> Value {
    let created = if resource == "documents" { "CreatedDocument" } else { "Created" };
    let get_op = format!("get{name}Record");
    let update_op = format!("update{name}Record");
    let mut links = Map::new();
    if readable {
        links.insert(
            format!("Get{name}"),
            json!({ "operationId": get_op, "parameters": { "unitId": "$request.path.unitId", "id": "$response.body#/id" } }),
        );
    }
    links.insert(
        format!("Update{name}"),
        json!({ "operationId": update_op, "parameters": { "unitId": "$request.path.unitId", "id": "$response.body#/id" } }),
    );
    let mut created_response = json_ok("created", ref_schema(created));
    created_response["links"] = Value::Object(links);
    let mut post_responses = refusals(&[409, 413, 422]);
    post_responses.insert("201".into(), created_response);
    let body = |schema: String| json!({ "required": true, "content": { "application/json": { "schema": ref_schema(&schema) } } });
    let unit = json!({ "$ref": "#/components/parameters/unitId" });
    let id = json!({ "$ref": "#/components/parameters/recordId" });
    let mut item = Map::new();
    item.insert(
        "post".into(),
        json!({
            "operationId": format!("create{name}Record"),
            "tags": ["records"],
            "summary": format!("Create a record of `{resource}`"),
            "description": "Permission: write on the resource. Unknown fields and invalid values get 422 with every \
                field error, and nothing is written. Honours `Idempotency-Key`. Audited with the key and its user. \
                A record that would take the tenant's records past their storage quota (512 units per record plus \
                the characters of its `properties`; `record_storage_per_tenant_mib`) is `409 conflict`, with \
                nothing written.",
            "security": security(),
            "parameters": [unit, { "$ref": "#/components/parameters/idempotencyKey" }],
            "requestBody": body(format!("{name}Create")),
            "responses": post_responses,
        }),
    );
    if readable {
        let mut get_responses = refusals(&[503]);
        get_responses.insert("200".into(), json_ok("the record", ref_schema(name)));
        item.insert(
            "get".into(),
            json!({
                "operationId": get_op,
                "tags": ["records"],
                "summary": format!("Read one record of `{resource}`"),
                "description": "Permission: read on the resource. A record outside what the key's user may see is 404.",
                "security": security(),
                "parameters": [unit, id],
                "responses": get_responses,
            }),
        );
    }
    let mut patch_responses = refusals(&[409, 413, 422]);
    patch_responses.insert("200".into(), json_ok("changed", ref_schema("Created")));
    item.insert(
        "patch".into(),
        json!({
            "operationId": update_op,
            "tags": ["records"],
            "summary": format!("Change a record of `{resource}`"),
            "description": "Permission: write on the resource; only the fields sent change. Audited. Larger \
                `properties` are held to the tenant's storage quota (`409 conflict`, nothing written).",
            "security": security(),
            "parameters": [unit, id],
            "requestBody": body(format!("{name}Update")),
            "responses": patch_responses,
        }),
    );
    Value::Object(item)
}

fn verify_request_schema() -> Value {
    json!({
        "type": "object",
        "required": ["key"],
        "additionalProperties": false,
        "properties": {
            "key": { "type": "string", "description": "The key to check." },
            "ip": { "type": ["string", "null"], "description": "The address the key's call came from (a claim, \
                checked against the key's ranges); default: the calling service's address." },
            "unitId": { "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX },
            "permission": { "type": ["string", "null"], "description": "A scope the key must hold, e.g. \
                `documents:read`." },
        },
    })
}

fn verify_answer_schema() -> Value {
    let mut codes: Vec<Value> = RefusalCode::ALL.iter().map(|c| json!(c.code())).collect();
    codes.push(Value::Null);
    json!({
        "type": "object",
        "required": ["valid", "code", "keyId", "userId", "tenant", "permissions"],
        "additionalProperties": false,
        "properties": {
            "valid": { "type": "boolean" },
            "code": { "type": ["string", "null"], "enum": codes, "description": "why not valid; null when valid" },
            "keyId": { "type": ["integer", "null"] },
            "userId": { "type": ["integer", "null"] },
            "tenant": { "type": ["string", "null"] },
            "permissions": { "type": "array", "items": { "type": "string" } },
        },
    })
}

fn verify_path() -> Value {
    let mut responses = refusals(&[422]);
    responses.remove("404");
    responses.insert("200".into(), json_ok("the verdict on the key in the body", ref_schema("VerifyAnswer")));
    json!({ "post": {
        "operationId": "verifyKey",
        "tags": ["verification"],
        "summary": "Verify another key of the caller's tenant",
        "description": "For services. The calling key needs the `keys:verify` scope. A key of another tenant is \
            `unknown_key` whatever its state, and nothing of it is touched.",
        "security": security(),
        "requestBody": { "required": true, "content": { "application/json": { "schema": ref_schema("VerifyRequest") } } },
        "responses": responses,
    } })
}

fn forward_auth_path() -> Value {
    let header = |about: &str| json!({ "description": about, "schema": { "type": "string" } });
    // 404 `unknown_unit` too: a forwarded `/rest/v1/{unitId}/…` URI names the unit checked.
    let mut responses = refusals(&[]);
    responses.insert(
        "200".into(),
        json!({
            "description": "The key is valid: forward the request with these identity headers.",
            "headers": {
                "X-Keygate-Tenant": header("the key's tenant"),
                "X-Keygate-User-Id": header("the key's user"),
                "X-Keygate-Key-Id": header("the key"),
                "X-Keygate-Permissions": header("effective permissions, space-separated"),
                "RateLimit": ref_header("RateLimit"),
                "RateLimit-Policy": ref_header("RateLimit-Policy"),
                "X-Request-Id": ref_header("X-Request-Id"),
            },
        }),
    );
    let parameters = json!([
        { "name": "tenant", "in": "query", "description": "Only keys of this tenant are valid; any other is \
            `unknown_key` and touches nothing there.", "schema": { "type": "string" } },
        { "name": "X-Forwarded-Uri", "in": "header", "description": "The URI the proxy is about to forward \
            (believed from a trusted proxy only); a `/rest/v1/{unitId}/…` path makes the unit part of the check. \
            A URI that reaches `/rest/v1/` in any other spelling (case, percent-escapes, dot or empty segments, \
            `;` parameters, backslashes) is refused with 400 `unreadable_unit`.",
            "schema": { "type": "string" } },
        { "name": "X-Original-Uri", "in": "header", "description": "nginx's name for `X-Forwarded-Uri`.",
            "schema": { "type": "string" } },
    ]);
    let operation = |method: &str| {
        json!({
            "operationId": format!("forwardAuth{method}"),
            "tags": ["verification"],
            "summary": "Verify the key of a request a reverse proxy is about to forward",
            "description": "For nginx `auth_request`, Caddy `forward_auth` and Traefik `ForwardAuth`; answers any \
                method. 200 with identity headers and no body, or the refusal for the proxy to return.",
            "security": security(),
            "parameters": parameters,
            "responses": responses,
        })
    };
    json!({ "get": operation("Get"), "post": operation("Post") })
}

fn text_path(name: &str, about: &str, answers: &[(u16, &str)]) -> Value {
    let mut responses = Map::new();
    let mut content = json!({ "text/plain": { "schema": { "type": "string" } } });
    if name == "metrics" {
        // The OpenMetrics exposition format, or Prometheus's text format.
        content["application/openmetrics-text"] = json!({ "schema": { "type": "string" } });
    }
    for (status, text) in answers {
        responses.insert(status.to_string(), json!({ "description": text, "content": content }));
    }
    json!({ "get": {
        "operationId": name,
        "tags": ["ops"],
        "summary": about,
        "security": [],
        "responses": responses,
    } })
}

#[cfg(test)]
mod tests {
    use keygate_service::BadRequest;

    use super::*;

    #[test]
    fn every_kind_of_bad_request_is_a_documented_400() {
        let kinds = [
            BadRequest::InvalidFilter,
            BadRequest::UnknownColumn,
            BadRequest::TypeMismatch,
            BadRequest::InvalidParameter,
            BadRequest::UnknownParameter,
            BadRequest::IdempotencyKeyReused,
        ];
        for kind in kinds {
            // Exhaustive: a new kind does not compile until it is listed above.
            match kind {
                BadRequest::InvalidFilter
                | BadRequest::UnknownColumn
                | BadRequest::TypeMismatch
                | BadRequest::InvalidParameter
                | BadRequest::UnknownParameter
                | BadRequest::IdempotencyKeyReused => {}
            }
            let code = crate::problem_code::bad_request_code(kind).code();
            assert!(all_problem_codes().iter().any(|(c, status, _)| *c == code && *status == 400), "{code}");
        }
    }

    /// A code that exists but is missing from the document fails here (the list and the
    /// document are built from `ProblemCode::ALL`, which a test in `problem_code` holds complete).
    #[test]
    fn the_document_lists_every_problem_code_with_its_status() {
        let doc = document();
        let listed = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"].as_array().expect("codes");
        for code in ProblemCode::ALL {
            assert!(listed.contains(&Value::from(code.code())), "{} is not in the document", code.code());
            let answer = &doc["components"]["responses"][format!("Problem{}", code.status())];
            let about = answer["description"].as_str().unwrap_or_default();
            assert!(about.contains(&format!("`{}`", code.code())), "{} is not among its status's codes", code.code());
        }
        assert_eq!(listed.len(), ProblemCode::ALL.len(), "the document lists no code keygate does not send");
    }

    #[test]
    fn the_document_is_stable_json_ending_in_a_newline() {
        let text = document_text();
        assert!(text.ends_with("}\n"));
        assert_eq!(text, document_text());
        assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(document()));
    }
}
