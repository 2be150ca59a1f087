//! Ops endpoints: liveness, readiness (the database answers), and Prometheus metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::AppState;

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.keygate.db().ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::from(
        "# HELP keygate_refused_calls_total Calls refused, by reason.\n# TYPE keygate_refused_calls_total counter\n",
    );
    for (code, n) in state.keygate.refusal_counts() {
        out.push_str(&format!("keygate_refused_calls_total{{code=\"{code}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP keygate_cache_loads_total Database reads of the verification caches (misses), by cache.\n\
         # TYPE keygate_cache_loads_total counter\n",
    );
    for (cache, n) in state.keygate.cache_loads() {
        out.push_str(&format!("keygate_cache_loads_total{{cache=\"{cache}\"}} {n}\n"));
    }
    let (sources, capacity, bytes) = state.keygate.failure_map();
    out.push_str(&format!(
        "# HELP keygate_failure_sources Sources with failed verifications tracked (fixed capacity).\n\
         # TYPE keygate_failure_sources gauge\n\
         keygate_failure_sources {sources}\n\
         # HELP keygate_failure_capacity Sources the failed-verification map holds at most.\n\
         # TYPE keygate_failure_capacity gauge\n\
         keygate_failure_capacity {capacity}\n\
         # HELP keygate_failure_map_bytes Memory the failed-verification map takes (allocated at start).\n\
         # TYPE keygate_failure_map_bytes gauge\n\
         keygate_failure_map_bytes {bytes}\n"
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
