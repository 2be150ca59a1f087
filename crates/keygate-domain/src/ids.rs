//! Identifier newtypes, so a user id can never be passed where a key id is expected.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse::<i64>().map($name)
            }
        }
    };
}

id_type!(
    /// A tenant's database id (internal; tenants are addressed by their slug).
    TenantId
);
id_type!(
    /// A user's id, unique across tenants.
    UserId
);
id_type!(
    /// A group's id, unique across tenants.
    GroupId
);
id_type!(
    /// An API key's id: public, printed on issue and used to manage the key. Not a secret.
    KeyId
);
id_type!(
    /// A business unit's number within its tenant: the `{unitId}` of `/rest/v1/{unitId}/…`.
    UnitId
);
