//! The console: server-rendered pages for administrators (log in, the Public API page, users and
//! one user's page, groups, units, audit log, usage). Works without JavaScript; every action goes
//! through the service layer, exactly as the command line does, and is audited with the acting user
//! and their address. The power a page needs is an extractor in its handler's signature
//! ([`extract`]).
//!
//! Owns sessions cookies, cross-site request refusal and HTML. No SQL and no rules here.

mod api_reference;
mod audit;
mod auth;
mod extract;
mod figures;
mod groups;
mod guard;
mod home;
mod key_actions;
mod layout;
mod pages;
mod public_api;
mod units;
mod usage;
mod user;
mod users;

use axum::{
    Router,
    http::header,
    middleware,
    response::{IntoResponse, Redirect, Response},
    routing::{any, get, post},
};

use crate::AppState;

pub(crate) use extract::{Administrator, Configurator, CsrfForm, Session, UserConfigurator};
pub(crate) use layout::{
    COOKIE, Chrome, Ctx, Fields, PUBLIC_API, error_page, form_error, message_page, not_found_page, render, section_of,
    service_error_page, when,
};

/// Every console route, with cross-site POSTs refused before any handler runs.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/configuration") }))
        .route("/console/style.css", get(stylesheet))
        .route("/console/copy.js", get(copy_script))
        .route("/console/login", get(auth::login_page).post(auth::log_in))
        .route("/console/logout", post(auth::log_out))
        .route("/console/configuration", get(home::home_page))
        .route("/console/configuration/system", get(pages::system_configuration))
        .route("/console/configuration/system/integrations", get(pages::integrations))
        .route(PUBLIC_API, get(public_api::public_api_page))
        .route(&format!("{PUBLIC_API}/switch"), post(public_api::switch_api))
        .route(&format!("{PUBLIC_API}/whitelist"), post(public_api::set_whitelist))
        .route(&format!("{PUBLIC_API}/keys"), post(public_api::generate_key))
        .route(
            &format!("{PUBLIC_API}/keys/{{id}}/{{action}}"),
            get(key_actions::confirm_key_action).post(key_actions::change_key),
        )
        .route("/console/users", get(users::users_page).post(users::create_user))
        .route("/console/users/{id}", get(user::user_page))
        .route("/console/users/{id}/groups", post(user::set_user_groups))
        .route("/console/users/{id}/units", post(user::set_user_units))
        .route("/console/users/{id}/password", post(user::set_user_password))
        .route("/console/users/{id}/{action}", get(users::confirm_user_action).post(users::change_user))
        .route("/console/groups", get(groups::groups_page).post(groups::create_group))
        .route("/console/groups/{id}", get(groups::group_page))
        .route("/console/groups/{id}/grants", post(groups::set_group_grants))
        .route("/console/groups/{id}/rename", post(groups::rename_group))
        .route("/console/groups/{id}/delete", get(groups::confirm_delete_group).post(groups::delete_group))
        .route("/console/units", get(units::units_page).post(units::create_unit))
        .route("/console/units/{id}/rename", post(units::rename_unit))
        .route("/console/units/{id}/delete", get(units::confirm_delete_unit).post(units::delete_unit))
        .route("/console/audit", get(audit::audit_page))
        .route("/console/audit.csv", get(audit::audit_csv))
        .route("/console/usage", get(usage::usage_page))
        .route("/console/api", get(api_reference::api_reference_page))
        .route("/console/{*rest}", any(pages::missing_page))
        .layer(middleware::from_fn(guard::refuse_cross_site_posts))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("style.css"),
    )
        .into_response()
}

async fn copy_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("copy.js"),
    )
        .into_response()
}
