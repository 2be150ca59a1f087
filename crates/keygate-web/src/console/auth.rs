//! Log in and log out. The session cookie is `HttpOnly; SameSite=Strict; Path=/`, and `Secure`
//! as the `cookie_secure` setting says: by default always, unless the browser itself is on this
//! machine (the socket peer is loopback and no trusted proxy forwarded the request), which over
//! plain HTTP could not otherwise log in.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use keygate_service::{LoginError, LoginRequest};
use secrecy::{ExposeSecret, SecretString};

use super::{COOKIE, CsrfForm, Ctx, Fields, Session, pages::LoginPage, render};
use crate::{AppState, CookieSecure, RequestId, client_ip::client_ip};

/// The log-in form. Anyone may see it.
pub(crate) async fn login_page() -> Response {
    render(StatusCode::OK, &LoginPage::default())
}

/// Checks tenant, email and password; on success starts a new session (a new token, whatever
/// cookie came in) and goes to the configuration page. Anyone may try; failures are throttled.
pub(crate) async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(request_id): axum::Extension<RequestId>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let ip = client_ip(peer, &headers, &state.config.trusted_proxies);
    let tenant = form.get("tenant").trim().to_owned();
    let email = form.get("email").trim().to_owned();
    let request = LoginRequest {
        tenant: tenant.clone(),
        email: email.clone(),
        password: SecretString::from(form.get("password").to_owned()),
        ip: Some(ip),
    };
    let again = |status: StatusCode, error: String| {
        render(status, &LoginPage { tenant: tenant.clone(), email: email.clone(), error: Some(error) })
    };
    match state.keygate.login(request).await {
        Ok(logged_in) => {
            // Rotation: a session that came in with the request ends here.
            if let Ok(old) = Ctx::load(&state, peer, &headers, request_id).await {
                let _ = state.keygate.logout(&old.session).await;
            }
            let secure = cookie_secure(peer, &headers, &state);
            let cookie = session_cookie(logged_in.token.expose_secret(), logged_in.max_age_secs, secure);
            let mut response = Redirect::to("/console/configuration").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            response
        }
        Err(LoginError::Invalid) => again(
            StatusCode::UNAUTHORIZED,
            "The tenant, email or password is wrong. (A programmatic user without a password cannot log in.)"
                .to_owned(),
        ),
        Err(LoginError::Throttled { retry_after_secs }) => {
            let mut response = again(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed log-ins for this account or address: log-in is locked for {} more minutes.",
                    retry_after_secs.div_ceil(60)
                ),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Err(LoginError::Busy { retry_after_secs }) => {
            let mut response = again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many log-ins at once: please try again in a moment.".to_owned(),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Err(LoginError::Service(e)) => super::error_page(None, request_id, e),
    }
}

/// Ends the session (on every node) and clears the cookie. Any logged-in user.
pub(crate) async fn log_out(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Session(ctx): Session,
    _form: CsrfForm,
) -> Response {
    if let Err(e) = state.keygate.logout(&ctx.session).await {
        return super::service_error_page(&ctx, e);
    }
    let secure = cookie_secure(peer, &headers, &state);
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie("", 0, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub(crate) fn session_cookie(token: &str, max_age_secs: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
}

/// Whether the session cookie is `Secure` for a request from `peer`. The `Host` header is not
/// consulted: a reverse proxy on the same machine sends a loopback one for remote browsers.
pub(crate) fn cookie_secure(peer: SocketAddr, headers: &HeaderMap, state: &AppState) -> bool {
    match state.config.cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => {
            let peer_ip = keygate_domain::ip::normalise(peer.ip());
            let forwarded = state.config.trusted_proxies.contains(peer_ip)
                && ["x-forwarded-for", "x-forwarded-proto", "x-real-ip", "forwarded"]
                    .iter()
                    .any(|name| headers.contains_key(*name));
            !peer_ip.is_loopback() || forwarded
        }
    }
}
