//! The users page: list (programmatic users marked), create, deactivate and reactivate; and one
//! user's page: groups, units, password, and the user's keys with what they may do now.
//! Members of `User configurator` only. What a form may give is the service's grant ceiling; a
//! refusal is shown beside the form, which keeps what was typed.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::{SystemGroup, UnitId, UserCategory, UserId};
use keygate_service::{CreateUser, GroupRecord, ServiceError};
use secrecy::SecretString;

use super::{
    Chrome, CsrfForm, Ctx, Fields, UserConfigurator, form_error, key_actions::ConfirmPage, render, service_error_page,
    when,
};
use crate::AppState;

#[derive(Debug)]
pub(crate) struct UserRow {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub programmatic: bool,
    pub active: bool,
    pub has_password: bool,
    pub groups: String,
    pub units: String,
    pub created_at: String,
    pub is_me: bool,
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

#[derive(Debug, Default)]
pub(crate) struct NewUserForm {
    pub email: String,
    pub name: String,
    pub programmatic: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub(crate) struct UsersPage {
    pub chrome: Chrome,
    pub users: Vec<UserRow>,
    pub groups: Vec<Choice>,
    pub units: Vec<Choice>,
    pub form: NewUserForm,
    pub error: Option<String>,
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: NewUserForm,
    chosen: &Fields,
    error: Option<String>,
) -> Response {
    let k = &state.keygate;
    let caller = &ctx.session.caller;
    let tenant = ctx.session.tenant.policy.id;
    let (users, groups, units) = match (
        k.list_users(caller, tenant).await,
        k.list_groups(caller, tenant).await,
        k.list_units(caller, tenant).await,
    ) {
        (Ok(u), Ok(g), Ok(n)) => (u, g, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return service_error_page(ctx, e),
    };
    let picked_groups = chosen.all("group");
    let picked_units = chosen.all("unit");
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    render(
        status,
        &UsersPage {
            chrome,
            users: users
                .iter()
                .map(|u| UserRow {
                    id: u.id.0,
                    name: u.name.clone(),
                    email: u.email.clone(),
                    programmatic: u.category == UserCategory::Programmatic,
                    active: u.active,
                    has_password: u.has_password,
                    groups: if u.groups.is_empty() { "—".to_owned() } else { u.groups.join(", ") },
                    units: u.units.as_ref().map_or_else(
                        || "all".to_owned(),
                        |units| units.iter().map(|x| x.0.to_string()).collect::<Vec<_>>().join(", "),
                    ),
                    created_at: when(u.created_at),
                    is_me: u.id == ctx.session.user.id,
                })
                .collect(),
            groups: groups
                .iter()
                .map(|g| Choice {
                    checked: picked_groups.contains(&g.name),
                    value: g.name.clone(),
                    label: group_label(g),
                })
                .collect(),
            units: units
                .iter()
                .map(|(id, name)| {
                    let value = id.0.to_string();
                    Choice { checked: picked_units.contains(&value), label: format!("unit {id} — {name}"), value }
                })
                .collect(),
            form,
            error,
        },
    )
}

/// The users list and the create form. Members of `User configurator`.
pub(crate) async fn users_page(State(state): State<AppState>, UserConfigurator(ctx): UserConfigurator) -> Response {
    page(&state, &ctx, StatusCode::OK, NewUserForm::default(), &Fields::default(), None).await
}

/// Creates a user. Members of `User configurator`.
pub(crate) async fn create_user(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let programmatic = form.get("category") == "programmatic";
    let password = form.get("password");
    let units: Vec<UnitId> = form.all("unit").iter().filter_map(|u| u.parse().ok()).map(UnitId).collect();
    let request = CreateUser {
        inactive: false,
        email: form.get("email").trim().to_owned(),
        name: form.get("name").trim().to_owned(),
        category: if programmatic { "programmatic" } else { "personal" }.to_owned(),
        groups: form.all("group"),
        units: if units.is_empty() { None } else { Some(units) },
        password: if password.is_empty() { None } else { Some(SecretString::from(password.to_owned())) },
    };
    let email = request.email.clone();
    match state.keygate.create_user(&ctx.session.caller, ctx.session.tenant.policy.id, request).await {
        Ok(_) => {
            let kind = if programmatic { "programmatic user" } else { "user" };
            let message = format!("Created the {kind} {email}.");
            if let Err(e) = state.keygate.set_flash(&ctx.session, Some(&message)).await {
                return service_error_page(&ctx, e);
            }
            Redirect::to("/console/users").into_response()
        }
        Err(e @ (ServiceError::Invalid(_) | ServiceError::Conflict(_) | ServiceError::GrantExceedsActor(_))) => {
            let values = NewUserForm { email, name: form.get("name").to_owned(), programmatic };
            let (status, why) = form_error(&ctx, e);
            page(&state, &ctx, status, values, &form, Some(format!("No user created: {why}"))).await
        }
        Err(e) => service_error_page(&ctx, e),
    }
}

/// Asks before deactivating a user, saying how many keys will stop working. Members of
/// `User configurator`.
pub(crate) async fn confirm_user_action(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let tenant = ctx.session.tenant.policy.id;
    let user = match state.keygate.user_by_id(tenant, UserId(id)).await {
        Ok(u) => u,
        Err(e) => return service_error_page(&ctx, e),
    };
    let usable = match state.keygate.list_keys(&ctx.session.caller, tenant).await {
        Ok(keys) => keys
            .iter()
            .filter(|k| k.listing.key.user_id == user.id && k.status != "revoked" && k.listing.key.enabled)
            .count(),
        Err(_) => 0,
    };
    let (title, message, button, danger) = match action.as_str() {
        "deactivate" => (
            format!("Deactivate {}?", user.email),
            format!(
                "{} can no longer log in, and {usable} of their API keys stop working from the next request on \
                 (refused with user_inactive). Reactivating the user brings the keys back.",
                user.email
            ),
            "Deactivate the user",
            true,
        ),
        "activate" => (
            format!("Reactivate {}?", user.email),
            format!(
                "{} becomes active again; their keys that are not disabled, revoked or expired work again.",
                user.email
            ),
            "Reactivate the user",
            false,
        ),
        _ => {
            return super::message_page(
                StatusCode::NOT_FOUND,
                Some(&ctx),
                "Not found",
                "There is no such user action.",
            );
        }
    };
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: ctx.chrome(),
            title,
            message,
            action: format!("/console/users/{id}/{action}"),
            button: button.to_owned(),
            danger,
            roll: false,
            nonce: String::new(),
            cancel: "/console/users",
        },
    )
}

/// Deactivates or reactivates a user; says how many keys stopped working. Members of
/// `User configurator`.
pub(crate) async fn change_user(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path((id, action)): Path<(i64, String)>,
    _form: CsrfForm,
) -> Response {
    let active = match action.as_str() {
        "deactivate" => false,
        "activate" => true,
        _ => {
            return super::message_page(
                StatusCode::NOT_FOUND,
                Some(&ctx),
                "Not found",
                "There is no such user action.",
            );
        }
    };
    let tenant = ctx.session.tenant.policy.id;
    let email = match state.keygate.user_by_id(tenant, UserId(id)).await {
        Ok(u) => u.email,
        Err(e) => return service_error_page(&ctx, e),
    };
    match state.keygate.set_user_active(&ctx.session.caller, tenant, UserId(id), active).await {
        Ok(outcome) => {
            let message = if active {
                format!("{email} is active again.")
            } else {
                let n = outcome.keys_stopped;
                let keys = if n == 1 { "key" } else { "keys" };
                format!("{email} is deactivated: {n} API {keys} stopped working.")
            };
            if let Err(e) = state.keygate.set_flash(&ctx.session, Some(&message)).await {
                return service_error_page(&ctx, e);
            }
            Redirect::to("/console/users").into_response()
        }
        Err(e) => service_error_page(&ctx, e),
    }
}

/// A group's name as a checkbox label: system groups say what they are.
pub(crate) fn group_label(g: &GroupRecord) -> String {
    match g.system {
        Some(SystemGroup::Supervisor) => format!("{} (system group: sees and changes everything)", g.name),
        Some(SystemGroup::Configurator) => format!("{} (system group: configuration, Public API, keys)", g.name),
        Some(SystemGroup::UserConfigurator) => format!("{} (system group: users, groups, units)", g.name),
        None if g.grants.is_empty() => format!("{} (no grants)", g.name),
        None => {
            format!("{} ({})", g.name, g.grants.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}
