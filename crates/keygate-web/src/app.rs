//! The whole HTTP application as one service: [`app`] returns it, the server runs it on every
//! connection, and tests can call it in process.
//!
//! Every request passes the same layers, here and only here, in this order: it gets a request
//! id (a trusted proxy's `X-Request-Id`, or keygate's own), which every log line written while it
//! is answered names ([`crate::request_scope`]); its body gets
//! the deadline; it is routed (a Public API path to [`crate::rest`], anything else to axum's
//! router); and its answer gets the `X-Request-Id` header, is counted and timed by route
//! template, and written to the access log ([`crate::access_log`], named `keygate::access`:
//! method, route template, status, duration, client address, and the id of the key accepted (and
//! its user's), or refused once known to be one of the tenant's — never the key, the path or the
//! query, which may carry data).

use std::{
    borrow::Cow,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    extract::{ConnectInfo, MatchedPath},
    http::{HeaderName, Request, StatusCode},
    response::{IntoResponse, Response},
};
use tower::ServiceExt;

use crate::{AppState, RequestId, access_log::Entry, deadline::with_deadline, request_scope, rest};

/// The name of the access log (the `target` of its lines): `KEYGATE_LOG=info,keygate::access=off`
/// turns it off in the `keygate` binary, as when it was written through `tracing`.
pub const ACCESS_LOG: &str = "keygate::access";

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application on `state`: the Public API, verification, forward-auth, ops, the
/// console, and every layer around them.
pub fn app(state: AppState) -> App {
    App { router: crate::router(state.clone()), state }
}

/// The application as a [`tower::Service`]. A request must carry its peer's address as
/// `ConnectInfo<SocketAddr>` in its extensions (keys are judged by it); [`crate::serve`] passes
/// it directly.
#[derive(Debug, Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

/// The future of one answer.
pub type AppFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl App {
    /// Answers `request`, which came from `peer`.
    pub(crate) fn serve_from<B>(&self, peer: SocketAddr, request: Request<B>) -> AppFuture
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = Instant::now();
        let id = self.request_id(peer, request.headers());
        let mut request = request.map(|body| with_deadline(body, self.state.config.body_timeout));
        let (state, router) = (self.state.clone(), self.router.clone());
        let ip = state
            .config
            .access_log
            .is_on()
            .then(|| crate::client_ip::client_ip(peer, request.headers(), &state.config.trusted_proxies));
        let call = async move {
            let method = request.method().clone();
            let (route, mut response) = match rest::endpoint(request.method(), request.uri().path()) {
                Some(endpoint) => {
                    (Cow::Borrowed(endpoint.route()), rest::serve(state.clone(), peer, id, endpoint, request).await)
                }
                None => {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.extensions_mut().insert(id);
                    let Ok(mut response) = router.oneshot(request).await;
                    let route = response.extensions_mut().remove::<MatchedPath>();
                    let route = match route {
                        None => Cow::Borrowed("unmatched"),
                        Some(r) => crate::HOT_ROUTES
                            .iter()
                            .find(|&&hot| hot == r.as_str())
                            .map_or_else(|| Cow::Owned(r.as_str().to_owned()), |&hot| Cow::Borrowed(hot)),
                    };
                    (route, response)
                }
            };
            response.headers_mut().insert(X_REQUEST_ID.clone(), id.header_value());
            let done = Instant::now();
            let elapsed = done.saturating_duration_since(started);
            let status = response.status().as_u16();
            if let Some(ip) = ip {
                let used = request_scope::take_key();
                state.config.access_log.write(&Entry {
                    at: done,
                    id,
                    method: &method,
                    route: &route,
                    status,
                    micros: elapsed.as_micros() as u64,
                    ip,
                    key: used.map(|u| u.key),
                    user: used.and_then(|u| u.user),
                });
            }
            state.metrics.record(route, status, elapsed);
            Ok(response)
        };
        Box::pin(request_scope::in_request(id, call))
    }
}

impl App {
    /// The id a trusted proxy sent in `X-Request-Id`, or a fresh one of keygate's.
    fn request_id(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> RequestId {
        let proxies = &self.state.config.trusted_proxies;
        if !proxies.is_empty()
            && proxies.contains(peer.ip())
            && let Some(given) = headers.get(&X_REQUEST_ID).and_then(|v| RequestId::given(v.as_bytes()))
        {
            return given;
        }
        self.state.request_ids.next()
    }
}

impl<B> tower::Service<Request<B>> for App
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> AppFuture {
        match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => self.serve_from(*peer, request),
            None => Box::pin(std::future::ready(Ok((
                StatusCode::INTERNAL_SERVER_ERROR,
                "keygate_web::App needs the peer address: put ConnectInfo<SocketAddr> in the request's extensions",
            )
                .into_response()))),
        }
    }
}

/// axum's router layer that tells [`App`] which route template answered (axum knows it only
/// inside the router).
pub(crate) async fn note_route(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}
