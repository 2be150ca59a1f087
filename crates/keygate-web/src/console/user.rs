//! One user's page: their groups, their units, their password, and their keys with what each key
//! may do now (the own-records rule spelled out) and which of its scopes lie dormant. Members of
//! `User configurator`; the keys are listed for members of `Configurator` too.
//!
//! Every form goes through the service, whose grant ceiling decides what may be given; a refusal is
//! shown beside its form, which keeps what was ticked. No SQL and no rules here.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::{UnitId, UserCategory, UserId};
use secrecy::SecretString;

use super::{
    Chrome, CsrfForm, Ctx, PUBLIC_API, UserConfigurator, form_error, render, service_error_page,
    users::{Choice, group_label},
    when,
};
use crate::AppState;

#[derive(Debug)]
pub(crate) struct UserKeyRow {
    pub id: i64,
    pub display: String,
    pub purpose: String,
    pub status: &'static str,
    pub status_class: String,
    pub scopes: String,
    pub units: String,
    pub effective: Vec<String>,
    pub dormant: Vec<String>,
}

/// Which form a mistake belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Groups,
    Units,
    Password,
}

/// What the forms show: the stored state, or what was sent when a form is shown again.
#[derive(Debug, Default)]
struct Sent {
    groups: Option<Vec<String>>,
    units: Option<(bool, Vec<String>)>,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub(crate) struct UserPage {
    pub chrome: Chrome,
    pub id: i64,
    pub name: String,
    pub email: String,
    pub programmatic: bool,
    pub active: bool,
    pub has_password: bool,
    pub is_me: bool,
    pub created_at: String,
    pub permissions: Vec<String>,
    pub groups: Vec<Choice>,
    pub every_unit: bool,
    pub units: Vec<Choice>,
    /// `None`: the viewer may not list keys (they are not a Configurator).
    pub keys: Option<Vec<UserKeyRow>>,
    /// The Public API page's generate form for this user, for a Configurator and an active
    /// programmatic user.
    pub key_link: Option<String>,
    pub groups_error: Option<String>,
    pub units_error: Option<String>,
    pub password_error: Option<String>,
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    id: UserId,
    status: StatusCode,
    sent: Sent,
    error: Option<(Part, String)>,
) -> Response {
    let k = &state.keygate;
    let caller = &ctx.session.caller;
    let tenant = ctx.session.tenant.policy.id;
    let (user, groups, units) =
        match (k.user_by_id(tenant, id).await, k.list_groups(caller, tenant).await, k.list_units(caller, tenant).await)
        {
            (Ok(u), Ok(g), Ok(n)) => (u, g, n),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return service_error_page(ctx, e),
        };
    let permissions = match k.user_permissions(caller, tenant, id).await {
        Ok(p) => p,
        Err(e) => return service_error_page(ctx, e),
    };
    let keys = if ctx.session.permissions.configurator {
        match k.list_keys(caller, tenant).await {
            Ok(all) => Some(
                all.iter()
                    .filter(|v| v.listing.key.user_id == id)
                    .map(|v| {
                        let key = &v.listing.key;
                        UserKeyRow {
                            id: key.id.0,
                            display: key.display.clone(),
                            purpose: key.purpose.as_str().to_owned(),
                            status: v.status,
                            status_class: v.status.replace(' ', "-").to_lowercase(),
                            scopes: key
                                .scopes
                                .as_ref()
                                .map_or_else(|| "inherit".to_owned(), |s| s.to_strings().join(" ")),
                            units: key.units.as_ref().map_or_else(
                                || "all of the user's".to_owned(),
                                |u| u.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                            ),
                            effective: permissions.effective_list(key.scopes.as_ref()),
                            dormant: permissions.dormant_scopes(key.scopes.as_ref()),
                        }
                    })
                    .collect(),
            ),
            Err(e) => return service_error_page(ctx, e),
        }
    } else {
        None
    };
    let picked_groups = sent.groups.unwrap_or_else(|| user.groups.clone());
    let (every_unit, picked_units) = sent.units.unwrap_or_else(|| match &user.units {
        None => (true, Vec::new()),
        Some(u) => (false, u.iter().map(|x| x.0.to_string()).collect()),
    });
    let (mut groups_error, mut units_error, mut password_error) = (None, None, None);
    match error {
        Some((Part::Groups, m)) => groups_error = Some(m),
        Some((Part::Units, m)) => units_error = Some(m),
        Some((Part::Password, m)) => password_error = Some(m),
        None => {}
    }
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    render(
        status,
        &UserPage {
            chrome,
            id: user.id.0,
            name: user.name.clone(),
            email: user.email.clone(),
            programmatic: user.category == UserCategory::Programmatic,
            active: user.active,
            has_password: user.has_password,
            is_me: user.id == ctx.session.user.id,
            created_at: when(user.created_at),
            permissions: permissions.to_strings(),
            groups: groups
                .iter()
                .map(|g| Choice {
                    checked: picked_groups.contains(&g.name),
                    value: g.name.clone(),
                    label: group_label(g),
                })
                .collect(),
            every_unit,
            units: units
                .iter()
                .map(|(id, name)| {
                    let value = id.0.to_string();
                    Choice { checked: picked_units.contains(&value), label: format!("unit {id} — {name}"), value }
                })
                .collect(),
            key_link: (keys.is_some() && user.active && user.category == UserCategory::Programmatic)
                .then(|| format!("{PUBLIC_API}?for={}", user.id.0)),
            keys,
            groups_error,
            units_error,
            password_error,
        },
    )
}

/// One user's page. Members of `User configurator`.
pub(crate) async fn user_page(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
) -> Response {
    page(&state, &ctx, UserId(id), StatusCode::OK, Sent::default(), None).await
}

/// After a change: a one-shot message on the user's page.
async fn done(state: &AppState, ctx: &Ctx, id: UserId, message: &str) -> Response {
    if let Err(e) = state.keygate.set_flash(&ctx.session, Some(message)).await {
        return service_error_page(ctx, e);
    }
    Redirect::to(&format!("/console/users/{id}")).into_response()
}

/// Replaces the user's groups with the ticked ones. Members of `User configurator`; only groups
/// the caller may give (or take away) pass the grant ceiling.
pub(crate) async fn set_user_groups(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm,
) -> Response {
    let id = UserId(id);
    let names = form.all("group");
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.set_user_groups(&ctx.session.caller, tenant, id, &names).await {
        Ok(()) => {
            let list = if names.is_empty() { "no groups".to_owned() } else { names.join(", ") };
            done(&state, &ctx, id, &format!("The user's groups are now: {list}.")).await
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let sent = Sent { groups: Some(names), units: None };
            page(&state, &ctx, id, status, sent, Some((Part::Groups, format!("Groups not changed: {why}")))).await
        }
    }
}

/// Sets the units the user reaches: every unit, or the ticked ones. Members of `User configurator`.
pub(crate) async fn set_user_units(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm,
) -> Response {
    let id = UserId(id);
    let every = form.get("reach") != "some";
    let ticked = form.all("unit");
    let units = (!every).then(|| ticked.iter().filter_map(|u| u.parse().ok()).map(UnitId).collect::<Vec<_>>());
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.set_user_units(&ctx.session.caller, tenant, id, units).await {
        Ok(()) => {
            let what = if every { "every unit".to_owned() } else { format!("units {}", ticked.join(", ")) };
            done(&state, &ctx, id, &format!("The user now reaches {what}.")).await
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let sent = Sent { groups: None, units: Some((every, ticked)) };
            page(&state, &ctx, id, status, sent, Some((Part::Units, format!("Units not changed: {why}")))).await
        }
    }
}

/// Sets or resets the user's password, or removes it (programmatic users only). Every console
/// session of the user ends at once. Members of `User configurator`, for users whose powers lie
/// within their own (whoever knows the password can act as the user).
pub(crate) async fn set_user_password(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm,
) -> Response {
    let id = UserId(id);
    let remove = form.get("remove") == "yes";
    let password = form.get("password");
    if !remove && password.is_empty() {
        let why = "Password not set: type the new password (at least 12 characters).".to_owned();
        return page(&state, &ctx, id, StatusCode::UNPROCESSABLE_ENTITY, Sent::default(), Some((Part::Password, why)))
            .await;
    }
    let secret = (!remove).then(|| SecretString::from(password.to_owned()));
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.set_user_password(&ctx.session.caller, tenant, id, secret).await {
        // Changing one's own password ends one's own session too.
        Ok(()) if id == ctx.session.user.id => Redirect::to("/console/login").into_response(),
        Ok(()) => {
            let message = if remove {
                "The password is removed: the user cannot log in, and every console session of theirs has ended."
            } else {
                "The password is set: every console session of the user has ended."
            };
            done(&state, &ctx, id, message).await
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            page(
                &state,
                &ctx,
                id,
                status,
                Sent::default(),
                Some((Part::Password, format!("Password not changed: {why}"))),
            )
            .await
        }
    }
}
