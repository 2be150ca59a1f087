//! `GET /v1/audit-events`: the key's tenant's audit log for machines (a SIEM, a dashboard).
//! Newest first by default (`before=ID` for older pages), or forwards from a cursor (`after=ID`,
//! oldest first): a poller sends the last id it saw and gets every newer event once. Ids are
//! stable, increasing integers (as strings), and an event is served only when every smaller id is
//! final (the store waits out concurrent PostgreSQL writers, see
//! `keygate_store::AUDIT_SETTLE_MS`), so a poll never skips one. Filters: a time range, an action
//! prefix, text of the actor, a key, a user. Needs `admin:audit:read`. Audit rows never hold a
//! secret, so neither do these events.

use axum::{
    Router,
    extract::{RawQuery, State},
    http::Uri,
    response::{IntoResponse, Response},
    routing::get,
};
use keygate_domain::Timestamp;
use keygate_service::{AuditRecord, AuditSearch};
use serde::Serialize;

use super::extract::{Admin, PAGE_DEFAULT, PAGE_MAX, Page, paged};
use crate::{AppState, problem_code::ProblemCode};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit-events", get(list))
}

/// One audit event on the wire.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEvent {
    /// A stable, increasing integer, as a string (a cursor).
    id: String,
    at: String,
    actor: Actor,
    action: String,
    target: String,
    ip: Option<String>,
    details: String,
}

/// Who acted: `user` (id, email), `key` (keyId, and its user's id), `system`, `operator` (id).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Actor {
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<i64>,
}

impl From<AuditRecord> for AuditEvent {
    fn from(r: AuditRecord) -> Self {
        let actor = match r.actor_kind.as_str() {
            "user" => {
                Actor { kind: r.actor_kind.clone(), id: r.actor_id, email: Some(r.actor_label.clone()), key_id: None }
            }
            // The label of a key is `key 7 (user 3)`.
            "key" => Actor {
                kind: r.actor_kind.clone(),
                id: r
                    .actor_label
                    .rsplit_once("(user ")
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .and_then(|n| n.parse().ok()),
                email: None,
                key_id: r.actor_id,
            },
            _ => Actor { kind: r.actor_kind.clone(), id: r.actor_id, email: None, key_id: None },
        };
        Self {
            id: r.id.to_string(),
            at: Timestamp(r.at).to_rfc3339(),
            actor,
            action: r.action,
            target: r.target,
            ip: r.source_ip,
            details: r.details,
        }
    }
}

/// The query, read by hand so that every mistake is a problem document naming the parameter.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    search: AuditSearch,
    user: Option<i64>,
}

/// The parameters this operation takes.
const PARAMS: [&str; 10] = ["after", "before", "cursor", "from", "to", "action", "actor", "key", "user", "limit"];

fn parse(query: Option<&str>) -> Result<Params, (ProblemCode, String)> {
    let mut p = Params { search: AuditSearch { limit: PAGE_DEFAULT, ..AuditSearch::default() }, user: None };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = None;
    let invalid = |name: &str, what: &str| (ProblemCode::InvalidParameter, format!("`{name}` must be {what}"));
    let id = |name: &str, value: &str| {
        value.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| invalid(name, "an id (a whole number)"))
    };
    let time = |name: &str, value: &str| {
        Timestamp::parse(value).map(|t| t.0).map_err(|_| invalid(name, "an RFC 3339 time, e.g. 2026-03-01T00:00:00Z"))
    };
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !PARAMS.contains(&name.as_ref()) {
            return Err((
                ProblemCode::UnknownParameter,
                format!("this operation has no parameter `{name}`; it takes {}", PARAMS.join(", ")),
            ));
        }
        if seen.iter().any(|s| *s == name) {
            return Err((ProblemCode::InvalidParameter, format!("`{name}` is given more than once")));
        }
        seen.push(name.to_string());
        let text = || Some(value.to_string()).filter(|v| !v.trim().is_empty());
        match name.as_ref() {
            "after" => p.search.after_id = Some(id("after", &value)?),
            "before" => p.search.before_id = Some(id("before", &value)?),
            "cursor" => cursor = Some(id("cursor", &value)?),
            "from" => p.search.from = Some(time("from", &value)?),
            "to" => p.search.to = Some(time("to", &value)?),
            "action" => p.search.action = text(),
            "actor" => p.search.actor = text(),
            "key" => p.search.key = Some(id("key", &value)?),
            "user" => p.user = Some(id("user", &value)?),
            _ => {
                p.search.limit = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=PAGE_MAX).contains(n))
                    .ok_or_else(|| invalid("limit", &format!("a whole number from 1 to {PAGE_MAX}")))?;
            }
        }
    }
    if p.search.after_id.is_some() && p.search.before_id.is_some() {
        return Err((
            ProblemCode::InvalidParameter,
            "`after` (forwards, oldest first) and `before` (backwards, newest first) cannot be combined".to_owned(),
        ));
    }
    // A next page's cursor continues in the page's own direction.
    if let Some(c) = cursor {
        if p.search.after_id.is_some() {
            p.search.after_id = Some(c);
        } else {
            p.search.before_id = Some(c);
        }
    }
    Ok(p)
}

async fn list(admin: Admin, State(state): State<AppState>, uri: Uri, RawQuery(query): RawQuery) -> Response {
    let params = match parse(query.as_deref()) {
        Ok(p) => p,
        Err((code, detail)) => return admin.problem(code, detail),
    };
    let limit = params.search.limit;
    let rows = match state.keygate.audit_events(&admin.caller, admin.tenant(), &params.search, params.user).await {
        Ok(rows) => rows,
        Err(e) => return admin.failed(e),
    };
    let next_cursor = (rows.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let page = Page { items: rows.into_iter().map(AuditEvent::from).collect::<Vec<_>>(), next_cursor };
    paged(&admin, &uri, &page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_cursor_continues_forwards_after_and_backwards_otherwise() {
        let forwards = parse(Some("after=10&cursor=60&limit=50")).expect("parse");
        assert_eq!((forwards.search.after_id, forwards.search.before_id), (Some(60), None));
        let backwards = parse(Some("cursor=60")).expect("parse");
        assert_eq!((backwards.search.after_id, backwards.search.before_id), (None, Some(60)));
        assert_eq!(backwards.search.limit, 50);
    }

    #[test]
    fn a_limit_outside_1_to_200_an_unknown_or_repeated_parameter_is_named() {
        for (query, code) in [
            ("limit=201", ProblemCode::InvalidParameter),
            ("limit=0", ProblemCode::InvalidParameter),
            ("offset=3", ProblemCode::UnknownParameter),
            ("key=1&key=2", ProblemCode::InvalidParameter),
            ("from=yesterday", ProblemCode::InvalidParameter),
            ("after=1&before=9", ProblemCode::InvalidParameter),
        ] {
            assert_eq!(parse(Some(query)).map_err(|e| e.0).err(), Some(code), "{query}");
        }
        assert_eq!(parse(Some("limit=200")).expect("200").search.limit, 200);
    }

    #[test]
    fn a_keys_event_names_the_key_and_its_user() {
        let record = AuditRecord {
            id: 41,
            tenant_id: Some(1),
            at: 0,
            actor_kind: "key".into(),
            actor_id: Some(7),
            actor_label: "key 7 (user 3)".into(),
            action: "key.revoked".into(),
            target: "key 9".into(),
            details: String::new(),
            source_ip: Some("203.0.113.5".into()),
        };
        let json = serde_json::to_value(AuditEvent::from(record)).expect("json");
        assert_eq!(json["id"], "41");
        assert_eq!(json["actor"], serde_json::json!({"kind": "key", "id": 3, "keyId": 7}));
        assert_eq!(json["at"], "1970-01-01T00:00:00Z");
    }
}
