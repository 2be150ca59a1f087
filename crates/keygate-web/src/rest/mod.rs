//! The Public API, `/rest/v1/{unitId}/…`: the calls integrations make at volume. This folder owns
//! its routing (here), authentication ([`auth`]) and handlers ([`capability`], [`records`]).
//!
//! [`crate::App`] sends these requests here before axum's router, which serves everything else
//! (the console, verification for services and proxies, ops); every layer of the application
//! (request id, span, body deadline, metrics, access log) wraps both alike. axum's general
//! routing costs more per call than keygate's whole key check on a cache hit: matching, a map of
//! path parameters, the matched path put into the request's extensions, a boxed future per route
//! (about 8 000 instructions per request, callgrind; see docs/performance.md). The Public API has
//! five endpoints of fixed shape, so a `match` on the path's segments does.
//!
//! The router reads the path once: it parses `{unitId}` (a path that names no unit is answered
//! here) and decodes the view's or resource's name, and hands them to the handler in a [`Call`].
//! Handlers never look at the path again. Request bodies get the same 2 MiB limit as axum's
//! default.

pub(crate) mod auth;
mod body;
mod call;
mod capability;
mod records;

use std::net::SocketAddr;

pub(crate) use call::{BODY_LIMIT, Call};

use axum::{
    body::Body,
    http::{HeaderValue, Method, Request, header},
    response::{IntoResponse, Response},
};

use crate::{AppState, RequestId, problem::Problem, problem_code::ProblemCode};

/// A Public API endpoint, found from the method and the path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /rest/v1/{unitId}/capability`
    Capability,
    /// `GET /rest/v1/{unitId}/views/{viewName}`
    ReadView,
    /// `GET /rest/v1/{unitId}/{resource}?id=N`
    ReadRecord,
    /// `POST /rest/v1/{unitId}/{resource}`
    CreateRecord,
    /// `PATCH /rest/v1/{unitId}/{resource}?id=N`
    UpdateRecord,
    /// A Public API path with a method it does not answer; carries the `Allow` header.
    MethodNotAllowed(&'static str),
}

/// The endpoint for `method` on `path`, or `None` when the path is not a Public API path (axum's
/// router then answers it, with 404). Looks at the path only: the app calls it for every request.
pub(crate) fn endpoint(method: &Method, path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/rest/v1/")?;
    let mut segments = rest.split('/');
    let (unit, first, second, more) = (segments.next()?, segments.next()?, segments.next(), segments.next());
    if unit.is_empty() || first.is_empty() || more.is_some() || second.is_some_and(str::is_empty) {
        return None;
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    Some(match (first, second) {
        ("capability", None) if read => Endpoint::Capability,
        ("capability", None) => Endpoint::MethodNotAllowed("GET, HEAD"),
        ("views", Some(_)) if read => Endpoint::ReadView,
        ("views", Some(_)) => Endpoint::MethodNotAllowed("GET, HEAD"),
        (_, Some(_)) => return None,
        // Time entries are written, never read one by one (the view `intervals.track` reads them).
        ("time", None) if *method == Method::POST => Endpoint::CreateRecord,
        ("time", None) if *method == Method::PATCH => Endpoint::UpdateRecord,
        ("time", None) => Endpoint::MethodNotAllowed("POST, PATCH"),
        (_, None) if read => Endpoint::ReadRecord,
        (_, None) if *method == Method::POST => Endpoint::CreateRecord,
        (_, None) if *method == Method::PATCH => Endpoint::UpdateRecord,
        (_, None) => Endpoint::MethodNotAllowed("GET, HEAD, POST, PATCH"),
    })
}

/// The path's `{unitId}` and its third segment (`capability`, `views`, or the resource), and the
/// fourth if any (the view's name); as they arrived, not decoded. Only called for paths that
/// [`endpoint`] accepted.
fn segments(path: &str) -> (&str, &str, &str) {
    let mut parts = path.strip_prefix("/rest/v1/").unwrap_or_default().splitn(3, '/');
    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
}

/// A path segment with its percent-escapes decoded, as axum's `Path` extractor did; `None` when
/// the escapes do not decode to UTF-8.
pub(crate) fn decoded(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(std::borrow::Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

/// Answers a Public API request for `endpoint` (found by [`endpoint`] on its path).
pub(crate) async fn serve(
    state: AppState,
    peer: SocketAddr,
    id: RequestId,
    endpoint: Endpoint,
    request: Request<Body>,
) -> Response {
    let (raw_unit, second, third) = segments(request.uri().path());
    let name = match endpoint {
        Endpoint::MethodNotAllowed(allow) => return method_not_allowed(id, allow),
        Endpoint::Capability => None,
        Endpoint::ReadView => Some(third),
        Endpoint::ReadRecord | Endpoint::CreateRecord | Endpoint::UpdateRecord => Some(second),
    };
    let Some(unit) = auth::parse_unit(raw_unit) else {
        return Problem::new(ProblemCode::Refusal(keygate_domain::RefusalCode::UnknownUnit), id)
            .detail(format!("`{}` is not a unit number", raw_unit.chars().take(40).collect::<String>()))
            .into_response();
    };
    let name = name.and_then(decoded).map(std::borrow::Cow::into_owned);
    let call = Call { state, peer, id, unit, name };
    match endpoint {
        Endpoint::Capability => capability::capability(call, request).await,
        Endpoint::ReadView => Box::pin(records::read_view(call, request)).await,
        Endpoint::ReadRecord => Box::pin(records::read_record(call, request)).await,
        Endpoint::CreateRecord => Box::pin(records::create_record(call, request)).await,
        Endpoint::UpdateRecord => Box::pin(records::update_record(call, request)).await,
        Endpoint::MethodNotAllowed(allow) => method_not_allowed(id, allow),
    }
}

fn method_not_allowed(id: RequestId, allow: &'static str) -> Response {
    let mut response =
        Problem::new(ProblemCode::MethodNotAllowed, id).detail(format!("allowed: {allow}")).into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Every route template of the Public API ([`Endpoint::route`]).
pub(crate) const ROUTES: &[&str] = &[
    "/rest/v1/{unitId}/capability",
    "/rest/v1/{unitId}/views/{viewName}",
    "/rest/v1/{unitId}/{resource}",
    "/rest/v1/… (method not allowed)",
];

impl Endpoint {
    /// The route template, for metrics and the access log (bounded: one per endpoint).
    pub(crate) fn route(self) -> &'static str {
        match self {
            Self::Capability => "/rest/v1/{unitId}/capability",
            Self::ReadView => "/rest/v1/{unitId}/views/{viewName}",
            Self::ReadRecord | Self::CreateRecord | Self::UpdateRecord => "/rest/v1/{unitId}/{resource}",
            Self::MethodNotAllowed(_) => "/rest/v1/… (method not allowed)",
        }
    }
}

/// For the fuzz target: routes `path` and reads it as [`serve`] does, asserting what must hold.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_path(method: &Method, path: &str) {
    if endpoint(method, path).is_some() {
        let (unit, resource, view) = segments(path);
        assert!(path.len() >= unit.len() + resource.len() + view.len());
        for segment in [unit, resource, view] {
            if let Some(text) = decoded(segment) {
                assert!(text.len() <= segment.len(), "decoding never grows a segment");
            }
        }
        let _ = auth::parse_unit(unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_public_api_path_finds_its_endpoint() {
        let get = Method::GET;
        assert_eq!(endpoint(&get, "/rest/v1/3/capability"), Some(Endpoint::Capability));
        assert_eq!(endpoint(&Method::HEAD, "/rest/v1/3/capability"), Some(Endpoint::Capability));
        assert_eq!(endpoint(&get, "/rest/v1/3/views/jobs"), Some(Endpoint::ReadView));
        assert_eq!(endpoint(&get, "/rest/v1/3/invoices"), Some(Endpoint::ReadRecord));
        assert_eq!(endpoint(&Method::POST, "/rest/v1/3/invoices"), Some(Endpoint::CreateRecord));
        assert_eq!(endpoint(&Method::PATCH, "/rest/v1/3/invoices"), Some(Endpoint::UpdateRecord));
        assert_eq!(
            endpoint(&Method::DELETE, "/rest/v1/3/invoices"),
            Some(Endpoint::MethodNotAllowed("GET, HEAD, POST, PATCH"))
        );
        assert_eq!(endpoint(&Method::POST, "/rest/v1/3/capability"), Some(Endpoint::MethodNotAllowed("GET, HEAD")));
    }

    #[test]
    fn every_endpoints_route_is_one_of_the_routes_whose_metrics_are_kept_at_hand() {
        for endpoint in [
            Endpoint::Capability,
            Endpoint::ReadView,
            Endpoint::ReadRecord,
            Endpoint::CreateRecord,
            Endpoint::UpdateRecord,
            Endpoint::MethodNotAllowed("GET"),
        ] {
            assert!(ROUTES.contains(&endpoint.route()), "{endpoint:?}");
        }
    }

    #[test]
    fn time_entries_are_written_not_read_one_by_one_and_allow_says_so() {
        assert_eq!(endpoint(&Method::POST, "/rest/v1/3/time"), Some(Endpoint::CreateRecord));
        assert_eq!(endpoint(&Method::PATCH, "/rest/v1/3/time"), Some(Endpoint::UpdateRecord));
        for method in [Method::GET, Method::HEAD, Method::DELETE, Method::OPTIONS] {
            assert_eq!(
                endpoint(&method, "/rest/v1/3/time"),
                Some(Endpoint::MethodNotAllowed("POST, PATCH")),
                "{method}"
            );
        }
    }

    #[test]
    fn other_paths_are_left_to_the_general_router() {
        for path in [
            "/rest/v1/3",
            "/rest/v1/3/",
            "/rest/v1//capability",
            "/rest/v1/3/capability/",
            "/rest/v1/3/views/",
            "/rest/v1/3/views/jobs/extra",
            "/rest/v1/3/invoices/7",
            "/rest/v2/3/capability",
            "/console",
        ] {
            assert_eq!(endpoint(&Method::GET, path), None, "{path}");
        }
    }

    #[test]
    fn segments_are_read_as_sent_and_decoded_on_request() {
        assert_eq!(segments("/rest/v1/3/views/my%20jobs"), ("3", "views", "my%20jobs"));
        assert_eq!(segments("/rest/v1/3/capability"), ("3", "capability", ""));
        assert_eq!(decoded("my%20jobs").as_deref(), Some("my jobs"));
        assert_eq!(decoded("plain").as_deref(), Some("plain"));
        assert_eq!(decoded("bad%zz").as_deref(), Some("bad%zz"));
        assert_eq!(decoded("%ff"), None);
    }
}
