//! `/metrics`, through `prometheus-client`: requests and their latency by route template, and the
//! service's own figures read at each scrape (accepted calls and refusals by code, cache hits and
//! loads, the failure table, the write-behind queues, the change feed and listener, the database
//! pools, console log-ins and the password-hashing gate). Labels are bounded: route templates,
//! status codes and fixed names, never raw paths, units, key ids, emails or tenants. The registry
//! lives in the app state: no global recorder.

use std::{borrow::Cow, time::Duration};

use keygate_service::Keygate;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, NoLabelSet},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::AccessLog;

/// A request's route, as a template; the fast path's are named in `public_api`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: Cow<'static, str>,
    status: u16,
}

/// Latency buckets from 50 µs to about 1.6 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram, fn() -> Histogram>,
    hot: Box<[Hot]>,
}

/// The statuses of [`Hot`] routes whose counters are kept at hand.
const HOT_STATUSES: [u16; 7] = [200, 201, 400, 401, 403, 404, 429];

/// A route that answers at volume (the Public API's, verification and forward-auth), with its
/// family members kept at hand once used: a family finds a member by hashing its labels under a
/// lock, about 1 000 instructions per call, as much as the whole rest of the accounting.
#[derive(Debug)]
struct Hot {
    route: &'static str,
    latency: std::sync::OnceLock<Histogram>,
    requests: [std::sync::OnceLock<Counter>; HOT_STATUSES.len()],
}

impl Metrics {
    pub(crate) fn new(keygate: Keygate, access_log: AccessLog) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "keygate_http_requests",
            "HTTP requests answered, by route template and status",
            requests.clone(),
        );
        registry.register(
            "keygate_http_request_duration_seconds",
            "Time from a request's head to its answer's head, by route template",
            latency.clone(),
        );
        let hot = crate::rest::ROUTES
            .iter()
            .chain(crate::HOT_ROUTES)
            .map(|&route| Hot { route, latency: std::sync::OnceLock::new(), requests: Default::default() })
            .collect();
        registry.register_collector(Box::new(ServiceCounters(keygate)));
        registry.register_collector(Box::new(AccessLogCounters(access_log)));
        registry.register_collector(Box::new(ProcessFigures { started: std::time::SystemTime::now() }));
        Self { registry, requests, latency, hot }
    }

    /// Counts one answered request of `route` (a template) that took `elapsed`.
    pub(crate) fn record(&self, route: impl Into<Cow<'static, str>>, status: u16, elapsed: Duration) {
        let route = route.into();
        let seconds = elapsed.as_secs_f64();
        let Some(hot) = self.hot.iter().find(|h| h.route == route) else {
            self.latency.get_or_create(&Route { route: route.clone() }).observe(seconds);
            self.requests.get_or_create(&RouteStatus { route, status }).inc();
            return;
        };
        let route = Cow::Borrowed(hot.route);
        hot.latency
            .get_or_init(|| self.latency.get_or_create(&Route { route: route.clone() }).clone())
            .observe(seconds);
        match HOT_STATUSES.iter().position(|&s| s == status) {
            Some(i) => hot.requests[i]
                .get_or_init(|| self.requests.get_or_create(&RouteStatus { route, status }).clone())
                .inc(),
            None => self.requests.get_or_create(&RouteStatus { route, status }).inc(),
        };
    }

    /// The text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// The access log's lines written and dropped (0 and 0 when it is off).
#[derive(Debug)]
struct AccessLogCounters(AccessLog);

impl Collector for AccessLogCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        counter(e, "keygate_access_log_lines", "Access-log lines written", self.0.written())?;
        counter(
            e,
            "keygate_access_log_dropped",
            "Access-log lines dropped: the destination could not keep up (a full queue) or failed",
            self.0.dropped(),
        )
    }
}

/// The process's own figures under the names every Prometheus dashboard knows (`process_…`, read
/// from `/proc/self` when scraped; absent where there is no `/proc`), and `keygate_build_info`.
#[derive(Debug)]
struct ProcessFigures {
    /// When the metrics were set up: the server's start, near enough.
    started: std::time::SystemTime,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
    profile: &'static str,
}

/// Linux reports CPU times in `/proc` in clock ticks of 1/100 s (USER_HZ) on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

impl Collector for ProcessFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        gauges(
            e,
            "keygate_build_info",
            "The running keygate: its version and build profile (always 1)",
            [(Build { version: env!("CARGO_PKG_VERSION"), profile }, 1_i64)],
        )?;
        let start = self.started.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        gauge(e, "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds", start)?;
        // /proc/self/stat: fields after the command name; utime and stime are the 12th and 13th,
        // vsize the 21st of those.
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
            let cpu = (number(11) + number(12)) as f64 / TICKS_PER_SECOND;
            let c = prometheus_client::metrics::counter::ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?)?;
            gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes", count_u64(number(20)))?;
        }
        // VmRSS in kB: no page size to assume.
        let rss_kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        if let Some(kib) = rss_kib {
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                count_u64(kib.saturating_mul(1024)),
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(e, "process_open_fds", "Open file descriptors", count(fds.count()))?;
        }
        let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        });
        if let Some(max) = max_fds {
            gauge(e, "process_max_fds", "Open file descriptors allowed at most (soft limit)", count_u64(max))?;
        }
        Ok(())
    }
}

fn count_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The service's figures, read when scraped: atomics and a few short locks, no query.
#[derive(Debug)]
struct ServiceCounters(Keygate);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheName {
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Queue {
    queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolName {
    pool: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// A counter without labels (`_total` is added by the library).
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, n: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(n);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

/// A gauge without labels: an integer (`i64`) or seconds (`f64`).
fn gauge<N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: N,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A counter family, one series per label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, n) in series {
        ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge family, one series per label set.
fn gauges<L: EncodeLabelSet, N: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, N)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for ServiceCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let kg = &self.0;
        let e = &mut encoder;
        counter(e, "keygate_accepted_calls", "Verifications that succeeded (calls let through)", kg.accepted_count())?;
        counters(
            e,
            "keygate_refused_calls",
            "Calls refused, by reason",
            kg.refusal_counts().into_iter().map(|(code, n)| (Code { code }, n)),
        )?;
        counters(
            e,
            "keygate_cache_hits",
            "Verification cache lookups answered from memory, by cache",
            kg.cache_hits().into_iter().map(|(cache, n)| (CacheName { cache }, n)),
        )?;
        counters(
            e,
            "keygate_cache_loads",
            "Database reads of the verification caches (misses), by cache",
            kg.cache_loads().into_iter().map(|(cache, n)| (CacheName { cache }, n)),
        )?;
        counters(
            e,
            "keygate_key_reads_ahead",
            "Keys in use read again in the background before their TTL ran out, by outcome: renewed \
             (unchanged), dropped (changed or gone), superseded (invalidated during the read), failed, skipped \
             (too many under way)",
            kg.key_reads_ahead().into_iter().map(|(outcome, n)| (Outcome { outcome }, n)),
        )?;
        let (keys, key_capacity, evictions) = kg.key_cache();
        gauge(e, "keygate_key_cache_entries", "Keys the verification cache holds now", count(keys))?;
        gauge(e, "keygate_key_cache_capacity", "Keys the verification cache holds at most", count(key_capacity))?;
        counter(
            e,
            "keygate_key_cache_evictions",
            "Keys evicted from the verification cache to make room (S3-FIFO: the least used go)",
            evictions,
        )?;
        let (sources, capacity, bytes) = kg.failure_map();
        gauge(
            e,
            "keygate_failure_sources",
            "Sources with failed verifications tracked (fixed capacity)",
            count(sources),
        )?;
        gauge(e, "keygate_failure_capacity", "Sources the failed-verification map holds at most", count(capacity))?;
        gauge(
            e,
            "keygate_failure_map_bytes",
            "Memory the failed-verification map takes (allocated at start)",
            count(bytes),
        )?;
        self.encode_write_behind(e)?;
        self.encode_changes(e)?;
        let pools = kg.pool_stats();
        gauges(
            e,
            "keygate_db_connections",
            "Database connections by pool and state (in_use: running a query; idle: open, waiting for work)",
            pools.iter().flat_map(|p| {
                [
                    (PoolState { pool: p.name, state: "in_use" }, i64::from(p.in_use)),
                    (PoolState { pool: p.name, state: "idle" }, i64::from(p.idle)),
                ]
            }),
        )?;
        gauges(
            e,
            "keygate_db_connections_max",
            "Connections a database pool opens at most",
            pools.iter().filter_map(|p| p.max.map(|max| (PoolName { pool: p.name }, i64::from(max)))),
        )?;
        counters(
            e,
            "keygate_login_attempts",
            "Console log-in attempts by outcome: succeeded, failed (wrong tenant, email or password), throttled \
             (refused by the log-in throttle), busy (no password-hashing slot in time), error",
            kg.login_counts().into_iter().map(|(outcome, n)| (Outcome { outcome }, n)),
        )?;
        let gate = kg.password_hashing_gate();
        gauge(e, "keygate_password_hashing_slots", "Log-in password checks that may run at once", count(gate.slots))?;
        gauge(e, "keygate_password_hashing_in_use", "Log-in password checks running now", count(gate.in_use))?;
        counter(e, "keygate_password_hashings", "Log-in password checks started", gate.started)?;
        counter(
            e,
            "keygate_password_hashing_queued",
            "Log-in attempts that found every hashing slot taken and waited for one",
            gate.queued,
        )
    }
}

impl ServiceCounters {
    fn encode_write_behind(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let queues = self.0.write_behind();
        let depth = queues.iter().map(|q| (Queue { queue: q.name }, count(q.depth)));
        let lag = queues.iter().map(|q| (Queue { queue: q.name }, q.since_written.as_secs_f64()));
        gauges(
            e,
            "keygate_write_behind_depth",
            "Items waiting to be written behind, by queue (last_used, call_counts, refused_calls, cluster_counts)",
            depth,
        )?;
        gauges(
            e,
            "keygate_write_behind_lag_seconds",
            "Seconds since the queue was last written whole: the oldest waiting item is at most this old \
             (normally under 5 s; 60 s for call_counts; 0.1 s for cluster_counts)",
            lag,
        )?;
        counters(
            e,
            "keygate_write_behind_failed_writes",
            "Writes of a write-behind queue that failed (what they held is kept for the next)",
            queues.iter().map(|q| (Queue { queue: q.name }, q.failed_writes)),
        )?;
        counters(
            e,
            "keygate_write_behind_dropped",
            "Items given up on because a bound was reached while writes failed",
            queues.iter().map(|q| (Queue { queue: q.name }, q.dropped)),
        )
    }

    fn encode_changes(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let l = self.0.listener_health();
        if l.enabled {
            gauge(
                e,
                "keygate_change_listener_up",
                "Whether the change listener (PostgreSQL LISTEN) is connected",
                i64::from(l.connected),
            )?;
            counter(e, "keygate_change_listener_connects", "Connections the change listener has made", l.reconnects)?;
            counter(e, "keygate_change_notifications", "Change notifications received", l.notifications)?;
        }
        if let Some(ago) = l.feed_read_ago {
            gauge(
                e,
                "keygate_change_feed_read_age_seconds",
                "Seconds since this process last read the change feed (polled every 0.2 s on SQLite, read on \
                 every notification and every 2 s on PostgreSQL)",
                ago.as_secs_f64(),
            )?;
        }
        let lag = l.change_lag;
        let mut buckets: Vec<(f64, u64)> =
            keygate_service::CHANGE_LAG_BUCKETS.iter().copied().zip(lag.counts.iter().copied()).collect();
        buckets.push((f64::MAX, lag.counts[keygate_service::CHANGE_LAG_BUCKETS.len()]));
        e.encode_descriptor(
            "keygate_change_apply_lag_seconds",
            "From a change being made (the writer's clock, just before its commit) to this process applying it \
             from the change feed; between nodes, their clocks' difference is in it too",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(lag.sum_seconds, lag.count, &buckets, None)
    }
}
