//! Entry points for `cargo fuzz` (feature `fuzzing`, never in a release build): the request
//! decoding keygate does itself, each run on arbitrary input with its invariants asserted. No
//! behaviour of its own: each function calls the code the server runs.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, Method};

use crate::{TrustedProxies, client_ip, rest};

/// Routes `path` for `method` and decodes its segments as a Public API call would; and reads it
/// as forward-auth reads a forwarded URI.
pub fn public_api_path(method: &[u8], path: &str) {
    crate::verify::fuzz_forwarded(path);
    let Ok(method) = Method::from_bytes(method) else { return };
    rest::fuzz_path(&method, path);
}

/// Resolves the client address from `x-forwarded-for` values and `x-real-ip` sent by a peer in
/// `trusted` (and, for comparison, by one outside it).
pub fn forwarded_for(values: &[&[u8]], real_ip: Option<&[u8]>, trusted: &[String]) {
    let Ok(trusted) = TrustedProxies::parse(trusted) else { return };
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append("x-forwarded-for", v);
        }
    }
    if let Some(v) = real_ip.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert("x-real-ip", v);
    }
    let outside = SocketAddr::new(IpAddr::from([192, 0, 2, 1]), 1);
    if !trusted.contains(outside.ip()) {
        assert_eq!(client_ip::client_ip(outside, &headers, &trusted), outside.ip(), "an untrusted peer is itself");
    }
    let inside = SocketAddr::new(IpAddr::from([10, 0, 0, 1]), 1);
    let _ = client_ip::client_ip(inside, &headers, &trusted);
}

/// Decodes a console form body exactly as the console's `Fields` extractor does.
pub fn console_form(body: &[u8]) {
    use axum::extract::FromRequest;
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    }
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/console/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body.to_vec()))
        .expect("a request");
    RUNTIME.with(|rt| {
        if let Ok(fields) = rt.block_on(crate::console::Fields::from_request(request, &())) {
            let _ = (fields.get("tenant"), fields.all("group"), fields.checked("enabled"));
        }
    });
}
