//! The OpenAPI description of the management API's audit events (`GET /v1/audit-events`) and of
//! the `Idempotency-Key` header every management POST takes (added to each POST under `/v1/`
//! once every path is in the document).

use keygate_service::{AUDIT_SETTLE_MS, IDEMPOTENCY_MAX_ANSWER, IDEMPOTENCY_PER_KEY};
use serde_json::{Map, Value, json};

use super::parts::{json_ok, ref_header, ref_schema, refusals, security};
use crate::manage::extract::{PAGE_DEFAULT, PAGE_MAX};

/// Adds the audit events' operation and schemas.
pub(super) fn add(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    schemas.insert("AuditEvent".into(), audit_event_schema());
    schemas.insert(
        "AuditEventPage".into(),
        json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": { "type": "array", "items": ref_schema("AuditEvent"), "maxItems": PAGE_MAX },
                "nextCursor": {
                    "type": ["string", "null"],
                    "description": "the `cursor` of the next page (also in `Link: <…>; rel=\"next\"`); null when \
                        this page is not full. A poller forwards (`after`) keeps the last `id` it saw instead.",
                },
            },
            "additionalProperties": false,
        }),
    );
    paths.insert("/v1/audit-events".into(), audit_events_path());
}

fn audit_event_schema() -> Value {
    let text = json!({ "type": "string" });
    json!({
        "type": "object",
        "description": "One line of the tenant's audit log. Never holds a secret.",
        "required": ["id", "at", "actor", "action", "target", "ip", "details"],
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "a stable integer, increasing in the order events become final: the cursor of \
                    `after` and `before`",
            },
            "at": { "type": "string", "format": "date-time", "description": "when it happened (RFC 3339, UTC)" },
            "actor": {
                "type": "object",
                "required": ["kind"],
                "description": "who acted: a console `user` (id, email), a `key` (keyId, and its user's id), \
                    `system` (the command line, keygate itself), an `operator` (id)",
                "properties": {
                    "kind": { "type": "string", "enum": ["user", "key", "system", "operator"] },
                    "id": { "type": "integer", "minimum": 1 },
                    "email": text,
                    "keyId": { "type": "integer", "minimum": 1 },
                },
                "additionalProperties": false,
            },
            "action": { "type": "string", "description": "a stable dotted verb: `key.issued`, `user.deactivated`, …" },
            "target": { "type": "string", "description": "what was acted on: `key 12`, `user ada@example.com`, …" },
            "ip": { "type": ["string", "null"], "description": "where the call came from, when it came over the network" },
            "details": text,
        },
        "additionalProperties": false,
    })
}

fn query(name: &str, description: &str, schema: Value, example: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema, "example": example })
}

fn audit_events_path() -> Value {
    let id = json!({ "type": "string", "pattern": "^[0-9]+$" });
    let time = json!({ "type": "string", "format": "date-time" });
    let mut responses = refusals(&[]);
    responses.insert(
        "200".into(),
        {
            let mut ok = json_ok("a page of events", ref_schema("AuditEventPage"));
            ok["headers"]["Link"] = json!({
                "description": "`<this path with cursor=…>; rel=\"next\"` when there is a next page",
                "schema": { "type": "string" },
            });
            ok["content"]["application/json"]["example"] = json!({
                "items": [
                    {
                        "id": "1043",
                        "at": "2026-03-02T09:15:04.120Z",
                        "actor": { "kind": "key", "id": 3, "keyId": 7 },
                        "action": "key.disabled",
                        "target": "key 12",
                        "ip": "203.0.113.5",
                        "details": "",
                    },
                    {
                        "id": "1042",
                        "at": "2026-03-02T09:14:58.002Z",
                        "actor": { "kind": "user", "id": 1, "email": "admin@acme.example" },
                        "action": "key.issued",
                        "target": "key 12",
                        "ip": "198.51.100.20",
                        "details": "for erp@acme.example; purpose \"nightly sync\"; ranges 10.0.0.0/8; scopes inherit; expires never",
                    },
                ],
                "nextCursor": "1042",
            });
            ok
        },
    );
    json!({ "get": {
        "operationId": "list_audit_events",
        "tags": ["management"],
        "summary": "The tenant's audit events: newest first, or forwards from a cursor for a SIEM",
        "description": format!(
            "Needs `admin:audit:read` (an unscoped key of a Configurator or User configurator has it). Newest \
             first by default; `before=ID` (or the `cursor` of a page) pages to older events. `after=ID` reads \
             forwards, oldest first: a SIEM polls with the last `id` it saw and gets every newer event exactly \
             once, and nothing when nothing happened. Ids are stable and increase in the order events become \
             final: on PostgreSQL an event is served once it is {AUDIT_SETTLE_MS} ms old by the database's \
             clock, so that a transaction that took a smaller id but committed later is never skipped (on \
             SQLite, with one writer, at once). Events never hold a secret."
        ),
        "security": security(),
        "parameters": [
            query("after", "events newer than this id, oldest first (a poll from a cursor)", id.clone(), json!("1041")),
            query("before", "events older than this id, newest first", id.clone(), json!("1100")),
            query("cursor", "the `nextCursor` of the previous page; it continues in that page's direction", id, json!("1042")),
            query("from", "events at or after this time (RFC 3339)", time.clone(), json!("2026-03-01T00:00:00Z")),
            query("to", "events before this time (RFC 3339)", time, json!("2026-04-01T00:00:00Z")),
            query("action", "events whose action starts with this (`key.` is every key event)", json!({ "type": "string" }), json!("key.")),
            query("actor", "events whose actor contains this text (an email, `key 7`, `system`)", json!({ "type": "string" }), json!("admin@acme.example")),
            query("key", "events by this key or about it (an id that is no key finds none)", json!({ "type": "integer" }), json!(12)),
            query("user", "events by this user, by the user's keys, or about the user (an id that is no user finds none)", json!({ "type": "integer" }), json!(3)),
            query(
                "limit",
                &format!("events per page, 1 to {PAGE_MAX} (default {PAGE_DEFAULT})"),
                json!({ "type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT }),
                json!(50),
            ),
        ],
        "responses": responses,
    } })
}

/// The management POSTs: every POST under `/v1/` but key verification and the operator plane
/// (whose credential is not a tenant key).
fn is_management_post(path: &str) -> bool {
    path.starts_with("/v1/") && path != "/v1/keys/verify" && !path.starts_with("/v1/operator/")
}

/// Adds the `Idempotency-Key` parameter and the replay headers to every management POST, and
/// their definitions to the components (and the `management` tag, once). Called once every path
/// is in `doc`.
pub(super) fn idempotent_posts(doc: &mut Value) {
    if let Some(tags) = doc["tags"].as_array_mut()
        && !tags.iter().any(|t| t["name"] == "management")
    {
        tags.push(json!({ "name": "management", "description": "The management API: keys, users, groups, units, \
            settings and audit events of the key's own tenant." }));
    }
    doc["components"]["parameters"]["managementIdempotencyKey"] = json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": format!(
            "Makes a retry safe. Scoped to the calling key: a retry with the same key, method, path and \
             body within 24 hours gets the first answer again (`Idempotent-Replayed: true`) and changes \
             nothing; the same Idempotency-Key with another request is refused (`400 \
             idempotency_key_reused`); a duplicate that arrives while the first still runs is `409 conflict`. \
             Server errors (5xx) and 429 are not kept: a retry runs again. A secret the first answer showed \
             (an issued or rolled key's `secret`) is shown once and never stored: the replay lacks `secret` \
             and says `Idempotency-Withheld: secret`. A key keeps at most {IDEMPOTENCY_PER_KEY} entries (the \
             oldest are forgotten first) and answers of at most {IDEMPOTENCY_MAX_ANSWER} bytes (a larger one \
             is replayed without its body, `Idempotency-Withheld: body`). 1 to 255 printable characters."
        ),
        "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$" },
        "example": "4f1d2c0e-ci-rotate-2026-03-02",
    });
    doc["components"]["headers"]["Idempotent-Replayed"] = json!({
        "description": "`true` on an answer replayed for a retry with the same `Idempotency-Key`.",
        "schema": { "type": "string", "enum": ["true"] },
    });
    doc["components"]["headers"]["Idempotency-Withheld"] = json!({
        "description": "On a replay: what the first answer had and the replay lacks: `secret` (shown once, in \
            the first answer, never stored) or `body` (over the stored size).",
        "schema": { "type": "string", "enum": ["secret", "body"] },
    });
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        if !is_management_post(path) {
            continue;
        }
        let Some(post) = item.get_mut("post").and_then(Value::as_object_mut) else { continue };
        let parameters = post.entry("parameters").or_insert_with(|| json!([]));
        if let Some(list) = parameters.as_array_mut() {
            list.push(json!({ "$ref": "#/components/parameters/managementIdempotencyKey" }));
        }
        let Some(responses) = post.get_mut("responses").and_then(Value::as_object_mut) else { continue };
        responses.entry("409").or_insert_with(|| json!({ "$ref": "#/components/responses/Problem409" }));
        for (status, response) in responses.iter_mut() {
            if status.starts_with('2')
                && response.get("$ref").is_none()
                && let Some(headers) = response.as_object_mut().map(|r| r.entry("headers").or_insert_with(|| json!({})))
            {
                headers["Idempotent-Replayed"] = ref_header("Idempotent-Replayed");
                headers["Idempotency-Withheld"] = ref_header("Idempotency-Withheld");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_management_post_takes_an_idempotency_key_and_verification_and_the_operator_do_not() {
        let mut doc = json!({ "paths": {
            "/v1/keys": { "post": { "responses": { "201": { "description": "issued" } } } },
            "/v1/keys/verify": { "post": { "responses": { "200": { "description": "ok" } } } },
            "/v1/operator/tenants": { "post": { "responses": { "201": { "description": "ok" } } } },
        }, "components": { "parameters": {}, "headers": {} } });
        idempotent_posts(&mut doc);
        let keys = &doc["paths"]["/v1/keys"]["post"];
        assert_eq!(keys["parameters"][0]["$ref"], "#/components/parameters/managementIdempotencyKey");
        assert!(keys["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
        assert!(keys["responses"]["409"].is_object());
        assert!(doc["paths"]["/v1/keys/verify"]["post"].get("parameters").is_none());
        assert!(doc["paths"]["/v1/operator/tenants"]["post"].get("parameters").is_none());
    }
}
