//! Reading the data: a page of a view with its filter, columns, properties and paging, and one
//! record by id, always as the key's user with the key's effective permissions.

use keygate_domain::{
    UnitId,
    filter::{self, Expr},
    views::{self, Column, FilterProblem, check_filter},
};
use keygate_store::{Properties, RowShape, ViewQuery};

use super::{
    access::{bad, overloaded, problem, record_view, start_query, view_visibility},
    paging::{HintKey, filter_digest},
};
use crate::{BadRequest, Keygate, ServiceError, ServiceResult, Verified};

/// The query parameters of a view read, as received.
#[derive(Debug, Clone, Default)]
pub struct ViewParams {
    pub columns: Option<String>,
    pub properties: Option<String>,
    pub filter: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

/// One page of a view, already serialised: `{"metadata":{…},"data":[…]}` is `head`, `data` and
/// `}`, kept apart so that the rows are never copied to make the body.
#[derive(Debug, Clone)]
pub struct Page {
    /// `{"metadata":{…},"data":`
    pub head: String,
    /// The rows, a JSON array.
    pub data: String,
    pub count: usize,
    pub next_offset: Option<u64>,
    /// The id of the page's last row, where the next page continues.
    pub last_id: Option<i64>,
    /// The page's share of the page memory budget: keep it until the body is sent.
    pub memory: crate::PageHold,
}

impl Page {
    /// What closes the body after `head` and `data`.
    pub const TAIL: &'static str = "}";

    /// The whole body in one text (a copy; the web layer sends the parts).
    pub fn body(&self) -> String {
        [self.head.as_str(), &self.data, Self::TAIL].concat()
    }
}

pub const DEFAULT_LIMIT: u32 = 1000;
pub const MAX_LIMIT: u32 = 10_000;

impl Keygate {
    /// The most rows a page of a view holds (`limit`).
    pub const MAX_VIEW_LIMIT: u32 = MAX_LIMIT;

    /// A page of a view. Rows come in id order; the page stops before `max_page_bytes`, and
    /// `nextOffset` continues exactly where it stopped.
    pub async fn read_view(&self, v: &Verified, unit: UnitId, name: &str, params: &ViewParams) -> ServiceResult<Page> {
        let view = views::view(name).ok_or_else(|| {
            let names: Vec<&str> = views::VIEWS.iter().map(|v| v.name).collect();
            ServiceError::NotFound(format!("the view `{name}` (views: {})", names.join(", ")))
        })?;
        let visibility = view_visibility(v, view)?;
        let limit = match params.limit.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_LIMIT,
            Some(t) => t.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                bad(
                    BadRequest::InvalidParameter,
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}, not `{t}`"),
                )
            })?,
        };
        let offset = match params.offset.as_deref().map(str::trim) {
            None | Some("") => 0,
            Some(t) => t.parse::<u64>().ok().filter(|n| *n <= i64::MAX as u64).ok_or_else(|| {
                bad(BadRequest::InvalidParameter, format!("offset must be a whole number from 0, not `{t}`"))
            })?,
        };
        let columns: Vec<&'static Column> = match params.columns.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            None => view.columns.iter().collect(),
            Some(list) => list
                .split(',')
                .map(|c| {
                    view.column(c.trim()).ok_or_else(|| {
                        problem(FilterProblem::UnknownColumn {
                            column: c.trim().to_owned(),
                            known: view.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
                        })
                    })
                })
                .collect::<ServiceResult<_>>()?,
        };
        let wanted_properties: Option<Vec<String>> =
            match params.properties.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                None => None,
                Some(_) if !view.properties => {
                    return Err(bad(BadRequest::UnknownColumn, format!("the view `{name}` has no custom properties")));
                }
                Some(list) => {
                    let keys: Vec<String> =
                        list.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
                    if let Some(bad_key) = keys
                        .iter()
                        .find(|k| k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    {
                        return Err(bad(
                            BadRequest::InvalidParameter,
                            format!("`{bad_key}` is not a property name (letters, digits, `_` and `-`, at most 64)"),
                        ));
                    }
                    Some(keys)
                }
            };
        let properties = match (&wanted_properties, view.properties, params.columns.is_some()) {
            (Some(keys), _, _) => Properties::Only(keys),
            // Asking for columns leaves properties out unless they are asked for too.
            (None, true, false) => Properties::All,
            _ => Properties::Omit,
        };
        let filter: Option<Expr> = match params.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(text) => {
                let expr = filter::parse(text).map_err(|e| bad(BadRequest::InvalidFilter, e.to_string()))?;
                check_filter(view, &expr).map_err(problem)?;
                Some(expr)
            }
        };
        let shape = RowShape { columns, properties };
        let hint = HintKey {
            tenant: v.tenant.id,
            unit,
            view: view.name,
            visibility,
            filter: filter_digest(&filter.as_ref().map(ToString::to_string).unwrap_or_default()),
            offset,
        };
        let after_id = if offset == 0 { None } else { self.inner.page_hints.get(&hint) };
        // Room for the metadata envelope, whose numbers are at most 20 digits each.
        let max_bytes = self.config().max_page_bytes.saturating_sub(128);
        let _running = start_query(&self.inner.key_queries, v)?;
        let memory = self.inner.page_memory.hold(64 * 1024).await.map_err(|_| {
            overloaded(
                crate::Budget::PageMemory,
                format!(
                    "the pages being read now take the whole page memory budget of {} MiB (page_memory_budget_mib); \
                     retry in a moment",
                    self.inner.page_memory.budget_bytes() >> 20
                ),
            )
        })?;
        let growth = memory.growth();
        let time_budget = self.config().query_time_budget;
        let q = ViewQuery {
            view,
            tenant: v.tenant.id,
            unit,
            visibility,
            filter: filter.as_ref(),
            limit,
            offset,
            max_bytes,
            after_id,
            shape: &shape,
            time_budget: Some(time_budget),
            growth: Some(&growth),
        };
        let rows = self.db().records().query(&q).await.map_err(|e| {
            if e.is_query_timeout() {
                overloaded(
                    crate::Budget::QueryTime,
                    format!(
                        "the query ran past its time budget of {} ms (query_time_budget_ms); narrow the filter, ask for \
                         fewer rows, or retry",
                        time_budget.as_millis()
                    ),
                )
            } else {
                e.into()
            }
        })?;
        let fetched = u64::try_from(rows.fetched).unwrap_or(0);
        let count = u64::try_from(rows.kept).unwrap_or(0);
        if count == 0 && fetched > 0 && memory.denied() {
            return Err(overloaded(
                crate::Budget::PageMemory,
                format!(
                    "the pages being read now take the page memory budget of {} MiB (page_memory_budget_mib); retry \
                     in a moment",
                    self.inner.page_memory.budget_bytes() >> 20
                ),
            ));
        }
        if count == 0 && fetched > 0 {
            return Err(ServiceError::TooLarge(format!(
                "the row at offset {offset} alone is larger than the {} byte page limit; ask for fewer columns or properties",
                self.config().max_page_bytes
            )));
        }
        // More rows exist when the database found more than the page holds (by count or by size).
        let next_offset = (fetched > count).then_some(offset + count);
        if let (Some(next), Some(last)) = (next_offset, rows.last_id) {
            self.inner.page_hints.put(HintKey { offset: next, ..hint }, last);
        }
        let head = format!(
            "{{\"metadata\":{{\"count\":{count},\"limit\":{limit},\"nextOffset\":{}}},\"data\":",
            next_offset.map_or("null".to_owned(), |n| n.to_string()),
        );
        memory.shrink_to(head.len() + rows.data.len() + 1);
        Ok(Page { head, data: rows.data, count: count as usize, next_offset, last_id: rows.last_id, memory })
    }

    /// One record by id, or `NotFound` when it is outside what the key may see.
    pub async fn read_record(&self, v: &Verified, unit: UnitId, resource: &str, id: i64) -> ServiceResult<String> {
        let _running = start_query(&self.inner.key_queries, v)?;
        let view = record_view(resource)?;
        let visibility = view_visibility(v, view)?;
        self.db()
            .records()
            .get(view, v.tenant.id, unit, visibility, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("{resource} {id}")))
    }
}
