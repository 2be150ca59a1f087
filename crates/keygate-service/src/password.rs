//! Passwords: Argon2id hashes, computed off the async runtime, with a dummy verification for
//! unknown users so that timing does not tell whether an account exists.
//!
//! Each Argon2id computation takes [`ARGON2_MEMORY_BYTES`]. Every computation a request can start
//! (a log-in, a password set, a user created with a password) runs behind one [`HashingGate`]
//! sized from a memory budget, so a burst waits for its turn instead of taking memory without
//! bound. [`hash_password`] (ungated) is for the command line's one-off `init`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

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
    tokio::task::spawn_blocking(move || verify_blocking(&password, hash)).await.unwrap_or(false)
}

/// [`verify_blocking`] with the Argon2 working memory in `blocks` (when the hash's parameters fit
/// in it; a hash made with more memory gets its own, as before).
fn verify_in(password: &SecretString, hash: Option<String>, blocks: &mut [argon2::Block]) -> bool {
    use subtle::ConstantTimeEq;
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    let Ok(parsed) = PasswordHash::new(&hash) else { return false };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let (Ok(params), Ok(algorithm)) =
        (argon2::Params::try_from(&parsed), argon2::Algorithm::try_from(parsed.algorithm))
    else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let needed = argon.params().block_count();
    let computed = match blocks.get_mut(..needed) {
        Some(memory) => {
            argon.hash_password_into_with_memory(password.expose_secret().as_bytes(), salt, &mut out, memory)
        }
        None => argon.hash_password_into(password.expose_secret().as_bytes(), salt, &mut out),
    };
    let ok = computed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()));
    ok && real
}

/// A new Argon2id hash (keygate's parameters, a random salt) of `password`, computed in
/// `blocks`, as a PHC string.
fn hash_in(password: &SecretString, blocks: &mut [argon2::Block]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::default();
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let needed = argon.params().block_count();
    let memory = blocks
        .get_mut(..needed)
        .ok_or(argon2::password_hash::Error::ParamValueInvalid(argon2::password_hash::errors::InvalidValue::TooLong))?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    argon.hash_password_into_with_memory(password.expose_secret().as_bytes(), raw_salt, &mut out, memory)?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out)?),
    };
    Ok(hash.to_string())
}

fn verify_blocking(password: &SecretString, hash: Option<String>) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (DUMMY_HASH.to_owned(), false),
    };
    let Ok(parsed) = PasswordHash::new(&hash) else { return false };
    let ok = Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
    ok && real
}

/// Memory of one Argon2id computation with keygate's parameters (m = 19 456 KiB, OWASP's minimum).
pub const ARGON2_MEMORY_BYTES: usize = 19_456 * 1024;

/// Bounds concurrent password hashing: at most `budget / ARGON2_MEMORY_BYTES` at once (at least
/// one). An attempt that cannot start within `wait` is refused as [`Busy`].
///
/// The Argon2 working memory is the gate's own: one buffer per slot, made when first needed and
/// reused after. Freed and reallocated per attempt, it would land in whichever allocator arena
/// the blocking thread has, and those keep what they were given: 200 attempts over 4 slots still
/// grew the process past 1 GB that way. With the buffers here, the ceiling is slots × 19 MiB.
#[derive(Debug)]
pub(crate) struct HashingGate {
    permits: Arc<tokio::sync::Semaphore>,
    buffers: Arc<std::sync::Mutex<Vec<Vec<argon2::Block>>>>,
    limit: usize,
    wait: Duration,
    /// Argon2 computations started through the gate.
    started: AtomicU64,
    /// Attempts that found every slot taken and waited (and then ran, or were refused as busy).
    queued: AtomicU64,
}

/// No hashing slot became free in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

impl HashingGate {
    pub(crate) fn new(memory_budget: usize, wait: Duration) -> Self {
        let limit = (memory_budget / ARGON2_MEMORY_BYTES).max(1);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            buffers: Arc::default(),
            limit,
            wait,
            started: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }

    /// Hashings that may run at once.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Attempts that had to wait for a slot.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Slots taken now.
    pub(crate) fn in_use(&self) -> usize {
        self.limit.saturating_sub(self.permits.available_permits())
    }

    /// A slot, waiting at most `wait` for one.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Busy> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
                    .await
                    .map_err(|_| Busy)?
                    .map_err(|_| Busy)?
            }
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// Runs `work` on a blocking thread with a slot and the slot's own Argon2 memory.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [argon2::Block]) -> T + Send + 'static,
    ) -> Result<Option<T>, Busy> {
        let permit = self.slot().await?;
        let buffers = Arc::clone(&self.buffers);
        Ok(tokio::task::spawn_blocking(move || {
            let taken = buffers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
            let mut blocks =
                taken.unwrap_or_else(|| vec![argon2::Block::default(); ARGON2_MEMORY_BYTES / argon2::Block::SIZE]);
            let out = work(&mut blocks);
            buffers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(blocks);
            drop(permit);
            out
        })
        .await
        .ok())
    }

    /// A new hash of `password` (at least 12 characters) once a slot is free: a password set
    /// or a user created with one passes the same gate as a log-in.
    pub(crate) async fn hash(&self, password: SecretString) -> ServiceResult<String> {
        if password.expose_secret().chars().count() < 12 {
            return Err(ServiceError::Invalid("a password must be at least 12 characters long".to_owned()));
        }
        match self.run(move |blocks| hash_in(&password, blocks)).await {
            Ok(Some(Ok(hash))) => Ok(hash),
            Ok(Some(Err(e))) => Err(ServiceError::Internal(format!("hashing failed: {e}"))),
            Ok(None) => Err(ServiceError::Internal("the hashing thread stopped".to_owned())),
            Err(Busy) => Err(ServiceError::Busy("every password-hashing slot is taken; retry in a moment".to_owned())),
        }
    }

    /// [`verify_password`] once a slot is free. The slot is held by the hashing itself, so an
    /// attempt whose caller went away still counts until its Argon2 work is done.
    pub(crate) async fn verify(&self, password: SecretString, hash: Option<String>) -> Result<bool, Busy> {
        Ok(self.run(move |blocks| verify_in(&password, hash, blocks)).await?.unwrap_or(false))
    }
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
    fn a_check_in_the_gates_own_memory_agrees_with_argon2s_own() {
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default().hash_password(b"correct horse battery", &salt).expect("hash").to_string();
        let mut blocks = vec![argon2::Block::default(); ARGON2_MEMORY_BYTES / argon2::Block::SIZE];
        assert!(verify_in(&SecretString::from("correct horse battery"), Some(hash.clone()), &mut blocks));
        assert!(!verify_in(&SecretString::from("correct horse batterz"), Some(hash.clone()), &mut blocks));
        assert!(!verify_in(&SecretString::from("correct horse battery"), None, &mut blocks));
        let mut small = vec![argon2::Block::default(); 8];
        assert!(
            verify_in(&SecretString::from("correct horse battery"), Some(hash), &mut small),
            "too little memory: its own"
        );
    }

    #[tokio::test]
    async fn the_gate_runs_no_more_hashings_at_once_than_its_budget_holds_and_refuses_after_the_wait() {
        let gate = Arc::new(HashingGate::new(2 * ARGON2_MEMORY_BYTES + 1, Duration::from_millis(1)));
        assert_eq!(gate.limit(), 2);
        let tries = (0..16).map(|_| {
            let gate = Arc::clone(&gate);
            tokio::spawn(async move { gate.verify(SecretString::from("wrong horse battery"), None).await })
        });
        let mut busy = 0;
        for t in tries.collect::<Vec<_>>() {
            if t.await.expect("task") == Err(Busy) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "16 attempts at once, 2 slots, 1 ms of patience: some are refused");
        assert_eq!(gate.started() + busy, 16);
        assert!(gate.queued() >= busy, "every refused attempt waited first");
        assert_eq!(gate.in_use(), 0, "all done: every slot is free");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.expose_secret().len(), 24);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
