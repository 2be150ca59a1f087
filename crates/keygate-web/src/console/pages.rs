//! Page types (askama templates, HTML-escaped by default) and the three navigation pages on the
//! manual's path: Configuration → System configuration → Integrations → Public API.

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
        }
    }
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

pub(crate) const SYSTEM: Crumb = Crumb { href: "/console/configuration/system", text: "System configuration" };
pub(crate) const INTEGRATIONS: Crumb =
    Crumb { href: "/console/configuration/system/integrations", text: "Integrations" };

/// The start page after log-in. Any logged-in user.
pub(crate) async fn configuration(State(state): State<AppState>, Session(ctx): Session) -> Response {
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(&state).await;
    let mut links = vec![MenuLink {
        href: SYSTEM.href,
        text: SYSTEM.text,
        about: "Integrations and the Public API: enable the API, generate and manage keys.",
    }];
    if chrome.user_configurator {
        links.push(MenuLink {
            href: "/console/users",
            text: "Users",
            about: "Create users (including programmatic users for integrations); change their groups, units and \
                    passwords; deactivate and reactivate them.",
        });
        links.push(MenuLink {
            href: "/console/groups",
            text: "Groups",
            about: "Groups and their grants: what their members (and the members' keys) may read and write.",
        });
        links.push(MenuLink {
            href: "/console/units",
            text: "Units",
            about: "The units of your company: the {unitId} of the API.",
        });
    }
    if chrome.configurator || chrome.user_configurator {
        links.push(MenuLink {
            href: "/console/audit",
            text: "Audit log",
            about: "Every change and every refused call.",
        });
    }
    if chrome.configurator {
        links.push(MenuLink {
            href: "/console/usage",
            text: "Usage",
            about: "Calls per key and day, accepted and refused.",
        });
    }
    render(
        StatusCode::OK,
        &MenuPage {
            chrome,
            title: "Configuration",
            intro: "Settings of your company's keygate tenant.",
            crumbs: vec![],
            links,
        },
    )
}

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
