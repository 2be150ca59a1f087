//! The Public API's own router: methods, paths that are not endpoints, bodies over the limit.

use crate::helpers::{problem_code, spawn_app};

#[tokio::test]
async fn a_method_an_endpoint_does_not_answer_is_405_naming_the_methods_it_does() {
    let app = spawn_app().await;
    let r = app.client.delete(app.url("/rest/v1/1/invoices?id=1")).send().await.expect("request");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD, POST, PATCH"));
    assert_eq!(problem_code(r).await, "method_not_allowed");
    let r = app.client.post(app.url("/rest/v1/1/capability")).send().await.expect("request");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET, HEAD"));
}

#[tokio::test]
async fn a_path_that_is_no_public_api_endpoint_is_404() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    for path in ["/rest/v1/1/capability/", "/rest/v1/1/invoices/7", "/rest/v1/1/views/", "/rest/v2/1/capability"] {
        let r = app.client.get(app.url(path)).bearer_auth(key.expose()).send().await.expect("request");
        assert_eq!(r.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn head_on_capability_answers_the_headers_without_a_body() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let r = app.client.head(app.url("/rest/v1/1/capability")).bearer_auth(key.expose()).send().await.expect("request");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("ratelimit").is_some());
    assert!(r.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn a_body_over_two_mebibytes_is_refused_with_413() {
    let app = spawn_app().await;
    let (_, key) = app.issue(&["127.0.0.0/8"], None).await;
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let r = app
        .client
        .post(app.url("/rest/v1/1/invoices"))
        .bearer_auth(key.expose())
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 413);
    assert_eq!(problem_code(r).await, "body_too_large");
}

#[tokio::test]
async fn a_call_without_a_key_is_refused_as_such_whatever_its_body() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/rest/v1/1/invoices"))
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(3 * 1024 * 1024)))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    assert_eq!(problem_code(r).await, "missing_credentials");
}

#[tokio::test]
async fn every_unknown_path_is_answered_with_a_page_or_a_problem_document_and_the_root_leads_to_the_console() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let root = client.get(app.url("/")).send().await.expect("send");
    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()["location"], "/console");
    for path in ["/nope", "/rest/v1/1/capability/", "/v2/anything"] {
        let r = client.get(app.url(path)).send().await.expect("send");
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(problem_code(r).await, "not_found", "{path}");
    }
    let page = client.get(app.url("/console/no-such-page")).send().await.expect("send");
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    assert!(page.text().await.expect("body").contains("There is no console page at /console/no-such-page"));
}
