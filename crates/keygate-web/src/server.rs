//! The HTTP/1.1 server loop: accepts connections, serves [`crate::app`] on each with hyper, and
//! drains them on shutdown.
//!
//! hyper is driven directly rather than through `axum::serve` for what a server on the Internet
//! needs and that one does not offer: a deadline for a request's head (a client that trickles
//! header bytes cannot hold a connection open forever), `TCP_NODELAY`, and a bound on how long
//! shutdown waits for connections. It also skips the HTTP/2 detection keygate has no use for.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tower::ServiceExt;

/// How long a client may take to send a request's head (request line and headers).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight before it closes their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (closing idle keep-alive connections at once) for at most [`DRAIN_TIMEOUT`].
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept: the listener
                    // itself is fine. Wait a little so a persistent condition does not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let service = hyper::service::service_fn(connection_service(app.clone(), peer));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing their connections");
    }
    Ok(())
}

/// Each request of a connection from `peer`, handed to the router with the peer address (what
/// axum's `ConnectInfo` extractor reads).
fn connection_service(
    app: Router,
    peer: SocketAddr,
) -> impl Fn(Request<Incoming>) -> tower::util::Oneshot<Router, Request<Body>> + Clone {
    move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(Body::new))
    }
}
