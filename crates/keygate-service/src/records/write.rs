//! Writing records: create (with an idempotency key, a retry gets the first answer) and update,
//! each validated against the write-spec catalogue and judged by the key's reach; `users` goes to
//! [`super::users`].

use keygate_domain::{Access, UnitId, views::Bound};
use keygate_store::{FieldValue, Idempotency, StorageQuota, Visibility};
use sha2::{Digest, Sha256};

use super::{
    access::{bad, caller, forbidden, visibility},
    catalogue::write_spec,
    validate::parse_object,
};
use crate::{BadRequest, Keygate, ServiceError, ServiceResult, Verified};

impl Keygate {
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
        match self.db().records().insert(v.tenant.id, unit, &write, self.storage_quota(v), &audit, idem, answer).await {
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
        self.db().records().update(v.tenant.id, unit, id, &write, self.storage_quota(v), &audit).await?;
        Ok(())
    }

    /// The tenant's storage quota, counted on the calling key's shard.
    fn storage_quota(&self, v: &Verified) -> StorageQuota {
        StorageQuota { limit: self.inner.config.record_storage_per_tenant, shard: v.key().id.0 }
    }
}
