//! A key reading and rolling itself (`/v1/keys/self`, `/v1/keys/self/roll`): any valid key, no
//! administrative power, so that a tenant's CI can rotate its own key with nobody in the loop.
//! The rules (one roll per key, even under a race; the successor carries exactly what the key
//! carries; the audit of a refused second roll) are the service's `roll_own_key`.

use axum::{body::Bytes, extract::State, http::StatusCode, response::Response};

use super::wire::{DEFAULT_OVERLAP_HOURS, RollBody, answer_key, created, issued_wire};
use crate::{AppState, manage::extract::Admin, problem_code::ProblemCode};

/// `GET /v1/keys/self` — the calling key as an administrator would see it. Any valid key.
pub(super) async fn show_own_key(admin: Admin, State(state): State<AppState>) -> Response {
    match state.keygate.own_key(&admin.v).await {
        Ok(view) => answer_key(&admin, StatusCode::OK, &view),
        Err(e) => admin.failed(e),
    }
}

/// `POST /v1/keys/self/roll` — the calling key's successor (`201`, its secret shown once); the
/// calling key works for `overlapHours` more. Any valid key; a key rolls itself once (`409`).
pub(super) async fn roll_own_key(admin: Admin, State(state): State<AppState>, bytes: Bytes) -> Response {
    let body = match RollBody::read(&bytes) {
        Ok(b) => b,
        Err(detail) => return admin.problem(ProblemCode::InvalidInput, detail),
    };
    let hours = body.overlap_hours.unwrap_or(DEFAULT_OVERLAP_HOURS);
    match state.keygate.roll_own_key(&admin.v, hours).await {
        Ok((issued, view)) => {
            let id = view.listing.key.id;
            created(&admin, &issued_wire(&view, issued), id)
        }
        Err(e) => admin.failed(e),
    }
}
