//! Disabling, enabling, revoking and rolling a key from the console: the confirmation page (also
//! used by the users and units pages for their own irreversible actions) and the change itself,
//! each guarded by a one-time nonce. Members of `Configurator` only.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use keygate_domain::KeyId;

use super::{
    Chrome, Configurator, CsrfForm, PUBLIC_API,
    public_api::{default_form, done, fresh, page, spend_nonce},
    render, service_error_page,
};
use crate::AppState;

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(crate) struct ConfirmPage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: String,
    pub danger: bool,
    pub roll: bool,
    pub nonce: String,
    pub cancel: &'static str,
}

fn parse_action(action: &str) -> Option<&'static str> {
    ["disable", "enable", "revoke", "roll"].into_iter().find(|a| *a == action)
}

/// The confirmation step before a key action (works without JavaScript). Members of `Configurator`.
pub(crate) async fn confirm_key_action(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let Some(action) = parse_action(&action) else {
        return super::message_page(StatusCode::NOT_FOUND, Some(&ctx), "Not found", "There is no such key action.");
    };
    let key = match state.keygate.key(ctx.session.tenant.policy.id, KeyId(id)).await {
        Ok(k) => k,
        Err(e) => return service_error_page(&ctx, e),
    };
    let name = format!("{} (\u{201c}{}\u{201d})", key.display, key.purpose.as_str());
    let (title, message, button, danger) = match action {
        "disable" => (
            "Disable this key?",
            format!("{name} will be refused with key_disabled from the next request on. You can enable it again."),
            "Disable the key",
            true,
        ),
        "enable" => (
            "Enable this key?",
            format!("{name} will be accepted again (if it is otherwise valid)."),
            "Enable the key",
            false,
        ),
        "revoke" => (
            "Revoke this key for good?",
            format!("{name} will be refused with key_revoked from the next request on. Revocation cannot be undone."),
            "Revoke the key",
            true,
        ),
        _ => (
            "Roll this key?",
            format!(
                "A new key with the same user, purpose, ranges and scopes replaces {name}. The old key keeps \
                 working until the overlap you choose ends, so you can update the integration first."
            ),
            "Roll the key",
            false,
        ),
    };
    let nonce = if action == "roll" {
        match state.keygate.new_form_nonce(&ctx.session).await {
            Ok(n) => n,
            Err(e) => return service_error_page(&ctx, e),
        }
    } else {
        String::new()
    };
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: ctx.chrome(),
            title: title.to_owned(),
            message,
            action: format!("{PUBLIC_API}/keys/{id}/{action}"),
            button: button.to_owned(),
            danger,
            roll: action == "roll",
            nonce,
            cancel: PUBLIC_API,
        },
    )
}

/// Disables, enables, revokes or rolls a key. Members of `Configurator`.
pub(crate) async fn change_key(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    Path((id, action)): Path<(i64, String)>,
    CsrfForm(form): CsrfForm,
) -> Response {
    let Some(action) = parse_action(&action) else {
        return super::message_page(StatusCode::NOT_FOUND, Some(&ctx), "Not found", "There is no such key action.");
    };
    let k = &state.keygate;
    let caller = &ctx.session.caller;
    let tenant = Some(ctx.session.tenant.policy.id);
    let id = KeyId(id);
    let result = match action {
        "disable" => k.set_key_enabled(caller, tenant, id, false).await.map(|()| format!("Key {id} is disabled.")),
        "enable" => k.set_key_enabled(caller, tenant, id, true).await.map(|()| format!("Key {id} is enabled.")),
        "revoke" => k.revoke_key(caller, tenant, id).await.map(|()| format!("Key {id} is revoked for good.")),
        _ => {
            if let Some(refused) = spend_nonce(&state, &ctx, &form).await {
                return refused;
            }
            let hours = form.get("overlap_hours").parse::<i64>().unwrap_or(24);
            return match k.roll_key(caller, tenant, id, hours).await {
                Ok(issued) => {
                    let owner = match k.user_by_id(ctx.session.tenant.policy.id, issued.record.user_id).await {
                        Ok(u) => u.email,
                        Err(_) => format!("user {}", issued.record.user_id),
                    };
                    let shown = fresh(&issued, owner);
                    drop(issued);
                    page(&state, &ctx, StatusCode::OK, default_form(ctx.ip), Some(shown), None).await
                }
                Err(e) => service_error_page(&ctx, e),
            };
        }
    };
    match result {
        Ok(message) => done(&state, &ctx, &message).await,
        Err(e) => service_error_page(&ctx, e),
    }
}
