//! The access log: one line per answered request, at nginx's price.
//!
//! A line is written by hand in a fixed format (text or JSON, the same fields and shape as the
//! `tracing` lines keygate wrote before: target `keygate::access`, message `answered`, the
//! request's id as its span) into one of a few buffers, one per worker thread as far as there
//! are threads (a thread picks its buffer once; an uncontended lock is all the sharing costs).
//! Nothing on the request path waits for the destination:
//!
//! - a buffer that reaches [`AccessLogSettings::batch_bytes`] is handed to the writer thread
//!   through a queue of [`AccessLogSettings::queue_batches`] batches, with a `try_send`;
//! - the writer thread writes each batch with one `write` (`write_all`), and every
//!   [`AccessLogSettings::flush_interval`] takes what the buffers hold, so a quiet server's lines
//!   are out within that time;
//! - when the queue is full (the destination is slower than the calls, or blocked), the batch is
//!   dropped and its lines counted in `keygate_access_log_dropped_total`; lines a failed `write`
//!   lost are counted there too. Memory is bounded: at most `queue_batches` batches in the queue,
//!   one being written, and one buffer per shard (a batch is `batch_bytes` plus one line).
//! - [`AccessLog::flush`] hands every buffer over and waits until the writer has written them:
//!   [`crate::serve`] calls it after the last request was answered, so no line of an answered
//!   request is lost at a graceful shutdown.
//!
//! The line names the key by its id (and its user, for an accepted call), never the key itself,
//! the path or the query: the route is the template (`/rest/v1/{unitId}/capability`).

use std::{
    fs::File,
    io::Write,
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::http::Method;
use keygate_domain::{KeyId, UserId};

use crate::RequestId;

/// How the lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `2026-12-06T23:34:55.123456Z  INFO request{id=…}: keygate::access: answered method=GET …`
    #[default]
    Text,
    /// One JSON object per line, shaped as `tracing-subscriber`'s JSON lines.
    Json,
}

/// Where the lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessLogDestination {
    /// Standard error, with keygate's other log lines.
    #[default]
    Stderr,
    /// A file, opened for appending and reopened on [`AccessLog::reopen`] (SIGHUP: logrotate).
    File(PathBuf),
}

/// Settings of an access log that is on.
#[derive(Debug, Clone)]
pub struct AccessLogSettings {
    pub format: AccessLogFormat,
    pub destination: AccessLogDestination,
    /// A buffer this full is handed to the writer (one `write`). Default 32 KiB (about 150 lines).
    pub batch_bytes: usize,
    /// Batches waiting for the writer at most; more are dropped and counted. Default 64 (2 MiB,
    /// about 10 000 lines).
    pub queue_batches: usize,
    /// The writer takes what the buffers hold at least this often. Default 200 ms.
    pub flush_interval: Duration,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self {
            format: AccessLogFormat::Text,
            destination: AccessLogDestination::Stderr,
            batch_bytes: 32 * 1024,
            queue_batches: 64,
            flush_interval: Duration::from_millis(200),
        }
    }
}

/// The access log: off, or on with its writer thread. Cloning shares it.
#[derive(Clone, Default)]
pub struct AccessLog(Option<Arc<Inner>>);

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("AccessLog(off)"),
            Some(inner) => f
                .debug_struct("AccessLog")
                .field("format", &inner.format)
                .field("shards", &inner.shards.len())
                .field("written", &inner.stats.written.load(Ordering::Relaxed))
                .field("dropped", &inner.stats.dropped.load(Ordering::Relaxed))
                .finish(),
        }
    }
}

struct Inner {
    format: AccessLogFormat,
    batch_bytes: usize,
    shards: Box<[Mutex<Shard>]>,
    queue: SyncSender<Message>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    dropped: AtomicU64,
    reopen: AtomicBool,
}

enum Message {
    /// Bytes of whole lines, and how many lines.
    Batch(Vec<u8>, u64),
    /// Answered once everything sent before it is written.
    Flush(mpsc::Sender<()>),
}

struct Shard {
    buf: Vec<u8>,
    lines: u64,
    /// A monotonic instant and the wall-clock time (since the epoch) read with it: a line's time
    /// is found from its answer's instant and this, read again once it is a second old (a clock
    /// read per second instead of one per line).
    anchor: (Instant, Duration),
    /// The second [`Self::stamp`] was written for.
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of [`Self::second`].
    stamp: [u8; 19],
}

/// One answered request, as the log names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// When the answer was ready (the line's time).
    pub at: Instant,
    pub id: RequestId,
    pub method: &'a Method,
    pub route: &'a str,
    pub status: u16,
    pub micros: u64,
    pub ip: IpAddr,
    pub key: Option<KeyId>,
    pub user: Option<UserId>,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> Self {
        Self(None)
    }

    /// Starts the writer thread for `settings.destination` (a file is opened, or created, now).
    pub fn start(settings: AccessLogSettings) -> std::io::Result<Self> {
        let sink = match &settings.destination {
            AccessLogDestination::Stderr => Sink::Stderr,
            AccessLogDestination::File(path) => Sink::File { file: open_append(path)?, path: path.clone() },
        };
        Self::spawn(settings, sink)
    }

    /// An access log that writes its batches to `writer` (tests; embedding).
    pub fn to_writer(settings: AccessLogSettings, writer: Box<dyn Write + Send>) -> std::io::Result<Self> {
        Self::spawn(settings, Sink::Other(writer))
    }

    fn spawn(settings: AccessLogSettings, sink: Sink) -> std::io::Result<Self> {
        let (queue, batches) = mpsc::sync_channel(settings.queue_batches.max(1));
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let batch_bytes = settings.batch_bytes.max(1);
        let shards = (0..(2 * threads).clamp(4, 64))
            .map(|_| {
                Mutex::new(Shard {
                    buf: Vec::with_capacity(batch_bytes + 512),
                    lines: 0,
                    anchor: wall_clock_now(),
                    second: 0,
                    stamp: [b'0'; 19],
                })
            })
            .collect();
        let stats = Arc::new(Stats::default());
        let inner = Arc::new(Inner { format: settings.format, batch_bytes, shards, queue, stats: stats.clone() });
        let writer = Writer { sink, stats, inner: Arc::downgrade(&inner), interval: settings.flush_interval };
        std::thread::Builder::new().name("access-log".into()).spawn(move || writer.run(batches))?;
        Ok(Self(Some(inner)))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Lines written to the destination so far.
    pub fn written(&self) -> u64 {
        self.0.as_ref().map_or(0, |i| i.stats.written.load(Ordering::Relaxed))
    }

    /// Lines dropped so far: the writer could not keep up, or the destination failed.
    pub fn dropped(&self) -> u64 {
        self.0.as_ref().map_or(0, |i| i.stats.dropped.load(Ordering::Relaxed))
    }

    /// Asks the writer to reopen its file before its next write (after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(inner) = &self.0 {
            inner.stats.reopen.store(true, Ordering::Relaxed);
        }
    }

    /// Hands every buffered line to the writer and waits, at most `timeout`, until it has written
    /// them. Blocks: call it off the runtime's workers (`spawn_blocking`). False when it timed out
    /// (lines that could not be queued are counted as dropped).
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(inner) = &self.0 else { return true };
        let deadline = Instant::now() + timeout;
        for shard in &inner.shards {
            let (buf, lines) = shard.lock().unwrap_or_else(PoisonError::into_inner).take(0);
            if lines > 0 && !send_until(&inner.queue, Message::Batch(buf, lines), deadline) {
                inner.stats.dropped.fetch_add(lines, Ordering::Relaxed);
            }
        }
        let (ack, acked) = mpsc::channel();
        send_until(&inner.queue, Message::Flush(ack), deadline)
            && acked.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }

    /// Writes `entry`'s line into this thread's buffer; hands the buffer to the writer when full.
    pub(crate) fn write(&self, entry: &Entry<'_>) {
        let Some(inner) = &self.0 else { return };
        let shard = &inner.shards[shard_of_this_thread() % inner.shards.len()];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let now = shard.wall_clock(entry.at);
        shard.append(inner.format, now, entry);
        if shard.buf.len() < inner.batch_bytes {
            return;
        }
        let (batch, lines) = shard.take(inner.batch_bytes + 512);
        drop(shard);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            inner.queue.try_send(Message::Batch(batch, lines))
        {
            inner.stats.dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

impl Drop for Inner {
    /// The last handle is gone: what the buffers hold goes to the writer if the queue has room
    /// (a graceful shutdown has flushed already), then the writer ends.
    fn drop(&mut self) {
        for shard in &self.shards {
            let (buf, lines) = shard.lock().unwrap_or_else(PoisonError::into_inner).take(0);
            if lines > 0 && self.queue.try_send(Message::Batch(buf, lines)).is_err() {
                self.stats.dropped.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
}

fn send_until(queue: &SyncSender<Message>, mut message: Message, deadline: Instant) -> bool {
    loop {
        match queue.try_send(message) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                message = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// The shard a thread writes to: threads take numbers in turn, once.
fn shard_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|s| *s)
}

/// A monotonic instant and the wall-clock time since the epoch, read together.
fn wall_clock_now() -> (Instant, Duration) {
    (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl Shard {
    /// The wall-clock time (since the epoch) of instant `at`, from the anchor while it is less
    /// than a second away.
    fn wall_clock(&mut self, at: Instant) -> Duration {
        const FRESH: Duration = Duration::from_secs(1);
        let instant = self.anchor.0;
        if at.max(instant) - at.min(instant) >= FRESH {
            self.anchor = wall_clock_now();
        }
        let (instant, wall) = self.anchor;
        match at.checked_duration_since(instant) {
            Some(after) => wall + after,
            None => wall.saturating_sub(instant - at),
        }
    }

    /// The buffer and its line count, leaving an empty one of `capacity`.
    fn take(&mut self, capacity: usize) -> (Vec<u8>, u64) {
        (std::mem::replace(&mut self.buf, Vec::with_capacity(capacity)), std::mem::take(&mut self.lines))
    }

    fn append(&mut self, format: AccessLogFormat, now: Duration, e: &Entry<'_>) {
        let second = now.as_secs();
        if second != self.second {
            self.second = second;
            self.stamp = civil_time(second);
        }
        let mut micros = itoa::Buffer::new();
        let micros_text = micros.format(now.subsec_micros());
        let out = &mut self.buf;
        let timestamp = |out: &mut Vec<u8>, stamp: &[u8; 19]| {
            out.extend_from_slice(stamp);
            out.push(b'.');
            out.extend_from_slice(&b"000000"[micros_text.len()..]);
            out.extend_from_slice(micros_text.as_bytes());
            out.push(b'Z');
        };
        let mut n = itoa::Buffer::new();
        match format {
            AccessLogFormat::Text => {
                timestamp(out, &self.stamp);
                out.extend_from_slice(b"  INFO request{id=");
                e.id.append_to(out);
                out.extend_from_slice(b"}: keygate::access: answered method=");
                out.extend_from_slice(e.method.as_str().as_bytes());
                out.extend_from_slice(b" route=");
                out.extend_from_slice(e.route.as_bytes());
                out.extend_from_slice(b" status=");
                out.extend_from_slice(n.format(e.status).as_bytes());
                out.extend_from_slice(b" micros=");
                out.extend_from_slice(n.format(e.micros).as_bytes());
                out.extend_from_slice(b" ip=");
                append_ip(out, e.ip);
                if let Some(key) = e.key {
                    out.extend_from_slice(b" key=");
                    out.extend_from_slice(n.format(key.0).as_bytes());
                }
                if let Some(user) = e.user {
                    out.extend_from_slice(b" user=");
                    out.extend_from_slice(n.format(user.0).as_bytes());
                }
                out.push(b'\n');
            }
            AccessLogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(out, &self.stamp);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"answered\",\"method\":\"");
                append_json_text(out, e.method.as_str());
                out.extend_from_slice(b"\",\"route\":\"");
                append_json_text(out, e.route);
                out.extend_from_slice(b"\",\"status\":");
                out.extend_from_slice(n.format(e.status).as_bytes());
                out.extend_from_slice(b",\"micros\":");
                out.extend_from_slice(n.format(e.micros).as_bytes());
                out.extend_from_slice(b",\"ip\":\"");
                append_ip(out, e.ip);
                out.push(b'"');
                if let Some(key) = e.key {
                    out.extend_from_slice(b",\"key\":\"");
                    out.extend_from_slice(n.format(key.0).as_bytes());
                    out.push(b'"');
                }
                if let Some(user) = e.user {
                    out.extend_from_slice(b",\"user\":\"");
                    out.extend_from_slice(n.format(user.0).as_bytes());
                    out.push(b'"');
                }
                out.extend_from_slice(b"},\"target\":\"keygate::access\",\"span\":{\"id\":\"");
                e.id.append_to(out);
                out.extend_from_slice(b"\",\"name\":\"request\"}}\n");
            }
        }
        self.lines += 1;
    }
}

/// An address as `Display` writes it; IPv4 (the common case) without the formatting machinery.
fn append_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(n.format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `text` inside a JSON string. Routes and methods are plain ASCII; anything else is escaped.
fn append_json_text(out: &mut Vec<u8>, text: &str) {
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let escaped = serde_json::to_string(text).unwrap_or_default();
    out.extend_from_slice(escaped.trim_matches('"').as_bytes());
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of `secs` since the Unix epoch (Howard Hinnant's
/// `civil_from_days`).
fn civil_time(secs: u64) -> [u8; 19] {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 19];
    let mut put = |at: usize, value: u64, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year.clamp(0, 9999) as u64, 4);
    put(5, month as u64, 2);
    put(8, day as u64, 2);
    put(11, rem / 3600, 2);
    put(14, rem / 60 % 60, 2);
    put(17, rem % 60, 2);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[at] = sep;
    }
    out
}

fn open_append(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
    Other(Box<dyn Write + Send>),
}

struct Writer {
    sink: Sink,
    stats: Arc<Stats>,
    inner: Weak<Inner>,
    interval: Duration,
}

impl Writer {
    fn run(mut self, batches: Receiver<Message>) {
        let mut swept = Instant::now();
        loop {
            match batches.recv_timeout(self.interval.saturating_sub(swept.elapsed())) {
                Ok(Message::Batch(buf, lines)) => self.write(&buf, lines),
                Ok(Message::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if swept.elapsed() >= self.interval {
                swept = Instant::now();
                self.sweep();
            }
        }
    }

    /// Takes what the buffers hold, in one write.
    fn sweep(&mut self) {
        let Some(inner) = self.inner.upgrade() else { return };
        let (mut all, mut lines) = (Vec::new(), 0);
        for shard in &inner.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if shard.lines > 0 {
                let (buf, n) = shard.take(inner.batch_bytes + 512);
                drop(shard);
                if all.is_empty() {
                    all = buf;
                } else {
                    all.extend_from_slice(&buf);
                }
                lines += n;
            }
        }
        drop(inner);
        if lines > 0 {
            self.write(&all, lines);
        }
    }

    fn write(&mut self, buf: &[u8], lines: u64) {
        if self.stats.reopen.swap(false, Ordering::Relaxed)
            && let Sink::File { path, file } = &mut self.sink
        {
            match open_append(path) {
                Ok(reopened) => *file = reopened,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot reopen the access log file; writing to the old one")
                }
            }
        }
        let result = match &mut self.sink {
            Sink::Stderr => std::io::stderr().lock().write_all(buf),
            Sink::File { file, .. } => file.write_all(buf),
            Sink::Other(w) => w.write_all(buf).and_then(|()| w.flush()),
        };
        match result {
            Ok(()) => self.stats.written.fetch_add(lines, Ordering::Relaxed),
            Err(_) => self.stats.dropped.fetch_add(lines, Ordering::Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_time_follows_its_answers_instant_and_the_clock_is_read_again_after_a_second() {
        let wall = Duration::from_secs(1_796_599_295);
        let then = Instant::now();
        let mut shard = Shard { buf: Vec::new(), lines: 0, anchor: (then, wall), second: 0, stamp: [b'0'; 19] };
        let ms = Duration::from_millis;
        assert_eq!(shard.wall_clock(then + ms(300)), wall + ms(300));
        assert_eq!(shard.wall_clock(then.checked_sub(ms(200)).expect("instant")), wall - ms(200));
        assert_eq!(shard.anchor, (then, wall), "read from the anchor within a second");
        // A second from the anchor, the clock is read again: the made-up time is gone.
        let now = then + Duration::from_secs(3);
        let late = shard.wall_clock(now);
        let real = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
        assert!(late.abs_diff(real + now.saturating_duration_since(Instant::now())) < ms(100), "{late:?} {real:?}");
        assert_ne!(shard.anchor.0, then);
    }

    #[test]
    fn civil_time_is_rfc3339() {
        assert_eq!(&civil_time(0), b"1970-01-01T00:00:00");
        assert_eq!(&civil_time(951_782_400), b"2000-02-29T00:00:00");
        assert_eq!(&civil_time(1_796_599_295), b"2026-12-06T23:21:35");
    }
}
