//! Users: their email, name, category and the state the validity rule needs.

use std::fmt;

use crate::{
    ids::{TenantId, UnitId, UserId},
    permission::Permissions,
};

/// A lower-cased email address with one `@`, a dotted domain and no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an email address (expected something like name@example.com)")]
pub struct InvalidEmail(pub String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, InvalidEmail> {
        let s = text.trim().to_lowercase();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid { Ok(Self(s)) } else { Err(InvalidEmail(text.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's (or integration's) display name: 1–120 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name must be 1 to 120 printable characters, with no character that shows nothing")]
pub struct InvalidName;

impl PersonName {
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let s = text.trim();
        if s.is_empty() || s.chars().count() > 120 || crate::text::has_invisible(s) {
            return Err(InvalidName);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `personal` accounts belong to people; `programmatic` ones to integrations and are hidden from
/// ordinary user pickers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserCategory {
    Personal,
    Programmatic,
}

impl UserCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Programmatic => "programmatic",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "personal" => Ok(Self::Personal),
            "programmatic" => Ok(Self::Programmatic),
            other => Err(format!("`{other}` is not a user category; expected personal or programmatic")),
        }
    }
}

/// What the validity rule needs to know about a key's owner, as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerState {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub name: String,
    pub email: String,
    pub category: UserCategory,
    pub active: bool,
    pub permissions: Permissions,
    /// `None`: every unit of the tenant.
    pub units: Option<Vec<UnitId>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_trimmed() {
        assert_eq!(Email::parse(" Ada@Example.COM ").expect("valid").as_str(), "ada@example.com");
    }

    #[test]
    fn things_that_are_not_emails_are_refused() {
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "a@b@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn categories_parse_case_insensitively() {
        assert_eq!(UserCategory::parse("Programmatic"), Ok(UserCategory::Programmatic));
        assert!(UserCategory::parse("robot").is_err());
    }
}
