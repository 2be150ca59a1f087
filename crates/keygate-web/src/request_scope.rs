//! What the application knows of the request a task is answering, carried with the request's
//! future as a task-local: its id, which every log line written meanwhile names
//! ([`crate::log_lines`]), and the key the call was accepted or refused with (and its user, when
//! accepted), which the access log names ([`crate::app`] takes it when it writes the line).
//!
//! A task-local, not a `tracing` span or an entry in the answer's extensions: a span per request
//! cost the log subscriber about 3 900 instructions on every call (creating it formats its fields
//! and takes a slab entry, each poll enters and leaves it, closing frees both), and an extension
//! map costs allocations on every answer. Setting and reading this costs a few loads and stores.
//! A leaf: it knows nothing of the crate but the request id.

use std::{cell::Cell, future::Future};

use keygate_domain::{KeyId, UserId};

use crate::RequestId;

/// The key an answered call was accepted or refused with (and its user, when accepted), for the
/// access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyUsed {
    pub(crate) key: KeyId,
    pub(crate) user: Option<UserId>,
}

struct Scope {
    id: RequestId,
    key: Cell<Option<KeyUsed>>,
}

tokio::task_local! {
    static REQUEST: Scope;
}

/// `future`, answering request `id`.
pub(crate) fn in_request<F: Future>(id: RequestId, future: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(Scope { id, key: Cell::new(None) }, future)
}

/// The request the running task is answering, if any.
pub(crate) fn current_id() -> Option<RequestId> {
    REQUEST.try_with(|r| r.id).ok()
}

/// Notes that the request being answered is about key `key` of `user`; the last note of a
/// request is the one the access log names. Outside a request it does nothing.
pub(crate) fn note_key(key: KeyId, user: Option<UserId>) {
    let _ = REQUEST.try_with(|r| r.key.set(Some(KeyUsed { key, user })));
}

/// The key noted for the request being answered, taken (so it is named once).
pub(crate) fn take_key() -> Option<KeyUsed> {
    REQUEST.try_with(|r| r.key.take()).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_names_its_id_and_the_last_key_noted_and_nothing_leaks_outside_it() {
        let id = RequestId::Own { prefix: 7, n: 1 };
        note_key(KeyId(9), None);
        assert_eq!((current_id(), take_key()), (None, None), "no request, no note");
        let (seen, key, again) = in_request(id, async {
            note_key(KeyId(1), None);
            tokio::task::yield_now().await;
            note_key(KeyId(2), Some(UserId(3)));
            (current_id(), take_key(), take_key())
        })
        .await;
        assert_eq!(seen, Some(id));
        assert_eq!(key, Some(KeyUsed { key: KeyId(2), user: Some(UserId(3)) }));
        assert_eq!(again, None, "taken once");
        assert_eq!(current_id(), None);
    }
}
