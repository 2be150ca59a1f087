//! Entry points for `cargo fuzz` (feature `fuzzing`, never in a release build): record-field
//! validation of the data API's writes, on arbitrary bodies, against a scratch SQLite database.

use std::net::{IpAddr, Ipv4Addr};

use keygate_domain::UnitId;

use crate::{Caller, Credential, IssueKey, KeyOwner, Keygate, ServiceConfig, ServiceError, Verified, VerifyRequest};

/// The resources a key can write.
pub const RESOURCES: [&str; 7] = ["companies", "persons", "jobs", "tasks", "documents", "time", "users"];

struct World {
    runtime: tokio::runtime::Runtime,
    keygate: Keygate,
    admin: Verified,
    _db: keygate_store::testing::TestDatabase,
}

fn world() -> World {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (keygate, admin, db) = runtime.block_on(async {
        let db = keygate_store::testing::fresh_sqlite().await.expect("a scratch database");
        let keygate = Keygate::new(db.db.clone(), ServiceConfig::default());
        let tenant = keygate.create_tenant(&Caller::CLI, "fuzz", "admin@fuzz.example", None).await.expect("tenant");
        keygate.set_public_api(&Caller::CLI, tenant.tenant, true).await.expect("api on");
        let issued = keygate
            .issue_key(
                &Caller::CLI,
                tenant.tenant,
                IssueKey {
                    owner: KeyOwner::Email("admin@fuzz.example".into()),
                    purpose: "fuzz".into(),
                    ip_ranges: vec!["0.0.0.0/0".into()],
                    rate_limit_per_minute: Some(u32::MAX),
                    ..IssueKey::default()
                },
            )
            .await
            .expect("key");
        let request = VerifyRequest {
            credential: Credential::Key(issued.secret.expose()),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            unit: Some(UnitId(1)),
            required: None,
        };
        let admin = keygate.verify(request).await.expect("the key verifies");
        (keygate, admin, db)
    });
    World { runtime, keygate, admin, _db: db }
}

/// Validates and (when valid) writes `body` as a new record of `resource`, as `POST
/// /rest/v1/1/{resource}` does. Every refusal must be one of the typed answers, never a panic or
/// an internal error.
pub fn record_write(resource: &str, body: &[u8]) {
    thread_local! {
        static WORLD: World = world();
    }
    WORLD.with(|w| {
        let result = w.runtime.block_on(w.keygate.create_record(&w.admin, UnitId(1), resource, body, None, None));
        match result {
            Ok(_)
            | Err(
                ServiceError::Invalid(_)
                | ServiceError::InvalidFields(_)
                | ServiceError::BadRequest { .. }
                | ServiceError::NotFound(_)
                | ServiceError::Conflict(_)
                | ServiceError::Forbidden(_)
                | ServiceError::InsufficientPermission(_)
                | ServiceError::GrantExceedsActor(_)
                | ServiceError::TooLarge(_)
                // A bound keygate keeps (a hashing slot, a query budget): an answer, not a crash.
                | ServiceError::Busy(_)
                | ServiceError::Overloaded { .. },
            ) => {}
            Err(e @ (ServiceError::Store(_) | ServiceError::Internal(_))) => {
                panic!("an arbitrary body made an internal error: {e:?}")
            }
        }
    });
}
