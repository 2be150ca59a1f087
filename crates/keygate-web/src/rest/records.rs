//! The data API: `GET /rest/v1/{unitId}/views/{viewName}` and the record endpoints, each call
//! verified first and then run as the key's user through the service layer.

use axum::{
    body::Bytes,
    extract::{Query, Request},
    http::{StatusCode, header},
    response::Response,
};
use keygate_service::{BadRequest, ServiceError, Verified, ViewParams};
use serde::Deserialize;

use super::{
    BODY_LIMIT, Call,
    auth::{authenticate, authenticated},
    body::Parts,
};
use crate::{problem::Problem, problem_code::ProblemCode};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ViewQuery {
    columns: Option<String>,
    properties: Option<String>,
    external_filter: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdQuery {
    id: Option<String>,
}

fn json_response(v: &Verified, status: StatusCode, body: String) -> Response {
    authenticated(v, (status, [(header::CONTENT_TYPE, super::call::JSON.clone())], body))
}

/// A verified call the service refused. `insufficient_permission` is a refusal of the call like
/// those of the validity rule: counted and audited as one, not as accepted.
fn failed(call: &Call, v: &Verified, e: ServiceError) -> Response {
    if matches!(e, ServiceError::InsufficientPermission(_)) {
        call.state.keygate.refused_for_permission(v);
    }
    authenticated(v, Problem::from_service(e, call.id))
}

/// Reads a page of a view. Permission: read on the view's resource (own records without a grant).
pub(crate) async fn read_view(call: Call, request: Request) -> Response {
    let (v, _) = match authenticate(&call, request.headers()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(view) = call.name.as_deref() else {
        return not_found(&call, &v, "the view");
    };
    if let Some(refused) = unknown_parameter(&call, &v, request.uri(), VIEW_PARAMETERS) {
        return refused;
    }
    let Ok(Query(q)) = Query::<ViewQuery>::try_from_uri(request.uri()) else {
        return failed(
            &call,
            &v,
            ServiceError::BadRequest {
                kind: BadRequest::InvalidParameter,
                detail: "the query string is not valid".into(),
            },
        );
    };
    let params = ViewParams {
        columns: q.columns,
        properties: q.properties,
        filter: q.external_filter,
        limit: q.limit,
        offset: q.offset,
    };
    match call.state.keygate.read_view(&v, call.unit, view, &params).await {
        Ok(page) => authenticated(
            &v,
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, super::call::JSON.clone())],
                axum::body::Body::new(page_body(page)),
            ),
        ),
        Err(e) => failed(&call, &v, e),
    }
}

/// A page's body: its head, its rows and its closing brace, sent without joining them, with the
/// page's share of the memory budget held until the body is dropped, which the server does once
/// the rows are written.
fn page_body(page: keygate_service::Page) -> Parts<3, keygate_service::PageHold> {
    Parts::new([Bytes::from(page.head), Bytes::from(page.data), Bytes::from_static(b"}")], page.memory)
}

/// The `?id=` of a record call, when it is a positive id.
fn record_id(request: &Request) -> Option<i64> {
    record_id_of(request.uri())
}

fn record_id_of(uri: &axum::http::Uri) -> Option<i64> {
    let Query(q) = Query::<IdQuery>::try_from_uri(uri).ok()?;
    q.id.as_deref().and_then(|t| t.parse::<i64>().ok()).filter(|id| *id > 0)
}

/// The parameters of a view read, as the original documents them.
const VIEW_PARAMETERS: &[&str] = &["columns", "properties", "externalFilter", "limit", "offset"];
/// The parameter of a single-record call.
const RECORD_PARAMETERS: &[&str] = &["id"];

/// A `400 unknown_parameter` naming the first query parameter not in `accepted`, and the
/// accepted ones: a misspelt `externalfilter` must not silently return every row.
fn unknown_parameter(call: &Call, v: &Verified, uri: &axum::http::Uri, accepted: &[&str]) -> Option<Response> {
    let query = uri.query()?;
    let unknown = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .find(|name| !accepted.contains(name))?;
    // The name as sent, cut short and without what a problem body should not echo.
    let shown: String = unknown.chars().take(64).filter(|c| !c.is_control()).collect();
    let error = ServiceError::BadRequest {
        kind: BadRequest::UnknownParameter,
        detail: format!("`{shown}` is not a parameter of this endpoint; the parameters are: {}", accepted.join(", ")),
    };
    Some(failed(call, v, error))
}

/// A path segment that does not decode to text names nothing.
fn not_found(call: &Call, v: &Verified, what: &str) -> Response {
    failed(call, v, ServiceError::NotFound(what.to_owned()))
}

/// The request body, up to [`BODY_LIMIT`].
async fn read_body(call: &Call, v: &Verified, body: axum::body::Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        let p = Problem::new(ProblemCode::BodyTooLarge, call.id)
            .detail(format!("{e}; at most {BODY_LIMIT} bytes are accepted"));
        authenticated(v, p)
    })
}

fn bad_id(call: &Call, v: &Verified) -> Response {
    let detail = "`id` must be given as a positive record id, e.g. ?id=42".to_owned();
    failed(call, v, ServiceError::BadRequest { kind: BadRequest::InvalidParameter, detail })
}

/// One record by `?id=`. A record the key's user cannot see is 404.
pub(crate) async fn read_record(call: Call, request: Request) -> Response {
    let (v, _) = match authenticate(&call, request.headers()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(resource) = call.name.as_deref() else {
        return not_found(&call, &v, "the resource");
    };
    if let Some(refused) = unknown_parameter(&call, &v, request.uri(), RECORD_PARAMETERS) {
        return refused;
    }
    let Some(id) = record_id(&request) else {
        return bad_id(&call, &v);
    };
    match call.state.keygate.read_record(&v, call.unit, resource, id).await {
        Ok(record) => json_response(&v, StatusCode::OK, record),
        Err(e) => failed(&call, &v, e),
    }
}

/// A record write, authenticated, its resource named, its parameters checked and its body read.
struct Write<'c> {
    v: Verified,
    ip: String,
    resource: &'c str,
    uri: axum::http::Uri,
    idempotency_key: Option<String>,
    body: Bytes,
}

/// What every write does before the service is asked: authenticate, then refuse a resource that
/// names nothing and parameters not in `accepted`, then read the body.
async fn accept_write<'c>(call: &'c Call, request: Request, accepted: &[&str]) -> Result<Write<'c>, Response> {
    let (parts, body) = request.into_parts();
    let (v, ip) = authenticate(call, &parts.headers).await?;
    let Some(resource) = call.name.as_deref() else {
        return Err(not_found(call, &v, "the resource"));
    };
    if let Some(refused) = unknown_parameter(call, &v, &parts.uri, accepted) {
        return Err(refused);
    }
    let body = read_body(call, &v, body).await?;
    // A header that is not text becomes a NUL, which the service refuses as no printable key.
    let idempotency_key = parts.headers.get("idempotency-key").map(|h| h.to_str().unwrap_or("\u{0}").to_owned());
    Ok(Write { v, ip: ip.to_string(), resource, uri: parts.uri, idempotency_key, body })
}

/// Creates a record (`POST …/{resource}`, `POST …/time`). Honours `Idempotency-Key`.
pub(crate) async fn create_record(call: Call, request: Request) -> Response {
    let w = match accept_write(&call, request, &[]).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let idem = w.idempotency_key.as_deref();
    match call.state.keygate.create_record(&w.v, call.unit, w.resource, &w.body, idem, Some(w.ip)).await {
        Ok((status, body)) => json_response(&w.v, StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), body),
        Err(e) => failed(&call, &w.v, e),
    }
}

/// Changes a record (`PATCH …/{resource}?id=N`); `PATCH …/users?id=N {"active": false}`
/// deactivates the user and with it every key of theirs.
pub(crate) async fn update_record(call: Call, request: Request) -> Response {
    let w = match accept_write(&call, request, RECORD_PARAMETERS).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Some(id) = record_id_of(&w.uri) else {
        return bad_id(&call, &w.v);
    };
    match call.state.keygate.update_record(&w.v, call.unit, w.resource, id, &w.body, Some(w.ip)).await {
        Ok(()) => json_response(&w.v, StatusCode::OK, serde_json::json!({ "id": id }).to_string()),
        Err(e) => failed(&call, &w.v, e),
    }
}
