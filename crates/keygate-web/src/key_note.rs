//! The note an answer carries for the access log: the key a call was accepted or refused with
//! (and its user, when accepted). The Public API, verification and problem answers write it;
//! [`crate::app`] takes it off the answer when it writes the access-log line. A leaf: it knows
//! nothing of the crate but whether an access log is on.

use axum::response::Response;
use keygate_domain::{KeyId, UserId};

/// The key an answered call was accepted or refused with (and its user, when accepted), for the
/// access log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyUsed {
    pub(crate) key: KeyId,
    pub(crate) user: Option<UserId>,
}

/// Notes on `response` that the call was about key `key` of `user`, when an access log is on
/// (otherwise it costs nothing).
pub(crate) fn note_key(response: &mut Response, key: KeyId, user: Option<UserId>) {
    if crate::access_log::any_on() {
        response.extensions_mut().insert(KeyUsed { key, user });
    }
}
