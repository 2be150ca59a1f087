//! The units page: the units of the tenant (the `{unitId}` of the API), creating one (its number
//! given or the next free one), renaming and deleting one (never while it holds records).
//! Members of `User configurator`. No SQL and no rules here.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::UnitId;

use super::{
    Chrome, CsrfForm, Ctx, UserConfigurator, form_error, key_actions::ConfirmPage, render, service_error_page,
};
use crate::AppState;

#[derive(Debug)]
pub(crate) struct UnitRow {
    pub id: i64,
    pub name: String,
    /// The rename field's value: the name, or what was typed when the rename failed.
    pub new_name: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/units.html")]
pub(crate) struct UnitsPage {
    pub chrome: Chrome,
    pub units: Vec<UnitRow>,
    pub number: String,
    pub name: String,
    /// Shown beside the create form.
    pub error: Option<String>,
    /// Shown above the list (a refused deletion).
    pub list_error: Option<String>,
}

/// What the page shows again after a mistake.
#[derive(Debug, Default)]
struct Again {
    number: String,
    name: String,
    create_error: Option<String>,
    delete_error: Option<String>,
    rename: Option<(i64, String, String)>,
}

async fn page(state: &AppState, ctx: &Ctx, status: StatusCode, again: Again) -> Response {
    let units = match state.keygate.list_units(&ctx.session.caller, ctx.session.tenant.policy.id).await {
        Ok(u) => u,
        Err(e) => return service_error_page(ctx, e),
    };
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    let rename = again.rename;
    render(
        status,
        &UnitsPage {
            chrome,
            units: units
                .into_iter()
                .map(|(id, name)| match &rename {
                    Some((failed, typed, why)) if *failed == id.0 => {
                        UnitRow { id: id.0, name, new_name: typed.clone(), error: Some(why.clone()) }
                    }
                    _ => UnitRow { id: id.0, new_name: name.clone(), name, error: None },
                })
                .collect(),
            number: again.number,
            name: again.name,
            error: again.create_error,
            list_error: again.delete_error,
        },
    )
}

/// The units and the create form. Members of `User configurator`.
pub(crate) async fn units_page(State(state): State<AppState>, UserConfigurator(ctx): UserConfigurator) -> Response {
    page(&state, &ctx, StatusCode::OK, Again::default()).await
}

async fn done(state: &AppState, ctx: &Ctx, message: &str) -> Response {
    if let Err(e) = state.keygate.set_flash(&ctx.session, Some(message)).await {
        return service_error_page(ctx, e);
    }
    Redirect::to("/console/units").into_response()
}

/// Creates a unit, numbered as typed or the next free number. Members of `User configurator`.
pub(crate) async fn create_unit(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let number = form.get("number").trim().to_owned();
    let name = form.get("name").trim().to_owned();
    let again =
        |why: String| Again { number: number.clone(), name: name.clone(), create_error: Some(why), ..Again::default() };
    let id = if number.is_empty() {
        None
    } else if let Ok(n) = number.parse::<i64>() {
        Some(n)
    } else {
        let why = format!("No unit created: `{number}` is not a number; leave it empty for the next free number.");
        return page(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, again(why)).await;
    };
    match state.keygate.create_unit(&ctx.session.caller, ctx.session.tenant.policy.id, id, &name).await {
        Ok(id) => done(&state, &ctx, &format!("Created unit {id} ({name}).")).await,
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            page(&state, &ctx, status, again(format!("No unit created: {why}"))).await
        }
    }
}

/// Renames a unit. Members of `User configurator`.
pub(crate) async fn rename_unit(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
    CsrfForm(form): CsrfForm,
) -> Response {
    let name = form.get("name").trim().to_owned();
    match state.keygate.rename_unit(&ctx.session.caller, ctx.session.tenant.policy.id, UnitId(id), &name).await {
        Ok(()) => done(&state, &ctx, &format!("Unit {id} is now called {name}.")).await,
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let again = Again { rename: Some((id, name, format!("Not renamed: {why}"))), ..Again::default() };
            page(&state, &ctx, status, again).await
        }
    }
}

/// Asks before deleting a unit. Members of `User configurator`.
pub(crate) async fn confirm_delete_unit(UserConfigurator(ctx): UserConfigurator, Path(id): Path<i64>) -> Response {
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: ctx.chrome(),
            title: format!("Delete unit {id}?"),
            message: format!(
                "A unit can be deleted only while it holds no records. Once unit {id} is deleted, calls to \
                 /rest/v1/{id}/… are refused."
            ),
            action: format!("/console/units/{id}/delete"),
            button: "Delete the unit".to_owned(),
            danger: true,
            roll: false,
            nonce: String::new(),
            cancel: "/console/units",
        },
    )
}

/// Deletes a unit that holds no records. Members of `User configurator`.
pub(crate) async fn delete_unit(
    State(state): State<AppState>,
    UserConfigurator(ctx): UserConfigurator,
    Path(id): Path<i64>,
    _form: CsrfForm,
) -> Response {
    match state.keygate.delete_unit(&ctx.session.caller, ctx.session.tenant.policy.id, UnitId(id)).await {
        Ok(()) => done(&state, &ctx, &format!("Unit {id} is deleted.")).await,
        Err(e) => {
            let (status, why) = form_error(&ctx, e);
            let again = Again { delete_error: Some(format!("Unit {id} not deleted: {why}")), ..Again::default() };
            page(&state, &ctx, status, again).await
        }
    }
}
