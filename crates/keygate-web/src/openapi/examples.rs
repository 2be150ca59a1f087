//! Examples for every operation of the OpenAPI document: a value for each parameter, a request
//! body where there is one, the answer to that request, and one problem document per status.
//! Taken from what a debug keygate answered on the demo data (`keygate demo`, scale 1) to these
//! very requests; `tests/api/openapi.rs` sends them again and checks each answer against its
//! example and each example against its schema. Only adds `example` members to the document
//! [`super::document`] built; no I/O here.

use serde_json::{Map, Value, json};

/// A key of the form keygate issues (`kg_` + 32 + 6 base62 characters), known to no server.
pub const EXAMPLE_KEY: &str = "kg_mK9wTukiB4Ij4HgS4WXKsNyyTzgNHK9s06pKGn";

/// Adds the examples to `doc` (operations are found by `operationId`).
pub(super) fn add(doc: &mut Value) {
    parameters(&mut doc["components"]["parameters"]);
    problems(&mut doc["components"]["responses"]);
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (_, op) in item.iter_mut() {
            operation(path, op);
        }
    }
}

fn parameters(components: &mut Value) {
    components["unitId"]["example"] = json!(1);
    components["recordId"]["example"] = json!(2);
    components["idempotencyKey"]["example"] = json!("import-2026-03-31-0001");
}

/// One problem document per status, as keygate sends them (the request id varies).
fn problems(responses: &mut Value) {
    let Some(responses) = responses.as_object_mut() else { return };
    for (name, response) in responses.iter_mut() {
        let example = match name.as_str() {
            "Problem400" => problem(400, "invalid_filter", "The request cannot be run")
                .detail("at character 6: expected a value, found end of input"),
            "Problem401" => problem(401, "key_revoked", "The API key has been revoked"),
            "Problem403" => problem(403, "insufficient_permission", "The API key's user or scopes do not permit this")
                .detail("the key may not read tasks"),
            "Problem404" => problem(404, "not_found", "Not found").detail("companies 999999 was not found"),
            "Problem405" => problem(405, "method_not_allowed", "This endpoint does not answer this method")
                .detail("allowed: GET, HEAD, POST, PATCH"),
            "Problem409" => {
                problem(409, "conflict", "Conflict").detail("a request with this Idempotency-Key is still in progress")
            }
            "Problem412" => problem(412, "precondition_failed", "Precondition failed")
                .detail("If-Match named \"5c1d0e9a7b3f2e4d6a8c9b01\", but key 12 changed since; nothing was written (read it again)"),
            "Problem413" => {
                problem(413, "body_too_large", "The request body is too large").detail("the request body is over 2 MiB")
            }
            "Problem422" => {
                let mut p = problem(422, "invalid_fields", "Some fields are not valid; nothing was written");
                p.0["errors"] = json!([
                    { "field": "budget", "message": "must be an amount such as 1250.50" },
                    { "field": "name", "message": "must not be empty" },
                ]);
                p
            }
            "Problem429" => problem(429, "rate_limited", "Too many requests for this key; retry later"),
            "Problem500" => problem(500, "internal_error", "Something went wrong on our side"),
            "Problem503" => problem(
                503,
                "unavailable",
                "keygate cannot check the key now (its database does not answer); retry later",
            ),
            _ => continue,
        };
        if let Some(content) = response["content"].as_object_mut().and_then(|c| c.values_mut().next()) {
            content["example"] = example.0;
        }
    }
}

struct Problem(Value);

impl Problem {
    fn detail(mut self, detail: &str) -> Self {
        self.0["detail"] = json!(detail);
        self
    }
}

fn problem(status: u16, code: &str, title: &str) -> Problem {
    Problem(json!({
        "type": format!("/problems/{code}"),
        "title": title,
        "status": status,
        "code": code,
        "requestId": "3f4b0cb7-2c",
    }))
}

/// Sets the example of the inline parameter `name` of `op`.
fn parameter(op: &mut Value, name: &str, example: Value) {
    for p in op["parameters"].as_array_mut().into_iter().flatten() {
        if p["name"] == name {
            p["example"] = example.clone();
        }
    }
}

fn request_body(op: &mut Value, example: Value) {
    if let Some(content) = op["requestBody"]["content"].as_object_mut().and_then(|c| c.values_mut().next()) {
        content["example"] = example;
    }
}

fn response(op: &mut Value, status: &str, example: Value) {
    if let Some(content) = op["responses"][status]["content"].as_object_mut().and_then(|c| c.values_mut().next()) {
        content["example"] = example;
    }
}

fn operation(path: &str, op: &mut Value) {
    let id = op["operationId"].as_str().unwrap_or_default().to_owned();
    if let Some(view) = path.strip_prefix("/rest/v1/{unitId}/views/") {
        parameter(op, "limit", json!(2));
        let rows = view_rows(view);
        let next = if view_is_short(view) { Value::Null } else { json!(2) };
        response(
            op,
            "200",
            json!({ "metadata": { "count": rows.len(), "limit": 2, "nextOffset": next }, "data": rows }),
        );
        return;
    }
    if let Some(resource) = path.strip_prefix("/rest/v1/{unitId}/").filter(|r| !r.contains('/')) {
        if resource == "capability" {
            response(op, "200", capability());
            return;
        }
        match op["operationId"].as_str().unwrap_or_default() {
            id if id.starts_with("create") => {
                request_body(op, create_body(resource));
                response(op, "201", created(resource));
            }
            id if id.starts_with("get") => response(op, "200", record(resource)),
            id if id.starts_with("update") => {
                request_body(op, update_body(resource));
                response(op, "200", json!({ "id": 2 }));
            }
            _ => {}
        }
        return;
    }
    match id.as_str() {
        "verifyKey" => {
            request_body(
                op,
                json!({ "key": EXAMPLE_KEY, "ip": "127.0.0.1", "unitId": 1, "permission": "companies:read" }),
            );
            response(
                op,
                "200",
                json!({
                    "valid": true,
                    "code": null,
                    "keyId": 1,
                    "userId": 2,
                    "tenant": "demo",
                    "permissions": ["companies:read:all", "persons:read:all", "jobs:read:all", "invoices:read:all"],
                }),
            );
        }
        "forwardAuthGet" | "forwardAuthPost" => {
            // No parameter examples: forward-auth answers any method, and schemathesis, given a
            // valid `tenant`, reads the 200 to its TRACE as a contract failure (the document
            // lists GET and POST only).
            let headers = &mut op["responses"]["200"]["headers"];
            for (name, example) in [
                ("X-Keygate-Tenant", "demo"),
                ("X-Keygate-User-Id", "2"),
                ("X-Keygate-Key-Id", "1"),
                ("X-Keygate-Permissions", "companies:read:all persons:read:all jobs:read:all invoices:read:all"),
            ] {
                headers[name]["example"] = json!(example);
            }
        }
        "healthz" => response(op, "200", json!("ok\n")),
        "readyz" => {
            response(op, "200", json!("ready\n"));
            response(op, "503", json!("database did not answer within 1 s\n"));
        }
        "metrics" => response(
            op,
            "200",
            json!(
                "# HELP keygate_build_info The running keygate: its version and build profile (always 1)\n\
                 # TYPE keygate_build_info gauge\nkeygate_build_info{version=\"0.1.0\",profile=\"debug\"} 1\n"
            ),
        ),
        "problem_type" => {
            parameter(op, "code", json!("key_revoked"));
            // The plain-text form, for clients that do not ask for HTML.
            let revoked = crate::ProblemCode::Refusal(keygate_domain::RefusalCode::KeyRevoked);
            op["responses"]["200"]["content"]["text/plain"]["example"] = json!(crate::problem_page::text_body(revoked));
            // The HTML page (for browsers) says the same around the console's layout; shortened here.
            op["responses"]["200"]["content"]["text/html"]["example"] = json!(
                "<!DOCTYPE html>\n<html lang=\"en\">…<h1><code>key_revoked</code></h1>\n<p>HTTP status 401: The API key \
                 has been revoked.</p>…</html>\n"
            );
        }
        "openapi" => response(op, "200", json!({ "openapi": "3.1.0", "info": { "title": "keygate" }, "paths": {} })),
        _ => {}
    }
}

/// Views whose example filter finds fewer rows than the example's `limit` of 2.
fn view_is_short(view: &str) -> bool {
    matches!(view, "units" | "users" | "groups")
}

fn capability() -> Value {
    json!({
        "clientIp": "127.0.0.1",
        "unit": 1,
        "dormantScopes": [],
        "key": {
            "display": "kg_mK9w…pKGn",
            "expiresAt": null,
            "id": 1,
            "ipRanges": ["127.0.0.0/8", "::1/128"],
            "purpose": "keygate demo",
            "scopes": null,
        },
        "permissions": ["companies:read:all", "persons:read:all", "jobs:read:all", "invoices:read:all"],
        "tenant": "demo",
        "user": { "category": "programmatic", "email": "integration@demo.example", "id": 2, "name": "ERP integration" },
    })
}

#[allow(clippy::too_many_arguments, reason = "one row of the demo data, column by column")]
fn company(
    id: i64,
    name: &str,
    reg: &str,
    vat: &str,
    address: &str,
    supplier: bool,
    owner: i64,
    segment: &str,
    rating: i64,
) -> Value {
    json!({
        "id": id, "name": name, "registrationNumber": reg, "vatId": vat, "address": address,
        "isClient": true, "isSupplier": supplier, "isDisabled": false, "ownerId": owner, "agencyId": 1,
        "properties": { "segment": segment, "rating": rating },
    })
}

#[allow(clippy::too_many_arguments, reason = "one row of the demo data, column by column")]
fn document(
    id: i64,
    ty: &str,
    status: &str,
    company: i64,
    issued: &str,
    currency: &str,
    net: f64,
    vat: f64,
    total: f64,
    owner: i64,
    centre: &str,
) -> Value {
    json!({
        "id": id, "type": ty, "number": format!("D1-{id:08}"), "status": status, "companyId": company,
        "personId": null, "issueDate": issued, "dueDate": null, "currency": currency,
        "amountNet": net, "amountVat": vat, "amountTotal": total, "tags": ["demo"],
        "ownerId": owner, "agencyId": 1, "properties": { "costCentre": centre },
    })
}

/// The first two rows each view's example request answers on the demo data.
fn view_rows(view: &str) -> Vec<Value> {
    match view {
        "units" => vec![json!({ "id": 2, "name": "Prague studio" }), json!({ "id": 3, "name": "Brno studio" })],
        "users" => vec![json!({
            "id": 2, "name": "ERP integration", "email": "integration@demo.example",
            "category": "programmatic", "isDisabled": false,
        })],
        "groups" => vec![
            json!({ "id": 1, "name": "Supervisor", "isSystem": true }),
            json!({ "id": 2, "name": "Configurator", "isSystem": true }),
        ],
        "companies" => vec![
            company(1, "Umbrella Agency 1", "51672197", "CZ18824415", "Street 12 , Prague", false, 1, "retail", 5),
            company(4, "Initech Group 4", "12350822", "CZ07979872", "Street 3 , Prague", false, 2, "retail", 5),
        ],
        "companies.client" => vec![
            company(5, "Acme a.s. 5", "36976518", "CZ99405198", "Street 42 , Prague", true, 2, "media", 4),
            company(12, "Acme GmbH 12", "93491439", "CZ02595675", "Street 9 , Prague", false, 2, "industry", 5),
        ],
        "companies.supplier" => vec![
            company(5, "Acme a.s. 5", "36976518", "CZ99405198", "Street 42 , Prague", true, 2, "media", 4),
            company(7, "Hooli GmbH 7", "95927320", "CZ37852906", "Street 116 , Prague", true, 2, "industry", 1),
        ],
        "persons" => vec![
            json!({ "id": 7, "firstName": "Jana", "lastName": "Svoboda", "email": "person950917@example.com", "phone": null,
                "companyId": 10, "isDisabled": false, "ownerId": 1, "agencyId": 1, "properties": {} }),
            json!({ "id": 13, "firstName": "Eva", "lastName": "Svoboda", "email": "person728751@example.com", "phone": null,
                "companyId": 95, "isDisabled": false, "ownerId": 2, "agencyId": 1, "properties": {} }),
        ],
        "jobs" => vec![
            json!({ "id": 4, "number": "J1-00004", "name": "Campaign 4", "status": "IN_PROGRESS", "companyId": 21,
                "startDate": "2026-08-14", "endDate": null, "budget": 208000.0, "ownerId": 2, "agencyId": 1, "properties": {} }),
            json!({ "id": 8, "number": "J1-00008", "name": "Campaign 8", "status": "IN_PROGRESS", "companyId": 56,
                "startDate": "2026-05-13", "endDate": null, "budget": 416000.0, "ownerId": 1, "agencyId": 1, "properties": {} }),
        ],
        "tasks" => vec![
            json!({ "id": 6, "jobId": 12, "name": "Task 6", "assigneeId": null, "status": "OPEN", "dueDate": "2026-02-12",
                "estimate": 7.5, "ownerId": 2, "agencyId": 1, "properties": {} }),
            json!({ "id": 12, "jobId": 30, "name": "Task 12", "assigneeId": null, "status": "IN_PROGRESS",
                "dueDate": "2026-06-24", "estimate": 8.5, "ownerId": 1, "agencyId": 1, "properties": {} }),
        ],
        "documents" => vec![
            document(10, "DOCUMENT.CONTRACT", "SENT", 191, "2026-08-28", "EUR", 46390.65, 9742.03, 56132.68, 1, "CC8"),
            document(12, "DOCUMENT.CONTRACT", "PAID", 120, "2026-04-12", "EUR", 15848.67, 3328.22, 19176.89, 2, "CC9"),
        ],
        "invoices.sales" => vec![
            document(16, "INVOICE.SALES", "APPROVED", 44, "2026-11-13", "CZK", 25068.83, 5264.45, 30333.28, 1, "CC4"),
            document(24, "INVOICE.SALES", "APPROVED", 166, "2026-03-10", "CZK", 33676.95, 7072.15, 40749.1, 1, "CC15"),
        ],
        "invoices.purchase" => vec![
            document(7, "INVOICE.PURCHASE", "SENT", 119, "2026-08-21", "EUR", 19897.51, 4178.47, 24075.98, 2, "CC18"),
            document(
                13,
                "INVOICE.PURCHASE",
                "APPROVED",
                43,
                "2026-09-14",
                "CZK",
                49717.12,
                10440.59,
                60157.71,
                2,
                "CC15",
            ),
        ],
        "intervals.track" => vec![
            json!({ "id": 6, "userId": 2, "jobId": 51, "taskId": null, "date": "2026-12-02", "hours": 6, "note": "Design work",
                "ownerId": 2, "agencyId": 1 }),
            json!({ "id": 7, "userId": 1, "jobId": 133, "taskId": null, "date": "2026-07-25", "hours": 7, "note": "Design work",
                "ownerId": 1, "agencyId": 1 }),
        ],
        _ => Vec::new(),
    }
}

/// Record 2 of each resource, read by id.
fn record(resource: &str) -> Value {
    match resource {
        "companies" => json!({
            "id": 2, "name": "Wayne Agency 2", "registrationNumber": "04210500", "vatId": "CZ39456608",
            "address": "Street 189 , Prague", "isClient": false, "isSupplier": true, "isDisabled": false,
            "ownerId": 1, "agencyId": 1, "properties": { "segment": "retail", "rating": 1 },
        }),
        "persons" => json!({
            "id": 2, "firstName": "Eva", "lastName": "Dvořák", "email": "person359295@example.com", "phone": null,
            "companyId": 13, "isDisabled": false, "ownerId": 1, "agencyId": 1, "properties": {},
        }),
        "jobs" => json!({
            "id": 2, "number": "J1-00002", "name": "Campaign 2", "status": "DONE", "companyId": 47,
            "startDate": "2026-05-26", "endDate": null, "budget": 233000.0, "ownerId": 2, "agencyId": 1, "properties": {},
        }),
        "tasks" => json!({
            "id": 2, "jobId": 32, "name": "Task 2", "assigneeId": null, "status": "OPEN", "dueDate": "2026-11-09",
            "estimate": 15.5, "ownerId": 1, "agencyId": 1, "properties": {},
        }),
        "documents" => document(
            2,
            "INVOICE.PURCHASE",
            "CANCELLED",
            45,
            "2026-09-22",
            "CZK",
            32076.66,
            6736.09,
            38812.75,
            2,
            "CC15",
        ),
        "users" => json!({
            "id": 2, "name": "ERP integration", "email": "integration@demo.example", "category": "programmatic",
            "isDisabled": false,
        }),
        _ => Value::Object(Map::new()),
    }
}

fn create_body(resource: &str) -> Value {
    match resource {
        "companies" => json!({
            "name": "Northwind Traders s.r.o.", "registrationNumber": "27074358", "vatId": "CZ27074358",
            "address": "Vinohradská 12, Prague", "isClient": true, "isSupplier": false,
            "properties": { "segment": "retail" },
        }),
        "persons" => json!({
            "firstName": "Lucie", "lastName": "Veselá", "email": "lucie.vesela@northwind.example",
            "phone": "+420 601 234 567", "companyId": 2,
        }),
        "jobs" => json!({
            "name": "Spring campaign", "status": "OPEN", "companyId": 2, "startDate": "2026-03-01",
            "endDate": "2026-05-31", "budget": 125000.5,
        }),
        "tasks" => {
            json!({ "name": "Storyboard", "jobId": 2, "status": "OPEN", "dueDate": "2026-03-15", "estimate": 6.5 })
        }
        "documents" => json!({
            "type": "INVOICE.SALES", "companyId": 2, "status": "DRAFT", "issueDate": "2026-03-31",
            "dueDate": "2026-04-14", "currency": "CZK", "amountNet": 10000, "amountVat": 2100, "amountTotal": 12100,
            "tags": ["spring"],
        }),
        "users" => json!({
            "name": "Warehouse sync", "email": "warehouse@demo.example", "category": "programmatic",
            "groups": ["Integration readers"],
        }),
        "time" => json!({ "date": "2026-03-02", "hours": 2.5, "jobId": 2, "note": "Storyboard review" }),
        _ => Value::Object(Map::new()),
    }
}

/// The id the demo data's next record of `resource` gets.
fn created(resource: &str) -> Value {
    match resource {
        "companies" => json!({ "id": 301 }),
        "persons" => json!({ "id": 601 }),
        "jobs" => json!({ "id": 399 }),
        "tasks" => json!({ "id": 999 }),
        "documents" => json!({ "id": 3001, "number": "INVSAL-2026-003001" }),
        "users" => json!({ "id": 4 }),
        "time" => json!({ "id": 5000 }),
        _ => json!({ "id": 1 }),
    }
}

fn update_body(resource: &str) -> Value {
    match resource {
        "companies" => json!({ "address": "Vinohradská 12, Prague" }),
        "persons" => json!({ "phone": "+420 601 234 567" }),
        "jobs" => json!({ "status": "DONE", "endDate": "2026-05-31" }),
        "tasks" => json!({ "status": "DONE" }),
        "documents" => json!({ "status": "PAID" }),
        "users" => json!({ "groups": ["Integration readers"] }),
        "time" => json!({ "hours": 3, "note": "Client call" }),
        _ => Value::Object(Map::new()),
    }
}
