//! The management API (`/v1/…`, issue 21): everything the console and the CLI administer, over
//! HTTP, for machines. Each resource has its own file (keys, users, groups, units, settings,
//! audit events, the operator plane); this module owns the routing and [`extract`] the shared
//! conventions: who asks ([`extract::Admin`], a keygate key acting in its own tenant), JSON bodies,
//! answers and problems, cursor pages with a `Link` header, `ETag` and `If-Match`.
//!
//! Rules, audit and the grant ceiling are the service's: a handler parses, asks one use case of
//! [`keygate_service::Keygate`] with the key as [`keygate_service::Caller`], and renders.

mod audit;
pub(crate) mod extract;
mod groups;
mod idempotency;
mod keys;
mod operator;
mod settings;
mod units;
mod users;

use axum::Router;

use crate::AppState;

/// The management API's routes, merged into the application's router. The `Idempotency-Key`
/// layer wraps the tenant routes (it only acts on POSTs): merge every resource's routes above it.
/// The operator plane is not a tenant's and keeps no idempotent answers.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let routes = Router::new()
        .merge(keys::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(units::routes())
        .merge(settings::routes())
        .merge(audit::routes());
    idempotency::layer(routes, state).merge(operator::routes())
}
