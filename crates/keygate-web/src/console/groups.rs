//! The groups pages: the list (system groups marked, not editable), creating a custom group with
//! grant checkboxes per resource × read/write × own/all, and one group's page to change its grants,
//! rename it or delete it (with a confirmation; with members, "remove the memberships too").
//! Members of `User configurator`.
//!
//! What a group may grant is decided by the service's grant ceiling; a refusal is shown beside the
//! form, which keeps what was typed and ticked. No SQL and no rules here.

use askama::Template;
use axum::{
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::{Access, Grant, Reach, Resource, SystemGroup};
use keygate_service::GroupRecord;

use super::{Chrome, CsrfForm, Ctx, UserConfigurator, form_error, render, service_error_page};
use crate::AppState;

/// One checkbox of the grant matrix.
#[derive(Debug)]
pub(crate) struct GrantBox {
    /// `resource:access:reach`, the form value.
    pub value: String,
    /// The element id, e.g. `grant-documents-read-all`.
    pub id: String,
    /// The visible label, e.g. `read all`.
    pub label: &'static str,
    pub checked: bool,
}

/// The four checkboxes of one resource.
#[derive(Debug)]
pub(crate) struct ResourceGrants {
    pub resource: &'static str,
    pub boxes: Vec<GrantBox>,
}

#[derive(Debug)]
pub(crate) struct GroupRow {
    pub id: i64,
    pub name: String,
    pub system: Option<&'static str>,
    pub grants: String,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
pub(crate) struct GroupsPage {
    pub chrome: Chrome,
    pub groups: Vec<GroupRow>,
    pub name: String,
    pub matrix: Vec<ResourceGrants>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/group.html")]
pub(crate) struct GroupPage {
    pub chrome: Chrome,
    pub id: i64,
    pub name: String,
    pub system: Option<&'static str>,
    pub members: Vec<String>,
    pub matrix: Vec<ResourceGrants>,
    pub new_name: String,
    pub grants_error: Option<String>,
    pub rename_error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/delete_group.html")]
pub(crate) struct DeleteGroupPage {
    pub chrome: Chrome,
    pub id: i64,
    pub name: String,
    pub members: Vec<String>,
    pub error: Option<String>,
}

const BOXES: [(Access, Reach, &str); 4] = [
    (Access::Read, Reach::Own, "read own"),
    (Access::Read, Reach::All, "read all"),
    (Access::Write, Reach::Own, "write own"),
    (Access::Write, Reach::All, "write all"),
];

/// The checkbox matrix with `checked` ticked.
fn matrix(checked: &[String]) -> Vec<ResourceGrants> {
    Resource::ALL
        .into_iter()
        .map(|resource| ResourceGrants {
            resource: resource.as_str(),
            boxes: BOXES
                .iter()
                .map(|(access, reach, label)| {
                    let value = Grant { resource, access: *access, reach: *reach }.to_string();
                    GrantBox {
                        checked: checked.contains(&value),
                        id: format!("grant-{}", value.replace(':', "-")),
                        value,
                        label,
                    }
                })
                .collect(),
        })
        .collect()
}

fn system_about(system: Option<SystemGroup>) -> Option<&'static str> {
    system.map(|s| match s {
        SystemGroup::Supervisor => "sees and changes everything",
        SystemGroup::Configurator => "system configuration, the Public API, keys",
        SystemGroup::UserConfigurator => "users, groups, units, deactivation",
    })
}

fn grant_strings(g: &GroupRecord) -> Vec<String> {
    g.grants.iter().map(ToString::to_string).collect()
}

async fn list_page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    name: String,
    ticked: &[String],
    error: Option<String>,
) -> Response {
    let groups = match state.keygate.list_groups(&ctx.session.caller, ctx.session.tenant.policy.id).await {
        Ok(g) => g,
        Err(e) => return service_error_page(ctx, e),
    };
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    render(
        status,
        &GroupsPage {
            chrome,
            groups: groups
                .iter()
                .map(|g| GroupRow {
                    id: g.id.0,
                    name: g.name.clone(),
                    system: system_about(g.system),
                    grants: if g.grants.is_empty() { "—".to_owned() } else { grant_strings(g).join(", ") },
                })
                .collect(),
            name,
            matrix: matrix(ticked),
            error,
        },
    )
}

/// The groups and the create form. Members of `User configurator`.
pub(crate) async fn groups_page(State(state): State<AppState>, UserConfigurator(ctx): UserConfigurator) -> Response {
    list_page(&state, &ctx, StatusCode::OK, String::new(), &[], None).await
}

/// Creates a custom group with the ticked grants. Members of `User configurator`; each grant must
/// lie within the caller's own permissions.
pub(crate) async fn create_group(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let name = form.get("name").trim().to_owned();
    let grants = form.all("grant");
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.create_group(&ctx.session.caller, tenant, &name, &grants).await {
        Ok(group) => {
            let message = format!("Created the group {}.", group.name);
            if let Err(e) = state.keygate.set_flash(&ctx.session, Some(&message)).await {
                return service_error_page(&ctx, e);
            }
            Redirect::to(&format!("/console/groups/{}", group.id.0)).into_response()
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            list_page(&state, &ctx, status, name, &grants, Some(format!("No group created: {why}"))).await
        }
    }
}

/// The group of the path's `{id}`, found among the caller's tenant's groups; a 404 page when it is
/// not there. Comes after the guard in a signature, so that a caller without the power gets the 403.
#[derive(Debug)]
pub(crate) struct PathGroup(pub GroupRecord);

impl FromRequestParts<AppState> for PathGroup {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let ctx = super::extract::ctx_of(parts, state).await?;
        let Ok(Path(id)) = Path::<i64>::from_request_parts(parts, state).await else {
            return Err(not_found(&ctx));
        };
        let groups = state
            .keygate
            .list_groups(&ctx.session.caller, ctx.session.tenant.policy.id)
            .await
            .map_err(|e| service_error_page(&ctx, e))?;
        groups.into_iter().find(|g| g.id.0 == id).map(Self).ok_or_else(|| not_found(&ctx))
    }
}

fn not_found(ctx: &Ctx) -> Response {
    super::message_page(StatusCode::NOT_FOUND, Some(ctx), "Not found", "There is no such group in this tenant.")
}

/// What the group page's forms show again after a mistake.
#[derive(Debug, Default)]
struct Again {
    grants: Option<Vec<String>>,
    new_name: Option<String>,
    grants_error: Option<String>,
    rename_error: Option<String>,
}

async fn group_view(state: &AppState, ctx: &Ctx, group: GroupRecord, status: StatusCode, again: Again) -> Response {
    let id = group.id.0;
    let view = match state.keygate.group(&ctx.session.caller, ctx.session.tenant.policy.id, &group.name).await {
        Ok(v) => v,
        Err(e) => return service_error_page(ctx, e),
    };
    let ticked = again.grants.unwrap_or_else(|| grant_strings(&group));
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    render(
        status,
        &GroupPage {
            chrome,
            id,
            system: system_about(group.system),
            members: view.members,
            matrix: matrix(&ticked),
            new_name: again.new_name.unwrap_or_else(|| group.name.clone()),
            name: group.name,
            grants_error: again.grants_error,
            rename_error: again.rename_error,
        },
    )
}

/// One group: its members, and for a custom group the forms to change its grants, rename it or
/// delete it. Members of `User configurator`.
pub(crate) async fn group_page(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    PathGroup(group): PathGroup,
) -> Response {
    group_view(&state, &ctx, group, StatusCode::OK, Again::default()).await
}

async fn done(state: &AppState, ctx: &Ctx, to: &str, message: &str) -> Response {
    if let Err(e) = state.keygate.set_flash(&ctx.session, Some(message)).await {
        return service_error_page(ctx, e);
    }
    Redirect::to(to).into_response()
}

/// Sets a custom group's grants to exactly the ticked ones; every member's keys follow on the next
/// request. Members of `User configurator`; what is added must lie within the caller's permissions.
pub(crate) async fn set_group_grants(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    PathGroup(group): PathGroup,
    CsrfForm(form): CsrfForm,
) -> Response {
    let id = group.id.0;
    let grants = form.all("grant");
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.set_group_grants(&ctx.session.caller, tenant, &group.name, &grants, None).await {
        Ok(saved) => {
            let list = if saved.grants.is_empty() { "none".to_owned() } else { grant_strings(&saved).join(", ") };
            let message = format!(
                "The grants of {} are now: {list}. Its members' keys follow from the next request on.",
                saved.name
            );
            done(&state, &ctx, &format!("/console/groups/{id}"), &message).await
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let again = Again {
                grants: Some(grants),
                grants_error: Some(format!("Grants not changed: {why}")),
                ..Again::default()
            };
            group_view(&state, &ctx, group, status, again).await
        }
    }
}

/// Renames a custom group. Members of `User configurator`.
pub(crate) async fn rename_group(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    PathGroup(group): PathGroup,
    CsrfForm(form): CsrfForm,
) -> Response {
    let id = group.id.0;
    let new_name = form.get("new_name").trim().to_owned();
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.rename_group(&ctx.session.caller, tenant, &group.name, &new_name).await {
        Ok(()) => {
            let message = format!("The group {} is now called {new_name}.", group.name);
            done(&state, &ctx, &format!("/console/groups/{id}"), &message).await
        }
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let again = Again {
                new_name: Some(new_name),
                rename_error: Some(format!("Not renamed: {why}")),
                ..Again::default()
            };
            group_view(&state, &ctx, group, status, again).await
        }
    }
}

/// Asks before deleting a custom group; with members it offers to remove the memberships too.
/// Members of `User configurator`.
pub(crate) async fn confirm_delete_group(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    PathGroup(group): PathGroup,
) -> Response {
    delete_view(&state, &ctx, group, StatusCode::OK, None).await
}

async fn delete_view(
    state: &AppState,
    ctx: &Ctx,
    group: GroupRecord,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let id = group.id.0;
    if group.system.is_some() {
        let why = format!("`{}` is a system group: it cannot be deleted.", group.name);
        return super::message_page(StatusCode::UNPROCESSABLE_ENTITY, Some(ctx), "Not done", &why);
    }
    let view = match state.keygate.group(&ctx.session.caller, ctx.session.tenant.policy.id, &group.name).await {
        Ok(v) => v,
        Err(e) => return service_error_page(ctx, e),
    };
    render(status, &DeleteGroupPage { chrome: ctx.chrome(), id, name: group.name, members: view.members, error })
}

/// Deletes a custom group; with members only when "remove the memberships too" is ticked (audited
/// with the members). Members of `User configurator`.
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    PathGroup(group): PathGroup,
    CsrfForm(form): CsrfForm,
) -> Response {
    let force = form.checked("force");
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.delete_group(&ctx.session.caller, tenant, &group.name, force).await {
        Ok(()) => done(&state, &ctx, "/console/groups", &format!("The group {} is deleted.", group.name)).await,
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            delete_view(&state, &ctx, group, status, Some(format!("Not deleted: {why}"))).await
        }
    }
}
