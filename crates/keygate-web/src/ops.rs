//! Ops endpoints: liveness, readiness (the database answers), and Prometheus metrics.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::AppState;

/// How long `/readyz` waits for the database.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.keygate.listener_lost() {
        let down = state.keygate.listener_health().down_for;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("change listener lost for {} ms: other nodes' changes may arrive late\n", down.as_millis()),
        )
            .into_response();
    }
    // A probe must answer quickly even when the database does not: its pool would wait for a
    // connection for up to 10 s.
    match tokio::time::timeout(READY_WITHIN, state.keygate.db().ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database did not answer within 1 s\n").into_response(),
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
    let l = state.keygate.listener_health();
    if l.enabled {
        out.push_str(&format!(
            "# HELP keygate_change_listener_up Whether the change listener (PostgreSQL LISTEN) is connected.\n\
             # TYPE keygate_change_listener_up gauge\nkeygate_change_listener_up {}\n\
             # HELP keygate_change_listener_connects_total Connections the change listener has made.\n\
             # TYPE keygate_change_listener_connects_total counter\nkeygate_change_listener_connects_total {}\n\
             # HELP keygate_change_notifications_total Change notifications received.\n\
             # TYPE keygate_change_notifications_total counter\nkeygate_change_notifications_total {}\n",
            u8::from(l.connected),
            l.reconnects,
            l.notifications
        ));
    }
    if let Some(ago) = l.feed_read_ago {
        out.push_str(&format!(
            "# HELP keygate_change_feed_read_age_seconds Seconds since the change feed was last read.\n\
             # TYPE keygate_change_feed_read_age_seconds gauge\nkeygate_change_feed_read_age_seconds {:.3}\n",
            ago.as_secs_f64()
        ));
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
