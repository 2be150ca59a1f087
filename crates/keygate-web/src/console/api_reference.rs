//! The API reference page: the OpenAPI document ([`crate::openapi`]) rendered as HTML by keygate
//! itself, so the reference an administrator reads is the contract the server serves: each
//! operation with its example request and answer, and the problem answers once, in one section.
//! No external assets and no script (so no number passes through JavaScript's doubles). Reads the
//! document only; no rules here.

use axum::{http::StatusCode, response::Response};
use serde_json::Value;

use super::{Chrome, Session, render};
use crate::openapi;

#[derive(askama::Template)]
#[template(path = "console/api.html")]
pub(crate) struct ApiReferencePage {
    pub chrome: Chrome,
    pub version: String,
    pub description: Rich,
    pub groups: Vec<OperationGroup>,
    pub schemas: Vec<SchemaDoc>,
    pub codes: Vec<CodeDoc>,
    /// One problem answer per status, with its example, shown once for every operation.
    pub errors: Vec<ErrorDoc>,
}

/// The problem answer of one status (`components/responses/Problem{status}`).
pub(crate) struct ErrorDoc {
    pub status: String,
    pub description: Rich,
    pub headers: String,
    pub example: String,
}

/// Text in which `backquoted` spans are code, as the document writes them (Markdown's code
/// spans; nothing else of Markdown is read). Each part is escaped by the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rich(pub Vec<(bool, String)>);

impl Rich {
    fn of(text: &str) -> Self {
        Self(
            text.split('`')
                .enumerate()
                .filter(|(_, part)| !part.is_empty())
                .map(|(i, part)| (i % 2 == 1, part.to_owned()))
                .collect(),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The operations of one tag.
pub(crate) struct OperationGroup {
    pub name: String,
    pub about: Rich,
    pub operations: Vec<OperationDoc>,
}

pub(crate) struct OperationDoc {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: Rich,
    pub description: Rich,
    pub authenticated: bool,
    pub parameters: Vec<FieldDoc>,
    /// The request body's schema, by name.
    pub body: Option<String>,
    /// The answers with a body of their own (success and the like).
    pub responses: Vec<ResponseDoc>,
    /// The statuses answered with a problem document, described once in the errors section.
    pub errors: Vec<String>,
    /// The example request as HTTP text (request line, headers, body), and the example answer.
    pub example_request: String,
    pub example_answer: Option<Example>,
}

/// An example answer: its status and body as text.
pub(crate) struct Example {
    pub status: String,
    pub body: String,
}

pub(crate) struct ResponseDoc {
    pub status: String,
    pub description: Rich,
    /// The answer's schema, as a short type (a schema name, or e.g. `object`).
    pub schema: String,
    /// The anchor of that schema on this page, when it is a named one.
    pub schema_anchor: Option<String>,
    pub headers: String,
}

/// A parameter or a schema member.
pub(crate) struct FieldDoc {
    pub name: String,
    pub place: String,
    pub required: bool,
    pub ty: String,
    pub description: Rich,
}

pub(crate) struct SchemaDoc {
    pub name: String,
    pub description: Rich,
    pub fields: Vec<FieldDoc>,
}

pub(crate) struct CodeDoc {
    pub code: String,
    pub status: u16,
    pub about: Rich,
}

/// `GET /console/api`. Any logged-in user: it describes the API, not the tenant's data.
pub(crate) async fn api_reference_page(Session(ctx): Session) -> Response {
    let page = page(&openapi::document(), ctx.chrome());
    render(StatusCode::OK, &page)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn rich(v: &Value) -> Rich {
    Rich::of(v.as_str().unwrap_or_default())
}

fn page(doc: &Value, chrome: Chrome) -> ApiReferencePage {
    let mut groups: Vec<OperationGroup> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| OperationGroup { name: text(&t["name"]), about: rich(&t["description"]), operations: Vec::new() })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "patch", "put", "delete"] {
            let op = &item[method];
            if !op.is_object() {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or_default();
            let Some(group) = groups.iter_mut().find(|g| g.name == tag) else { continue };
            group.operations.push(operation(doc, method, path, op));
        }
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| SchemaDoc { name: name.clone(), description: rich(&s["description"]), fields: members(s) })
        .collect();
    let mut codes: Vec<CodeDoc> = openapi::all_problem_codes()
        .into_iter()
        .map(|(code, status, about)| CodeDoc { code: code.to_owned(), status, about: Rich::of(about) })
        .collect();
    codes.sort_by_key(|c| c.status);
    let errors = doc["components"]["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, r)| {
            let status = name.strip_prefix("Problem")?.to_owned();
            let headers: Vec<&str> =
                r["headers"].as_object().into_iter().flatten().map(|(name, _)| name.as_str()).collect();
            let example = r["content"].as_object().and_then(|c| c.values().next()).map(|m| &m["example"]);
            Some(ErrorDoc {
                status,
                description: rich(&r["description"]),
                headers: headers.join(", "),
                example: example.filter(|e| !e.is_null()).map(pretty).unwrap_or_default(),
            })
        })
        .collect();
    ApiReferencePage {
        chrome,
        version: text(&doc["info"]["version"]),
        description: rich(&doc["info"]["description"]),
        groups,
        schemas,
        codes,
        errors,
    }
}

/// A JSON value as indented text; a string example (a text answer) as itself. serde_json writes
/// every integer exactly (`9223372036854775807`, never a rounded double).
fn pretty(v: &Value) -> String {
    match v {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// Percent-encodes a query value the way a client must send it (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The example request of an operation as HTTP text: the request line with the path and query
/// parameters' examples, the example headers, the key, and the example body.
fn example_request(doc: &Value, method: &str, path: &str, op: &Value, authenticated: bool) -> String {
    let mut target = path.to_owned();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let p = resolve(doc, p);
        let Some(example) = p.get("example") else { continue };
        let value = example.as_str().map_or_else(|| example.to_string(), str::to_owned);
        let name = text(&p["name"]);
        match p["in"].as_str() {
            Some("path") => target = target.replace(&format!("{{{name}}}"), &value),
            Some("query") => query.push(format!("{name}={}", encode(&value))),
            Some("header") if p["required"] == true || name.starts_with("X-Forwarded") => {
                headers.push(format!("{name}: {value}"));
            }
            _ => {}
        }
    }
    if !query.is_empty() {
        target = format!("{target}?{}", query.join("&"));
    }
    let mut out = format!("{} {target}", method.to_ascii_uppercase());
    if authenticated {
        out.push_str("\nAuthorization: Bearer kg_…");
    }
    for h in headers {
        out.push('\n');
        out.push_str(&h);
    }
    if let Some(body) = op["requestBody"]["content"]["application/json"].get("example") {
        out.push_str("\nContent-Type: application/json\n\n");
        out.push_str(&pretty(body));
    }
    out
}

fn operation(doc: &Value, method: &str, path: &str, op: &Value) -> OperationDoc {
    let parameters = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(doc, p))
        .map(|p| FieldDoc {
            name: text(&p["name"]),
            place: text(&p["in"]),
            required: p["required"].as_bool().unwrap_or(false),
            ty: type_of(&p["schema"]),
            description: rich(&p["description"]),
        })
        .collect();
    let body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().map(ref_name);
    let mut errors = Vec::new();
    let mut responses = Vec::new();
    let mut example_answer = None;
    for (status, r) in op["responses"].as_object().into_iter().flatten() {
        if r["$ref"].as_str().is_some_and(|r| r.starts_with("#/components/responses/Problem")) {
            errors.push(status.clone());
            continue;
        }
        let content = r["content"].as_object().and_then(|c| c.values().next());
        let schema = content.map(|c| &c["schema"]);
        let schema_anchor = schema.and_then(|s| s["$ref"].as_str()).map(|r| format!("schema-{}", ref_name(r)));
        let headers: Vec<&str> =
            r["headers"].as_object().into_iter().flatten().map(|(name, _)| name.as_str()).collect();
        if example_answer.is_none() {
            let example = content.and_then(|c| c.get("example"));
            let example_headers: Vec<String> = r["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, h)| h["example"].as_str().map(|e| format!("{name}: {e}")))
                .collect();
            if let Some(e) = example {
                example_answer = Some(Example { status: status.clone(), body: pretty(e) });
            } else if !example_headers.is_empty() {
                example_answer = Some(Example { status: status.clone(), body: example_headers.join("\n") });
            } else if content.is_none() && status.starts_with('2') {
                // An answer without a body (204): its status is the whole example.
                example_answer = Some(Example { status: status.clone(), body: "(no body)".to_owned() });
            }
        }
        responses.push(ResponseDoc {
            status: status.clone(),
            description: rich(&r["description"]),
            schema: schema.map(type_of).unwrap_or_default(),
            schema_anchor,
            headers: headers.join(", "),
        });
    }
    let authenticated = op["security"].as_array().is_some_and(|s| !s.is_empty());
    OperationDoc {
        anchor: text(&op["operationId"]),
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        summary: rich(&op["summary"]),
        description: rich(&op["description"]),
        authenticated,
        parameters,
        body,
        responses,
        errors,
        example_request: example_request(doc, method, path, op, authenticated),
        example_answer,
    }
}

/// The object a `$ref` names inside the document, or `v` itself.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

fn ref_name(r: &str) -> String {
    r.rsplit('/').next().unwrap_or(r).to_owned()
}

/// A schema as a short type: `integer (1 to 10000)`, `string or null`, `array of Problem`, ….
fn type_of(s: &Value) -> String {
    if let Some(r) = s["$ref"].as_str() {
        return ref_name(r);
    }
    let types: Vec<String> = match &s["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().map(text).collect(),
        _ => vec!["any".to_owned()],
    };
    let mut out = types
        .iter()
        .map(|t| if t == "array" { format!("array of {}", type_of(&s["items"])) } else { t.clone() })
        .collect::<Vec<_>>()
        .join(" or ");
    if let Some(format) = s["format"].as_str() {
        out.push_str(&format!(" ({format})"));
    }
    // The bound as the document writes it: `i64::MAX` is 9223372036854775807, not a rounded double.
    let bound = |k: &str| s[k].as_number().map(ToString::to_string);
    match (bound("minimum").or(bound("exclusiveMinimum")), bound("maximum").or(bound("exclusiveMaximum"))) {
        (Some(lo), Some(hi)) => out.push_str(&format!(", {lo} to {hi}")),
        (Some(lo), None) => out.push_str(&format!(", from {lo}")),
        (None, Some(hi)) => out.push_str(&format!(", up to {hi}")),
        (None, None) => {}
    }
    if let Some(max) = s["maxLength"].as_u64().filter(|m| *m > 0) {
        out.push_str(&format!(", at most {max} characters"));
    }
    if let Some(values) = s["enum"].as_array() {
        let shown: Vec<String> =
            values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
        out.push_str(&format!(": one of {}", shown.join(", ")));
    }
    out
}

fn members(schema: &Value) -> Vec<FieldDoc> {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| FieldDoc {
            name: name.clone(),
            place: String::new(),
            required: required.contains(&name.as_str()),
            ty: type_of(s),
            description: rich(&s["description"]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_of_the_document_is_on_the_page() {
        let doc = openapi::document();
        let page = page(&doc, Chrome::default());
        let shown: usize = page.groups.iter().map(|g| g.operations.len()).sum();
        let documented: usize =
            doc["paths"].as_object().expect("paths").values().map(|item| item.as_object().expect("item").len()).sum();
        assert_eq!(shown, documented);
        assert!(page.codes.iter().any(|c| c.code == "key_revoked" && c.status == 401));
    }

    fn rendered() -> String {
        askama::Template::render(&page(&openapi::document(), Chrome::default())).expect("renders")
    }

    #[test]
    fn the_largest_id_reads_exactly_as_the_document_writes_it() {
        let max = serde_json::json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX });
        assert_eq!(type_of(&max), "integer, 1 to 9223372036854775807");
        let html = rendered();
        assert!(html.contains("1 to 9223372036854775807"));
        assert!(!html.contains("9223372036854775808") && !html.contains("9223372036854776000"));
    }

    #[test]
    fn the_problem_answers_are_described_once_not_under_every_operation() {
        let doc = openapi::document();
        let html = rendered();
        let statuses = doc["components"]["responses"].as_object().expect("responses").len();
        assert_eq!(html.matches("A problem document:").count(), statuses, "one description per status");
        assert_eq!(html.matches("<table>").count(), html.matches("</table>").count());
        let p = page(&doc, Chrome::default());
        let view = p.groups.iter().flat_map(|g| &g.operations).find(|o| o.anchor == "readViewCompanies").expect("op");
        assert_eq!(view.errors, ["400", "401", "403", "404", "413", "429", "503"]);
        assert!(view.responses.iter().all(|r| r.status.starts_with('2')));
        assert_eq!(p.errors.len(), statuses);
        assert!(p.errors.iter().all(|e| e.example.contains(&format!("\"status\": {}", e.status))));
    }

    #[test]
    fn every_operation_shows_an_example_request_and_answer() {
        let p = page(&openapi::document(), Chrome::default());
        for op in p.groups.iter().flat_map(|g| &g.operations) {
            assert!(op.example_request.starts_with(&format!("{} /", op.method)), "{}", op.anchor);
            let request_line = op.example_request.lines().next().unwrap_or_default();
            assert!(!request_line.contains('{'), "{}: a path parameter without its example", op.anchor);
            assert!(op.example_answer.is_some(), "{}: no example answer", op.anchor);
        }
        let companies =
            p.groups.iter().flat_map(|g| &g.operations).find(|o| o.anchor == "readViewCompanies").expect("op");
        assert!(
            companies.example_request.starts_with(
                "GET /rest/v1/1/views/companies?externalFilter=isClient%20%3D%20true%20AND%20isDisabled%20%3D%20false"
            ),
            "{}",
            companies.example_request
        );
        let create =
            p.groups.iter().flat_map(|g| &g.operations).find(|o| o.anchor == "createCompaniesRecord").expect("op");
        assert!(create.example_request.contains("\"name\": \"Northwind Traders s.r.o.\""));
        assert_eq!(create.example_answer.as_ref().map(|a| a.status.as_str()), Some("201"));
    }

    #[test]
    fn backquoted_spans_are_code_and_the_rest_is_text() {
        let r = Rich::of("send `Authorization: Bearer <key>` or `X-API-Key`");
        assert_eq!(
            r.0,
            vec![
                (false, "send ".to_owned()),
                (true, "Authorization: Bearer <key>".to_owned()),
                (false, " or ".to_owned()),
                (true, "X-API-Key".to_owned()),
            ]
        );
        assert!(Rich::of("").is_empty());
    }

    #[test]
    fn types_read_as_short_text() {
        assert_eq!(type_of(&serde_json::json!({ "type": ["integer", "null"] })), "integer or null");
        assert_eq!(type_of(&serde_json::json!({ "type": "integer", "minimum": 1, "maximum": 10 })), "integer, 1 to 10");
        assert_eq!(
            type_of(&serde_json::json!({ "type": "array", "items": { "$ref": "#/components/schemas/FieldError" } })),
            "array of FieldError"
        );
    }
}
