//! keygate's domain: the types and rules of tenants, users, permissions and API keys.
//!
//! Pure code only: no I/O, no SQL, no HTTP. Every value with rules has a fallible constructor
//! ("parse, don't validate"); the rest of keygate receives values that are already known good.

pub mod api_key;
pub mod audit;
pub mod ceiling;
pub mod filter;
pub mod ids;
pub mod ip;
pub mod operator;
pub mod permission;
pub mod tenant;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod time;
pub mod user;
pub mod validity;
pub mod views;

pub use api_key::{ApiKeySecret, KeyDigest, KeyRecord, KeyStatus, MalformedKey, Purpose};
pub use audit::{Actor, AuditEntry};
pub use ceiling::{
    Atom, Authority, GrantExceedsActor, GroupState, Judge, KeyState, Outcome, Power, Subject, SystemPower, TenantState,
    UnitScope, UserState, giveable_scopes, grants_beyond, judge,
};
pub use ids::{GroupId, KeyId, TenantId, UnitId, UserId};
pub use ip::{InvalidIpRanges, IpRanges};
pub use operator::{OperatorId, OperatorName, OperatorSecret};
pub use permission::{
    Access, AdminScope, Grant, GroupName, Permissions, Reach, Resource, Scope, Scopes, SystemGroup, parse_grants,
};
pub use tenant::{TenantPolicy, TenantSlug};
pub use time::Timestamp;
pub use user::{Email, OwnerState, PersonName, UserCategory};
pub use validity::{Principal, Refusal, RefusalCode, Requirement, VerifyInput, check_validity};
