//! The API contract: `/openapi.json` is the document the code builds, and it names what the
//! handlers really send (the full check is schemathesis, `tests/contract/run.sh`).

use keygate_domain::{RefusalCode, views::VIEWS};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_served_document_is_the_one_the_code_builds_and_needs_no_key() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let text = r.text().await.expect("body");
    assert_eq!(text, keygate_web::openapi::document_text());
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn every_view_has_its_path_and_row_schema_and_every_refusal_code_is_listed() {
    let doc = keygate_web::openapi::document();
    for view in VIEWS {
        let path = format!("/rest/v1/{{unitId}}/views/{}", view.name);
        assert!(doc["paths"][&path]["get"].is_object(), "{path}");
    }
    let codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"].as_array().expect("codes");
    for code in RefusalCode::ALL {
        assert!(codes.contains(&Value::from(code.code())), "{}", code.code());
    }
    for resource in ["companies", "persons", "jobs", "tasks", "documents", "users", "time"] {
        let item = &doc["paths"][format!("/rest/v1/{{unitId}}/{resource}")];
        assert!(item["post"].is_object() && item["patch"].is_object(), "{resource}");
        assert_eq!(item["get"].is_object(), resource != "time", "{resource}");
    }
}

#[tokio::test]
async fn a_capability_answer_has_exactly_the_documented_members() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let body: Value = app.capability(key.expose()).await.json().await.expect("JSON");
    let doc = keygate_web::openapi::document();
    let schema = &doc["components"]["schemas"]["Capability"];
    let mut documented: Vec<&str> =
        schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    let mut sent: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    documented.sort_unstable();
    sent.sort_unstable();
    assert_eq!(sent, documented);
}

#[test]
fn the_document_declares_the_licence_that_cargo_declares_and_the_repository_ships() {
    let doc = keygate_web::openapi::document();
    assert_eq!(doc["info"]["license"]["identifier"], env!("CARGO_PKG_LICENSE"));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0", "the LICENSE file below is Apache-2.0");
    let licence = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../LICENSE")).expect("LICENSE");
    assert!(
        licence.contains("Apache License") && licence.contains("Version 2.0, January 2004"),
        "LICENSE is Apache 2.0"
    );
}
