//! What the Public API's router hands a handler ([`Call`]), and the body limit they share.

use std::net::SocketAddr;

use keygate_domain::UnitId;

use crate::{AppState, RequestId};

/// `Content-Type: application/json`, a static value: text would be checked and copied per call.
pub(crate) static JSON: axum::http::HeaderValue = axum::http::HeaderValue::from_static("application/json");

/// The largest request body a Public API call may send (axum's default limit).
pub(crate) const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What a Public API handler is given: the path as the router read it, and who asked.
pub(crate) struct Call {
    pub(crate) state: AppState,
    /// The socket peer (the client IP is found from it and the trusted proxies).
    pub(crate) peer: SocketAddr,
    pub(crate) id: RequestId,
    /// `{unitId}`.
    pub(crate) unit: UnitId,
    /// The view's or the resource's name, decoded; `None` when its escapes are not UTF-8 (it
    /// names nothing) and for `capability`.
    pub(crate) name: Option<String>,
}
