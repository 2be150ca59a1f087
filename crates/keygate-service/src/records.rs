//! The data API's use cases: reading views with filters and paging, and reading and writing
//! records, always as the key's user with the key's effective permissions.

use keygate_domain::{
    Access, Reach, Resource, UnitId,
    filter::{self, Expr},
    views::{self, Bound, Column, FilterProblem, Guard, View, check_filter, is_date},
};
use keygate_store::{FieldValue, Idempotency, Properties, RecordWrite, RowShape, SqlType, ViewQuery, Visibility};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::{BadRequest, Caller, FieldError, Keygate, ServiceError, ServiceResult, Verified};

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

fn overloaded(budget: crate::Budget, detail: String) -> ServiceError {
    ServiceError::Overloaded { budget, detail, retry_after_secs: 1 }
}

/// Starts a data query of the key, or refuses it: the key runs its limit of queries already.
fn start_query<'a>(
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

/// Identifies "the same listing at this offset": tenant, unit, view, reach and filter. The filter
/// is held as the SHA-256 of its canonical text, so an entry has a fixed size (no heap) whatever
/// the filter's length: the hints' memory is bounded by [`PageHints::MAX`] × the entry size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HintKey {
    tenant: keygate_domain::TenantId,
    unit: UnitId,
    view: &'static str,
    visibility: Visibility,
    filter: [u8; 32],
    offset: u64,
}

fn filter_digest(canonical: &str) -> [u8; 32] {
    Sha256::digest(canonical.as_bytes()).into()
}

/// Keyset continuations behind offset paging: after serving a page, remember the id of its last
/// row under the next page's offset, so that the next page is read with `id > last` instead of
/// skipping `offset` rows again. Paging a view through stays linear instead of quadratic, and a
/// client walking `nextOffset` sees every row exactly once even while rows are inserted or
/// deleted before its position. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct PageHints {
    map: std::sync::Mutex<std::collections::HashMap<HintKey, i64>>,
}

impl PageHints {
    /// Entries kept before the map is cleared: at most ~13 MB (entry and hash-table overhead).
    const MAX: usize = 100_000;

    fn get(&self, key: &HintKey) -> Option<i64> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied()
    }

    fn put(&self, key: HintKey, last_id: i64) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, last_id);
    }
}

pub const DEFAULT_LIMIT: u32 = 1000;
pub const MAX_LIMIT: u32 = 10_000;

fn bad(kind: BadRequest, detail: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest { kind, detail: detail.into() }
}

fn problem(p: FilterProblem) -> ServiceError {
    match p {
        FilterProblem::UnknownColumn { .. } => bad(BadRequest::UnknownColumn, p.to_string()),
        FilterProblem::TypeMismatch { .. } => bad(BadRequest::TypeMismatch, p.to_string()),
    }
}

/// How far a key reaches into `resource` for `access`; `None`: not at all (403).
fn visibility(v: &Verified, resource: Resource, access: Access) -> Option<Visibility> {
    match v.owner.permissions.effective_reach(v.key().scopes.as_ref(), resource, access)? {
        Reach::All => Some(Visibility::All),
        Reach::Own => Some(Visibility::Own(v.owner.id)),
    }
}

fn forbidden(resource: Resource, access: Access) -> ServiceError {
    bad_forbidden(format!("the key may not {} {}", access.as_str(), resource.as_str()))
}

fn bad_forbidden(detail: String) -> ServiceError {
    ServiceError::InsufficientPermission(detail)
}

fn view_visibility(v: &Verified, view: &View) -> ServiceResult<Visibility> {
    match view.guard {
        Guard::AnyKey => Ok(Visibility::All),
        Guard::Resource(r) => visibility(v, r, Access::Read).ok_or_else(|| forbidden(r, Access::Read)),
    }
}

fn caller(v: &Verified, ip: Option<String>) -> Caller {
    Caller::Key {
        key_id: v.key().id,
        user_id: v.owner.id,
        tenant: v.tenant.id,
        permissions: v.permissions().clone(),
        units: keygate_domain::Power::of_key(
            &keygate_domain::Power::new(v.owner.permissions.clone(), v.owner.units.as_deref()),
            v.key().scopes.as_ref(),
            v.key().units.as_deref(),
        )
        .units
        .map(|u| u.into_iter().collect()),
        ip,
    }
}

impl Keygate {
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

    /// Creates a record; answers `(status, body)`. With an idempotency key, a retry of the same
    /// request gets the first answer, and a different request with the same key is refused.
    pub async fn create_record(
        &self,
        v: &Verified,
        unit: UnitId,
        resource: &str,
        body: &[u8],
        idempotency_key: Option<&str>,
        ip: Option<String>,
    ) -> ServiceResult<(u16, String)> {
        let spec = write_spec(resource)?;
        let reach =
            visibility(v, spec.resource, Access::Write).ok_or_else(|| forbidden(spec.resource, Access::Write))?;
        // The unit is part of the request: the same key and body sent to another unit is another
        // request (refused as a reuse), never answered with the first unit's record.
        let hash: [u8; 32] = Sha256::new()
            .chain_update(unit.0.to_le_bytes())
            .chain_update(resource.as_bytes())
            .chain_update(b"\0")
            .chain_update(body)
            .finalize()
            .into();
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
                return Err(bad(
                    BadRequest::InvalidParameter,
                    "the Idempotency-Key header must be 1 to 255 printable characters",
                ));
            }
            if let Some(answer) = self.idempotent(v, key, &hash).await? {
                return Ok(answer);
            }
        }
        let object = parse_object(body)?;
        if resource == "users" {
            let idem = idempotency_key.map(|key| Idempotency { key_id: v.key().id.0, key, request_hash: &hash });
            // A retry after the first answer was stored got it above; the user and the answer
            // are written in one transaction.
            return self.create_user_record(v, &object, idem, ip).await;
        }
        let mut write = self.validate(v, unit, spec, &object, true, reach).await?;
        let mut number = None;
        if spec.table == "documents" && !write.fields.iter().any(|(c, _)| *c == "number") {
            let n = self.db().records().count_documents(v.tenant.id).await? + 1;
            let doc_type = write.fields.iter().find(|(c, _)| *c == "type").and_then(|(_, f)| match f {
                FieldValue::Bound(Bound::Text(t)) => Some(t.clone()),
                _ => None,
            });
            let prefix: String = doc_type
                .unwrap_or_default()
                .split('.')
                .take(2)
                .map(|p| p.chars().take(3).collect::<String>())
                .collect::<Vec<_>>()
                .join("");
            let generated = format!(
                "{prefix}-{}-{n:06}",
                keygate_domain::Timestamp::now().to_date_string().get(..4).unwrap_or("0000")
            );
            write.fields.push(("number", FieldValue::Bound(Bound::Text(generated.clone()))));
            number = Some(generated);
        } else if spec.table == "documents" {
            number = write.fields.iter().find(|(c, _)| *c == "number").and_then(|(_, f)| match f {
                FieldValue::Bound(Bound::Text(t)) => Some(t.clone()),
                _ => None,
            });
        }
        let actor = caller(v, ip);
        let audit = actor.audit(v.tenant.id, "record.created", resource).details(format!("via key {}", v.key().id));
        let idem = idempotency_key.map(|key| Idempotency { key_id: v.key().id.0, key, request_hash: &hash });
        let answer = |id: i64| match &number {
            Some(n) => serde_json::json!({ "id": id, "number": n }).to_string(),
            None => serde_json::json!({ "id": id }).to_string(),
        };
        match self.db().records().insert(v.tenant.id, unit, &write, &audit, idem, answer).await {
            Ok((_, body)) => Ok((201, body)),
            Err(keygate_store::StoreError::IdempotencyKeyTaken) => {
                let key = idempotency_key.unwrap_or_default();
                self.idempotent(v, key, &hash)
                    .await?
                    .ok_or_else(|| ServiceError::Conflict("the idempotent request is still in progress; retry".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn idempotent(&self, v: &Verified, key: &str, hash: &[u8; 32]) -> ServiceResult<Option<(u16, String)>> {
        match self.db().records().idempotent_answer(v.tenant.id, v.key().id.0, key).await? {
            None => Ok(None),
            Some((stored, status, body)) if stored.as_slice() == hash.as_slice() => {
                Ok(Some((u16::try_from(status).unwrap_or(201), body)))
            }
            Some(_) => Err(bad(
                BadRequest::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            )),
        }
    }

    /// Changes a record. A record outside what the key may see is `NotFound`.
    pub async fn update_record(
        &self,
        v: &Verified,
        unit: UnitId,
        resource: &str,
        id: i64,
        body: &[u8],
        ip: Option<String>,
    ) -> ServiceResult<()> {
        let spec = write_spec(resource)?;
        let reach =
            visibility(v, spec.resource, Access::Write).ok_or_else(|| forbidden(spec.resource, Access::Write))?;
        let object = parse_object(body)?;
        if resource == "users" {
            return self.update_user_record(v, id, &object, ip).await;
        }
        let owner = self.db().records().owner_of(spec.table, v.tenant.id, unit, id).await?;
        match (owner, reach) {
            (None, _) => return Err(ServiceError::NotFound(format!("{resource} {id}"))),
            (Some(o), Visibility::Own(me)) if o != me.0 => {
                // Visible for reading perhaps, but not for writing: only say so when it is readable.
                let readable = self.read_record(v, unit, resource, id).await.is_ok();
                return Err(if readable {
                    forbidden(spec.resource, Access::Write)
                } else {
                    ServiceError::NotFound(format!("{resource} {id}"))
                });
            }
            _ => {}
        }
        let write = self.validate(v, unit, spec, &object, false, reach).await?;
        let actor = caller(v, ip);
        let audit = actor.audit(v.tenant.id, "record.updated", resource).details(format!(
            "via key {}; fields: {}",
            v.key().id,
            object.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        self.db().records().update(v.tenant.id, unit, id, &write, &audit).await?;
        Ok(())
    }

    async fn create_user_record(
        &self,
        v: &Verified,
        object: &Map<String, Json>,
        idempotency: Option<Idempotency<'_>>,
        ip: Option<String>,
    ) -> ServiceResult<(u16, String)> {
        let mut errors = Vec::new();
        let text = |k: &str, errors: &mut Vec<FieldError>| match object.get(k) {
            Some(Json::String(s)) => s.clone(),
            Some(_) => {
                errors.push(FieldError { field: k.into(), message: "must be a string".into() });
                String::new()
            }
            None => {
                errors.push(FieldError { field: k.into(), message: "is required".into() });
                String::new()
            }
        };
        const FIELDS: [&str; 6] = ["name", "email", "category", "groupNames", "groups", "units"];
        for k in object.keys() {
            if !FIELDS.contains(&k.as_str()) {
                errors.push(FieldError {
                    field: k.clone(),
                    message: format!("is not a field of users ({})", FIELDS.join(", ")),
                });
            }
        }
        let name = text("name", &mut errors);
        let email = text("email", &mut errors);
        let category = match object.get("category") {
            None => "programmatic".to_owned(),
            Some(_) => text("category", &mut errors),
        };
        let groups = user_groups_field(object, &mut errors).unwrap_or_default();
        let units = user_units_field(object, &mut errors).flatten();
        if !errors.is_empty() {
            return Err(ServiceError::InvalidFields(errors));
        }
        let id = self
            .create_user_once(
                &caller(v, ip),
                v.tenant.id,
                crate::CreateUser { email, name, category, groups, units, password: None },
                idempotency,
            )
            .await
            .map_err(as_field_error)?;
        Ok((201, serde_json::json!({ "id": id }).to_string()))
    }

    /// `active`, `groups` (or the original's `groupNames`) and `units` of a user; each change
    /// passes the grant ceiling, and nothing is written unless every field is valid.
    async fn update_user_record(
        &self,
        v: &Verified,
        id: i64,
        object: &Map<String, Json>,
        ip: Option<String>,
    ) -> ServiceResult<()> {
        let mut errors: Vec<FieldError> = Vec::new();
        for (k, val) in object {
            match k.as_str() {
                "active" if !val.is_boolean() => {
                    errors.push(FieldError { field: k.clone(), message: "must be true or false".into() });
                }
                "active" | "groups" | "groupNames" | "units" => {}
                _ => errors.push(FieldError {
                    field: k.clone(),
                    message: "cannot be changed through the API; only `active`, `groups` and `units` can".into(),
                }),
            }
        }
        let groups = user_groups_field(object, &mut errors);
        let units = user_units_field(object, &mut errors);
        if !errors.is_empty() {
            return Err(ServiceError::InvalidFields(errors));
        }
        let user = keygate_domain::UserId(id);
        // A user the key cannot see does not exist for it.
        self.user_by_id(v.tenant.id, user).await?;
        // One judged write: every field is written, or (refused, invalid) none is.
        let change = crate::ChangeUser { groups, units, active: object.get("active").and_then(Json::as_bool) };
        self.change_user(&caller(v, ip), v.tenant.id, user, change).await.map_err(as_field_error)
    }

    /// Checks every field of `object` against `spec`; all errors are reported together.
    async fn validate(
        &self,
        v: &Verified,
        unit: UnitId,
        spec: &WriteSpec,
        object: &Map<String, Json>,
        creating: bool,
        reach: Visibility,
    ) -> ServiceResult<RecordWrite> {
        let mut errors = Vec::new();
        let mut fields = Vec::new();
        for (name, value) in object {
            let Some(field) = spec.fields.iter().find(|f| f.name == name) else {
                let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                errors.push(FieldError {
                    field: name.clone(),
                    message: format!("is not a field of {}; the fields are: {}", spec.name, known.join(", ")),
                });
                continue;
            };
            match self.field_value(v, unit, field, value).await {
                Ok(fv) => fields.push((field.column, fv)),
                Err(message) => errors.push(FieldError { field: name.clone(), message }),
            }
        }
        if creating {
            for f in spec.fields.iter().filter(|f| f.required) {
                if !object.contains_key(f.name) {
                    errors.push(FieldError { field: f.name.to_owned(), message: "is required".into() });
                }
            }
        }
        let owner_column = spec.owner_field;
        let owner_set = fields.iter().find(|(c, _)| *c == owner_column).map(|(_, f)| f.clone());
        match (reach, owner_set) {
            (Visibility::Own(me), Some(FieldValue::Bound(Bound::Int(o)))) if o != me.0 => {
                errors.push(FieldError {
                    field: "ownerId".into(),
                    message: "the key may only write its own user's records".into(),
                });
            }
            (_, None) if creating => fields.push((owner_column, FieldValue::Bound(Bound::Int(v.owner.id.0)))),
            _ => {}
        }
        if let (Visibility::Own(me), Some((_, FieldValue::Bound(Bound::Int(u))))) =
            (reach, fields.iter().find(|(c, _)| *c == "user_id"))
            && *u != me.0
        {
            errors.push(FieldError {
                field: "userId".into(),
                message: "the key may only record its own user's time".into(),
            });
        }
        if spec.table == "time_entries" && creating && !fields.iter().any(|(c, _)| *c == "user_id") {
            fields.push(("user_id", FieldValue::Bound(Bound::Int(v.owner.id.0))));
        }
        if errors.is_empty() {
            Ok(RecordWrite { table: spec.table, fields })
        } else {
            Err(ServiceError::InvalidFields(errors))
        }
    }

    async fn field_value(
        &self,
        v: &Verified,
        unit: UnitId,
        field: &FieldSpec,
        value: &Json,
    ) -> Result<FieldValue, String> {
        if value.is_null() {
            let ty = match field.kind {
                Kind::Bool => SqlType::Bool,
                Kind::Money | Kind::Ref(_) | Kind::UserRef => SqlType::Int,
                Kind::Hours | Kind::Estimate => SqlType::Float,
                Kind::Text(_) | Kind::DocType | Kind::Date | Kind::Properties | Kind::Tags => SqlType::Text,
            };
            return if field.required || NOT_NULL.contains(&field.column) {
                Err("cannot be null".into())
            } else {
                Ok(FieldValue::Null(ty))
            };
        }
        let text = || value.as_str().map(str::to_owned).ok_or_else(|| "must be a string".to_owned());
        Ok(FieldValue::Bound(match field.kind {
            Kind::Text(max) => {
                let t = text()?;
                if t.trim().is_empty() && field.required {
                    return Err("must not be empty".into());
                }
                if t.contains('\0') {
                    return Err(NUL_REFUSED.into());
                }
                if t.chars().count() > max {
                    return Err(format!("must be at most {max} characters"));
                }
                Bound::Text(t)
            }
            Kind::DocType => {
                let t = text()?;
                if !DOCUMENT_TYPES.contains(&t.as_str()) {
                    return Err(format!("must be one of {}", DOCUMENT_TYPES.join(", ")));
                }
                Bound::Text(t)
            }
            Kind::Bool => Bound::Bool(value.as_bool().ok_or("must be true or false")?),
            Kind::Date => {
                let t = text()?;
                if !is_date(&t) {
                    return Err("must be a date YYYY-MM-DD".into());
                }
                Bound::Text(t)
            }
            Kind::Money => {
                let n = value
                    .as_f64()
                    .filter(|n| n.is_finite() && n.abs() < 1e13)
                    .ok_or("must be an amount such as 1250.50")?;
                Bound::Int((n * 100.0).round() as i64)
            }
            Kind::Hours => {
                let n = value
                    .as_f64()
                    .filter(|n| *n > 0.0 && *n <= 24.0)
                    .ok_or("must be a number of hours above 0 and at most 24")?;
                Bound::Float(n)
            }
            Kind::Estimate => Bound::Float(
                value.as_f64().filter(|n| *n >= 0.0 && *n < 1e6).ok_or("must be a non-negative number of hours")?,
            ),
            Kind::Ref(table) => {
                let id = value.as_i64().filter(|i| *i > 0).ok_or("must be a record id")?;
                // Only a record of this unit that the key may read can be referred to; any other
                // gets the answer a missing one gets, so a reference is no existence oracle.
                let reach =
                    SPECS.iter().find(|s| s.table == table).and_then(|s| visibility(v, s.resource, Access::Read));
                let owner = self
                    .db()
                    .records()
                    .owner_of(table, v.tenant.id, unit, id)
                    .await
                    .map_err(|_| "could not be checked".to_owned())?;
                let visible = match (owner, reach) {
                    (Some(_), Some(Visibility::All)) => true,
                    (Some(owner), Some(Visibility::Own(me))) => owner == me.0,
                    _ => false,
                };
                if !visible {
                    return Err(format!("there is no {table} record {id}"));
                }
                Bound::Int(id)
            }
            Kind::UserRef => {
                let id = value.as_i64().filter(|i| *i > 0).ok_or("must be a user id")?;
                if self
                    .db()
                    .users()
                    .by_id(v.tenant.id, keygate_domain::UserId(id))
                    .await
                    .map_err(|_| "could not be checked".to_owned())?
                    .is_none()
                {
                    return Err(format!("there is no user {id}"));
                }
                Bound::Int(id)
            }
            Kind::Properties => {
                if !value.is_object() {
                    return Err("must be a JSON object".into());
                }
                if has_nul(value) {
                    return Err(NUL_REFUSED.into());
                }
                let t = value.to_string();
                if t.len() > 1_000_000 {
                    return Err("must be at most 1 MB".into());
                }
                Bound::Text(t)
            }
            Kind::Tags => match value.as_array() {
                Some(_) if has_nul(value) => return Err(NUL_REFUSED.into()),
                Some(items) if items.iter().all(Json::is_string) && items.len() <= 100 => {
                    Bound::Text(value.to_string())
                }
                _ => return Err("must be a list of at most 100 strings".into()),
            },
        }))
    }
}

/// Why a text holding U+0000 is refused: PostgreSQL cannot store it (SQLite can), and one API
/// must not accept on one engine what it fails on the other.
const NUL_REFUSED: &str = "must not contain the character U+0000";

/// Whether any string or member name inside `value` holds U+0000.
fn has_nul(value: &Json) -> bool {
    match value {
        Json::String(s) => s.contains('\0'),
        Json::Array(items) => items.iter().any(has_nul),
        Json::Object(members) => members.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// `groups` or `groupNames`: a list of group names; `None` when absent.
fn user_groups_field(object: &Map<String, Json>, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let (field, value) = ["groups", "groupNames"].into_iter().find_map(|k| object.get(k).map(|v| (k, v)))?;
    if object.contains_key("groups") && object.contains_key("groupNames") {
        errors.push(FieldError { field: "groups".into(), message: "give `groups` or `groupNames`, not both".into() });
        return None;
    }
    match value {
        Json::Array(items) if items.iter().all(Json::is_string) => {
            Some(items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect())
        }
        _ => {
            errors.push(FieldError { field: field.into(), message: "must be a list of group names".into() });
            None
        }
    }
}

/// `units`: a list of unit numbers, or `null` for every unit; `None` when absent.
fn user_units_field(object: &Map<String, Json>, errors: &mut Vec<FieldError>) -> Option<Option<Vec<UnitId>>> {
    match object.get("units")? {
        Json::Null => Some(None),
        Json::Array(items) if !items.is_empty() && items.iter().all(|u| u.as_i64().is_some()) => {
            Some(Some(items.iter().filter_map(Json::as_i64).map(UnitId).collect()))
        }
        _ => {
            errors.push(FieldError {
                field: "units".into(),
                message: "must be a non-empty list of unit numbers, or null for every unit".into(),
            });
            None
        }
    }
}

/// Invalid input of a user write, reported as a field error like the record endpoints do.
fn as_field_error(e: ServiceError) -> ServiceError {
    match e {
        ServiceError::Invalid(m) => ServiceError::InvalidFields(vec![FieldError { field: "user".into(), message: m }]),
        other => other,
    }
}

fn parse_object(body: &[u8]) -> ServiceResult<Map<String, Json>> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(ServiceError::InvalidFields(vec![FieldError {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }])),
        Err(e) => Err(ServiceError::InvalidFields(vec![FieldError {
            field: "body".into(),
            message: format!("is not valid JSON: {e}"),
        }])),
    }
}

fn record_view(resource: &str) -> ServiceResult<&'static View> {
    match resource {
        "companies" | "persons" | "jobs" | "tasks" | "documents" | "users" => views::view(resource),
        _ => None,
    }
    .ok_or_else(|| ServiceError::NotFound(format!("the resource `{resource}`")))
}

/// Columns the schema declares NOT NULL: a JSON null for them is a field error, not a 500.
const NOT_NULL: &[&str] = &[
    "is_client",
    "is_supplier",
    "is_disabled",
    "properties",
    "tags",
    "status",
    "currency",
    "number",
    "type",
    "amount_net_cents",
    "amount_vat_cents",
    "amount_total_cents",
    "owner_id",
    "user_id",
    "date",
    "hours",
];

pub const DOCUMENT_TYPES: &[&str] = &[
    "INVOICE.SALES",
    "INVOICE.SALES.PROFORMA",
    "INVOICE.SALES.CORRECTION",
    "INVOICE.PURCHASE",
    "INVOICE.PURCHASE.PROFORMA",
    "INVOICE.PURCHASE.CORRECTION",
    "DOCUMENT.ISSUED",
    "DOCUMENT.RECEIVED",
    "DOCUMENT.CONTRACT",
    "DOCUMENT.QUOTATION.SALES",
    "DOCUMENT.ORDER.PURCHASE",
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text(usize),
    DocType,
    Bool,
    Date,
    Money,
    Hours,
    Estimate,
    Ref(&'static str),
    UserRef,
    Properties,
    Tags,
}

#[derive(Debug)]
struct FieldSpec {
    name: &'static str,
    column: &'static str,
    kind: Kind,
    required: bool,
}

#[derive(Debug)]
struct WriteSpec {
    name: &'static str,
    table: &'static str,
    resource: Resource,
    owner_field: &'static str,
    fields: &'static [FieldSpec],
}

const fn f(name: &'static str, column: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec { name, column, kind, required }
}

const OWNER: FieldSpec = f("ownerId", "owner_id", Kind::UserRef, false);
const PROPS: FieldSpec = f("properties", "properties", Kind::Properties, false);

const SPECS: &[WriteSpec] = &[
    WriteSpec {
        name: "companies",
        table: "companies",
        resource: Resource::Companies,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("registrationNumber", "registration_number", Kind::Text(40), false),
            f("vatId", "vat_id", Kind::Text(40), false),
            f("address", "address", Kind::Text(500), false),
            f("isClient", "is_client", Kind::Bool, false),
            f("isSupplier", "is_supplier", Kind::Bool, false),
            f("isDisabled", "is_disabled", Kind::Bool, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "persons",
        table: "persons",
        resource: Resource::Persons,
        owner_field: "owner_id",
        fields: &[
            f("firstName", "first_name", Kind::Text(100), true),
            f("lastName", "last_name", Kind::Text(100), true),
            f("email", "email", Kind::Text(254), false),
            f("phone", "phone", Kind::Text(40), false),
            f("companyId", "company_id", Kind::Ref("companies"), false),
            f("isDisabled", "is_disabled", Kind::Bool, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "jobs",
        table: "jobs",
        resource: Resource::Jobs,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("number", "number", Kind::Text(40), false),
            f("status", "status", Kind::Text(40), false),
            f("companyId", "company_id", Kind::Ref("companies"), false),
            f("startDate", "start_date", Kind::Date, false),
            f("endDate", "end_date", Kind::Date, false),
            f("budget", "budget_cents", Kind::Money, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "tasks",
        table: "tasks",
        resource: Resource::Tasks,
        owner_field: "owner_id",
        fields: &[
            f("name", "name", Kind::Text(200), true),
            f("jobId", "job_id", Kind::Ref("jobs"), false),
            f("assigneeId", "assignee_id", Kind::UserRef, false),
            f("status", "status", Kind::Text(40), false),
            f("dueDate", "due_date", Kind::Date, false),
            f("estimate", "estimate_hours", Kind::Estimate, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "documents",
        table: "documents",
        resource: Resource::Documents,
        owner_field: "owner_id",
        fields: &[
            f("type", "type", Kind::DocType, true),
            f("companyId", "company_id", Kind::Ref("companies"), true),
            f("personId", "person_id", Kind::Ref("persons"), false),
            f("number", "number", Kind::Text(40), false),
            f("status", "status", Kind::Text(40), false),
            f("issueDate", "issue_date", Kind::Date, false),
            f("dueDate", "due_date", Kind::Date, false),
            f("currency", "currency", Kind::Text(3), false),
            f("amountNet", "amount_net_cents", Kind::Money, false),
            f("amountVat", "amount_vat_cents", Kind::Money, false),
            f("amountTotal", "amount_total_cents", Kind::Money, false),
            f("tags", "tags", Kind::Tags, false),
            OWNER,
            PROPS,
        ],
    },
    WriteSpec {
        name: "time",
        table: "time_entries",
        resource: Resource::Time,
        owner_field: "owner_id",
        fields: &[
            f("date", "date", Kind::Date, true),
            f("hours", "hours", Kind::Hours, true),
            f("jobId", "job_id", Kind::Ref("jobs"), false),
            f("taskId", "task_id", Kind::Ref("tasks"), false),
            f("note", "note", Kind::Text(2000), false),
            f("userId", "user_id", Kind::UserRef, false),
        ],
    },
    WriteSpec { name: "users", table: "users", resource: Resource::Users, owner_field: "id", fields: &[] },
];

/// A writable field of a record endpoint, described for the API contract (keygate-web's
/// OpenAPI document), read from the same specs that validate writes so the two cannot drift.
#[derive(Debug, Clone, Copy)]
pub struct WritableField {
    /// The JSON member name.
    pub name: &'static str,
    /// Required when creating.
    pub required: bool,
    /// Whether `null` is accepted (it clears the field).
    pub nullable: bool,
    /// The JSON type: `string`, `boolean`, `number`, `integer`, `object` or `array` (of strings).
    pub json_type: &'static str,
    /// `date` for `YYYY-MM-DD` strings.
    pub format: Option<&'static str>,
    pub max_length: Option<usize>,
    /// The values a string may take, when they are fixed.
    pub one_of: &'static [&'static str],
    /// Bounds of a number: (minimum, exclusive), (maximum, exclusive).
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    /// What the value means or must be, in a few words.
    pub about: &'static str,
}

impl Keygate {
    /// The most rows a page of a view holds (`limit`).
    pub const MAX_VIEW_LIMIT: u32 = MAX_LIMIT;

    /// The record endpoints that take writes (`POST`, and `PATCH` but for `time`), each with its
    /// writable fields. `users` has its own fields (see `create_user_record`) and lists none here.
    pub fn writable_records() -> Vec<(&'static str, Vec<WritableField>)> {
        SPECS.iter().map(|spec| (spec.name, spec.fields.iter().map(WritableField::of).collect())).collect()
    }
}

impl WritableField {
    fn of(f: &FieldSpec) -> Self {
        let base = Self {
            name: f.name,
            required: f.required,
            nullable: !(f.required || NOT_NULL.contains(&f.column)),
            json_type: "string",
            format: None,
            max_length: None,
            one_of: &[],
            minimum: None,
            maximum: None,
            about: "",
        };
        match f.kind {
            Kind::Text(max) => Self { max_length: Some(max), about: "text", ..base },
            Kind::DocType => Self { one_of: DOCUMENT_TYPES, about: "the document's type", ..base },
            Kind::Bool => Self { json_type: "boolean", ..base },
            Kind::Date => Self { format: Some("date"), about: "a date YYYY-MM-DD", ..base },
            Kind::Money => Self {
                json_type: "number",
                minimum: Some((-1e13, true)),
                maximum: Some((1e13, true)),
                about: "an amount such as 1250.50 (kept in cents)",
                ..base
            },
            Kind::Hours => Self {
                json_type: "number",
                minimum: Some((0.0, true)),
                maximum: Some((24.0, false)),
                about: "hours, above 0 and at most 24",
                ..base
            },
            Kind::Estimate => Self {
                json_type: "number",
                minimum: Some((0.0, false)),
                maximum: Some((1e6, true)),
                about: "a non-negative number of hours",
                ..base
            },
            Kind::Ref(_) => Self {
                json_type: "integer",
                minimum: Some((1.0, false)),
                about: "the id of a record of this unit that the key may read",
                ..base
            },
            Kind::UserRef => Self {
                json_type: "integer",
                minimum: Some((1.0, false)),
                about: "the id of a user of the tenant",
                ..base
            },
            Kind::Properties => {
                Self { json_type: "object", about: "custom properties, a JSON object of at most 1 MB", ..base }
            }
            Kind::Tags => Self { json_type: "array", about: "at most 100 strings", ..base },
        }
    }
}

fn write_spec(resource: &str) -> ServiceResult<&'static WriteSpec> {
    SPECS
        .iter()
        .find(|s| s.name == resource)
        .ok_or_else(|| ServiceError::NotFound(format!("the resource `{resource}`")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_paging_hint_owns_no_heap_memory_so_the_hints_are_bounded_in_bytes() {
        // No String inside: whatever filter text arrives, an entry is its fixed size.
        assert!(!std::mem::needs_drop::<super::HintKey>());
        // Key, value (i64) and the hash table's control byte, rounded up, per entry.
        let bound = super::PageHints::MAX * (std::mem::size_of::<super::HintKey>() + 8 + 8);
        assert!(bound <= 16 * 1024 * 1024, "{bound} bytes for a full map of hints");
    }
}
