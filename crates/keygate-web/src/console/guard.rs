//! Cross-site form posts are refused before any console handler runs: a POST whose
//! `Sec-Fetch-Site` says another site sent it, or whose `Origin` is not this host, gets a 403.
//! Together with `SameSite=Strict` cookies and a per-session CSRF token in every form, a page on
//! another site cannot make a logged-in browser act.

use axum::{
    extract::Request,
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::Response,
};

pub(crate) async fn refuse_cross_site_posts(request: Request, next: Next) -> Response {
    if request.method() != Method::GET
        && request.method() != Method::HEAD
        && let Some(why) = cross_site(request.headers())
    {
        tracing::info!(reason = why, "refused a cross-site console form post");
        return super::message_page(
            StatusCode::FORBIDDEN,
            None,
            "Cross-site request refused",
            &format!("keygate only accepts console forms sent from its own pages: {why}."),
        );
    }
    next.run(request).await
}

/// Why the request looks cross-site, or `None` when it came from keygate's own pages (or from a
/// client that sends neither header, such as curl, which carries no ambient cookies anyway).
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site.trim(), "same-origin" | "none")
    {
        return Some("the browser says another site sent it (Sec-Fetch-Site)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let origin = origin.to_str().unwrap_or("null");
        let authority = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
        if authority.is_none_or(|a| host.is_empty() || !a.eq_ignore_ascii_case(host)) {
            return Some("its Origin is not this server");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_form_from_the_same_origin_passes() {
        let h = headers(&[
            ("host", "keygate.example"),
            ("origin", "https://keygate.example"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_site(&h), None);
    }

    #[test]
    fn a_form_from_another_site_is_refused_by_either_header() {
        assert!(cross_site(&headers(&[("host", "keygate.example"), ("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("host", "keygate.example"), ("origin", "https://evil.example")])).is_some());
        assert!(cross_site(&headers(&[("host", "keygate.example"), ("origin", "null")])).is_some());
        assert!(cross_site(&headers(&[("host", "keygate.example"), ("sec-fetch-site", "same-site")])).is_some());
    }
}
