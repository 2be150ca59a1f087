//! Page types (askama templates, HTML-escaped by default), the navigation's sections, the 404 page
//! and the two navigation pages on the manual's path: Configuration (the landing page, see
//! `home`) → System configuration → Integrations → Public API.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};

use super::{Chrome, Ctx, PUBLIC_API, Session, message_page, render};
use crate::AppState;

#[derive(Template, Default)]
#[template(path = "console/login.html")]
pub(crate) struct LoginPage {
    pub tenant: String,
    pub email: String,
    pub error: Option<String>,
}

/// A link on a navigation page.
#[derive(Debug)]
pub(crate) struct MenuLink {
    pub href: &'static str,
    pub text: &'static str,
    pub about: &'static str,
}

/// One step of the breadcrumb trail above a page.
#[derive(Debug)]
pub(crate) struct Crumb {
    pub href: &'static str,
    pub text: &'static str,
}

#[derive(Template)]
#[template(path = "console/menu.html")]
pub(crate) struct MenuPage {
    pub chrome: Chrome,
    pub title: &'static str,
    pub intro: &'static str,
    pub crumbs: Vec<Crumb>,
    pub links: Vec<MenuLink>,
}

/// Any console path without a page: a 404 that keeps the navigation, the logged-in user's or,
/// without a session, the way to log in.
pub(crate) async fn missing_page(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    request_id: Option<axum::Extension<crate::RequestId>>,
) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    let request_id = request_id.map_or(crate::RequestId::Own { prefix: 0, n: 0 }, |id| id.0);
    let ctx = Ctx::load(&state, peer, &headers, request_id).await.ok();
    message_page(
        StatusCode::NOT_FOUND,
        ctx.as_ref(),
        "Page not found",
        &format!("There is no console page at {path}. Start from the console's home page, /console."),
    )
}

pub(crate) const SYSTEM: Crumb = Crumb { href: "/console/configuration/system", text: "System configuration" };
pub(crate) const INTEGRATIONS: Crumb =
    Crumb { href: "/console/configuration/system/integrations", text: "Integrations" };

/// System configuration. Any logged-in user may look; the pages below check their own rights.
pub(crate) async fn system_configuration(Session(ctx): Session) -> Response {
    render(
        StatusCode::OK,
        &MenuPage {
            chrome: ctx.chrome(),
            title: "System configuration",
            intro: "System-wide settings. Changing them needs the Configurator group.",
            crumbs: vec![],
            links: vec![MenuLink {
                href: INTEGRATIONS.href,
                text: INTEGRATIONS.text,
                about: "Connections to other systems.",
            }],
        },
    )
}

/// Integrations. Any logged-in user may look.
pub(crate) async fn integrations(Session(ctx): Session) -> Response {
    render(
        StatusCode::OK,
        &MenuPage {
            chrome: ctx.chrome(),
            title: "Integrations",
            intro: "Connections between your company's data and other systems.",
            crumbs: vec![SYSTEM],
            links: vec![MenuLink {
                href: PUBLIC_API,
                text: "Public API",
                about: "Enable the API, set the IP whitelist, generate and manage API keys.",
            }],
        },
    )
}
