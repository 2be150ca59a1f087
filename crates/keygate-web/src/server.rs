//! The HTTP/1.1 server loop: accepts connections, serves [`crate::app`] on each with hyper, closes
//! connections that make no progress, and drains them on shutdown.
//!
//! hyper is driven directly rather than through `axum::serve` for what a server on the Internet
//! needs and that one does not offer: a deadline for idle and stalled connections (a client that
//! trickles header bytes cannot hold a connection open forever), `TCP_NODELAY`, and a bound on how
//! long shutdown waits for connections. It also skips the HTTP/2 detection keygate has no use for.
//!
//! The deadline is kept by one watchdog per connection, not by hyper's `header_read_timeout`:
//! that one arms a fresh timer for every request on a keep-alive connection (an allocation and
//! two trips through the runtime's timer wheel), about 1 200 instructions per request
//! (bench/instructions.sh). The watchdog wakes a few times per deadline and reads one counter.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tower::ServiceExt;

use crate::{
    AppState,
    public_api::{self, Dispatch},
};

/// How long shutdown waits for requests in flight before it closes their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// (closing idle keep-alive connections at once) for at most [`DRAIN_TIMEOUT`].
///
/// A connection is closed once it has made no progress for `idle_timeout` (up to a quarter more)
/// while no request of it was being handled. Progress is a request head received in full, or
/// response bytes taken by the client. So a request's head must arrive within
/// the deadline, an idle keep-alive connection is closed after it, and so is a client that stops
/// reading its answer; a handler may take as long as it needs.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let idle_timeout = state.config.idle_timeout;
    let http = hyper::server::conn::http1::Builder::new();
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
        let activity = Arc::new(Activity::default());
        let io = Watched { io: TokioIo::new(stream), activity: Arc::clone(&activity) };
        let service =
            hyper::service::service_fn(connection_service(app.clone(), state.clone(), peer, Arc::clone(&activity)));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                result = connection => if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                },
                () = activity.stalled(idle_timeout) => {
                    tracing::debug!(%peer, ?idle_timeout, "closing a connection that made no progress");
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; closing their connections");
    }
    Ok(())
}

/// Each request of a connection from `peer`: a Public API call goes to [`public_api`], anything
/// else to axum's router with the peer address (what axum's `ConnectInfo` extractor reads). Its
/// head's arrival is progress, and the connection is busy from then until the answer's first
/// bytes are written.
fn connection_service(
    app: Router,
    state: AppState,
    peer: SocketAddr,
    activity: Arc<Activity>,
) -> impl Fn(Request<Incoming>) -> Dispatch<tower::util::Oneshot<Router, Request<Body>>> + Clone {
    move |mut request: Request<Incoming>| {
        activity.head_received();
        if let Some(endpoint) = public_api::endpoint(request.method(), request.uri().path()) {
            let call = public_api::serve(state.clone(), peer, endpoint, request.map(Body::new));
            return Dispatch::PublicApi(Box::pin(call));
        }
        request.extensions_mut().insert(ConnectInfo(peer));
        Dispatch::Router(app.clone().oneshot(request.map(Body::new)))
    }
}

/// What a connection's watchdog reads: one word, written only by the connection's own task (so
/// a plain load and store suffice) and read by the watchdog in that same task. It grows by two
/// at every step of progress; its lowest bit is set while a request is being handled.
///
/// hyper handles one request of a connection at a time, and answers it by writing: a request is
/// being handled from its head's arrival until the first write after it.
#[derive(Debug, Default)]
struct Activity(AtomicU64);

impl Activity {
    fn head_received(&self) {
        let now = self.0.load(Ordering::Relaxed);
        self.0.store((now + 2) | 1, Ordering::Relaxed);
    }

    fn written(&self) {
        let now = self.0.load(Ordering::Relaxed);
        self.0.store((now + 2) & !1, Ordering::Relaxed);
    }

    /// Completes once the connection has been without progress, and without a request being
    /// handled, for `timeout` (checked every quarter of it).
    async fn stalled(&self, timeout: Duration) {
        // A zero deadline would make a zero period, which the runtime's interval refuses.
        let step = (timeout / 4).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.0.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        loop {
            ticks.tick().await;
            let now = self.0.load(Ordering::Relaxed);
            let busy = now & 1 == 1;
            if now != seen || busy {
                seen = now;
                quiet = Duration::ZERO;
                continue;
            }
            quiet += step;
            if quiet >= timeout {
                return;
            }
        }
    }
}

/// The connection's socket, counting every write the client takes as progress.
struct Watched {
    io: TokioIo<tokio::net::TcpStream>,
    activity: Arc<Activity>,
}

impl Watched {
    fn wrote(&self, written: &Poll<std::io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.written();
        }
    }
}

impl hyper::rt::Read for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.io)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
