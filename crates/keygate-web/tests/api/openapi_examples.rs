//! The OpenAPI document's examples: every operation has a request and an answer example, every
//! example is valid under its own schema, and each example request, sent to a real server on the
//! demo data, answers as its example says (SQLite and PostgreSQL).
//!
//! The schema check is a small JSON Schema reader for the keywords the document uses (no
//! validator crate is a dependency): `$ref`, `type`, `enum`, `required`, `properties`,
//! `additionalProperties: false`, `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
//! the numeric bounds, `format: date` and `not: {required}`. An unknown keyword fails the check.

use keygate_domain::{AuditEntry, Grant};
use keygate_service::Backend;
use keygate_service::Caller;
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, spawn_app_on};

on_both_backends!(every_example_request_answers_as_its_example_says_on_the_demo_data);

const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "format",
    "not",
    "description",
    "default",
    "pattern",
];

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {pointer}")),
        None => v,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `value` is valid under `schema`; the error names where and why not.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let Some(s) = schema.as_object() else { return Ok(()) };
    if let Some(unknown) = s.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("{at}: the schema uses `{unknown}`, which this check does not read"));
    }
    let actual = json_type(value);
    let types: Vec<&str> = match &s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| *t == actual || (*t == "number" && actual == "integer")) {
        return Err(format!("{at}: {value} is {actual}, the schema wants {types:?}"));
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array)
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {values:?}"));
    }
    if let Some(n) = value.as_f64() {
        let bound = |k: &str| s.get(k).and_then(Value::as_f64);
        if bound("minimum").is_some_and(|m| n < m)
            || bound("maximum").is_some_and(|m| n > m)
            || bound("exclusiveMinimum").is_some_and(|m| n <= m)
            || bound("exclusiveMaximum").is_some_and(|m| n >= m)
        {
            return Err(format!("{at}: {n} is out of the schema's bounds"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength").and_then(Value::as_u64).is_some_and(|m| len < m)
            || s.get("maxLength").and_then(Value::as_u64).is_some_and(|m| len > m)
        {
            return Err(format!("{at}: `{text}` has a length out of the schema's bounds"));
        }
        if s.get("format").and_then(Value::as_str) == Some("date") && !keygate_domain::views::is_date(text) {
            return Err(format!("{at}: `{text}` is not a date YYYY-MM-DD"));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if s.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m)
            || s.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m)
        {
            return Err(format!("{at}: {n} items is out of the schema's bounds"));
        }
        if let Some(item) = s.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate(doc, item, v, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        for name in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: the required member `{name}` is missing"));
            }
        }
        let properties = s.get("properties").and_then(Value::as_object);
        for (name, v) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(member) => validate(doc, member, v, &format!("{at}.{name}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: `{name}` is not a member the schema allows"));
                }
                None => {}
            }
        }
        if let Some(forbidden) = s.get("not").and_then(|n| n["required"].as_array())
            && forbidden.iter().filter_map(Value::as_str).all(|name| object.contains_key(name))
        {
            return Err(format!("{at}: {forbidden:?} may not all be sent together"));
        }
    }
    Ok(())
}

/// Every operation of the document as (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

/// The success status of an operation and its response object.
fn success<'a>(doc: &'a Value, op: &'a Value) -> (String, &'a Value) {
    let (status, response) =
        op["responses"].as_object().expect("responses").iter().find(|(s, _)| s.starts_with('2')).expect("a 2xx answer");
    (status.clone(), resolve(doc, response))
}

fn media(response: &Value) -> Option<&Value> {
    response["content"].as_object().and_then(|c| c.values().next())
}

#[test]
fn every_operation_has_a_request_and_an_answer_example_and_each_is_valid_under_its_schema() {
    let doc = keygate_web::openapi::document();
    let mut problems = Vec::new();
    let ops = operations(&doc);
    for (path, method, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = resolve(&doc, p);
            match p.get("example") {
                Some(example) => {
                    if let Err(e) = validate(&doc, &p["schema"], example, &format!("{at} parameter {}", p["name"])) {
                        problems.push(e);
                    }
                }
                None if p["required"] == true => {
                    problems.push(format!("{at}: the parameter {} has no example", p["name"]));
                }
                None => {}
            }
        }
        if let Some(body) = op["requestBody"]["content"].as_object().and_then(|c| c.values().next()) {
            match body.get("example") {
                Some(example) => {
                    if let Err(e) = validate(&doc, &body["schema"], example, &format!("{at} request body")) {
                        problems.push(e);
                    }
                }
                None => problems.push(format!("{at}: the request body has no example")),
            }
        }
        let (status, response) = success(&doc, op);
        match media(response) {
            Some(m) => match m.get("example") {
                Some(example) => {
                    if let Err(e) = validate(&doc, &m["schema"], example, &format!("{at} answer {status}")) {
                        problems.push(e);
                    }
                }
                None => problems.push(format!("{at}: the {status} answer has no example")),
            },
            // An answer without a body (forward-auth) shows its headers.
            None => {
                for (name, h) in response["headers"].as_object().into_iter().flatten() {
                    if name.starts_with("X-Keygate") && h.get("example").is_none() {
                        problems.push(format!("{at}: the {status} header {name} has no example"));
                    }
                }
            }
        }
    }
    for (name, response) in doc["components"]["responses"].as_object().expect("responses") {
        let m = media(response).expect("a problem body");
        let example = m.get("example").unwrap_or_else(|| panic!("{name} has no example"));
        if let Err(e) = validate(&doc, &m["schema"], example, name) {
            problems.push(e);
        }
        assert_eq!(format!("Problem{}", example["status"]), *name, "an example of its own status");
        assert_eq!(example["type"], format!("/problems/{}", example["code"].as_str().expect("code")));
    }
    assert!(ops.len() >= 40, "{} operations", ops.len());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The member names of a JSON value, recursively (arrays by their first item).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => json!([items.first().map(shape)]),
        other => json!(json_type(other)),
    }
}

/// Each example request of the Public API and the verify endpoint, as written in the document,
/// sent to a server holding the demo data (`seed_demo_data`, scale 1, as `keygate demo` seeds
/// it, with its group `Integration readers`). Reads go first (a write example changes record 2).
/// The answer has the example's status, is valid under the schema, and has the example's
/// members; the business records read (views and records by id) are the example, value for value.
async fn every_example_request_answers_as_its_example_says_on_the_demo_data(app: TestApp) {
    app.keygate.seed_demo_data(&Caller::CLI, app.tenant, &[app.admin, app.user], 1).await.expect("seed");
    let grants: Vec<Grant> = ["companies:read:all", "persons:read:all", "jobs:read:all", "invoices:read:all"]
        .iter()
        .map(|g| g.parse().expect("grant"))
        .collect();
    let audit = AuditEntry::new(Some(app.tenant), Caller::CLI.actor(), "group.created", "group Integration readers");
    app.keygate
        .store_for_tests()
        .groups()
        .create(app.tenant, "Integration readers", &grants, &audit)
        .await
        .expect("group");
    let key = key_for(&app, "admin@acme.example", None).await;
    // The verify example checks a key: a real one of this tenant stands in for the example's,
    // and the caller's key carries `keys:verify`.
    let verifier = key_for(&app, "admin@acme.example", Some(&["keys:verify"])).await;
    let doc = keygate_web::openapi::document();
    let mut ops: Vec<_> = operations(&doc)
        .into_iter()
        .filter(|(path, _, _)| path.starts_with("/rest/v1/") || path == "/v1/keys/verify")
        .collect();
    ops.sort_by_key(|(_, method, _)| method != "get");
    let mut sent = 0;
    for (path, method, op) in &ops {
        let mut url = path.replace("{unitId}", "1");
        let mut query = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = resolve(&doc, p);
            if let (Some(example), "query") = (p.get("example"), p["in"].as_str().unwrap_or_default()) {
                let text = example.as_str().map_or_else(|| example.to_string(), str::to_owned);
                query.push(format!("{}={}", p["name"].as_str().expect("name"), url_encode(&text)));
            }
        }
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let mut request = match method.as_str() {
            "get" => app.client.get(app.url(&url)),
            "post" => app.client.post(app.url(&url)),
            "patch" => app.client.patch(app.url(&url)),
            other => panic!("{other} {path}"),
        }
        .bearer_auth(if path == "/v1/keys/verify" { verifier.expose() } else { key.expose() });
        if let Some(body) = op["requestBody"]["content"]["application/json"].get("example") {
            let mut body = body.clone();
            if path == "/v1/keys/verify" {
                assert_eq!(body["key"], keygate_web::openapi::EXAMPLE_KEY);
                body["key"] = json!(key.expose());
            }
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request");
        let status = answer.status().as_u16().to_string();
        let body: Value = answer.json().await.expect("a JSON answer");
        let (expected_status, response) = success(&doc, op);
        let m = media(response).expect("a body");
        let example = &m["example"];
        let at = format!("{} {url}", method.to_uppercase());
        assert_eq!(status, expected_status, "{at} answered {body}");
        validate(&doc, &m["schema"], &body, &at).unwrap_or_else(|e| panic!("the answer is not valid: {e}"));
        assert_eq!(shape(&body), shape(example), "{at}: the answer's members are not the example's");
        let business = ["companies", "persons", "jobs", "tasks", "documents", "invoices", "intervals"];
        if method == "get" && business.iter().any(|b| path.contains(&format!("/{b}"))) {
            assert_eq!(&body, example, "{at}: the demo data answers otherwise");
        }
        sent += 1;
    }
    assert_eq!(sent, 1 + 13 + 6 + 7 + 7 + 1, "capability, 13 views, 6 reads, 7 creates, 7 changes, verify");
}
