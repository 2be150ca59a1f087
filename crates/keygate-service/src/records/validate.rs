//! Validating a record write: every field of the body against its write spec, references only
//! to records the key may read, all errors reported together; nothing here writes.

use keygate_domain::{
    Access, UnitId,
    views::{Bound, is_date},
};
use keygate_store::{FieldValue, RecordWrite, SqlType, Visibility};
use serde_json::{Map, Value as Json};

use super::{
    access::visibility,
    catalogue::{DOCUMENT_TYPES, FieldSpec, Kind, NOT_NULL, SPECS, WriteSpec},
};
use crate::{FieldError, Keygate, ServiceError, ServiceResult, Verified};

impl Keygate {
    /// Checks every field of `object` against `spec`; all errors are reported together.
    pub(super) async fn validate(
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

pub(super) fn parse_object(body: &[u8]) -> ServiceResult<Map<String, Json>> {
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
