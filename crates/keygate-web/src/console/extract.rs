//! The powers a console handler needs, as axum extractors: a handler's signature names them, and
//! a request that lacks one never reaches the handler's body.
//!
//! - [`Session`]: any logged-in user; without a live session the browser goes to the log-in page.
//! - [`Configurator`], [`UserConfigurator`], [`Administrator`]: a logged-in member of that group
//!   (or of either, for the audit log); anyone else gets a 403 page that says why.
//! - [`CsrfForm`]: the posted form, read only once the session is known and accepted only when it
//!   carries the session's own CSRF token. It comes last in a signature, after the guard.
//!
//! No rules here beyond "which group does this page need"; what an action may give is the service's
//! grant ceiling.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};

use super::{Ctx, Fields};
use crate::{AppState, RequestId};

/// The session of the request, loaded once per request and kept in its extensions so that a
/// guard and a [`CsrfForm`] in the same signature share it.
pub(super) async fn ctx_of(parts: &mut Parts, state: &AppState) -> Result<Ctx, Response> {
    if let Some(ctx) = parts.extensions.get::<Ctx>() {
        return Ok(ctx.clone());
    }
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
        tracing::error!("a console request arrived without the peer address");
        return Err((StatusCode::INTERNAL_SERVER_ERROR, "the peer address is unknown").into_response());
    };
    // The application gives every request its id before routing it.
    let request_id = parts.extensions.get::<RequestId>().copied().unwrap_or(RequestId::Own { prefix: 0, n: 0 });
    let mut ctx = Ctx::load(state, peer, &parts.headers, request_id).await?;
    ctx.section = super::section_of(parts.uri.path());
    parts.extensions.insert(ctx.clone());
    Ok(ctx)
}

/// Any logged-in user.
#[derive(Debug)]
pub(crate) struct Session(pub Ctx);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        ctx_of(parts, state).await.map(Self)
    }
}

/// A member of `Configurator`: system configuration, the Public API, keys and their usage.
#[derive(Debug)]
pub(crate) struct Configurator(pub Ctx);

impl FromRequestParts<AppState> for Configurator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = ctx_of(parts, state).await?;
        if ctx.session.permissions.configurator { Ok(Self(ctx)) } else { Err(not_configurator(&ctx)) }
    }
}

/// A member of `User configurator`: users, groups and units.
#[derive(Debug)]
pub(crate) struct UserConfigurator(pub Ctx);

impl FromRequestParts<AppState> for UserConfigurator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = ctx_of(parts, state).await?;
        if ctx.session.permissions.user_configurator { Ok(Self(ctx)) } else { Err(not_user_configurator(&ctx)) }
    }
}

/// A member of `Configurator` or `User configurator`: the audit log.
#[derive(Debug)]
pub(crate) struct Administrator(pub Ctx);

impl FromRequestParts<AppState> for Administrator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = ctx_of(parts, state).await?;
        let p = &ctx.session.permissions;
        if p.configurator || p.user_configurator {
            Ok(Self(ctx))
        } else {
            Err(super::message_page(
                StatusCode::FORBIDDEN,
                Some(&ctx),
                "Only Configurators and User configurators may read the audit log",
                "The audit log shows every change and refused call of the tenant; it is for members of the \
                 Configurator or User configurator groups.",
            ))
        }
    }
}

/// A posted console form that carries the session's CSRF token. The session is loaded (or taken
/// from the guard before it) before the body is read; a form without the token gets a 403 page.
#[derive(Debug)]
pub(crate) struct CsrfForm(pub Fields);

impl FromRequest<AppState> for CsrfForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = ctx_of(&mut parts, state).await?;
        let fields = Fields::from_request(Request::from_parts(parts, body), state).await?;
        if !keygate_service::Keygate::csrf_matches(&ctx.session, fields.get("csrf")) {
            return Err(super::message_page(
                StatusCode::FORBIDDEN,
                Some(&ctx),
                "Form refused",
                "This form was not sent from this session's own page (its CSRF token is missing or wrong). \
                 Go back, reload the page and try again.",
            ));
        }
        Ok(Self(fields))
    }
}

fn groups_of(ctx: &Ctx) -> String {
    if ctx.session.user.groups.is_empty() { "no groups".to_owned() } else { ctx.session.user.groups.join(", ") }
}

fn not_configurator(ctx: &Ctx) -> Response {
    super::message_page(
        StatusCode::FORBIDDEN,
        Some(ctx),
        "Only Configurators may manage the Public API",
        &format!(
            "The Public API pages (enabling the API, the IP whitelist, API keys and their usage) are for members \
             of the Configurator group. You are logged in as {} ({}). Ask an administrator to add you to \
             Configurator, or to generate the key for you.",
            ctx.session.user.email,
            groups_of(ctx)
        ),
    )
}

fn not_user_configurator(ctx: &Ctx) -> Response {
    super::message_page(
        StatusCode::FORBIDDEN,
        Some(ctx),
        "Only User configurators may manage users, groups and units",
        &format!(
            "The users, groups and units pages are for members of the User configurator group. You are logged \
             in as {} ({}).",
            ctx.session.user.email,
            groups_of(ctx)
        ),
    )
}
