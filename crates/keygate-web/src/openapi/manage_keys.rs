//! The OpenAPI operations of the management API's keys (`/v1/keys…`, see `manage::keys`): paths,
//! schemas, and a realistic example for every request and answer. Only builds JSON; no I/O.

use serde_json::{Map, Value, json};

use super::parts::{ref_schema, refusals, security};

/// The bounds the handlers keep, as the document states them.
const PAGE_MAX: u32 = crate::manage::extract::PAGE_MAX;
const PAGE_DEFAULT: u32 = crate::manage::extract::PAGE_DEFAULT;
const BULK_MAX: usize = keygate_service::BULK_MAX;
const OVERLAP_MAX_HOURS: i64 = keygate_service::MAX_ROLL_OVERLAP_DAYS * 24;
const SELF_ROLL_MIN_AGE_MINUTES: i64 = keygate_service::SELF_ROLL_MIN_AGE_MINUTES;

/// Adds the key operations to `paths` and their schemas to `schemas`.
pub(super) fn add(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    schemas.insert("Key".into(), key_schema());
    schemas.insert(
        "KeyPage".into(),
        json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "additionalProperties": false,
            "properties": {
                "items": { "type": "array", "items": ref_schema("Key"), "maxItems": PAGE_MAX },
                "nextCursor": { "type": ["string", "null"], "description": "the `cursor` of the next page (also in \
                    `Link: <…>; rel=\"next\"`); null on the last page" },
            },
        }),
    );
    schemas.insert("IssuedKey".into(), issued_schema());
    schemas.insert("KeyIssue".into(), issue_schema());
    schemas.insert("KeyUpdate".into(), update_schema());
    schemas.insert("KeyRoll".into(), roll_schema());
    schemas.insert("KeyUsage".into(), usage_schema());
    schemas.insert("KeyBulk".into(), bulk_schema());
    schemas.insert("KeyBulkDone".into(), bulk_done_schema());

    let (mut issue, mut roll) = (issue_op(), roll_op());
    for created in [&mut issue, &mut roll] {
        created["responses"]["201"]["links"] = links_to_the_key();
    }
    paths.insert("/v1/keys".into(), json!({ "get": list_op(), "post": issue }));
    paths.insert("/v1/keys/{id}".into(), json!({ "get": get_op(), "patch": update_op() }));
    for (action, summary) in [
        ("disable", "Disable a key: it is refused from its next request on"),
        ("enable", "Enable a disabled key again (judged by the grant ceiling as a hand-over)"),
        ("revoke", "Revoke a key for good: it is refused from its next request on"),
    ] {
        paths.insert(format!("/v1/keys/{{id}}/{action}"), json!({ "post": switch_op(action, summary) }));
    }
    paths.insert("/v1/keys/{id}/roll".into(), json!({ "post": roll }));
    paths.insert("/v1/keys/{id}/usage".into(), json!({ "get": usage_op() }));
    paths.insert("/v1/keys/bulk".into(), json!({ "post": bulk_op() }));
    paths.insert("/v1/keys/self".into(), json!({ "get": self_op() }));
    paths.insert("/v1/keys/self/roll".into(), json!({ "post": self_roll_op() }));
}

/// OpenAPI `links` from an issued (or rolled) key to what can be done with it by its id: a
/// client, and schemathesis's stateful phase, chain issue → get → update → disable/revoke.
fn links_to_the_key() -> Value {
    let ops = ["getKey", "updateKey", "getKeyUsage", "disableKey", "enableKey", "rollKey", "revokeKey"];
    let links: Map<String, Value> = ops
        .iter()
        .map(|op| {
            let mut name = (*op).to_owned();
            name[..1].make_ascii_uppercase();
            (name, json!({ "operationId": op, "parameters": { "id": "$response.body#/key/id" } }))
        })
        .collect();
    Value::Object(links)
}

fn nullable(ty: &str) -> Value {
    json!({ "type": [ty, "null"] })
}

fn key_schema() -> Value {
    json!({
        "type": "object",
        "description": "A key as an administrator sees it (the names of `keygate keys list --json`). The secret \
            is never shown again after it was issued.",
        "required": ["id", "display", "status", "user", "purpose", "ipRanges", "scopes", "units",
            "rateLimitPerMinute", "createdAt", "expiresAt", "revokedAt", "lastUsedAt", "lastUsedIp", "rolledFrom"],
        "additionalProperties": false,
        "properties": {
            "id": { "type": "integer", "minimum": 1 },
            "display": { "type": "string", "description": "the first 7 and last 4 characters of the secret" },
            "status": {
                "type": "string",
                "enum": ["active", "disabled", "expired", "revoked", "user inactive", "API off"],
                "description": "the key's effective state: its own, or `user inactive` / `API off` when the key is \
                    active but its user or the tenant's Public API is not",
            },
            "user": {
                "type": "object",
                "required": ["id", "email", "name"],
                "additionalProperties": false,
                "properties": { "id": { "type": "integer" }, "email": { "type": "string" }, "name": { "type": "string" } },
            },
            "purpose": { "type": "string" },
            "ipRanges": { "type": "array", "items": { "type": "string" }, "description": "CIDR ranges (IPv4, IPv6)" },
            "scopes": { "type": ["array", "null"], "items": { "type": "string" }, "description": "null: the key \
                inherits its user's permissions" },
            "units": { "type": ["array", "null"], "items": { "type": "integer" }, "description": "null: every unit \
                of its user" },
            "rateLimitPerMinute": { "type": ["integer", "null"], "minimum": 1, "description": "null: the tenant's \
                default" },
            "createdAt": { "type": "string", "format": "date-time" },
            "expiresAt": nullable("string"),
            "revokedAt": nullable("string"),
            "lastUsedAt": nullable("string"),
            "lastUsedIp": nullable("string"),
            "rolledFrom": { "type": ["integer", "null"], "description": "the key this one succeeded in a roll" },
        },
    })
}

fn issued_schema() -> Value {
    json!({
        "type": "object",
        "required": ["key", "secret", "warnings"],
        "additionalProperties": false,
        "properties": {
            "key": ref_schema("Key"),
            "secret": { "type": "string", "description": "the key itself: shown this once, never again" },
            "warnings": { "type": "array", "items": { "type": "string" } },
        },
    })
}

fn issue_schema() -> Value {
    json!({
        "type": "object",
        "required": ["user", "purpose", "ipRanges"],
        "additionalProperties": false,
        "properties": {
            "user": { "type": "integer", "minimum": 1, "description": "the id of the key's user (of this tenant)" },
            "purpose": { "type": "string", "minLength": 1 },
            "ipRanges": { "type": "array", "minItems": 1, "items": { "type": "string" } },
            "expiresAt": { "type": ["string", "null"], "description": "`YYYY-MM-DD` or RFC 3339; at most the \
                tenant's maximum key lifetime; null or absent: none (or that maximum)" },
            "scopes": { "type": ["array", "null"], "items": { "type": "string" }, "description": "null or absent: \
                inherit the user's permissions" },
            "units": { "type": ["array", "null"], "items": { "type": "integer" } },
            "rateLimitPerMinute": { "type": ["integer", "null"], "minimum": 1 },
        },
    })
}

fn update_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Only the members sent change.",
        "properties": {
            "purpose": { "type": "string", "minLength": 1 },
            "ipRanges": { "type": "array", "minItems": 1, "items": { "type": "string" } },
            "expiresAt": { "type": ["string", "null"], "description": "null: no expiry (or the tenant's maximum)" },
            "rateLimitPerMinute": { "type": ["integer", "null"], "minimum": 1, "description": "null: the tenant's \
                default" },
        },
    })
}

fn roll_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "overlapHours": { "type": "integer", "minimum": 0, "maximum": OVERLAP_MAX_HOURS, "default": 24,
                "description": "how long the old key keeps working beside its successor" },
        },
    })
}

fn usage_schema() -> Value {
    let refused = json!({ "type": "object", "description": "refusal code → calls" });
    json!({
        "type": "object",
        "required": ["keyId", "from", "to", "days", "totals", "lastUsedAt", "lastUsedIp"],
        "additionalProperties": false,
        "properties": {
            "keyId": { "type": "integer" },
            "from": { "type": "string", "format": "date" },
            "to": { "type": "string", "format": "date" },
            "days": { "type": "array", "items": {
                "type": "object",
                "required": ["date", "accepted", "refused"],
                "additionalProperties": false,
                "properties": { "date": { "type": "string", "format": "date" }, "accepted": { "type": "integer" },
                    "refused": refused },
            } },
            "totals": {
                "type": "object",
                "required": ["accepted", "refused"],
                "additionalProperties": false,
                "properties": { "accepted": { "type": "integer" }, "refused": refused },
            },
            "lastUsedAt": nullable("string"),
            "lastUsedIp": nullable("string"),
        },
    })
}

fn bulk_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action", "items"],
        "additionalProperties": false,
        "properties": {
            "action": { "type": "string", "enum": ["issue", "disable", "revoke"] },
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": BULK_MAX,
                "description": "`issue`: the bodies of `POST /v1/keys`; `disable`, `revoke`: `{\"id\": …}` each",
                "items": { "type": "object" },
            },
        },
    })
}

fn bulk_done_schema() -> Value {
    json!({
        "type": "object",
        "required": ["action", "items"],
        "additionalProperties": false,
        "properties": {
            "action": { "type": "string", "enum": ["issue", "disable", "revoke"] },
            "items": { "type": "array", "maxItems": BULK_MAX, "description": "`issue`: issued keys (`IssuedKey`, \
                secrets shown once); otherwise the keys as they now are (`Key`)", "items": { "type": "object" } },
        },
    })
}

/// The answer of a management operation: `schema` with `example`, the rate headers.
fn answer(description: &str, schema: Value, example: Value) -> Value {
    let mut ok = super::parts::json_ok(description, schema);
    ok["content"]["application/json"]["example"] = example;
    ok
}

fn body(schema: &str, example: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": ref_schema(schema), "example": example } } })
}

/// `responses` with `status` → `ok` and the problem answers `extra` beyond the usual ones.
fn responses(status: &str, ok: Value, extra: &[u16]) -> Value {
    let mut out = refusals(extra);
    out.insert(status.into(), ok);
    Value::Object(out)
}

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": "The key's id.",
        "schema": { "type": "integer", "minimum": 1 }, "example": 12 })
}

fn op(id: &str, summary: &str, description: &str) -> Value {
    json!({ "operationId": id, "tags": ["management"], "summary": summary, "description": description,
        "security": security() })
}

fn example_key() -> Value {
    json!({
        "id": 12,
        "display": "kg_mK9w…KGn0",
        "status": "active",
        "user": { "id": 3, "email": "erp@acme.example", "name": "ERP" },
        "purpose": "nightly invoice export",
        "ipRanges": ["203.0.113.0/24"],
        "scopes": ["invoices:read"],
        "units": null,
        "rateLimitPerMinute": null,
        "createdAt": "2026-03-30T08:15:00Z",
        "expiresAt": "2027-03-30T00:00:00Z",
        "revokedAt": null,
        "lastUsedAt": "2026-03-31T02:00:07Z",
        "lastUsedIp": "203.0.113.9",
        "rolledFrom": null,
    })
}

fn example_issued(id: i64, rolled_from: Option<i64>) -> Value {
    let mut key = example_key();
    key["id"] = json!(id);
    key["display"] = json!("kg_Q7rT…9xPa");
    key["createdAt"] = json!("2026-03-31T09:00:00Z");
    key["lastUsedAt"] = Value::Null;
    key["lastUsedIp"] = Value::Null;
    key["rolledFrom"] = json!(rolled_from);
    json!({ "key": key, "secret": super::examples::EXAMPLE_KEY, "warnings": [] })
}

const ADMIN_READ: &str = "Needs `admin:keys:read` (or an unscoped key) and a user in the `Configurator` group.";
const ADMIN_WRITE: &str = "Needs `admin:keys:write` (or an unscoped key) and a user in the `Configurator` group.";

fn list_op() -> Value {
    let mut o = op(
        "listKeys",
        "List the tenant's keys, newest first",
        &format!(
            "{ADMIN_READ} Filters narrow the list; pages of at most {PAGE_MAX} (default {PAGE_DEFAULT}) follow \
             `Link: <…>; rel=\"next\"` or `nextCursor`."
        ),
    );
    let q = |name: &str, schema: Value, about: &str, example: Value| {
        json!({ "name": name, "in": "query", "required": false, "description": about, "schema": schema,
            "example": example })
    };
    o["parameters"] = json!([
        q("user", json!({ "type": "integer" }), "keys of this user (an id that is no user finds none)", json!(3)),
        q(
            "state",
            json!({ "type": "string", "enum": ["active", "disabled", "expired", "revoked"] }),
            "keys in this state of their own",
            json!("active")
        ),
        q("purpose", json!({ "type": "string" }), "keys whose purpose contains this text", json!("invoice")),
        q("cursor", json!({ "type": "string" }), "the `nextCursor` of the previous page", json!("40")),
        q(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT }),
            "keys per page",
            json!(1)
        ),
    ]);
    let mut ok =
        answer("a page of keys", ref_schema("KeyPage"), json!({ "items": [example_key()], "nextCursor": "12" }));
    ok["headers"]["Link"] = json!({ "description": "`<…&cursor=…>; rel=\"next\"` when there is a next page",
        "schema": { "type": "string" } });
    o["responses"] = responses("200", ok, &[]);
    o
}

fn issue_op() -> Value {
    let mut o = op(
        "issueKey",
        "Issue a key for a user of the tenant",
        &format!(
            "{ADMIN_WRITE} The answer holds the secret, shown this once. Judged by the grant ceiling: whoever gets \
             the secret holds all the key reaches, so a caller may issue only keys within its own power \
             (`403 grant_exceeds_actor`, audited)."
        ),
    );
    o["requestBody"] = body(
        "KeyIssue",
        json!({ "user": 3, "purpose": "nightly invoice export", "ipRanges": ["203.0.113.0/24"],
            "expiresAt": "2027-03-30", "scopes": ["invoices:read"] }),
    );
    o["responses"] = responses(
        "201",
        answer("the issued key and its secret", ref_schema("IssuedKey"), example_issued(14, None)),
        &[422],
    );
    o
}

fn get_op() -> Value {
    let mut o = op(
        "getKey",
        "Read one key",
        &format!(
            "{ADMIN_READ} `ETag` versions the key's settings and state (not its last use): send it as `If-Match` \
             with a change."
        ),
    );
    o["parameters"] = json!([id_param()]);
    let mut ok = answer("the key", ref_schema("Key"), example_key());
    ok["headers"]["ETag"] = json!({ "description": "the key's version", "schema": { "type": "string" } });
    o["responses"] = responses("200", ok, &[]);
    o
}

fn update_op() -> Value {
    let mut o = op(
        "updateKey",
        "Change a key's purpose, ranges, expiry or rate limit",
        &format!(
            "{ADMIN_WRITE} With `If-Match`, only when the key is still that version: otherwise `412 \
             precondition_failed` and nothing is written. Audited `key.updated`; an expiry moved later is judged \
             by the grant ceiling."
        ),
    );
    o["parameters"] = json!([
        id_param(),
        { "name": "If-Match", "in": "header", "required": false, "description": "the `ETag` read before",
          "schema": { "type": "string" }, "example": "\"5c1d0e9a7b3f2e4d6a8c9b01\"" },
    ]);
    o["requestBody"] = body(
        "KeyUpdate",
        json!({ "purpose": "hourly invoice export", "ipRanges": ["203.0.113.0/24", "2001:db8::/48"] }),
    );
    let mut key = example_key();
    key["purpose"] = json!("hourly invoice export");
    key["ipRanges"] = json!(["203.0.113.0/24", "2001:db8::/48"]);
    o["responses"] = responses("200", answer("the key as it now is", ref_schema("Key"), key), &[409, 412, 422]);
    o
}

fn switch_op(action: &str, summary: &str) -> Value {
    let mut o = op(&format!("{action}Key"), summary, &format!("{ADMIN_WRITE} Audited `key.{action}d`."));
    o["parameters"] = json!([id_param()]);
    let mut key = example_key();
    match action {
        "disable" => key["status"] = json!("disabled"),
        "revoke" => {
            key["status"] = json!("revoked");
            key["revokedAt"] = json!("2026-03-31T09:30:00Z");
        }
        _ => {}
    }
    o["responses"] = responses("200", answer("the key as it now is", ref_schema("Key"), key), &[]);
    o
}

fn roll_op() -> Value {
    let mut o = op(
        "rollKey",
        "Roll a key: a successor with the same owner, scopes, units and ranges",
        &format!(
            "{ADMIN_WRITE} The old key keeps working for `overlapHours` (0 to {OVERLAP_MAX_HOURS}), then expires. \
             Only two keys of a line of rolls work at once: the roll ends, now, the old key's own predecessor \
             and any earlier successor of the old key (the audit event names them). \
             The answer holds the successor's secret, shown this once; judged by the grant ceiling as a hand-over."
        ),
    );
    o["parameters"] = json!([id_param()]);
    o["requestBody"] = body("KeyRoll", json!({ "overlapHours": 24 }));
    o["responses"] = responses(
        "201",
        answer("the successor and its secret", ref_schema("IssuedKey"), example_issued(15, Some(12))),
        &[422],
    );
    o
}

fn usage_op() -> Value {
    let mut o = op(
        "getKeyUsage",
        "A key's calls per day, accepted or refused by code, and its last use",
        &format!("{ADMIN_READ} Counts reach the database within a minute of the calls."),
    );
    o["parameters"] = json!([
        id_param(),
        { "name": "days", "in": "query", "required": false, "description": "days back, today included",
          "schema": { "type": "integer", "minimum": 1, "maximum": keygate_service::USAGE_DAYS_MAX, "default": 30 },
          "example": 2 },
    ]);
    let example = json!({
        "keyId": 12,
        "from": "2026-03-30",
        "to": "2026-03-31",
        "days": [
            { "date": "2026-03-30", "accepted": 1440, "refused": {} },
            { "date": "2026-03-31", "accepted": 120, "refused": { "ip_not_allowed": 3 } },
        ],
        "totals": { "accepted": 1560, "refused": { "ip_not_allowed": 3 } },
        "lastUsedAt": "2026-03-31T02:00:07Z",
        "lastUsedIp": "203.0.113.9",
    });
    o["responses"] = responses("200", answer("the key's usage", ref_schema("KeyUsage"), example), &[]);
    o
}

fn bulk_op() -> Value {
    let mut o = op(
        "bulkKeys",
        "Issue, disable or revoke up to 100 keys in one call, all or nothing",
        &format!(
            "{ADMIN_WRITE} One transaction: when any item fails (unknown, revoked, invalid, or beyond the caller's \
             power by the grant ceiling), nothing is written. At most {BULK_MAX} items (`400 invalid_parameter` \
             beyond). `issue` answers `201` with every secret, shown this once; `disable` and `revoke` answer `200` \
             with the keys as they now are. Every item is audited as its single operation is."
        ),
    );
    o["requestBody"] = body("KeyBulk", json!({ "action": "disable", "items": [{ "id": 12 }, { "id": 14 }] }));
    let mut a = example_key();
    a["status"] = json!("disabled");
    let mut b = example_key();
    b["id"] = json!(14);
    b["status"] = json!("disabled");
    let mut out = refusals(&[409, 422]);
    out.insert(
        "200".into(),
        answer(
            "disabled or revoked: the keys as they now are",
            ref_schema("KeyBulkDone"),
            json!({ "action": "disable", "items": [a, b] }),
        ),
    );
    out.insert(
        "201".into(),
        answer(
            "issued: the keys and their secrets",
            ref_schema("KeyBulkDone"),
            json!({ "action": "issue", "items": [example_issued(14, None)] }),
        ),
    );
    o["responses"] = Value::Object(out);
    o
}

fn self_op() -> Value {
    let mut o = op(
        "getOwnKey",
        "The calling key itself",
        "Any valid key; no administrative power. As `getKey` answers it, with its `ETag`.",
    );
    o["responses"] = responses("200", answer("the calling key", ref_schema("Key"), example_key()), &[]);
    o
}

fn self_roll_op() -> Value {
    let mut o = op(
        "rollOwnKey",
        "The calling key rolls itself",
        &format!(
            "Any valid key; no administrative power: a CI rotates its own key with nobody in the loop. The \
             successor has exactly the key's owner, scopes, units, ranges, purpose, expiry and rate limit; the \
             calling key keeps working for `overlapHours` (0 to {OVERLAP_MAX_HOURS}). A key rolls itself once: a \
             second roll (a leaked copy racing its owner), even concurrent with the first, is `409 conflict` and \
             audited `key.roll_refused`; so is the roll of a key that a roll made less than \
             {SELF_ROLL_MIN_AGE_MINUTES} minutes ago. The roll ends, now, the calling key's own predecessor if it \
             still works: only two keys of a line of rolls work at once."
        ),
    );
    o["requestBody"] = body("KeyRoll", json!({ "overlapHours": 1 }));
    o["responses"] = responses(
        "201",
        answer("the successor and its secret", ref_schema("IssuedKey"), example_issued(15, Some(12))),
        &[409, 422],
    );
    o
}
