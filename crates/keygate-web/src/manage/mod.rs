//! The management API (`/v1/…`, issue 21): everything the console and the CLI administer, over
//! HTTP, for machines. Each resource has its own file (keys, users, groups, units, settings,
//! audit events, the operator plane); this module owns the routing and [`extract`] the shared
//! conventions: who asks ([`extract::Admin`], a keygate key acting in its own tenant), JSON bodies,
//! answers and problems, cursor pages with a `Link` header, `ETag` and `If-Match`.
//!
//! Rules, audit and the grant ceiling are the service's: a handler parses, asks one use case of
//! [`keygate_service::Keygate`] with the key as [`keygate_service::Caller`], and renders.

// Used by the resource files as they land (issue 21).
#[allow(dead_code)]
pub(crate) mod extract;
mod operator;

use axum::Router;

use crate::AppState;

/// The management API's routes, merged into the application's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(operator::routes())
}
