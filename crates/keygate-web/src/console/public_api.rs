//! The Public API page: the tenant switch, the IP whitelist, generating keys (shown once), and
//! the list of keys with disable / enable / revoke / roll. Members of `Configurator` only.

use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use keygate_domain::{IpRanges, KeyId, Resource, Timestamp, UserCategory, UserId};
use keygate_service::{IssueKey, IssuedKey, KeyOwner, KeyView};

use super::{Chrome, Ctx, Fields, PUBLIC_API, pages, render, service_error_page, when};
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
    pub scopes: Vec<ScopeOption>,
    pub form: GenerateForm,
    pub nonce: String,
    pub fresh: Option<FreshKey>,
    pub error: Option<String>,
    pub keys: Vec<KeyRow>,
    pub base: &'static str,
}

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

fn not_configurator(ctx: &Ctx) -> Response {
    let groups =
        if ctx.session.user.groups.is_empty() { "no groups".to_owned() } else { ctx.session.user.groups.join(", ") };
    pages::message_page(
        StatusCode::FORBIDDEN,
        Some(ctx),
        "Only Configurators may manage the Public API",
        &format!(
            "The Public API page (enabling the API, the IP whitelist and API keys) is for members of the \
             Configurator group. You are logged in as {} ({}). Ask an administrator to add you to Configurator, \
             or to generate the key for you.",
            ctx.session.user.email, groups
        ),
    )
}

/// A fresh form: the browser's own address as the key's range, the caller as its owner.
fn default_form(ip: IpAddr) -> GenerateForm {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    GenerateForm { ranges: format!("{ip}/{prefix}"), owner: "me".to_owned(), ..Default::default() }
}

/// Renders the page; `fresh` is the one moment a key's secret is part of a response.
async fn page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    form: GenerateForm,
    fresh: Option<FreshKey>,
    error: Option<String>,
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
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return service_error_page(ctx, &e),
    };
    let nonce = match k.new_form_nonce(&ctx.session).await {
        Ok(n) => n,
        Err(e) => return service_error_page(ctx, &e),
    };
    let mut owners = vec![OwnerOption {
        value: "me".to_owned(),
        label: format!("Yourself ({})", ctx.session.user.email),
        selected: form.owner == "me" || form.owner.is_empty(),
    }];
    owners.extend(users.iter().filter(|u| u.category == UserCategory::Programmatic && u.active).map(|u| {
        let value = u.id.0.to_string();
        OwnerOption {
            selected: form.owner == value,
            label: format!("{} <{}> — programmatic user", u.name, u.email),
            value,
        }
    }));
    let mut scopes = Vec::new();
    for r in Resource::ALL {
        for access in ["read", "write"] {
            let value = format!("{}:{access}", r.as_str());
            scopes.push(ScopeOption {
                checked: form.scopes.contains(&value),
                label: format!("{} — {access}", r.as_str()),
                value,
            });
        }
    }
    scopes.push(ScopeOption {
        checked: form.scopes.iter().any(|s| s == "keys:verify"),
        value: "keys:verify".to_owned(),
        label: "keys — verify other keys (for services)".to_owned(),
    });
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
            whitelist: policy.ip_whitelist.to_strings().join("\n"),
            whitelist_any: policy.ip_whitelist.allows_any_address(),
            client_ip: ctx.ip.to_string(),
            max_days: policy.max_key_lifetime_days,
            max_date: policy
                .max_key_lifetime_days
                .map(|d| now.plus_days(i64::from(d)).to_date_string())
                .unwrap_or_default(),
            today: now.plus_days(1).to_date_string(),
            owners,
            scopes,
            form,
            nonce,
            fresh,
            error,
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

/// The Public API page. Members of `Configurator`; others get a 403 page that says why.
pub(crate) async fn public_api_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ctx = match configurator(Ctx::load(&state, peer, &headers).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let form = default_form(ctx.ip);
    page(&state, &ctx, StatusCode::OK, form, None, None).await
}

/// Switches the tenant's Public API on or off. Members of `Configurator`.
pub(crate) async fn switch_api(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let ctx = match configurator(Ctx::load_post(&state, peer, &headers, &form).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
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
        Err(e) => service_error_page(&ctx, &e),
    }
}

/// Replaces the tenant-wide API IP whitelist. Members of `Configurator`.
pub(crate) async fn set_whitelist(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let ctx = match configurator(Ctx::load_post(&state, peer, &headers, &form).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let ranges = split_ranges(form.get("ranges"));
    match state.keygate.set_whitelist(&ctx.session.caller, ctx.session.tenant.policy.id, &ranges).await {
        Ok(saved) => done(&state, &ctx, &format!("The API IP whitelist is now: {saved}.")).await,
        Err(keygate_service::ServiceError::Invalid(why)) => {
            let form = default_form(ctx.ip);
            page(
                &state,
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                None,
                Some(format!("Whitelist not saved: {why}")),
            )
            .await
        }
        Err(e) => service_error_page(&ctx, &e),
    }
}

fn split_ranges(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Post-redirect-get with a one-shot message.
async fn done(state: &AppState, ctx: &Ctx, message: &str) -> Response {
    if let Err(e) = state.keygate.set_flash(&ctx.session, Some(message)).await {
        return service_error_page(ctx, &e);
    }
    Redirect::to(PUBLIC_API).into_response()
}

fn fresh(issued: &IssuedKey, owner: String) -> FreshKey {
    FreshKey {
        secret: issued.secret.expose().to_owned(),
        display: issued.record.display.clone(),
        owner,
        warnings: issued.warnings.clone(),
        rolled_from: issued.record.rolled_from.map(|k| k.0),
    }
}

const ALREADY_SHOWN: &str = "This form was already sent, so nothing was generated now. A key is shown only once, \
     in the answer to the form that generated it; if you did not copy it, roll or revoke that key below.";

/// Generates a key and shows it once, in this response (never stored, never shown again; a
/// reload re-sends the form, whose single-use nonce is then spent). Members of `Configurator`.
pub(crate) async fn generate_key(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let ctx = match configurator(Ctx::load_post(&state, peer, &headers, &form).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let values = GenerateForm {
        purpose: form.get("purpose").to_owned(),
        ranges: form.get("ranges").to_owned(),
        expires: form.get("expires").to_owned(),
        debug_only: form.checked("debug_only"),
        owner: form.get("owner").to_owned(),
        scopes: form.all("scope"),
    };
    if let Some(refused) = spend_nonce(&state, &ctx, &form).await {
        return refused;
    }
    let ranges = split_ranges(&values.ranges);
    if let Ok(parsed) = IpRanges::parse(&ranges)
        && parsed.allows_any_address()
        && !values.debug_only
    {
        let why = "0.0.0.0/0 and ::/0 admit calls from any address. Tick \"for debugging only\" to confirm that \
                   this is what you want, or give the integration's own address ranges.";
        return page(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, values, None, Some(why.to_owned())).await;
    }
    let owner = match values.owner.as_str() {
        "me" | "" => KeyOwner::Myself,
        id => match id.parse::<i64>() {
            Ok(id) => KeyOwner::Id(UserId(id)),
            Err(_) => KeyOwner::Myself,
        },
    };
    let request = IssueKey {
        owner,
        purpose: values.purpose.clone(),
        ip_ranges: ranges,
        expires: Some(values.expires.clone()).filter(|e| !e.trim().is_empty()),
        scopes: Some(values.scopes.clone()).filter(|s| !s.is_empty()),
        units: None,
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
        Err(keygate_service::ServiceError::Invalid(why) | keygate_service::ServiceError::Forbidden(why)) => {
            page(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, values, None, Some(format!("No key generated: {why}")))
                .await
        }
        Err(e) => service_error_page(&ctx, &e),
    }
}

fn parse_action(action: &str) -> Option<&'static str> {
    ["disable", "enable", "revoke", "roll"].into_iter().find(|a| *a == action)
}

/// The confirmation step before a key action (works without JavaScript). Members of `Configurator`.
pub(crate) async fn confirm_key_action(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
) -> Response {
    let ctx = match configurator(Ctx::load(&state, peer, &headers).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let Some(action) = parse_action(&action) else {
        return pages::message_page(StatusCode::NOT_FOUND, Some(&ctx), "Not found", "There is no such key action.");
    };
    let key = match state.keygate.key(ctx.session.tenant.policy.id, KeyId(id)).await {
        Ok(k) => k,
        Err(e) => return service_error_page(&ctx, &e),
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
            Err(e) => return service_error_page(&ctx, &e),
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    form: Fields,
) -> Response {
    let ctx = match configurator(Ctx::load_post(&state, peer, &headers, &form).await) {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    let Some(action) = parse_action(&action) else {
        return pages::message_page(StatusCode::NOT_FOUND, Some(&ctx), "Not found", "There is no such key action.");
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
                Err(e) => service_error_page(&ctx, &e),
            };
        }
    };
    match result {
        Ok(message) => done(&state, &ctx, &message).await,
        Err(e) => service_error_page(&ctx, &e),
    }
}

/// Spends the form's single-use nonce. A second submission of the same form (a reload after a key
/// was shown) gets a 409 page without any key; `None` means go ahead.
async fn spend_nonce(state: &AppState, ctx: &Ctx, form: &Fields) -> Option<Response> {
    match state.keygate.take_form_nonce(&ctx.session, form.get("nonce")).await {
        Ok(true) => None,
        Ok(false) => Some(
            page(state, ctx, StatusCode::CONFLICT, default_form(ctx.ip), None, Some(ALREADY_SHOWN.to_owned())).await,
        ),
        Err(e) => Some(service_error_page(ctx, &e)),
    }
}

/// Every page and form here is for members of `Configurator`: a logged-in non-member gets the
/// 403 page that says why.
#[allow(clippy::result_large_err, reason = "it filters the `Result<Ctx, Response>` that `Ctx::load` returns")]
fn configurator(loaded: Result<Ctx, Response>) -> Result<Ctx, Response> {
    let ctx = loaded?;
    if ctx.session.permissions.configurator { Ok(ctx) } else { Err(not_configurator(&ctx)) }
}
