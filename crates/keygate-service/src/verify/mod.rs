//! Verification, the hot path: parse → digest → cached key, owner and tenant → validity rule →
//! rate limit. On a cache hit no database is read. Entries are dropped by explicit invalidation
//! (this process: at once; other processes: the change feed), with a TTL only as a safety net.
//!
//! One job per file: what a caller asks ([`request`]) and is answered ([`outcome`]); the flow that
//! decides ([`flow`]); the verifier's state, its caches and how they are filled and emptied
//! ([`verifier`]) and the keys it reads again ahead of their TTL ([`ahead`]), over a generic single-flight cache ([`cache`]) with a capacity ([`capped`]) and its hashers ([`hashing`]) of key entries
//! ([`entry`]); the
//! change feed that empties them from other processes ([`feed`]); and the usage that accepted
//! calls leave, per key ([`key_usage`]) and buffered for writing behind ([`usage`]). This file only
//! declares and re-exports.

mod ahead;
mod cache;
mod capped;
mod entry;
mod feed;
mod flow;
mod hashing;
mod key_usage;
mod outcome;
mod request;
mod usage;
mod verifier;

pub(crate) use feed::FeedCursor;
pub use key_usage::day_of;
pub use outcome::{Refused, UNAVAILABLE_RETRY_AFTER_SECS, VERIFY_DB_WAIT, Verified};
pub use request::{CheckRequest, Credential, VerifyRequest};
pub(crate) use verifier::Verifier;
