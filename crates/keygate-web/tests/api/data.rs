//! The data API over real HTTP, on SQLite and (when configured) PostgreSQL: views, the filter
//! language, paging, the page-size cap, injection attempts, reach, scopes and tenant isolation,
//! and record writes.

use std::collections::BTreeSet;

use keygate_domain::{ApiKeySecret, UnitId, views::Bound};
use keygate_service::{Backend, FieldValue, RecordWrite};
use keygate_service::{Caller, CreateUser, IssueKey, KeyOwner, ServiceConfig};
use serde_json::{Value, json};

use crate::helpers::{TestApp, key_for, problem_code, spawn_app_on};

on_both_backends!(
    every_view_answers_with_and_without_a_filter,
    the_documented_filter_examples_work,
    every_views_example_filter_in_the_openapi_document_finds_rows_in_the_demo_data,
    paging_through_a_whole_view_returns_every_row_exactly_once,
    a_page_is_cut_under_the_size_cap_and_paging_still_returns_every_row with super::small_pages(),
    sql_injection_payloads_are_refused_or_inert,
    bad_filters_name_the_position_and_the_problem,
    a_key_of_a_user_with_read_own_sees_only_own_records,
    a_key_scoped_narrower_than_its_user_is_narrower,
    a_key_of_one_tenant_reaches_nothing_of_another,
    records_are_created_read_and_changed_and_every_write_is_audited,
    unknown_fields_and_invalid_values_get_422_and_write_nothing,
    a_nul_character_in_written_text_is_a_field_error_not_a_server_error,
    a_retried_post_with_the_same_idempotency_key_gets_the_first_answer,
    deactivating_a_user_through_the_api_refuses_their_keys_on_the_next_request,
);

fn small_pages() -> ServiceConfig {
    ServiceConfig { max_page_bytes: 20_000, ..Default::default() }
}

async fn seed(app: &TestApp) {
    app.keygate.seed_demo_data(&Caller::CLI, app.tenant, &[app.admin, app.user], 1).await.expect("seed");
}

async fn get(app: &TestApp, key: &ApiKeySecret, path_and_query: &str) -> reqwest::Response {
    app.client.get(app.url(path_and_query)).bearer_auth(key.expose()).send().await.expect("request")
}

async fn page(app: &TestApp, key: &ApiKeySecret, path_and_query: &str) -> Value {
    let r = get(app, key, path_and_query).await;
    assert_eq!(r.status(), 200, "{path_and_query}");
    r.json().await.expect("json")
}

fn ids(page: &Value) -> Vec<i64> {
    page["data"].as_array().expect("data").iter().map(|r| r["id"].as_i64().expect("id")).collect()
}

/// Every row of a view, following `nextOffset`.
async fn all_pages(app: &TestApp, key: &ApiKeySecret, view: &str, limit: u32) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut offset = 0u64;
    loop {
        let p = page(app, key, &format!("/rest/v1/1/views/{view}?limit={limit}&offset={offset}")).await;
        rows.extend(p["data"].as_array().expect("data").iter().cloned());
        match p["metadata"]["nextOffset"].as_u64() {
            Some(next) => {
                assert!(next > offset, "paging must advance");
                offset = next;
            }
            None => return rows,
        }
    }
}

async fn every_view_answers_with_and_without_a_filter(app: TestApp) {
    seed(&app).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let filters = [
        ("units", "id >= 2"),
        ("users", "category = 'programmatic'"),
        ("groups", "isSystem = true"),
        ("companies", "isClient = true AND name LIKE 'a%'"),
        ("companies.client", "isDisabled = false"),
        ("companies.supplier", "id > 10"),
        ("persons", "lastName = ANY('Novák', 'Svoboda')"),
        ("jobs", "status <> 'DONE' AND budget > 1000"),
        ("tasks", "estimate >= 2.5 AND dueDate >= '2026-06-01'"),
        ("documents", "type = 'DOCUMENT.CONTRACT'"),
        ("invoices.sales", "status = 'PAID'"),
        ("invoices.purchase", "amountTotal < 5000.50"),
        ("intervals.track", "hours >= 4 AND note IS NOT NULL"),
    ];
    for (view, filter) in filters {
        let all = page(&app, &admin, &format!("/rest/v1/1/views/{view}?limit=10000")).await;
        let total = ids(&all).len();
        assert!(total > 0, "{view} has rows");
        let encoded: String = url_encode(filter);
        let some = page(&app, &admin, &format!("/rest/v1/1/views/{view}?limit=10000&externalFilter={encoded}")).await;
        let filtered = ids(&some);
        assert!(
            !filtered.is_empty() && filtered.len() < total,
            "{view} with `{filter}`: {} of {total}",
            filtered.len()
        );
        assert!(filtered.iter().all(|id| ids(&all).contains(id)));
    }
    let invoices = page(&app, &admin, "/rest/v1/1/views/invoices.sales?limit=10000").await;
    assert!(
        invoices["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|r| r["type"].as_str().is_some_and(|t| t.starts_with("INVOICE.SALES")))
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn the_documented_filter_examples_work(app: TestApp) {
    seed(&app).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let enabled = page(
        &app,
        &admin,
        &format!("/rest/v1/1/views/companies?limit=10000&externalFilter={}", url_encode("isDisabled=false")),
    )
    .await;
    assert!(enabled["data"].as_array().expect("rows").iter().all(|r| r["isDisabled"] == false));
    let approved = page(
        &app,
        &admin,
        &format!(
            "/rest/v1/1/views/documents?limit=10000&externalFilter={}",
            url_encode("(type='INVOICE.SALES' AND status='APPROVED')")
        ),
    )
    .await;
    let rows = approved["data"].as_array().expect("rows");
    assert!(!rows.is_empty() && rows.iter().all(|r| r["type"] == "INVOICE.SALES" && r["status"] == "APPROVED"));
    let above =
        page(&app, &admin, &format!("/rest/v1/1/views/jobs?limit=10000&externalFilter={}", url_encode("id>5"))).await;
    assert!(ids(&above).iter().all(|id| *id > 5));
}

/// The `externalFilter` example the OpenAPI document (and so the console's API reference) shows
/// for each view, sent as written to the view on the demo data.
async fn every_views_example_filter_in_the_openapi_document_finds_rows_in_the_demo_data(app: TestApp) {
    seed(&app).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let doc = keygate_web::openapi::document();
    let mut checked = 0;
    for view in keygate_domain::views::VIEWS {
        let path = format!("/rest/v1/{{unitId}}/views/{}", view.name);
        let parameters = doc["paths"][&path]["get"]["parameters"].as_array().expect("parameters");
        let filter = parameters
            .iter()
            .find(|p| p["name"] == "externalFilter")
            .and_then(|p| p["example"].as_str())
            .unwrap_or_else(|| panic!("{path}: no example for externalFilter"));
        let r =
            get(&app, &admin, &format!("/rest/v1/1/views/{}?externalFilter={}", view.name, url_encode(filter))).await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 200, "{}: `{filter}` answered {body}", view.name);
        let rows = body["data"].as_array().expect("data").len();
        assert!(rows >= 1, "{}: `{filter}` finds no row in the demo data", view.name);
        checked += 1;
    }
    assert_eq!(checked, 13, "every view of the catalogue");
}

async fn paging_through_a_whole_view_returns_every_row_exactly_once(app: TestApp) {
    seed(&app).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let one_page = page(&app, &admin, "/rest/v1/1/views/documents?limit=10000").await;
    assert!(one_page["metadata"]["nextOffset"].is_null());
    let expected = ids(&one_page);
    assert!(expected.len() > 1000, "{}", expected.len());
    let paged: Vec<i64> =
        all_pages(&app, &admin, "documents", 137).await.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert_eq!(paged, expected, "same rows, same order, none twice");
    let default = page(&app, &admin, "/rest/v1/1/views/documents").await;
    assert_eq!(default["metadata"]["limit"], 1000);
    assert_eq!(default["metadata"]["count"], 1000);
    assert_eq!(default["metadata"]["nextOffset"], 1000);
}

async fn a_page_is_cut_under_the_size_cap_and_paging_still_returns_every_row(app: TestApp) {
    let big = "x".repeat(3000);
    let writes: Vec<RecordWrite> = (0..30)
        .map(|i| RecordWrite {
            table: "companies",
            fields: vec![
                ("owner_id", FieldValue::Bound(Bound::Int(app.admin.0))),
                ("name", FieldValue::Bound(Bound::Text(format!("Big {i}")))),
                ("properties", FieldValue::Bound(Bound::Text(json!({ "blob": big }).to_string()))),
            ],
        })
        .collect();
    app.keygate.store_for_tests().records().seed(app.tenant, UnitId(1), &writes).await.expect("seed");
    let admin = key_for(&app, "admin@acme.example", None).await;
    let r = get(&app, &admin, "/rest/v1/1/views/companies?limit=1000").await;
    let body = r.text().await.expect("body");
    assert!(body.len() <= 20_000, "the page is {} bytes", body.len());
    let first: Value = serde_json::from_str(&body).expect("json");
    let count = first["metadata"]["count"].as_u64().expect("count");
    assert!(count > 0 && count < 30, "cut short: {count}");
    assert_eq!(first["metadata"]["nextOffset"], count);
    let rows = all_pages(&app, &admin, "companies", 1000).await;
    let names: BTreeSet<String> = rows.iter().map(|r| r["name"].as_str().expect("name").to_owned()).collect();
    assert_eq!(names.len(), 30);
    assert_eq!(rows.len(), 30);
    let narrow = page(&app, &admin, "/rest/v1/1/views/companies?limit=1000&columns=id,name").await;
    assert_eq!(narrow["metadata"]["count"], 30, "without properties everything fits");
}

async fn sql_injection_payloads_are_refused_or_inert(app: TestApp) {
    seed(&app).await;
    let admin = key_for(&app, "admin@acme.example", None).await;
    let before = ids(&page(&app, &admin, "/rest/v1/1/views/companies?limit=10000").await).len();
    let attempts = [
        "externalFilter=name%20%3D%20%27x%27%20OR%201%3D1%20--",
        &format!("externalFilter={}", url_encode("name = 'x''; DROP TABLE companies; --'")),
        &format!("externalFilter={}", url_encode("name = 'x' OR '1'='1'")),
        &format!("externalFilter={}", url_encode("id = 1; DELETE FROM companies")),
        &format!("externalFilter={}", url_encode("name LIKE '%' UNION SELECT * FROM users --'")),
        &format!("externalFilter={}", url_encode("(SELECT 1) = 1")),
        &format!("columns={}", url_encode("id; DROP TABLE companies")),
        &format!("columns={}", url_encode("id,(SELECT password_hash FROM users)")),
        &format!("columns={}", url_encode("name AS x FROM users --")),
        &format!("properties={}", url_encode("x'); DROP TABLE companies; --")),
        &format!("properties={}", url_encode("segment\") FROM users --")),
        "limit=1%3BDROP%20TABLE%20companies",
        "offset=0%20OR%201%3D1",
    ];
    for query in attempts {
        let r = get(&app, &admin, &format!("/rest/v1/1/views/companies?{query}")).await;
        match r.status().as_u16() {
            400 => {
                let code = problem_code(r).await;
                assert!(
                    ["invalid_filter", "unknown_column", "type_mismatch", "invalid_parameter"].contains(&code.as_str()),
                    "{query}: {code}"
                );
            }
            200 => {
                let body: Value = r.json().await.expect("json");
                let rows = body["data"].as_array().expect("rows");
                assert!(rows.len() <= before, "{query}");
                assert!(!body.to_string().contains("argon2"), "{query} leaked a password hash");
                if query.starts_with("externalFilter") {
                    assert!(rows.is_empty(), "{query} matched rows as if it were SQL");
                }
            }
            other => panic!("{query}: unexpected status {other}"),
        }
    }
    assert_eq!(
        ids(&page(&app, &admin, "/rest/v1/1/views/companies?limit=10000").await).len(),
        before,
        "nothing was dropped or deleted"
    );
}

async fn bad_filters_name_the_position_and_the_problem(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let cases = [
        ("(status = 'A'", "invalid_filter", "character"),
        ("status = ", "invalid_filter", "expected a value"),
        ("secret = 1", "unknown_column", "secret"),
        ("id = 'five'", "type_mismatch", "id"),
        ("issueDate > '2026-02-30'", "type_mismatch", "issueDate"),
    ];
    for (filter, code, mention) in cases {
        let r = get(&app, &admin, &format!("/rest/v1/1/views/documents?externalFilter={}", url_encode(filter))).await;
        assert_eq!(r.status(), 400, "{filter}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], code, "{filter}");
        assert!(body["detail"].as_str().expect("detail").contains(mention), "{filter}: {}", body["detail"]);
    }
    let r = get(&app, &admin, "/rest/v1/1/views/nonsense").await;
    assert_eq!(r.status(), 404);
    let r = get(&app, &admin, "/rest/v1/1/views/jobs?limit=10001").await;
    assert_eq!(problem_code(r).await, "invalid_parameter");
}

async fn a_key_of_a_user_with_read_own_sees_only_own_records(app: TestApp) {
    // The test user's group "Readers" grants invoices:read:all and jobs:read:own.
    seed(&app).await;
    let erp = key_for(&app, crate::helpers::USER, None).await;
    let jobs = all_pages(&app, &erp, "jobs", 1000).await;
    assert!(!jobs.is_empty());
    assert!(jobs.iter().all(|r| r["ownerId"] == app.user.0), "only own jobs");
    let admin = key_for(&app, "admin@acme.example", None).await;
    let all_jobs = all_pages(&app, &admin, "jobs", 1000).await;
    assert!(all_jobs.len() > jobs.len());
    let others = all_jobs.iter().find(|r| r["ownerId"] != app.user.0).expect("someone else's job");
    let r = get(&app, &erp, &format!("/rest/v1/1/jobs?id={}", others["id"])).await;
    assert_eq!(r.status(), 404, "a record outside the user's view is 404, not 403");
    let invoices = all_pages(&app, &erp, "invoices.sales", 1000).await;
    assert!(invoices.iter().any(|r| r["ownerId"] != app.user.0), "read:all reaches everyone's invoices");
    // No grant on companies at all: a programmatic user reaches only what its groups grant.
    let r = get(&app, &erp, "/rest/v1/1/views/companies").await;
    assert_eq!(problem_code(r).await, "insufficient_permission");
}

async fn a_key_scoped_narrower_than_its_user_is_narrower(app: TestApp) {
    seed(&app).await;
    let scoped = key_for(&app, "admin@acme.example", Some(&["invoices:read"])).await;
    let invoices = page(&app, &scoped, "/rest/v1/1/views/invoices.sales?limit=10000").await;
    assert!(ids(&invoices).len() > 100);
    for view in ["companies", "jobs", "documents", "users", "intervals.track"] {
        let r = get(&app, &scoped, &format!("/rest/v1/1/views/{view}")).await;
        assert_eq!(r.status(), 403, "{view}");
        assert_eq!(problem_code(r).await, "insufficient_permission");
    }
    let r = app
        .client
        .post(app.url("/rest/v1/1/companies"))
        .bearer_auth(scoped.expose())
        .json(&json!({"name": "Nope"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
}

/// A property over random tenants, users and records (three random cases per run; the seed is in
/// every failure message): each tenant's supervisor key sees exactly its own records and users, and
/// can neither read, change nor reference another tenant's.
async fn a_key_of_one_tenant_reaches_nothing_of_another(app: TestApp) {
    for case in 0..3 {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("random");
        isolation_case(&app, case, u64::from_le_bytes(seed)).await;
    }
}

async fn isolation_case(app: &TestApp, case: u32, seed: u64) {
    use std::collections::HashMap;
    let mut state = seed;
    let mut rand = move |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let mut tenants = vec![(app.tenant, app.admin, "admin@acme.example".to_owned())];
    for i in 0..(2 + rand(3)) {
        let slug = format!("tenant-{case}-{i}");
        let email = format!("boss@{slug}.example");
        let outcome = app.keygate.create_tenant(&Caller::CLI, &slug, &email, None).await.expect("tenant");
        app.keygate.set_public_api(&Caller::CLI, outcome.tenant, true).await.expect("on");
        tenants.push((outcome.tenant, outcome.admin, email));
    }
    let mut owned: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for round in 0..(20 + rand(20)) {
        let (tenant, admin, _) = &tenants[rand(tenants.len() as u64) as usize];
        let extra = app
            .keygate
            .create_user(
                &Caller::CLI,
                *tenant,
                CreateUser {
                    email: format!("u{case}-{round}@x{}.example", tenant.0),
                    name: "U".into(),
                    category: "personal".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("user");
        let owner = if rand(2) == 0 { *admin } else { extra };
        let write = RecordWrite {
            table: "companies",
            fields: vec![
                ("owner_id", FieldValue::Bound(Bound::Int(owner.0))),
                ("name", FieldValue::Bound(Bound::Text(format!("Co {round}")))),
            ],
        };
        app.keygate.store_for_tests().records().seed(*tenant, UnitId(1), &[write]).await.expect("seed");
        let id = app.keygate.store_for_tests().records().max_id("companies").await.expect("id");
        owned.entry(tenant.0).or_default().insert(id);
    }
    for (tenant, _, email) in &tenants {
        let key = app
            .keygate
            .issue_key(
                &Caller::CLI,
                *tenant,
                IssueKey {
                    owner: KeyOwner::Email(email.clone()),
                    purpose: "isolation".into(),
                    ip_ranges: vec!["127.0.0.0/8".into()],
                    rate_limit_per_minute: Some(1_000_000),
                    ..IssueKey::default()
                },
            )
            .await
            .expect("issue")
            .secret;
        let seen: BTreeSet<i64> =
            all_pages(app, &key, "companies", 7).await.iter().map(|r| r["id"].as_i64().expect("id")).collect();
        let expected: BTreeSet<i64> = app
            .keygate
            .store_for_tests()
            .records()
            .ids_after("companies", *tenant, UnitId(1), 0)
            .await
            .expect("ids")
            .into_iter()
            .collect();
        assert!(owned.get(&tenant.0).is_none_or(|mine| mine.is_subset(&expected)));
        assert_eq!(seen, expected, "seed {seed}: tenant {tenant} sees exactly its own companies");
        let seen_users: BTreeSet<String> = all_pages(app, &key, "users", 100)
            .await
            .iter()
            .map(|u| u["email"].as_str().expect("email").to_owned())
            .collect();
        let own_users: BTreeSet<String> =
            app.keygate.list_users(&Caller::CLI, *tenant).await.expect("users").into_iter().map(|u| u.email).collect();
        assert_eq!(seen_users, own_users, "seed {seed}: tenant {tenant} sees exactly its own users");
        for (other, ids) in &owned {
            if *other == tenant.0 {
                continue;
            }
            for id in ids {
                assert_eq!(get(app, &key, &format!("/rest/v1/1/companies?id={id}")).await.status(), 404);
                let r = app
                    .client
                    .patch(app.url(&format!("/rest/v1/1/companies?id={id}")))
                    .bearer_auth(key.expose())
                    .json(&json!({"name": "pwned"}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 404);
                let r = app
                    .client
                    .post(app.url("/rest/v1/1/persons"))
                    .bearer_auth(key.expose())
                    .json(&json!({"firstName": "A", "lastName": "B", "companyId": id}))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), 422, "seed {seed}: a reference into another tenant is refused");
            }
        }
    }
}

async fn records_are_created_read_and_changed_and_every_write_is_audited(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let post =
        |path: &'static str, body: Value| app.client.post(app.url(path)).bearer_auth(admin.expose()).json(&body).send();
    let r = post(
        "/rest/v1/1/companies",
        json!({"name": "Acme Client", "isClient": true, "properties": {"segment": "media"}}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 201);
    let company = r.json::<Value>().await.expect("json")["id"].as_i64().expect("id");
    let r = post("/rest/v1/1/documents", json!({"type": "INVOICE.SALES", "companyId": company, "amountNet": 1000, "amountVat": 210, "amountTotal": 1210.0, "issueDate": "2026-11-27", "tags": ["q4"]})).await.expect("send");
    assert_eq!(r.status(), 201);
    let doc: Value = r.json().await.expect("json");
    assert!(doc["number"].as_str().is_some_and(|n| !n.is_empty()), "documents answer their number: {doc}");
    let r =
        post("/rest/v1/1/time", json!({"date": "2026-11-27", "hours": 2.5, "note": "Kick-off"})).await.expect("send");
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/companies?id={company}")))
        .bearer_auth(admin.expose())
        .json(&json!({"isDisabled": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let patch = |body: Value| {
        app.client
            .patch(app.url(&format!("/rest/v1/1/companies?id={company}")))
            .bearer_auth(admin.expose())
            .json(&body)
            .send()
    };
    let r = patch(json!({"vatId": null, "address": "Main St 1"})).await.expect("send");
    assert_eq!(r.status(), 200, "a nullable field can be cleared");
    let r = patch(json!({"isClient": null})).await.expect("send");
    assert_eq!(r.status(), 422, "a NOT NULL field cannot");
    let read: Value =
        get(&app, &admin, &format!("/rest/v1/1/companies?id={company}")).await.json().await.expect("json");
    assert_eq!(read["isDisabled"], true);
    assert_eq!(read["vatId"], Value::Null);
    assert_eq!(read["address"], "Main St 1");
    let picked = page(&app, &admin, "/rest/v1/1/views/companies?columns=id,name&properties=segment,missing").await;
    assert_eq!(
        picked["data"][0],
        json!({"id": company, "name": "Acme Client", "properties": {"segment": "media", "missing": null}})
    );
    let plain = page(&app, &admin, "/rest/v1/1/views/companies?columns=name").await;
    assert_eq!(plain["data"][0], json!({"name": "Acme Client"}), "asking for columns leaves properties out");
    assert_eq!(read["properties"]["segment"], "media");
    assert_eq!(read["ownerId"], app.admin.0);
    let invoice: Value =
        get(&app, &admin, &format!("/rest/v1/1/documents?id={}", doc["id"])).await.json().await.expect("json");
    assert_eq!(invoice["amountTotal"], 1210.0);
    let events = app
        .keygate
        .store_for_tests()
        .audit()
        .list(
            app.tenant,
            &keygate_service::AuditFilter { action: Some("record.".into()), limit: 50, ..Default::default() },
        )
        .await
        .expect("audit");
    assert_eq!(events.len(), 5, "three creations and two changes: {events:?}");
    assert!(events.iter().all(|e| e.actor_kind == "key" && e.actor_label.contains(&format!("user {}", app.admin))));
}

async fn unknown_fields_and_invalid_values_get_422_and_write_nothing(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let r = app
        .client
        .post(app.url("/rest/v1/1/documents"))
        .bearer_auth(admin.expose())
        .json(&json!({"type": "INVOICE.NONSENSE", "companyId": 999_999, "issueDate": "yesterday", "colour": "red", "amountNet": "lots"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "invalid_fields");
    let fields: BTreeSet<&str> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().expect("field")).collect();
    assert_eq!(fields, BTreeSet::from(["type", "companyId", "issueDate", "colour", "amountNet"]));
    let r = app
        .client
        .post(app.url("/rest/v1/1/companies"))
        .bearer_auth(admin.expose())
        .body("not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let docs = page(&app, &admin, "/rest/v1/1/views/documents").await;
    assert_eq!(docs["metadata"]["count"], 0, "nothing was half-written");
}

/// PostgreSQL cannot store U+0000 in text: found by schemathesis as a 500 there.
async fn a_nul_character_in_written_text_is_a_field_error_not_a_server_error(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let send = |method: reqwest::Method, path: &str, body: Value| {
        app.client.request(method, app.url(path)).bearer_auth(admin.expose()).json(&body).send()
    };
    let r = send(reqwest::Method::POST, "/rest/v1/1/companies", json!({"name": "Acme\u{0}Ltd", "vatId": "CZ\u{0}1"}))
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    let fields: BTreeSet<&str> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().expect("field")).collect();
    assert_eq!(fields, BTreeSet::from(["name", "vatId"]));
    let created: Value = send(reqwest::Method::POST, "/rest/v1/1/companies", json!({"name": "Acme"}))
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_i64().expect("id");
    let r = send(reqwest::Method::PATCH, &format!("/rest/v1/1/companies?id={id}"), json!({"address": "\u{0}"}))
        .await
        .expect("send");
    assert_eq!(r.status(), 422, "a change is refused the same way");
    for body in [json!({"properties": {"note": "a\u{0}b"}}), json!({"properties": {"a\u{0}b": 1}})] {
        let r =
            send(reqwest::Method::PATCH, &format!("/rest/v1/1/companies?id={id}"), body.clone()).await.expect("send");
        assert_eq!(r.status(), 422, "{body}");
    }
    let r = send(
        reqwest::Method::POST,
        "/rest/v1/1/documents",
        json!({"type": "INVOICE.SALES", "companyId": id, "tags": ["x\u{0}"]}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 422, "a tag too");
    let record: Value = get(&app, &admin, &format!("/rest/v1/1/companies?id={id}")).await.json().await.expect("json");
    assert_eq!(record["address"], Value::Null, "nothing was written");
    let r =
        send(reqwest::Method::PATCH, &format!("/rest/v1/1/users?id={}", app.user), json!({"groups": ["Readers\u{0}"]}))
            .await
            .expect("send");
    assert_eq!(r.status(), 422, "a group name too");
}

async fn a_retried_post_with_the_same_idempotency_key_gets_the_first_answer(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let send = |body: Value| {
        app.client
            .post(app.url("/rest/v1/1/companies"))
            .bearer_auth(admin.expose())
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
    };
    let first: Value = send(json!({"name": "Once"})).await.expect("send").json().await.expect("json");
    let again = send(json!({"name": "Once"})).await.expect("send");
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    let different = send(json!({"name": "Twice"})).await.expect("send");
    assert_eq!(different.status(), 400);
    assert_eq!(problem_code(different).await, "idempotency_key_reused");
    assert_eq!(page(&app, &admin, "/rest/v1/1/views/companies").await["metadata"]["count"], 1);
}

async fn deactivating_a_user_through_the_api_refuses_their_keys_on_the_next_request(app: TestApp) {
    let admin = key_for(&app, "admin@acme.example", None).await;
    let erp = key_for(&app, crate::helpers::USER, None).await;
    assert_eq!(get(&app, &erp, "/rest/v1/1/capability").await.status(), 200);
    let r = app
        .client
        .patch(app.url(&format!("/rest/v1/1/users?id={}", app.user)))
        .bearer_auth(admin.expose())
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(problem_code(get(&app, &erp, "/rest/v1/1/capability").await).await, "user_inactive");
}
