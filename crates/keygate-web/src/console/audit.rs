//! The audit log page: every change and every refused call, newest first, filtered by user, key
//! and action. Members of `Configurator` or `User configurator`.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use keygate_domain::{KeyId, Timestamp, UserId};
use keygate_service::AuditFilter;

use super::{Administrator, Chrome, render, service_error_page, when};
use crate::AppState;

const PAGE_SIZE: u32 = 100;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    before: String,
}

#[derive(Debug)]
pub(crate) struct EventRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub ip: String,
}

#[derive(Debug)]
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub(crate) struct AuditPage {
    pub chrome: Chrome,
    pub users: Vec<Choice>,
    pub actions: Vec<Choice>,
    pub key: String,
    pub events: Vec<EventRow>,
    pub older: Option<String>,
}

const ACTIONS: [(&str, &str); 11] = [
    ("key.", "any key change"),
    ("key.issued", "key issued"),
    ("key.disabled", "key disabled"),
    ("key.revoked", "key revoked"),
    ("key.rolled", "key rolled"),
    ("user.", "any user change"),
    ("group.", "any group change"),
    ("unit.", "any unit change"),
    ("tenant.", "any tenant change"),
    ("call.", "refused calls"),
    ("session.", "log-ins and log-outs"),
];

/// The audit log. Members of `Configurator` or `User configurator`.
pub(crate) async fn audit_page(
    State(state): State<AppState>,
    Administrator(ctx): Administrator,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = AuditFilter {
        user: q.user.trim().parse().ok().map(UserId),
        key: q.key.trim().parse().ok().map(KeyId),
        action: Some(q.action.trim().to_owned()).filter(|a| !a.is_empty()),
        before_id: q.before.trim().parse().ok(),
        limit: PAGE_SIZE,
    };
    let k = &state.keygate;
    let tenant = ctx.session.tenant.policy.id;
    let (events, users) = match (
        k.audit_log(&ctx.session.caller, tenant, &filter).await,
        k.list_users(&ctx.session.caller, tenant).await,
    ) {
        (Ok(e), Ok(u)) => (e, u),
        (Err(e), _) | (_, Err(e)) => return service_error_page(&ctx, e),
    };
    let older = (events.len() == PAGE_SIZE as usize).then(|| {
        let last = events.last().map_or(0, |e| e.id);
        format!(
            "/console/audit?user={}&key={}&action={}&before={last}",
            filter.user.map_or(String::new(), |u| u.0.to_string()),
            filter.key.map_or(String::new(), |k| k.0.to_string()),
            filter
                .action
                .clone()
                .unwrap_or_default()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '_', ""),
        )
    });
    let mut user_choices =
        vec![Choice { value: String::new(), label: "anyone".to_owned(), selected: filter.user.is_none() }];
    user_choices.extend(users.iter().map(|u| Choice {
        value: u.id.0.to_string(),
        label: u.email.clone(),
        selected: filter.user == Some(u.id),
    }));
    let mut actions =
        vec![Choice { value: String::new(), label: "any action".to_owned(), selected: filter.action.is_none() }];
    actions.extend(ACTIONS.iter().map(|(v, l)| Choice {
        value: (*v).to_owned(),
        label: format!("{l} ({v})"),
        selected: filter.action.as_deref() == Some(*v),
    }));
    render(
        StatusCode::OK,
        &AuditPage {
            chrome: ctx.chrome(),
            users: user_choices,
            actions,
            key: filter.key.map_or(String::new(), |k| k.0.to_string()),
            events: events
                .into_iter()
                .map(|e| EventRow {
                    at: when(Timestamp(e.at)),
                    actor: e.actor_label,
                    action: e.action,
                    target: e.target,
                    details: e.details,
                    ip: e.source_ip.unwrap_or_default(),
                })
                .collect(),
            older,
        },
    )
}
