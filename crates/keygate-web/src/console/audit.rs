//! The audit log page: every change and every refused call of the tenant, newest first, filtered
//! by time range (UTC days), action, actor, target and key, [`PAGE_SIZE`] events a page with
//! links to newer and older pages, and the same filters as a CSV download of at most
//! [`CSV_MAX_ROWS`] rows. Members of `Configurator` or `User configurator`; the service keeps
//! every read inside the caller's tenant.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use keygate_domain::Timestamp;
use keygate_service::{AuditRecord, AuditSearch};

use super::{Administrator, Chrome, render, service_error_page, when};
use crate::AppState;

/// Events on one page.
pub(crate) const PAGE_SIZE: usize = 50;

/// Rows a CSV export holds at most (newest first); a longer export says so in a header
/// `X-Keygate-Truncated: true` and the page tells to narrow the range.
pub(crate) const CSV_MAX_ROWS: usize = 5_000;

/// The longest text a filter field keeps.
const FILTER_CHARS: usize = 200;

#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
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
    pub from: String,
    pub to: String,
    pub actions: Vec<Choice>,
    pub actor: String,
    pub target: String,
    pub key: String,
    pub error: Option<String>,
    pub events: Vec<EventRow>,
    pub newer: Option<String>,
    pub older: Option<String>,
    pub csv: String,
    pub page_size: usize,
    pub csv_max: usize,
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

fn clip(text: &str) -> String {
    text.trim().chars().take(FILTER_CHARS).collect()
}

/// A day `YYYY-MM-DD` (UTC) as milliseconds at its start, or why not.
fn day(text: &str, name: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() != 10 {
        return Err(format!("{name} `{}` is not a day; write it as YYYY-MM-DD", clip(text)));
    }
    Timestamp::parse(text)
        .map(|t| Some(t.0))
        .map_err(|_| format!("{name} `{text}` is not a day; write it as YYYY-MM-DD"))
}

impl AuditQuery {
    /// The search these parameters ask for (without paging), or what is wrong with them.
    fn search(&self) -> Result<AuditSearch, String> {
        let from = day(&self.from, "From")?;
        let to = day(&self.to, "To")?.map(|t| t + 86_400_000);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err("From is after To: the range holds no day".to_owned());
        }
        let key = match self.key.trim() {
            "" => None,
            k => Some(k.parse::<i64>().map_err(|_| format!("Key id `{}` is not a number", clip(k)))?),
        };
        let some = |t: &str| Some(clip(t)).filter(|t| !t.is_empty());
        Ok(AuditSearch {
            from,
            to,
            action: some(&self.action),
            actor: some(&self.actor),
            target: some(&self.target),
            key,
            ..AuditSearch::default()
        })
    }

    /// The query string of these filters (no paging), for links.
    fn filters(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("action", &self.action),
            ("actor", &self.actor),
            ("target", &self.target),
            ("key", &self.key),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", encode(&clip(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encoding for a query value: everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with(filters: &str, paging: &str) -> String {
    if filters.is_empty() { format!("/console/audit?{paging}") } else { format!("/console/audit?{filters}&{paging}") }
}

/// The audit log. Members of `Configurator` or `User configurator`.
pub(crate) async fn audit_page(
    State(state): State<AppState>,
    Administrator(ctx): Administrator,
    Query(q): Query<AuditQuery>,
) -> Response {
    let tenant = ctx.session.tenant.policy.id;
    let filters = q.filters();
    let (status, error, search) = match q.search() {
        Ok(s) => (StatusCode::OK, None, Some(s)),
        Err(why) => (StatusCode::UNPROCESSABLE_ENTITY, Some(why), None),
    };
    let mut events: Vec<AuditRecord> = Vec::new();
    let (mut newer, mut older) = (None, None);
    if let Some(mut search) = search {
        search.before_id = q.before.trim().parse().ok();
        search.after_id = if search.before_id.is_none() { q.after.trim().parse().ok() } else { None };
        // One more than a page tells whether there is a further page in the direction read.
        search.limit = u32::try_from(PAGE_SIZE + 1).unwrap_or(u32::MAX);
        events = match state.keygate.search_audit(&ctx.session.caller, tenant, &search).await {
            Ok(e) => e,
            Err(e) => return service_error_page(&ctx, e),
        };
        let reading_newer = search.after_id.is_some();
        let further = events.len() > PAGE_SIZE;
        if further {
            if reading_newer {
                events.remove(0);
            } else {
                events.truncate(PAGE_SIZE);
            }
        }
        let (has_newer, has_older) =
            if reading_newer { (further, true) } else { (search.before_id.is_some(), further) };
        if let (true, Some(first)) = (has_newer, events.first()) {
            newer = Some(with(&filters, &format!("after={}", first.id)));
        }
        if let (true, Some(last)) = (has_older, events.last()) {
            older = Some(with(&filters, &format!("before={}", last.id)));
        }
    }
    let action = clip(&q.action);
    let mut actions =
        vec![Choice { value: String::new(), label: "any action".to_owned(), selected: action.is_empty() }];
    actions.extend(ACTIONS.iter().map(|(v, l)| Choice {
        value: (*v).to_owned(),
        label: format!("{l} ({v})"),
        selected: action == *v,
    }));
    if !action.is_empty() && !ACTIONS.iter().any(|(v, _)| *v == action) {
        actions.push(Choice { value: action.clone(), label: format!("starts with {action}"), selected: true });
    }
    render(
        status,
        &AuditPage {
            chrome: ctx.chrome(),
            from: clip(&q.from),
            to: clip(&q.to),
            actions,
            actor: clip(&q.actor),
            target: clip(&q.target),
            key: clip(&q.key),
            error,
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
            newer,
            older,
            csv: if filters.is_empty() {
                "/console/audit.csv".to_owned()
            } else {
                format!("/console/audit.csv?{filters}")
            },
            page_size: PAGE_SIZE,
            csv_max: CSV_MAX_ROWS,
        },
    )
}

/// The audit log as CSV with the page's filters: every matching event, newest first, at most
/// [`CSV_MAX_ROWS`]. Members of `Configurator` or `User configurator`.
pub(crate) async fn audit_csv(
    State(state): State<AppState>,
    Administrator(ctx): Administrator,
    Query(q): Query<AuditQuery>,
) -> Response {
    let mut search = match q.search() {
        Ok(s) => s,
        Err(why) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], why)
                .into_response();
        }
    };
    search.limit = u32::try_from(CSV_MAX_ROWS + 1).unwrap_or(u32::MAX);
    let tenant = ctx.session.tenant.policy.id;
    let mut events = match state.keygate.search_audit(&ctx.session.caller, tenant, &search).await {
        Ok(e) => e,
        Err(e) => return service_error_page(&ctx, e),
    };
    let truncated = events.len() > CSV_MAX_ROWS;
    events.truncate(CSV_MAX_ROWS);
    let mut body = String::from("id,time_utc,actor,action,target,details,source_ip\r\n");
    for e in &events {
        let fields = [
            e.id.to_string(),
            Timestamp(e.at).to_rfc3339(),
            e.actor_label.clone(),
            e.action.clone(),
            e.target.clone(),
            e.details.clone(),
            e.source_ip.clone().unwrap_or_default(),
        ];
        body.push_str(&fields.iter().map(|f| cell(f)).collect::<Vec<_>>().join(","));
        body.push_str("\r\n");
    }
    let name = format!(
        "attachment; filename=\"audit-{}-{}.csv\"",
        ctx.session.tenant.policy.slug.as_str(),
        Timestamp::now().to_date_string()
    );
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-keygate-truncated", HeaderValue::from_static(if truncated { "true" } else { "false" }));
    response
}

/// One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break; a leading `=`,
/// `+`, `-` or `@` (a formula to a spreadsheet) gets a `'` first.
fn cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_cell_is_quoted_when_needed_and_a_formula_is_defused() {
        assert_eq!(cell("key 7"), "key 7");
        assert_eq!(cell("a, b"), "\"a, b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn a_bad_day_or_an_empty_range_is_explained_and_a_good_one_covers_whole_days() {
        let q = |from: &str, to: &str| AuditQuery { from: from.into(), to: to.into(), ..AuditQuery::default() };
        assert!(q("2026-13-01", "").search().unwrap_err().contains("is not a day"));
        assert!(q("yesterday", "").search().unwrap_err().contains("YYYY-MM-DD"));
        assert!(q("2026-12-08", "2026-12-07").search().unwrap_err().contains("From is after To"));
        let s = q("2026-12-07", "2026-12-07").search().expect("one day");
        assert_eq!(s.to.zip(s.from).map(|(t, f)| t - f), Some(86_400_000));
    }

    #[test]
    fn filter_links_are_percent_encoded() {
        let q = AuditQuery { actor: "ada@acme.example".into(), target: "key 7&x=1".into(), ..AuditQuery::default() };
        assert_eq!(q.filters(), "actor=ada%40acme.example&target=key%207%26x%3D1");
    }
}
