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
    match tokio::time::timeout(READY_WITHIN, state.keygate.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
            tracing::warn!(error = %e, cause = %cause, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database did not answer within 1 s\n").into_response(),
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
        .into_response()
}
