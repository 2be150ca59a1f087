//! The Public API page: the tenant switch, the IP whitelist, generating keys (shown once), and
//! the list of keys with disable / enable / revoke / roll. Members of `Configurator` only.

use std::net::IpAddr;

use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::{Access, AdminScope, IpRanges, Resource, Scope, Timestamp, UnitId, UserCategory, UserId};
use keygate_service::{IssueKey, IssuedKey, KeyOwner, KeyView, ServiceError};

use super::{
    Chrome, Configurator, CsrfForm, Ctx, Fields, PUBLIC_API, form_error, pages, render, service_error_page, when,
};
use crate::AppState;

/// A key that was just generated: shown in this response only.
pub(crate) struct FreshKey {
    pub secret: String,
    pub display: String,
    pub owner: String,
    pub warnings: Vec<String>,
    pub rolled_from: Option<i64>,
}

impl std::fmt::Debug for FreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshKey").field("display", &self.display).finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct OwnerOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Debug)]
pub(crate) struct ScopeOption {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// One resource of the scope choices: a read and a write box, each offered only when the
/// chosen user holds it and the caller may give it (the grant ceiling judges again on submit).
#[derive(Debug)]
pub(crate) struct ScopeRow {
    pub resource: &'static str,
    pub read: Option<ScopeOption>,
    pub write: Option<ScopeOption>,
    /// The user holds no grant on this resource: a scope reaches nothing now (a personal user:
    /// only their own records) and wakes up when the user gains a grant.
    pub dormant: bool,
    /// Why a box is missing, or what a dormant scope means; empty when both are plainly offered.
    pub note: String,
}

#[derive(Debug)]
pub(crate) struct KeyRow {
    pub id: i64,
    pub display: String,
    pub purpose: String,
    pub user: String,
    pub created_by: String,
    pub created_at: String,
    pub expires: String,
    pub ranges: String,
    pub scopes: String,
    pub last_used: String,
    pub status: &'static str,
    pub status_class: String,
    pub enabled: bool,
    pub revoked: bool,
    pub active: bool,
}

/// What the generate form shows (again, after a mistake).
#[derive(Debug, Default)]
pub(crate) struct GenerateForm {
    pub purpose: String,
    pub ranges: String,
    pub expires: String,
    pub debug_only: bool,
    pub owner: String,
    pub scopes: Vec<String>,
    pub units: Vec<String>,
}

/// `?for=USER_ID` (or `me`): whose key the generate form is for. Without JavaScript the form
/// cannot follow the user picker, so choosing a user ("Show the choices for this user", or `?for=`
/// from a user's page) shows the page again with that user's choices.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ForQuery {
    #[serde(default, rename = "for")]
    owner: String,
}

#[derive(Template)]
#[template(path = "console/public_api.html")]
pub(crate) struct PublicApiPage {
    pub chrome: Chrome,
    pub crumbs: Vec<pages::Crumb>,
    pub api_on: bool,
    pub whitelist: String,
    pub whitelist_any: bool,
    pub client_ip: String,
    pub max_days: Option<u32>,
    pub max_date: String,
    pub today: String,
    pub owners: Vec<OwnerOption>,
    /// Who the generate form issues for, as shown beside it.
    pub owner_label: String,
    /// Per resource, read and write: offered when the chosen user holds it and the caller may
    /// give it; dormant ones marked.
    pub scopes: Vec<ScopeRow>,
    /// `keys:verify`, when the caller may give it.
    pub verify: Option<ScopeOption>,
    /// The management API's `admin:…` scopes the caller may give and the user's groups allow.
    pub admin_scopes: Vec<ScopeOption>,
    /// The chosen user's units that the caller reaches.
    pub units: Vec<ScopeOption>,
    pub form: GenerateForm,
    pub nonce: String,
    pub fresh: Option<FreshKey>,
    /// A mistake about the page as a whole, shown at its top.
    pub error: Option<String>,
    /// Shown beside the whitelist form.
    pub whitelist_error: Option<String>,
    /// Shown beside the generate form, which keeps what was typed.
    pub generate_error: Option<String>,
    pub keys: Vec<KeyRow>,
    pub base: &'static str,
}

/// What went wrong, and beside which form the page says so.
#[derive(Debug)]
pub(super) enum Mistake {
    Page(String),
    /// What was wrong with the whitelist, and what was typed (shown again, not thrown away).
    Whitelist {
        message: String,
        typed: String,
    },
    Generate(String),
}

/// A fresh form: the browser's own address as the key's range, the caller as its owner.
pub(super) fn default_form(ip: IpAddr) -> GenerateForm {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    GenerateForm { ranges: format!("{ip}/{prefix}"), owner: "me".to_owned(), ..Default::default() }
}

/// Renders the page; `fresh` is the one moment a key's secret is part of a response.
pub(super) async fn page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: GenerateForm,
    fresh: Option<FreshKey>,
    error: Option<Mistake>,
) -> Response {
    let k = &state.keygate;
    let caller = &ctx.session.caller;
    let tenant_id = ctx.session.tenant.policy.id;
    let (tenant, keys, users) = match (
        k.tenant_by_id(tenant_id).await,
        k.list_keys(caller, tenant_id).await,
        k.list_users(caller, tenant_id).await,
    ) {
        (Ok(t), Ok(keys), Ok(users)) => (t, keys, users),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return service_error_page(ctx, e),
    };
    let nonce = match k.new_form_nonce(&ctx.session).await {
        Ok(n) => n,
        Err(e) => return service_error_page(ctx, e),
    };
    let me = ctx.session.user.id;
    let candidates: Vec<_> =
        users.iter().filter(|u| u.category == UserCategory::Programmatic && u.active && u.id != me).collect();
    let mut form = form;
    let mut error = error;
    let mut owner = owner_id(&form.owner, me);
    if owner != me && !candidates.iter().any(|u| u.id == owner) {
        error.get_or_insert_with(|| {
            Mistake::Generate(
                "Keys are generated for yourself or for an active programmatic user; choose one from the list."
                    .to_owned(),
            )
        });
        owner = me;
        form.owner = "me".to_owned();
    }
    let mut owners = vec![OwnerOption {
        value: "me".to_owned(),
        label: format!("Yourself ({})", ctx.session.user.email),
        selected: owner == me,
    }];
    owners.extend(candidates.iter().map(|u| OwnerOption {
        value: u.id.0.to_string(),
        label: format!("{} <{}> — programmatic user", u.name, u.email),
        selected: u.id == owner,
    }));
    let owner_label = owners.iter().find(|o| o.selected).map(|o| o.label.clone()).unwrap_or_default();
    let choices = match k.key_choices(caller, tenant_id, owner).await {
        Ok(c) => c,
        Err(e) => return service_error_page(ctx, e),
    };
    let held = match k.user_permissions(caller, tenant_id, owner).await {
        Ok(p) => p,
        Err(e) => return service_error_page(ctx, e),
    };
    let (scopes, verify) = scope_rows(&choices.scopes, &held, &form.scopes, owner == me);
    let admin_scopes = choices
        .scopes
        .iter()
        .filter(|s| matches!(s, Scope::Admin(_)))
        .map(|s| {
            let value = s.to_string();
            ScopeOption { checked: form.scopes.contains(&value), label: scope_label(*s), value }
        })
        .collect();
    let units = choices
        .units
        .iter()
        .map(|(id, name)| {
            let value = id.0.to_string();
            ScopeOption { checked: form.units.contains(&value), label: format!("unit {id} — {name}"), value }
        })
        .collect();
    let now = Timestamp::now();
    let policy = &tenant.policy;
    let mut chrome = ctx.chrome();
    chrome.flash = ctx.take_flash(state).await;
    render(
        status,
        &PublicApiPage {
            chrome,
            crumbs: vec![pages::SYSTEM, pages::INTEGRATIONS],
            api_on: policy.public_api,
            whitelist: match &error {
                Some(Mistake::Whitelist { typed, .. }) => typed.clone(),
                _ => policy.ip_whitelist.to_strings().join("\n"),
            },
            whitelist_any: policy.ip_whitelist.allows_any_address(),
            client_ip: ctx.ip.to_string(),
            max_days: policy.max_key_lifetime_days,
            max_date: policy
                .max_key_lifetime_days
                .map(|d| now.plus_days(i64::from(d)).to_date_string())
                .unwrap_or_default(),
            today: now.plus_days(1).to_date_string(),
            owners,
            owner_label,
            scopes,
            verify,
            admin_scopes,
            units,
            form,
            nonce,
            fresh,
            error: match &error {
                Some(Mistake::Page(m)) => Some(m.clone()),
                _ => None,
            },
            whitelist_error: match &error {
                Some(Mistake::Whitelist { message, .. }) => Some(message.clone()),
                _ => None,
            },
            generate_error: match error {
                Some(Mistake::Generate(m)) => Some(m),
                _ => None,
            },
            keys: keys.iter().map(|v| key_row(v, now)).collect(),
            base: PUBLIC_API,
        },
    )
}

fn key_row(v: &KeyView, now: Timestamp) -> KeyRow {
    let key = &v.listing.key;
    KeyRow {
        id: key.id.0,
        display: key.display.clone(),
        purpose: key.purpose.as_str().to_owned(),
        user: format!("{} <{}>", v.listing.user_name, v.listing.user_email),
        created_by: v.listing.created_by_email.clone().unwrap_or_else(|| "system (cli)".to_owned()),
        created_at: when(key.created_at),
        expires: key.expires_at.map_or_else(|| "never".to_owned(), when),
        ranges: key.ip_ranges.to_strings().join(", "),
        scopes: key.scopes.as_ref().map_or_else(|| "inherit".to_owned(), |s| s.to_strings().join(" ")),
        last_used: match (key.last_used_at, &key.last_used_ip) {
            (Some(at), Some(ip)) => format!("{} from {ip}", when(at)),
            (Some(at), None) => when(at),
            _ => "never".to_owned(),
        },
        status: v.status,
        status_class: v.status.replace(' ', "-").to_lowercase(),
        enabled: key.enabled,
        revoked: key.revoked_at.is_some(),
        active: key.status(now) == keygate_domain::KeyStatus::Active,
    }
}

/// The Public API page; `?for=` chooses whose key the generate form is for. Members of
/// `Configurator`; others get a 403 page that says why.
pub(crate) async fn public_api_page(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    Query(q): Query<ForQuery>,
) -> Response {
    let mut form = default_form(ctx.ip);
    if !q.owner.trim().is_empty() {
        q.owner.trim().clone_into(&mut form.owner);
    }
    page(&state, &ctx, StatusCode::OK, form, None, None).await
}

/// The user a form's `owner` (`me` or a user id) names; anything else is the caller.
fn owner_id(owner: &str, me: UserId) -> UserId {
    parse_owner(owner).map_or(me, |o| o.unwrap_or(me))
}

/// `me` (`Some(None)`) or a user id (`Some(Some(id))`); `None` for anything else.
fn parse_owner(owner: &str) -> Option<Option<UserId>> {
    match owner.trim() {
        "me" => Some(None),
        id if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            id.parse::<i64>().ok().map(|n| Some(UserId(n)))
        }
        _ => None,
    }
}

/// How the page names the owner `id` of a key: "yourself (email)" or the user's email.
pub(super) async fn owner_name(state: &AppState, ctx: &Ctx, id: UserId) -> String {
    if id == ctx.session.user.id {
        return format!("yourself ({})", ctx.session.user.email);
    }
    match state.keygate.user_by_id(ctx.session.tenant.policy.id, id).await {
        Ok(u) => u.email,
        Err(_) => format!("user {id}"),
    }
}

/// The scope choices as read / write per resource. `giveable` is the service's list (one scope
/// per resource, write standing for read too); `held` what the key's user holds, which tells a
/// dormant scope from a live one; `ticked` what the form had ticked.
fn scope_rows(
    giveable: &[Scope],
    held: &keygate_domain::Permissions,
    ticked: &[String],
    for_me: bool,
) -> (Vec<ScopeRow>, Option<ScopeOption>) {
    let whom = if for_me { "you hold" } else { "this user holds" };
    let option = |scope: Scope| {
        let value = scope.to_string();
        ScopeOption { checked: ticked.contains(&value), label: scope_label(scope), value }
    };
    let rows = Resource::ALL
        .into_iter()
        .map(|resource| {
            let read_scope = Scope::Resource(resource, Access::Read);
            let write_scope = Scope::Resource(resource, Access::Write);
            let write = giveable.contains(&write_scope);
            let read = write || giveable.contains(&read_scope);
            let dormant = held.reach(resource, Access::Read).is_none();
            let note = if dormant {
                format!(
                    "Dormant: {whom} no grant on {r}, so a {r} scope reaches nothing now{own}; it takes effect                      if a grant on {r} is given later.",
                    r = resource.as_str(),
                    own = if held.own_records { " but the user's own records" } else { "" },
                )
            } else if !read {
                "Not offered: you may not give this (you do not hold what the user holds here).".to_owned()
            } else if !write && held.reach(resource, Access::Write).is_none() {
                format!("Write not offered: {whom} read access only.")
            } else if !write {
                "Write not offered: you may not give write access here.".to_owned()
            } else {
                String::new()
            };
            ScopeRow {
                resource: resource.as_str(),
                read: read.then(|| option(read_scope)),
                write: write.then(|| option(write_scope)),
                dormant,
                note,
            }
        })
        .collect();
    (rows, giveable.contains(&Scope::KeysVerify).then(|| option(Scope::KeysVerify)))
}

fn scope_label(scope: Scope) -> String {
    match scope {
        Scope::Resource(r, a) => format!("{} — {}", r.as_str(), a.as_str()),
        Scope::KeysVerify => "keys — verify other keys (for services)".to_owned(),
        Scope::Admin(a) => {
            let what = match a {
                AdminScope::KeysRead => "read keys and their usage",
                AdminScope::KeysWrite => "issue, change, disable and roll keys",
                AdminScope::UsersRead => "read users, groups and units",
                AdminScope::UsersWrite => "manage users, groups and units",
                AdminScope::SettingsRead => "read the tenant's API settings",
                AdminScope::SettingsWrite => "change the tenant's API settings",
                AdminScope::AuditRead => "read the audit log",
            };
            format!("{a} — {what} (management API)")
        }
    }
}

/// Switches the tenant's Public API on or off. Members of `Configurator`.
pub(crate) async fn switch_api(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let on = form.get("enabled") == "on";
    match state.keygate.set_public_api(&ctx.session.caller, ctx.session.tenant.policy.id, on).await {
        Ok(()) => {
            let message = if on {
                "The Public API is enabled: valid keys are accepted from the next request on."
            } else {
                "The Public API is disabled: every key of this tenant is refused from the next request on."
            };
            done(&state, &ctx, message).await
        }
        Err(e) => service_error_page(&ctx, e),
    }
}

/// Replaces the tenant-wide API IP whitelist. Members of `Configurator`.
pub(crate) async fn set_whitelist(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let ranges = split_ranges(form.get("ranges"));
    let form_typed = form.get("ranges").to_owned();
    match state.keygate.set_whitelist(&ctx.session.caller, ctx.session.tenant.policy.id, &ranges).await {
        Ok(saved) => done(&state, &ctx, &format!("The API IP whitelist is now: {saved}.")).await,
        Err(ServiceError::Invalid(why)) => {
            let form = default_form(ctx.ip);
            page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                None,
                Some(Mistake::Whitelist { message: format!("Whitelist not saved: {why}"), typed: form_typed.clone() }),
            )
            .await
        }
        Err(e) => service_error_page(&ctx, e),
    }
}

fn split_ranges(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Post-redirect-get with a one-shot message.
pub(super) async fn done(state: &AppState, ctx: &Ctx, message: &str) -> Response {
    if let Err(e) = state.keygate.set_flash(&ctx.session, Some(message)).await {
        return service_error_page(ctx, e);
    }
    Redirect::to(PUBLIC_API).into_response()
}

pub(super) fn fresh(issued: &IssuedKey, owner: String) -> FreshKey {
    FreshKey {
        secret: issued.secret.expose().to_owned(),
        display: issued.record.display.clone(),
        owner,
        warnings: issued.warnings.clone(),
        rolled_from: issued.record.rolled_from.map(|k| k.0),
    }
}

pub(super) const ALREADY_SHOWN: &str = "This form was already sent, so nothing was generated now. A key is shown only once, \
     in the answer to the form that generated it; if you did not copy it, roll or revoke that key below.";

/// The key form, sent with one of its two buttons. "Show the choices for this user"
/// (`step=show`) shows the form again for the user chosen in the list (`for`), keeping what was
/// typed; nothing is generated. "Generate API key" generates a key for the user the form showed
/// (`owner`) and shows it once, in this response (never stored, never shown again; a reload
/// re-sends the form, whose single-use nonce is then spent). A list that names another user than
/// the one the form showed (chosen, but "Show the choices" not pressed) generates nothing: the
/// form is shown again for the chosen user with a message saying so. Members of `Configurator`.
pub(crate) async fn generate_key(
    State(state): State<AppState>,
    Configurator(ctx): Configurator,
    CsrfForm(form): CsrfForm,
) -> Response {
    let mut values = GenerateForm {
        purpose: form.get("purpose").to_owned(),
        ranges: form.get("ranges").to_owned(),
        expires: form.get("expires").to_owned(),
        debug_only: form.checked("debug_only"),
        owner: form.get("owner").to_owned(),
        scopes: form.all("scope"),
        units: form.all("unit"),
    };
    let me = ctx.session.user.id;
    let shown = parse_owner(form.get("owner")).map(|o| o.unwrap_or(me));
    // The list is part of the form; a form without it (an older page) is judged by `owner` alone.
    let chosen = match form.get("for") {
        "" => shown,
        text => parse_owner(text).map(|o| o.unwrap_or(me)),
    };
    let for_chosen = |mut values: GenerateForm| {
        if chosen != shown {
            // The scopes and units offered depend on the user: those ticked were for another.
            values.scopes.clear();
            values.units.clear();
        }
        if parse_owner(form.get("for")).is_some() {
            form.get("for").trim().clone_into(&mut values.owner);
        }
        values
    };
    if form.get("step") == "show" {
        let again = (chosen == shown).then(|| {
            Mistake::Generate(
                "Nothing was generated yet: these are the choices for this user. Press \"Generate API key\" when \
                 the form is complete."
                    .to_owned(),
            )
        });
        return page(&state, &ctx, StatusCode::OK, for_chosen(values), None, again).await;
    }
    if let Some(refused) = spend_nonce(&state, &ctx, &form).await {
        return refused;
    }
    let owner = match (shown, chosen) {
        (Some(shown), Some(chosen)) if shown == chosen => shown,
        (Some(shown), Some(chosen)) => {
            let why = format!(
                "No key generated: the list names {}, but the form was showing the choices for {} (\"Show the \
                 choices for this user\" was not pressed). It now shows the choices for {}: check them and press \
                 \"Generate API key\" again.",
                owner_name(&state, &ctx, chosen).await,
                owner_name(&state, &ctx, shown).await,
                owner_name(&state, &ctx, chosen).await,
            );
            values = for_chosen(values);
            return page(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, values, None, Some(Mistake::Generate(why)))
                .await;
        }
        _ => {
            let why = "No key generated: the form does not say whom the key is for. Choose the user in the list, \
                       press \"Show the choices for this user\", then \"Generate API key\".";
            values.owner = "me".to_owned();
            values.scopes.clear();
            values.units.clear();
            return page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                None,
                Some(Mistake::Generate(why.to_owned())),
            )
            .await;
        }
    };
    let ranges = split_ranges(&values.ranges);
    if let Ok(parsed) = IpRanges::parse(&ranges)
        && parsed.allows_any_address()
        && !values.debug_only
    {
        let why = "0.0.0.0/0 and ::/0 admit calls from any address. Tick \"for debugging only\" to confirm that \
                   this is what you want, or give the integration's own address ranges.";
        return page(
            &state,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            values,
            None,
            Some(Mistake::Generate(why.to_owned())),
        )
        .await;
    }
    let owner = KeyOwner::Id(owner);
    let units: Vec<UnitId> = values.units.iter().filter_map(|u| u.parse().ok()).map(UnitId).collect();
    let request = IssueKey {
        owner,
        purpose: values.purpose.clone(),
        ip_ranges: ranges,
        expires: Some(values.expires.clone()).filter(|e| !e.trim().is_empty()),
        scopes: Some(values.scopes.clone()).filter(|s| !s.is_empty()),
        units: Some(units).filter(|u| !u.is_empty()),
        rate_limit_per_minute: None,
    };
    let tenant = ctx.session.tenant.policy.id;
    match state.keygate.issue_key(&ctx.session.caller, tenant, request).await {
        Ok(issued) => {
            let owner = match state.keygate.user_by_id(tenant, issued.record.user_id).await {
                Ok(u) => u.email,
                Err(_) => format!("user {}", issued.record.user_id),
            };
            let shown = fresh(&issued, owner);
            drop(issued);
            page(&state, &ctx, StatusCode::OK, default_form(ctx.ip), Some(shown), None).await
        }
        // A mistake or a refusal (the grant ceiling among them): the form stays as it was, with
        // what is wrong beside it, answered with the status the Public API gives the same error.
        Err(e @ (ServiceError::Invalid(_) | ServiceError::Forbidden(_) | ServiceError::GrantExceedsActor(_))) => {
            let (status, why) = form_error(&ctx, e);
            page(&state, &ctx, status, values, None, Some(Mistake::Generate(format!("No key generated: {why}")))).await
        }
        Err(e) => service_error_page(&ctx, e),
    }
}

/// Spends the form's single-use nonce. A second submission of the same form (a reload after a key
/// was shown) gets a 409 page without any key; `None` means go ahead.
pub(super) async fn spend_nonce(state: &AppState, ctx: &Ctx, form: &Fields) -> Option<Response> {
    match state.keygate.take_form_nonce(&ctx.session, form.get("nonce")).await {
        Ok(true) => None,
        Ok(false) => Some(
            page(
                state,
                ctx,
                StatusCode::CONFLICT,
                default_form(ctx.ip),
                None,
                Some(Mistake::Page(ALREADY_SHOWN.to_owned())),
            )
            .await,
        ),
        Err(e) => Some(service_error_page(ctx, e)),
    }
}
