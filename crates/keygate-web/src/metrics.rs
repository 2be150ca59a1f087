//! `/metrics`, through `prometheus-client`: requests and their latency by route template, and the
//! service's own counters (refusals by code, cache loads, the failure table, the change listener)
//! read at each scrape. Labels are bounded: route templates and status codes, never raw paths,
//! units or key ids. The registry lives in the app state: no global recorder.

use std::{borrow::Cow, time::Duration};

use keygate_service::Keygate;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

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
}

impl Metrics {
    pub(crate) fn new(keygate: Keygate) -> Self {
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
        registry.register_collector(Box::new(ServiceCounters(keygate)));
        Self { registry, requests, latency }
    }

    /// Counts one answered request of `route` (a template) that took `elapsed`.
    pub(crate) fn record(&self, route: impl Into<Cow<'static, str>>, status: u16, elapsed: Duration) {
        let route = route.into();
        self.latency.get_or_create(&Route { route: route.clone() }).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&RouteStatus { route, status }).inc();
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

/// The service's counters, read when scraped.
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

impl Collector for ServiceCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let kg = &self.0;
        let counter = ConstCounter::new(0u64);
        {
            let mut family = encoder.encode_descriptor(
                "keygate_refused_calls",
                "Calls refused, by reason",
                None,
                counter.metric_type(),
            )?;
            for (code, n) in kg.refusal_counts() {
                ConstCounter::new(n).encode(family.encode_family(&Code { code })?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "keygate_cache_loads",
                "Database reads of the verification caches (misses), by cache",
                None,
                counter.metric_type(),
            )?;
            for (cache, n) in kg.cache_loads() {
                ConstCounter::new(n).encode(family.encode_family(&CacheName { cache })?)?;
            }
        }
        let (sources, capacity, bytes) = kg.failure_map();
        for (name, help, value) in [
            ("keygate_failure_sources", "Sources with failed verifications tracked (fixed capacity)", sources),
            ("keygate_failure_capacity", "Sources the failed-verification map holds at most", capacity),
            ("keygate_failure_map_bytes", "Memory the failed-verification map takes (allocated at start)", bytes),
        ] {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let l = kg.listener_health();
        if l.enabled {
            let up = ConstGauge::new(i64::from(l.connected));
            up.encode(encoder.encode_descriptor(
                "keygate_change_listener_up",
                "Whether the change listener (PostgreSQL LISTEN) is connected",
                None,
                up.metric_type(),
            )?)?;
            for (name, help, n) in [
                ("keygate_change_listener_connects", "Connections the change listener has made", l.reconnects),
                ("keygate_change_notifications", "Change notifications received", l.notifications),
            ] {
                let c = ConstCounter::new(n);
                c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
            }
        }
        if let Some(ago) = l.feed_read_ago {
            let age = ConstGauge::new(ago.as_secs_f64());
            age.encode(encoder.encode_descriptor(
                "keygate_change_feed_read_age_seconds",
                "Seconds since the change feed was last read",
                None,
                age.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
