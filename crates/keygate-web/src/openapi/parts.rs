//! Pieces every part of the OpenAPI document uses: references to components, the security
//! requirement, the headers of an authenticated answer and its problem responses. A leaf: the
//! document ([`super`]) and its parts (`manage_*`) import it, it imports neither.

use serde_json::{Map, Value, json};

pub(super) fn security() -> Value {
    json!([{ "bearer": [] }, { "apiKey": [] }])
}

pub(super) fn ref_schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub(super) fn ref_response(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

pub(super) fn ref_header(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// The problem responses of an authenticated endpoint, plus `extra` statuses. Every one may be
/// `503 unavailable` when keygate cannot read the key for want of its database.
pub(super) fn refusals(extra: &[u16]) -> Map<String, Value> {
    let mut out = Map::new();
    for status in [400, 401, 403, 404, 429, 503].iter().chain(extra) {
        out.insert(status.to_string(), ref_response(&format!("Problem{status}")));
    }
    out
}

pub(super) fn authenticated_headers() -> Value {
    json!({
        "RateLimit": ref_header("RateLimit"),
        "RateLimit-Policy": ref_header("RateLimit-Policy"),
        "X-Request-Id": ref_header("X-Request-Id"),
    })
}

pub(super) fn json_ok(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "headers": authenticated_headers(),
        "content": { "application/json": { "schema": schema } },
    })
}
