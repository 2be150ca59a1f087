//! Page types (askama templates, HTML-escaped by default), the navigation's sections, the 404 page
//! and the two navigation pages on the manual's path: Configuration (the landing page, see
//! `home`) → System configuration → Integrations → Public API.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response};

use super::{Ctx, PUBLIC_API, Session, render};
use crate::AppState;

/// What every logged-in page shows around its content.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chrome {
    pub user_email: String,
    pub tenant: String,
    pub csrf: String,
    pub configurator: bool,
    pub user_configurator: bool,
    pub flash: Option<String>,
    /// The navigation section this page belongs to (`configuration`, `users`, …), marked
    /// `aria-current` in the navigation; empty for none.
    pub section: &'static str,
}

impl Chrome {
    pub(crate) fn of(session: &keygate_service::Session) -> Self {
        Self {
            user_email: session.user.email.clone(),
            tenant: session.tenant.policy.slug.as_str().to_owned(),
            csrf: session.csrf_token.clone(),
            configurator: session.permissions.configurator,
            user_configurator: session.permissions.user_configurator,
            flash: None,
            section: "",
        }
    }
}

/// The navigation section of a console path: the first part after `/console/`, if the
/// navigation has it (`/console/users/7` → `users`); the Public API pages are `configuration`.
pub(crate) fn section_of(path: &str) -> &'static str {
    let first = path.strip_prefix("/console/").unwrap_or("").split('/').next().unwrap_or("");
    ["configuration", "users", "groups", "units", "audit", "usage", "api"]
        .into_iter()
        .find(|s| *s == first)
        .unwrap_or("")
}

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

#[derive(Template)]
#[template(path = "console/message.html")]
pub(crate) struct MessagePage {
    pub chrome: Option<Chrome>,
    pub title: String,
    pub message: String,
}

/// A page that says what happened and why, e.g. a 403 naming the missing group.
pub(crate) fn message_page(status: StatusCode, ctx: Option<&Ctx>, title: &str, message: &str) -> Response {
    render(status, &MessagePage { chrome: ctx.map(Ctx::chrome), title: title.to_owned(), message: message.to_owned() })
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
