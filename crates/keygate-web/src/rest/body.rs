//! A response body of a few ready buffers, sent one after the other without being joined, with
//! its exact length (so the answer has a `Content-Length`), holding something (a page's share of
//! the memory budget) until the body is dropped. No I/O, no HTTP status here.

use axum::body::Bytes;

/// `N` buffers sent in order; `keep` lives as long as the body.
pub(crate) struct Parts<const N: usize, K = ()> {
    parts: [Option<Bytes>; N],
    len: u64,
    _keep: K,
}

impl<const N: usize, K> Parts<N, K> {
    pub(crate) fn new(parts: [Bytes; N], keep: K) -> Self {
        let len = parts.iter().map(|p| p.len() as u64).sum();
        Self { parts: parts.map(Some), len, _keep: keep }
    }
}

impl<const N: usize, K: Unpin> http_body::Body for Parts<N, K> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let next = this.parts.iter_mut().find_map(Option::take);
        if let Some(part) = &next {
            this.len -= part.len() as u64;
        }
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}
