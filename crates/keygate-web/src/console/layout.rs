//! What every console page is built with: the request's context ([`Ctx`]: session, client
//! address, request id, navigation section), the chrome around a page, rendering with the
//! console's security headers, form fields, message and error pages (one classification of
//! service errors, [`crate::problem_code::classify`]) and the console's time format. A leaf of the
//! console: the pages use it, it uses none of them.

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use keygate_service::ServiceError;

use crate::{AppState, RequestId, client_ip::client_ip, problem_code::classify};

/// The Public API page, at the end of the manual's path.
pub(crate) const PUBLIC_API: &str = "/console/configuration/system/integrations/public-api";
/// The name of the session cookie.
pub(crate) const COOKIE: &str = "keygate_session";

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

/// A logged-in request: the session, and the client address as keygate sees it. Handlers get it
/// from one of the extractors in `console::extract`, which name the power the handler needs.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub session: keygate_service::Session,
    pub ip: IpAddr,
    /// The request's id, which an error page names.
    pub request_id: RequestId,
    /// The navigation section of the requested page (see [`section_of`]), marked current.
    pub section: &'static str,
}

impl Ctx {
    /// The session behind the request's cookie, or a redirect to the log-in page.
    pub(crate) async fn load(
        state: &AppState,
        peer: SocketAddr,
        headers: &HeaderMap,
        request_id: RequestId,
    ) -> Result<Self, Response> {
        let ip = client_ip(peer, headers, &state.config.trusted_proxies);
        let Some(token) = session_token(headers) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        match state.keygate.session(&token, Some(ip)).await {
            Ok(Some(session)) => Ok(Self { session, ip, request_id, section: "" }),
            Ok(None) => Err(Redirect::to("/console/login").into_response()),
            Err(e) => Err(error_page(None, request_id, e)),
        }
    }

    pub(crate) fn chrome(&self) -> Chrome {
        let mut chrome = Chrome::of(&self.session);
        chrome.section = self.section;
        chrome
    }

    /// The one-shot message, cleared once it has been read for this page.
    pub(crate) async fn take_flash(&self, state: &AppState) -> Option<String> {
        let flash = self.session.flash.clone()?;
        let _ = state.keygate.set_flash(&self.session, None).await;
        Some(flash)
    }
}

/// The session token from the `Cookie` header, if any.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Form fields in order, repeated names kept (checkbox groups).
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    pub(crate) fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(axum::Form(pairs)) => Ok(Self(pairs)),
            Err(e) => Err((StatusCode::BAD_REQUEST, format!("the form could not be read: {e}")).into_response()),
        }
    }
}

/// Renders a template as an HTML response.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
                     form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The console's answer for a page that does not exist.
pub(crate) fn not_found_page(path: &str) -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        None,
        "Page not found",
        &format!("There is no console page at {path}. Start from the console's home page, /console."),
    )
}

/// A service error as a page, with the status the Public API answers for the same error
/// ([`classify`]): refusals say why, invalid input says what to fix, an internal failure names
/// the request id under which its cause is logged and nothing of the cause.
pub(crate) fn service_error_page(ctx: &Ctx, e: ServiceError) -> Response {
    error_page(Some(ctx), ctx.request_id, e)
}

/// [`service_error_page`], also for a request without a session.
pub(crate) fn error_page(ctx: Option<&Ctx>, request_id: RequestId, e: ServiceError) -> Response {
    let c = classify(e, request_id);
    let status = StatusCode::from_u16(c.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let heading = match c.code.status() {
        403 => "Not allowed",
        404 => "Not found",
        500 => "Something went wrong",
        503 => "Busy",
        _ => "Not done",
    };
    let mut page = message_page(status, ctx, heading, &c.detail);
    if let Some(secs) = c.retry_after_secs {
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    page
}

/// A refusal or a mistake in a form: the status (the Public API's for the same error) and the
/// message to show beside the form. An internal failure is logged and shown only by its request id.
pub(crate) fn form_error(ctx: &Ctx, e: ServiceError) -> (StatusCode, String) {
    let c = classify(e, ctx.request_id);
    (StatusCode::from_u16(c.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), c.detail)
}

/// `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn when(t: keygate_domain::Timestamp) -> String {
    let text = t.to_rfc3339();
    match (text.get(..10), text.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => text,
    }
}
