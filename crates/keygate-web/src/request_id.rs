//! Request ids: one per request, given by [`crate::App`] before anything else runs, on every log
//! line of the request (its span), in every problem document and in every answer's
//! `X-Request-Id` header.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

/// A short id unique within this process run (`1f2e3d4c-2a`): a prefix drawn at start, so that
/// runs and nodes differ, and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId {
    prefix: u32,
    n: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}-{:x}", self.prefix, self.n)
    }
}

impl RequestId {
    /// The id as a header value, written without the formatting machinery (this runs on every
    /// answer).
    pub(crate) fn header_value(self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // 8 digits, a dash, at most 16 digits.
        let mut text = [0u8; 25];
        for (i, byte) in text[..8].iter_mut().enumerate() {
            *byte = HEX[((self.prefix >> (28 - 4 * i)) & 0xf) as usize];
        }
        text[8] = b'-';
        let digits = (16 - self.n.leading_zeros() as usize / 4).max(1);
        for i in 0..digits {
            text[9 + i] = HEX[((self.n >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&text[..9 + digits]).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Where request ids come from: one per [`crate::AppState`].
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        Self { prefix: nanos ^ std::process::id().rotate_left(16), counter: AtomicU64::new(1) }
    }

    pub(crate) fn next(&self) -> RequestId {
        RequestId { prefix: self.prefix, n: self.counter.fetch_add(1, Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_the_problem_document_show_the_same_id() {
        for (prefix, n) in [(0, 1), (0x1f2e_3d4c, 0x2a), (u32::MAX, u64::MAX), (7, 0x10), (7, 0xf)] {
            let id = RequestId { prefix, n };
            assert_eq!(id.header_value().to_str().expect("ascii"), id.to_string());
        }
    }

    #[test]
    fn ids_of_one_run_differ() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a.to_string(), b.to_string());
    }
}
