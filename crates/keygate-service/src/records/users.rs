//! Users as records of the data API: creating and changing a user through `POST`/`PATCH
//! /users`, by the same use cases (and grant ceiling) as the console, with errors as field errors.

use keygate_domain::UnitId;
use keygate_store::Idempotency;
use serde_json::{Map, Value as Json};

use super::access::caller;
use crate::{FieldError, Keygate, ServiceError, ServiceResult, Verified};

impl Keygate {
    pub(super) async fn create_user_record(
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
                crate::CreateUser { inactive: false, email, name, category, groups, units, password: None },
                idempotency,
            )
            .await
            .map_err(as_field_error)?;
        Ok((201, serde_json::json!({ "id": id }).to_string()))
    }

    /// `active`, `groups` (or the original's `groupNames`) and `units` of a user; each change
    /// passes the grant ceiling, and nothing is written unless every field is valid.
    pub(super) async fn update_user_record(
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
