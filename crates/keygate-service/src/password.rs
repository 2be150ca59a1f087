//! Passwords: Argon2id hashes, computed off the async runtime, with a dummy verification for
//! unknown users so that timing does not tell whether an account exists.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{ServiceError, ServiceResult};

/// A hash of a fixed, unguessable password, verified against when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Dvn0bBQ4Nu3sPhgdu0dnPSSo84WbrkwaLbHmSA5Cp5w";

pub async fn hash_password(password: SecretString) -> ServiceResult<String> {
    if password.expose_secret().chars().count() < 12 {
        return Err(ServiceError::Invalid("a password must be at least 12 characters long".to_owned()));
    }
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("hashing failed: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// True when `password` matches `hash`. With no hash, verifies against a dummy and returns false.
pub async fn verify_password(password: SecretString, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (DUMMY_HASH.to_owned(), false),
        };
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        let ok = Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        ok && real
    })
    .await
    .unwrap_or(false)
}

/// A strong random password of 24 base62 characters (≈142 bits), for `keygate init`.
pub fn generate_password() -> SecretString {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(24);
    let mut buf = [0u8; 64];
    while out.len() < 24 {
        getrandom::fill(&mut buf).expect("the operating system's random source is unavailable");
        for &b in &buf {
            if b < 248 && out.len() < 24 {
                out.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    zeroize::Zeroize::zeroize(&mut buf);
    SecretString::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_users_cost_the_same() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("valid PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hash = hash_password(SecretString::from("correct horse battery")).await.expect("hash");
        assert!(verify_password(SecretString::from("correct horse battery"), Some(hash.clone())).await);
        assert!(!verify_password(SecretString::from("wrong horse battery"), Some(hash)).await);
        assert!(!verify_password(SecretString::from("anything"), None).await);
    }

    #[tokio::test]
    async fn short_passwords_are_refused() {
        assert!(matches!(hash_password(SecretString::from("short")).await, Err(ServiceError::Invalid(_))));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 24);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
