//! The data API: `GET /rest/v1/{unitId}/views/{viewName}` and the record endpoints, each call
//! verified first and then run as the key's user through the service layer.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    extract::{Query, Request},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::UnitId;
use keygate_service::{BadRequest, Verified, VerifyRequest, ViewParams};
use serde::Deserialize;

use crate::{
    AppState,
    api::{authenticated, credential, parse_unit},
    client_ip::client_ip,
    problem::Problem,
    public_api::{BODY_LIMIT, decoded, segments},
};

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

/// Verifies the key for `unit`; returns who the call runs as, or the refusal response.
async fn authenticate(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    unit: &str,
) -> Result<(Verified, UnitId, String), Response> {
    let ip = client_ip(peer, headers, &state.config.trusted_proxies);
    let Some(unit_id) = parse_unit(unit) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_unit",
            "There is no such unit",
            state.next_request_id(),
        )
        .detail(format!("`{unit}` is not a unit number"))
        .into_response());
    };
    match state
        .keygate
        .verify(VerifyRequest { credential: credential(headers), client_ip: ip, unit: Some(unit_id), required: None })
        .await
    {
        Ok(v) => Ok((v, unit_id, ip.to_string())),
        Err(refused) => Err(Problem::refused(refused, state.next_request_id()).seen_from(ip).into_response()),
    }
}

fn json_response(v: &Verified, status: StatusCode, body: String) -> Response {
    authenticated(v, (status, [(header::CONTENT_TYPE, "application/json")], body))
}

fn failed(state: &AppState, v: &Verified, e: keygate_service::ServiceError) -> Response {
    authenticated(v, Problem::from_service(e, state.next_request_id()))
}

/// Reads a page of a view. Permission: read on the view's resource (own records without a grant).
pub(crate) async fn read_view(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let (unit, _, view) = segments(request.uri().path());
    let (v, unit, _) = match authenticate(&state, peer, request.headers(), unit).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(view) = decoded(view) else {
        return not_found(&state, &v, "the view");
    };
    if let Some(refused) = unknown_parameter(&state, &v, request.uri(), VIEW_PARAMETERS) {
        return refused;
    }
    let Ok(Query(q)) = Query::<ViewQuery>::try_from_uri(request.uri()) else {
        return failed(
            &state,
            &v,
            keygate_service::ServiceError::BadRequest {
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
    match state.keygate.read_view(&v, unit, &view, &params).await {
        Ok(page) => json_response(&v, StatusCode::OK, page.body),
        Err(e) => failed(&state, &v, e),
    }
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
fn unknown_parameter(state: &AppState, v: &Verified, uri: &axum::http::Uri, accepted: &[&str]) -> Option<Response> {
    let query = uri.query()?;
    let unknown = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .find(|name| !accepted.contains(name))?;
    // The name as sent, cut short and without what a problem body should not echo.
    let shown: String = unknown.chars().take(64).filter(|c| !c.is_control()).collect();
    let error = keygate_service::ServiceError::BadRequest {
        kind: BadRequest::UnknownParameter,
        detail: format!("`{shown}` is not a parameter of this endpoint; the parameters are: {}", accepted.join(", ")),
    };
    Some(failed(state, v, error))
}

/// A path segment that does not decode to text names nothing.
fn not_found(state: &AppState, v: &Verified, what: &str) -> Response {
    failed(state, v, keygate_service::ServiceError::NotFound(what.to_owned()))
}

/// The request body, up to [`BODY_LIMIT`].
async fn read_body(state: &AppState, v: &Verified, body: axum::body::Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        let p = Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The request body is too large or could not be read",
            state.next_request_id(),
        )
        .detail(format!("{e}; at most {BODY_LIMIT} bytes are accepted"));
        authenticated(v, p)
    })
}

fn bad_id(state: &AppState, v: &Verified) -> Response {
    let detail = "`id` must be given as a positive record id, e.g. ?id=42".to_owned();
    failed(state, v, keygate_service::ServiceError::BadRequest { kind: BadRequest::InvalidParameter, detail })
}

/// One record by `?id=`. A record the key's user cannot see is 404.
pub(crate) async fn read_record(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let (unit, resource, _) = segments(request.uri().path());
    let (v, unit, _) = match authenticate(&state, peer, request.headers(), unit).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(resource) = decoded(resource) else {
        return not_found(&state, &v, "the resource");
    };
    if let Some(refused) = unknown_parameter(&state, &v, request.uri(), RECORD_PARAMETERS) {
        return refused;
    }
    let Some(id) = record_id(&request) else {
        return bad_id(&state, &v);
    };
    match state.keygate.read_record(&v, unit, &resource, id).await {
        Ok(record) => json_response(&v, StatusCode::OK, record),
        Err(e) => failed(&state, &v, e),
    }
}

/// Creates a record (`POST …/{resource}`, `POST …/time`). Honours `Idempotency-Key`.
pub(crate) async fn create_record(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (headers, (unit, resource, _)) = (&parts.headers, segments(parts.uri.path()));
    let (v, unit, ip) = match authenticate(&state, peer, headers, unit).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(resource) = decoded(resource) else {
        return not_found(&state, &v, "the resource");
    };
    if let Some(refused) = unknown_parameter(&state, &v, &parts.uri, &[]) {
        return refused;
    }
    let body = match read_body(&state, &v, body).await {
        Ok(body) => body,
        Err(r) => return r,
    };
    let idem = headers.get("idempotency-key").map(|h| h.to_str().unwrap_or("\u{0}"));
    match state.keygate.create_record(&v, unit, &resource, &body, idem, Some(ip)).await {
        Ok((status, body)) => json_response(&v, StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED), body),
        Err(e) => failed(&state, &v, e),
    }
}

/// Changes a record (`PATCH …/{resource}?id=N`); `PATCH …/users?id=N {"active": false}`
/// deactivates the user and with it every key of theirs.
pub(crate) async fn update_record(state: AppState, peer: SocketAddr, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (headers, (unit, resource, _)) = (&parts.headers, segments(parts.uri.path()));
    let (v, unit, ip) = match authenticate(&state, peer, headers, unit).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(resource) = decoded(resource) else {
        return not_found(&state, &v, "the resource");
    };
    if let Some(refused) = unknown_parameter(&state, &v, &parts.uri, RECORD_PARAMETERS) {
        return refused;
    }
    let Some(id) = record_id_of(&parts.uri) else {
        return bad_id(&state, &v);
    };
    let body = match read_body(&state, &v, body).await {
        Ok(body) => body,
        Err(r) => return r,
    };
    match state.keygate.update_record(&v, unit, &resource, id, &body, Some(ip)).await {
        Ok(()) => json_response(&v, StatusCode::OK, serde_json::json!({ "id": id }).to_string()),
        Err(e) => failed(&state, &v, e),
    }
}
