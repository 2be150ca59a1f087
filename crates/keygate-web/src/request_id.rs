//! Request ids: one per request, given by [`crate::App`] before anything else runs, on every log
//! line of the request (its span), in every problem document and in every answer's
//! `X-Request-Id` header. A trusted proxy may send its own (nginx's `$request_id`) in
//! `X-Request-Id`, so that its logs and keygate's name a request alike; from anyone else the
//! header is ignored.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

/// The longest request id taken from a trusted proxy.
pub(crate) const GIVEN_MAX: usize = 64;

/// A request's id: keygate's own, or one a trusted proxy gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestId {
    /// A short id unique within this process run (`1f2e3d4c-2a`): a prefix drawn at start, so
    /// that runs and nodes differ, and a counter.
    Own { prefix: u32, n: u64 },
    /// 1 to [`GIVEN_MAX`] bytes of letters, digits, `-`, `_`, `.` and `:` (kept inline, so an id
    /// is copied, never allocated).
    Given { len: u8, text: [u8; GIVEN_MAX] },
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Own { prefix, n } => write!(f, "{prefix:08x}-{n:x}"),
            // Only ASCII is ever kept.
            Self::Given { len, text } => f.write_str(std::str::from_utf8(&text[..usize::from(*len)]).unwrap_or("-")),
        }
    }
}

impl RequestId {
    /// The id a trusted proxy sent, when it is one keygate can repeat safely in headers, JSON and
    /// logs; `None` for anything else (keygate then draws its own).
    pub(crate) fn given(value: &[u8]) -> Option<Self> {
        let fits = (1..=GIVEN_MAX).contains(&value.len())
            && value.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !fits {
            return None;
        }
        let mut text = [0u8; GIVEN_MAX];
        text[..value.len()].copy_from_slice(value);
        Some(Self::Given { len: value.len() as u8, text })
    }

    /// The id as a header value, written without the formatting machinery (this runs on every
    /// answer).
    pub(crate) fn header_value(self) -> HeaderValue {
        let mut text = [0u8; GIVEN_MAX];
        let len = self.write_ascii(&mut text);
        HeaderValue::from_bytes(&text[..len]).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }

    /// Appends the id (plain ASCII, nothing to escape in JSON) to `out`, as [`Self::header_value`].
    pub(crate) fn append_to(self, out: &mut Vec<u8>) {
        let mut text = [0u8; GIVEN_MAX];
        let len = self.write_ascii(&mut text);
        out.extend_from_slice(&text[..len]);
    }

    /// Writes the id into `text`; its length.
    fn write_ascii(self, text: &mut [u8; GIVEN_MAX]) -> usize {
        let (prefix, n) = match self {
            Self::Own { prefix, n } => (prefix, n),
            Self::Given { len, text: given } => {
                text[..usize::from(len)].copy_from_slice(&given[..usize::from(len)]);
                return usize::from(len);
            }
        };
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // 8 digits, a dash, at most 16 digits.
        for (i, byte) in text[..8].iter_mut().enumerate() {
            *byte = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
        }
        text[8] = b'-';
        let digits = (16 - n.leading_zeros() as usize / 4).max(1);
        for i in 0..digits {
            text[9 + i] = HEX[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
        9 + digits
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
        RequestId::Own { prefix: self.prefix, n: self.counter.fetch_add(1, Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_and_the_problem_document_show_the_same_id() {
        for (prefix, n) in [(0, 1), (0x1f2e_3d4c, 0x2a), (u32::MAX, u64::MAX), (7, 0x10), (7, 0xf)] {
            let id = RequestId::Own { prefix, n };
            assert_eq!(id.header_value().to_str().expect("ascii"), id.to_string());
        }
    }

    #[test]
    fn a_proxys_id_is_kept_only_when_it_is_short_plain_text() {
        for good in ["5f1c0e7b2a9d4c31", "req-1", "a.b_c:d", &"x".repeat(GIVEN_MAX)] {
            let id = RequestId::given(good.as_bytes()).expect(good);
            assert_eq!(
                (id.to_string(), id.header_value().to_str().expect("ascii").to_owned()),
                (good.into(), good.into())
            );
        }
        for bad in ["", "has space", "quote\"", "new\nline", "<script>", "ünïcode", &"x".repeat(GIVEN_MAX + 1)] {
            assert_eq!(RequestId::given(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_of_one_run_differ() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a.to_string(), b.to_string());
    }
}
