//! Operator credentials (the operator plane, issue 21): the `kgop_` format, generation and the
//! stored digest. An operator credential is never a tenant's key and a tenant's key never an
//! operator credential: the two formats differ in prefix and length, so neither parser accepts the
//! other's strings.
//!
//! Format: `kgop_` + 32 base62 characters from the OS CSPRNG (≈190 bits) + the 6-character base62
//! CRC-32 of the first 37 characters (the same checksum as keys). Only the SHA-256 digest is stored.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::api_key::{CHECKSUM_LEN, KeyDigest, RANDOM_LEN, checksum, draw_secret};

pub const OPERATOR_PREFIX: &str = "kgop_";
pub const OPERATOR_SECRET_LEN: usize = OPERATOR_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// An operator credential's stored id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub i64);

impl fmt::Display for OperatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a string is not an operator credential. Says nothing about the secret itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedOperatorSecret {
    #[error("an operator credential is {OPERATOR_SECRET_LEN} characters long and starts with `kgop_`")]
    Shape,
    #[error("an operator credential contains only the characters 0-9, A-Z and a-z after `kgop_`")]
    Alphabet,
    #[error("the operator credential's checksum does not match: it was mistyped or truncated")]
    Checksum,
}

/// A plaintext operator credential. Zeroed on drop, redacted in `Debug`, never `Display`.
#[derive(Clone)]
pub struct OperatorSecret(Zeroizing<String>);

impl fmt::Debug for OperatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorSecret({})", self.display_form())
    }
}

impl OperatorSecret {
    /// Draws a fresh credential from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(draw_secret(OPERATOR_PREFIX))
    }

    /// Checks length, prefix, alphabet and checksum; touches no storage.
    pub fn parse(text: &str) -> Result<Self, MalformedOperatorSecret> {
        let bytes = text.as_bytes();
        if bytes.len() != OPERATOR_SECRET_LEN || !text.starts_with(OPERATOR_PREFIX) {
            return Err(MalformedOperatorSecret::Shape);
        }
        if !bytes[OPERATOR_PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric) {
            return Err(MalformedOperatorSecret::Alphabet);
        }
        let (body, sum) = text.split_at(OPERATOR_PREFIX.len() + RANDOM_LEN);
        if !bool::from(checksum(body).as_bytes().ct_eq(sum.as_bytes())) {
            return Err(MalformedOperatorSecret::Checksum);
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The plaintext, for showing it once to whoever issued it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole credential: the only form in which it is stored.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// `kgop_XX…YYYY`: enough to recognise a credential in a list, useless to an attacker.
    pub fn display_form(&self) -> String {
        match (self.0.get(..7), self.0.get(self.0.len().saturating_sub(4)..)) {
            (Some(head), Some(tail)) if self.0.len() >= 11 => format!("{head}…{tail}"),
            _ => "kgop_…".to_owned(),
        }
    }
}

/// What an operator credential is called by whoever issued it: 1–100 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an operator credential's name must be 1 to 100 printable characters, e.g. \"sign-up service\"")]
pub struct InvalidOperatorName;

impl OperatorName {
    pub fn parse(text: &str) -> Result<Self, InvalidOperatorName> {
        let s = text.trim();
        if s.is_empty() || s.chars().count() > 100 || s.chars().any(char::is_control) {
            return Err(InvalidOperatorName);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeySecret;

    #[test]
    fn a_generated_credential_parses_and_has_its_own_prefix_and_length() {
        let secret = OperatorSecret::generate();
        assert!(secret.expose().starts_with("kgop_"));
        assert_eq!(secret.expose().len(), 43);
        assert!(OperatorSecret::parse(secret.expose()).is_ok());
        assert!(!format!("{secret:?}").contains(&secret.expose()[7..39]), "Debug shows no secret");
    }

    #[test]
    fn a_tenant_key_is_never_an_operator_credential_and_the_other_way_round() {
        for _ in 0..100 {
            let key = ApiKeySecret::generate();
            assert_eq!(OperatorSecret::parse(key.expose()).unwrap_err(), MalformedOperatorSecret::Shape);
            let operator = OperatorSecret::generate();
            assert!(ApiKeySecret::parse(operator.expose()).is_err());
        }
    }

    #[test]
    fn one_mistyped_character_fails_the_checksum() {
        let secret = OperatorSecret::generate();
        let mut text = secret.expose().to_owned();
        let c = if text.as_bytes()[10] == b'a' { "b" } else { "a" };
        text.replace_range(10..11, c);
        assert_eq!(OperatorSecret::parse(&text).unwrap_err(), MalformedOperatorSecret::Checksum);
    }

    #[test]
    fn an_operator_name_is_1_to_100_printable_characters() {
        assert!(OperatorName::parse("sign-up service").is_ok());
        assert!(OperatorName::parse(&"x".repeat(100)).is_ok());
        assert!(OperatorName::parse(&"x".repeat(101)).is_err());
        assert!(OperatorName::parse("  ").is_err());
        assert!(OperatorName::parse("a\nb").is_err());
    }
}
