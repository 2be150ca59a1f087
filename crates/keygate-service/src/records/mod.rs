//! The data API's use cases: reading views with filters and paging, and reading and writing
//! records, always as the key's user with the key's effective permissions.
//!
//! One job per file: how far a key reaches and as whom it acts ([`access`]); reading views and
//! records ([`read`]) with keyset paging hints ([`paging`]); writing records ([`write`]), validated
//! ([`validate`]) against the write-spec catalogue ([`catalogue`]); users written as records
//! ([`users`]). This file only declares and re-exports.

mod access;
mod catalogue;
mod paging;
mod read;
mod users;
mod validate;
mod write;

pub(crate) use paging::PageHints;
pub use read::{Page, ViewParams};
