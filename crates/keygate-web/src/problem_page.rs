//! `GET /problems/{code}`: the page a problem document's `type` points to, one per code, saying
//! what the code means and what to do, from the code's own text ([`ProblemCode::about`] and
//! [`ProblemCode::advice`]), so that no code can lack one. HTML for a browser (a request that
//! accepts `text/html`), plain text for anyone else. Anyone may read it: it describes the API,
//! not any tenant's data.

use askama::Template;
use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{ProblemCode, RequestId, problem::Problem};

#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage {
    code: &'static str,
    status: u16,
    title: &'static str,
    about: &'static str,
    advice: &'static str,
    others: Vec<(&'static str, u16)>,
}

/// The page about `code`, or a 404 problem for a code keygate does not send.
pub(crate) async fn problem_page(
    axum::Extension(id): axum::Extension<RequestId>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let Some(code) = ProblemCode::from_code(&code) else {
        return Problem::new(ProblemCode::NotFound, id)
            .detail("keygate sends no problem with this code; /openapi.json lists every one")
            .into_response();
    };
    let html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html") || v.contains("application/xhtml+xml"));
    if html { page(code) } else { text(code) }
}

/// The page as HTML.
pub(crate) fn page(code: ProblemCode) -> Response {
    let page = ProblemPage {
        code: code.code(),
        status: code.status(),
        title: code.title(),
        about: code.about(),
        advice: code.advice(),
        others: ProblemCode::ALL.iter().filter(|c| **c != code).map(|c| (c.code(), c.status())).collect(),
    };
    match page.render() {
        Ok(body) => {
            let mut response = (StatusCode::OK, body).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'self'; frame-ancestors 'none'"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a problem page failed");
            text(code)
        }
    }
}

/// The page as plain text: the code first, then its status, meaning and advice.
pub(crate) fn text(code: ProblemCode) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text_body(code)).into_response()
}

/// The plain-text page's body (also the OpenAPI document's example of it).
pub(crate) fn text_body(code: ProblemCode) -> String {
    format!(
        "{}\n\nHTTP status {}: {}.\n\nWhat it means: {}.\n\nWhat to do: {}\n\nEvery problem keygate sends is \
         listed in /openapi.json.\n",
        code.code(),
        code.status(),
        code.title(),
        code.about(),
        code.advice(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The page comes from the code's own text: a new code has one, or does not compile.
    #[tokio::test]
    async fn every_code_has_a_page_that_says_what_it_means_and_what_to_do() {
        for code in ProblemCode::ALL {
            let response = page(code);
            assert_eq!(response.status(), 200, "{}", code.code());
            let html = body(response).await;
            // askama's escapes, undone (the ampersand last).
            let shown = ["&#39;", "&#34;", "&#60;", "&#62;", "&#38;"]
                .into_iter()
                .zip(["'", "\"", "<", ">", "&"])
                .fold(html.clone(), |t, (entity, c)| t.replace(entity, c));
            assert!(html.contains(&format!("<h1><code>{}</code></h1>", code.code())), "{html}");
            assert!(html.contains(&format!("<strong>{}</strong>", code.status())), "{}", code.code());
            for part in [code.about(), code.advice()] {
                assert!(shown.contains(part), "{}: {part}", code.code());
            }
            assert_eq!(
                html.matches("<li><a href=\"/problems/").count(),
                ProblemCode::ALL.len() - 1,
                "every other code is linked"
            );
            let text = body(text(code)).await;
            assert!(text.starts_with(code.code()) && text.contains(code.advice()), "{text}");
            assert!(text.contains(&format!("HTTP status {}", code.status())), "{text}");
        }
    }
}
