//! How far a key reaches into the data (its visibility per resource and access), as whom it acts
//! in the audit log, and the errors the data calls answer with; the per-key query limit.

use keygate_domain::{
    Access, Reach, Resource,
    views::{self, FilterProblem, Guard, View},
};
use keygate_store::Visibility;

use crate::{BadRequest, Caller, ServiceError, ServiceResult, Verified};

pub(super) fn overloaded(budget: crate::Budget, detail: String) -> ServiceError {
    ServiceError::Overloaded { budget, detail, retry_after_secs: 1 }
}

/// Starts a data query of the key, or refuses it: the key runs its limit of queries already.
pub(super) fn start_query<'a>(
    table: &'a crate::query_limits::KeyQueries,
    v: &Verified,
) -> ServiceResult<crate::query_limits::Running<'a>> {
    table.start(v.key().id).map_err(|e| match e {
        crate::query_limits::NotNow::KeyAtLimit(n) => overloaded(
            crate::Budget::KeyQueries,
            format!("this key already runs {n} data queries, its limit (queries_per_key); retry when one has ended"),
        ),
        crate::query_limits::NotNow::TableFull => overloaded(
            crate::Budget::KeyQueries,
            "too many keys are running data queries at once; retry in a moment".to_owned(),
        ),
    })
}

pub(super) fn bad(kind: BadRequest, detail: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest { kind, detail: detail.into() }
}

pub(super) fn problem(p: FilterProblem) -> ServiceError {
    match p {
        FilterProblem::UnknownColumn { .. } => bad(BadRequest::UnknownColumn, p.to_string()),
        FilterProblem::TypeMismatch { .. } => bad(BadRequest::TypeMismatch, p.to_string()),
    }
}

/// How far a key reaches into `resource` for `access`; `None`: not at all (403).
pub(super) fn visibility(v: &Verified, resource: Resource, access: Access) -> Option<Visibility> {
    match v.owner.permissions.effective_reach(v.key().scopes.as_ref(), resource, access)? {
        Reach::All => Some(Visibility::All),
        Reach::Own => Some(Visibility::Own(v.owner.id)),
    }
}

pub(super) fn forbidden(resource: Resource, access: Access) -> ServiceError {
    bad_forbidden(format!("the key may not {} {}", access.as_str(), resource.as_str()))
}

fn bad_forbidden(detail: String) -> ServiceError {
    ServiceError::InsufficientPermission(detail)
}

pub(super) fn view_visibility(v: &Verified, view: &View) -> ServiceResult<Visibility> {
    match view.guard {
        Guard::AnyKey => Ok(Visibility::All),
        Guard::Resource(r) => visibility(v, r, Access::Read).ok_or_else(|| forbidden(r, Access::Read)),
    }
}

pub(super) fn caller(v: &Verified, ip: Option<String>) -> Caller {
    v.caller(ip)
}

pub(super) fn record_view(resource: &str) -> ServiceResult<&'static View> {
    match resource {
        "companies" | "persons" | "jobs" | "tasks" | "documents" | "users" => views::view(resource),
        _ => None,
    }
    .ok_or_else(|| ServiceError::NotFound(format!("the resource `{resource}`")))
}
