//! The HTTP/1.1 server loop: accepts connections, serves [`crate::App`] on each with hyper, closes
//! connections that make no progress, and drains them on shutdown. Everything about a request
//! (ids, routing, deadlines for bodies, metrics, logs) is the app's; this is about connections.
//!
//! hyper is driven directly rather than through `axum::serve` for what a server on the Internet
//! needs and that one does not offer: a deadline for idle and stalled connections (a client that
//! trickles header bytes cannot hold a connection open forever), `TCP_NODELAY`, and a bound on how
//! long shutdown waits for connections. It also skips the HTTP/2 detection keygate has no use for.
//!
//! Bounded by construction: at most `max_connections` are served at once (the accept loop waits
//! for a free place, so further clients queue in the kernel's backlog instead of taking file
//! descriptors), at most `max_connections_per_address` per address and never more than a quarter
//! of the places (an IPv6 /64 counts as one address; more are closed at once), and a request body must arrive in full within `body_timeout` of its head.
//! Accept errors (`EMFILE`) back off exponentially up to a second, logged once per run of them.
//!
//! The deadline is kept by one watchdog per connection, not by hyper's `header_read_timeout`:
//! that one arms a fresh timer for every request on a keep-alive connection (an allocation and
//! two trips through the runtime's timer wheel), about 1 200 instructions per request
//! (bench/instructions.sh). The watchdog wakes a few times per deadline and reads one counter.

use std::{
    collections::HashMap,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};

use crate::{App, WebConfig};

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
    app: App,
    config: &WebConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let idle_timeout = config.idle_timeout;
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = GracefulShutdown::new();
    let max_connections = connection_limit(config.max_connections);
    let places = Arc::new(tokio::sync::Semaphore::new(max_connections));
    // One address never takes more than a quarter of the places, so that one client (or one /64)
    // cannot crowd out everyone else, a health check included, whatever the settings say.
    let per_address_max = config.max_connections_per_address.min((max_connections / 4).max(1));
    let per_address = Arc::new(PerAddress::new(per_address_max));
    tracing::debug!(max_connections, per_address_max, "connection caps");
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => match place {
                Ok(place) => place,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = Duration::ZERO;
                    accepted
                }
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept: the listener
                    // itself is fine. Back off so a persistent condition does not spin.
                    if backoff.is_zero() {
                        tracing::warn!(error = %e, "accepting a connection failed; backing off");
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = PerAddress::admit(&per_address, peer.ip()) else {
            tracing::debug!(%peer, "closing a connection over the per-address cap");
            drop(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "could not set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::default());
        let io = Watched { io: TokioIo::new(stream), activity: Arc::clone(&activity) };
        let (app, seen) = (app.clone(), Arc::clone(&activity));
        // A request's head arriving is progress, and the connection is busy from then until the
        // answer's first bytes are written.
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            seen.head_received();
            app.serve_from(peer, request)
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _held = (place, held);
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

/// `wanted`, lowered so that connections leave room in the file-descriptor limit (read from
/// `/proc/self/limits`; the database, the listener and logs need some) .
fn connection_limit(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<usize>().ok()
    });
    match soft {
        Some(soft) => wanted.min(soft.saturating_sub(64).max(16)),
        None => wanted,
    }
    .max(1)
}

/// Connections held per address (IPv6 per /64). Never more entries than connections held, so it
/// is bounded by the global cap.
#[derive(Debug)]
struct PerAddress {
    max: usize,
    held: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerAddress`], given back on drop.
struct AddressHeld {
    map: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        Self { max: max.max(1), held: std::sync::Mutex::default() }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match keygate_domain::ip::normalise(ip) {
            IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
            v4 => v4,
        }
    }

    fn admit(this: &Arc<Self>, ip: IpAddr) -> Option<AddressHeld> {
        let key = Self::key(ip);
        let mut held = this.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.entry(key).or_insert(0);
        if *n >= this.max {
            return None;
        }
        *n += 1;
        Some(AddressHeld { map: Arc::clone(this), key })
    }
}

impl Drop for AddressHeld {
    fn drop(&mut self) {
        let mut held = self.map.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
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
