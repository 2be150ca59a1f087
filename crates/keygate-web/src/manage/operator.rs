//! The operator plane's routes (`/v1/operator/…`, issue 21): the company that runs keygate for
//! many tenants lists tenants, creates one with its first administrator, switches a tenant's
//! Public API off and removes a tenant's data in two steps — with an operator credential
//! (`Authorization: Bearer kgop_…`), never a tenant's key. Authentication is the service's
//! ([`keygate_service::Keygate::authenticate_operator`]: failures are throttled like bad keys);
//! the [`keygate_service::Operator`] it yields is no `Caller`, so nothing else can be done with it.

use std::net::{IpAddr, SocketAddr};

use axum::{
    Router,
    extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State},
    http::{HeaderValue, StatusCode, Uri, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use keygate_service::{CreateTenant, OPERATOR_PAGE_MAX, Operator, ServiceError, TenantSummary};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    extract::{JsonBody, request_id},
    users::UserJson,
};
use crate::{
    AppState, RequestId, client_ip::client_ip, problem::Problem, problem_code::ProblemCode, rest::auth::credential,
};

/// The tenants one page holds when `limit` is not given.
const PAGE_DEFAULT: u32 = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/operator/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/operator/tenants/{slug}/api-off", post(api_off))
        .route("/v1/operator/tenants/{slug}/removal", post(request_removal))
        .route("/v1/operator/tenants/{slug}", delete(remove_tenant))
}

/// A call authenticated with an operator credential.
pub(crate) struct OperatorCall {
    op: Operator,
    id: RequestId,
}

impl FromRequestParts<AppState> for OperatorCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let id = request_id(parts);
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
            return Err(Problem::new(ProblemCode::InternalError, id).into_response());
        };
        let ip: IpAddr = client_ip(peer, &parts.headers, &state.config.trusted_proxies);
        match state.keygate.authenticate_operator(credential(&parts.headers), ip).await {
            Ok(op) => Ok(Self { op, id }),
            Err(refused) => Err(Problem::refused(refused, id)
                .detail("the operator routes take an operator credential (`Authorization: Bearer kgop_…`); a tenant's key is never one")
                .seen_from(ip)
                .into_response()),
        }
    }
}

impl OperatorCall {
    fn failed(&self, e: ServiceError) -> Response {
        Problem::from_service(e, self.id).into_response()
    }

    fn problem(&self, code: ProblemCode, detail: impl Into<String>) -> Response {
        Problem::new(code, self.id).detail(detail).into_response()
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A tenant on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantWire {
    id: i64,
    slug: String,
    name: String,
    public_api: bool,
    created_at: String,
}

impl From<TenantSummary> for TenantWire {
    fn from(t: TenantSummary) -> Self {
        Self {
            id: t.id,
            slug: t.slug,
            name: t.name,
            public_api: t.public_api,
            created_at: keygate_domain::Timestamp(t.created_at).to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantPage {
    items: Vec<TenantWire>,
    next_cursor: Option<String>,
}

/// `GET /v1/operator/tenants?cursor=&limit=`: tenants by slug, at most 200 a page, with `Link`.
async fn list_tenants(
    call: OperatorCall,
    State(state): State<AppState>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let mut cursor = None;
    let mut limit = PAGE_DEFAULT;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "cursor" => cursor = Some(value.into_owned()),
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=OPERATOR_PAGE_MAX).contains(&n) => limit = n,
                _ => {
                    return call.problem(
                        ProblemCode::InvalidParameter,
                        format!("`limit` must be a whole number from 1 to {OPERATOR_PAGE_MAX}, not `{value}`"),
                    );
                }
            },
            other => {
                return call.problem(
                    ProblemCode::UnknownParameter,
                    format!("`{other}` is not a parameter of this operation; it takes `cursor` and `limit`"),
                );
            }
        }
    }
    match state.keygate.operator_tenants(&call.op, cursor.as_deref(), limit).await {
        Ok((rows, next)) => {
            let page = TenantPage { items: rows.into_iter().map(TenantWire::from).collect(), next_cursor: next };
            let mut response = json(StatusCode::OK, &page);
            if let Some(next) = &page.next_cursor {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("limit", &limit.to_string())
                    .append_pair("cursor", next)
                    .finish();
                if let Ok(link) = HeaderValue::from_str(&format!("<{}?{query}>; rel=\"next\"", uri.path())) {
                    response.headers_mut().insert(header::LINK, link);
                }
            }
            response
        }
        Err(e) => call.failed(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewAdmin {
    email: String,
    name: String,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewTenantBody {
    slug: String,
    name: String,
    admin: NewAdmin,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedWire {
    tenant: TenantWire,
    admin: UserJson,
    /// Only when no password was given: the one generated, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_password: Option<String>,
}

/// `POST /v1/operator/tenants`: a tenant with its first administrator, in one transaction.
async fn create_tenant(
    call: OperatorCall,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewTenantBody>,
) -> Response {
    let new = CreateTenant {
        slug: body.slug,
        name: body.name,
        admin_email: body.admin.email,
        admin_name: body.admin.name,
        admin_password: body.admin.password.map(SecretString::from),
    };
    match state.keygate.operator_create_tenant(&call.op, new).await {
        Ok(created) => json(
            StatusCode::CREATED,
            &CreatedWire {
                tenant: created.tenant.into(),
                admin: created.admin.into(),
                generated_password: created.generated_password.map(|p| p.expose_secret().to_owned()),
            },
        ),
        Err(e) => call.failed(e),
    }
}

/// `POST /v1/operator/tenants/{slug}/api-off`: the tenant's keys are refused from now on.
async fn api_off(call: OperatorCall, State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    match state.keygate.operator_api_off(&call.op, &slug).await {
        Ok(tenant) => json(StatusCode::OK, &TenantWire::from(tenant)),
        Err(e) => call.failed(e),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemovalWire {
    confirmation: String,
    expires_at: String,
}

/// `POST /v1/operator/tenants/{slug}/removal`: a one-time confirmation for the removal.
async fn request_removal(call: OperatorCall, State(state): State<AppState>, Path(slug): Path<String>) -> Response {
    match state.keygate.operator_request_removal(&call.op, &slug).await {
        Ok(r) => json(
            StatusCode::OK,
            &RemovalWire { confirmation: r.confirmation.expose().to_owned(), expires_at: r.expires_at.to_rfc3339() },
        ),
        Err(e) => call.failed(e),
    }
}

/// `DELETE /v1/operator/tenants/{slug}?confirmation=…`: removes every row of the tenant.
async fn remove_tenant(
    call: OperatorCall,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut confirmation = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "confirmation" => confirmation = Some(value.into_owned()),
            other => {
                return call.problem(
                    ProblemCode::UnknownParameter,
                    format!("`{other}` is not a parameter of this operation; it takes `confirmation`"),
                );
            }
        }
    }
    let Some(confirmation) = confirmation.filter(|c| !c.is_empty() && c.len() <= 100) else {
        return call.problem(
            ProblemCode::InvalidParameter,
            "`confirmation` is required: the one POST …/removal answered (valid 10 minutes, once)",
        );
    };
    match state.keygate.operator_remove_tenant(&call.op, &slug, &confirmation).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => call.failed(e),
    }
}
