//! API keys: the `kg_` format, generation, the stored digest and the key record.
//!
//! Format: `kg_` + 32 base62 characters from the OS CSPRNG (≈190 bits) + a 6-character base62
//! CRC-32 of the first 35 characters. The checksum lets typos and secret scanners reject a string
//! without storage. Only the SHA-256 digest of the whole key is ever stored.

use std::{fmt, hash::Hash};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{
    ids::{KeyId, TenantId, UnitId, UserId},
    ip::IpRanges,
    permission::Scopes,
    time::Timestamp,
};

pub const PREFIX: &str = "kg_";
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a keygate key. Deliberately says nothing about the secret itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKey {
    #[error("a keygate key is {KEY_LEN} characters long")]
    Length,
    #[error("a keygate key starts with `kg_`")]
    Prefix,
    #[error("a keygate key contains only the characters 0-9, A-Z and a-z after `kg_`")]
    Alphabet,
    #[error("the key's checksum does not match: it was mistyped or truncated")]
    Checksum,
}

/// A plaintext key. Zeroed on drop, redacted in `Debug`, never `Display`.
#[derive(Clone)]
pub struct ApiKeySecret(Zeroizing<String>);

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({})", self.display_form())
    }
}

impl ApiKeySecret {
    /// Draws a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(draw_secret(PREFIX))
    }

    /// Checks length, prefix, alphabet and checksum; touches no storage.
    pub fn parse(text: &str) -> Result<Self, MalformedKey> {
        check_format(text)?;
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The plaintext, for showing it once to whoever asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// `kg_XXXX…YYYY`: enough to recognise a key in a list, useless to an attacker.
    pub fn display_form(&self) -> String {
        display_form(&self.0)
    }
}

/// `prefix` + [`RANDOM_LEN`] base62 characters from the operating system's CSPRNG + the
/// [`CHECKSUM_LEN`]-character checksum of both: a key, or (`kgop_`) an operator credential.
pub(crate) fn draw_secret(prefix: &str) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN));
    text.push_str(prefix);
    let mut buf = Zeroizing::new([0u8; 64]);
    while text.len() < prefix.len() + RANDOM_LEN {
        getrandom::fill(buf.as_mut()).expect("the operating system's random source is unavailable");
        for &b in buf.iter() {
            // 248 = 4 × 62: rejecting the top 8 byte values keeps every character equally likely.
            if b < 248 && text.len() < prefix.len() + RANDOM_LEN {
                text.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    let sum = checksum(&text);
    text.push_str(&sum);
    text
}

/// Format and checksum check, without copying the key.
pub fn check_format(text: &str) -> Result<(), MalformedKey> {
    let bytes = text.as_bytes();
    if bytes.len() != KEY_LEN {
        return Err(MalformedKey::Length);
    }
    if !text.starts_with(PREFIX) {
        return Err(MalformedKey::Prefix);
    }
    if !bytes[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric) {
        return Err(MalformedKey::Alphabet);
    }
    let (body, sum) = text.split_at(PREFIX.len() + RANDOM_LEN);
    if checksum(body).as_bytes().ct_eq(sum.as_bytes()).into() { Ok(()) } else { Err(MalformedKey::Checksum) }
}

fn display_form(key: &str) -> String {
    match (key.get(..7), key.get(key.len().saturating_sub(4)..)) {
        (Some(head), Some(tail)) if key.len() >= 11 => format!("{head}…{tail}"),
        _ => "kg_…".to_owned(),
    }
}

/// CRC-32 (IEEE) of `body`, in base62, most significant digit first, padded to 6 characters.
pub fn checksum(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|&b| b as char).collect()
}

/// SHA-256 of a whole key: the only form in which a key is stored.
#[derive(Clone, Copy)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for KeyDigest {
    /// Constant-time, so lookups never reveal how many leading bytes matched.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for KeyDigest {}

impl Hash for KeyDigest {
    /// A SHA-256 output is already uniform: its first eight bytes are a perfect hash.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(…)")
    }
}

/// What the key is for, in the words of whoever issued it. Required, 1–200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPurpose {
    #[error("a purpose is required: say what the key is for, e.g. \"invoice export to ERP\"")]
    Empty,
    #[error("the purpose is too long ({0} characters); at most 200 are allowed")]
    TooLong(usize),
    #[error("the purpose contains control characters")]
    Control,
}

impl Purpose {
    pub fn parse(text: &str) -> Result<Self, InvalidPurpose> {
        let text = text.trim();
        let len = text.chars().count();
        if len == 0 {
            return Err(InvalidPurpose::Empty);
        }
        if len > 200 {
            return Err(InvalidPurpose::TooLong(len));
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidPurpose::Control);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored API key: everything about it except the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub created_by: Option<UserId>,
    pub purpose: Purpose,
    pub digest: KeyDigest,
    pub display: String,
    pub ip_ranges: IpRanges,
    /// `None`: the key inherits its user's permissions.
    pub scopes: Option<Scopes>,
    /// `None`: every unit its user may reach.
    pub units: Option<Vec<UnitId>>,
    pub expires_at: Option<Timestamp>,
    pub enabled: bool,
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    pub rolled_from: Option<KeyId>,
    /// Requests per minute; `None` takes the tenant's default.
    pub rate_limit_per_minute: Option<u32>,
}

/// The key's own state, leaving out its user and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Disabled,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl KeyRecord {
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if !self.enabled {
            KeyStatus::Disabled
        } else if self.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_generated_key_has_the_documented_shape() {
        let key = ApiKeySecret::generate();
        let text = key.expose();
        assert_eq!(text.len(), 41);
        assert!(text.starts_with("kg_"));
        assert!(text[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(&text[35..], checksum(&text[..35]));
    }

    #[test]
    fn the_checksum_is_crc32_in_base62_padded_to_six() {
        let body = format!("kg_{}", "0".repeat(32));
        let crc = crc32fast::hash(body.as_bytes());
        let sum = checksum(&body);
        let decoded = sum
            .bytes()
            .fold(0u64, |acc, b| acc * 62 + BASE62.iter().position(|&c| c == b).expect("base62 digit") as u64);
        assert_eq!(decoded, u64::from(crc));
        assert_eq!(sum.len(), 6);
    }

    #[test]
    fn well_known_shapes_of_wrong_input_are_named() {
        assert_eq!(ApiKeySecret::parse("kg_short").map(|_| ()), Err(MalformedKey::Length));
        let good = ApiKeySecret::generate();
        let bad_prefix = format!("xx_{}", &good.expose()[3..]);
        assert_eq!(ApiKeySecret::parse(&bad_prefix).map(|_| ()), Err(MalformedKey::Prefix));
        let bad_char = format!("{}-{}", &good.expose()[..10], &good.expose()[11..]);
        assert_eq!(ApiKeySecret::parse(&bad_char).map(|_| ()), Err(MalformedKey::Alphabet));
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key = ApiKeySecret::generate();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.expose()[7..37]));
        assert!(debug.contains('…'));
    }

    #[test]
    fn the_display_form_keeps_the_first_seven_and_last_four_characters() {
        let key = ApiKeySecret::generate();
        let shown = key.display_form();
        assert_eq!(shown, format!("{}…{}", &key.expose()[..7], &key.expose()[37..]));
    }

    #[test]
    fn digests_compare_equal_only_for_the_same_key() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_eq!(a.digest(), KeyDigest::of(a.expose()));
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn an_empty_purpose_is_refused() {
        assert_eq!(Purpose::parse("   "), Err(InvalidPurpose::Empty));
        assert!(Purpose::parse("ERP export").is_ok());
    }

    proptest! {
        #[test]
        fn every_generated_key_parses_back(_seed in any::<u8>()) {
            let key = ApiKeySecret::generate();
            let parsed = ApiKeySecret::parse(key.expose()).expect("generated keys are well-formed");
            prop_assert_eq!(parsed.expose(), key.expose());
            prop_assert_eq!(parsed.digest(), key.digest());
        }

        #[test]
        fn any_single_character_change_fails_the_check(pos in 0usize..KEY_LEN, replacement in proptest::char::any()) {
            let key = ApiKeySecret::generate();
            let original: Vec<char> = key.expose().chars().collect();
            prop_assume!(original[pos] != replacement);
            let mut changed = original.clone();
            changed[pos] = replacement;
            let changed: String = changed.into_iter().collect();
            prop_assert!(ApiKeySecret::parse(&changed).is_err());
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in ".{0,64}") {
            let _ = ApiKeySecret::parse(&text);
        }
    }
}
