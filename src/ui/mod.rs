//! The read-only dashboard: a static page and its assets, embedded in the
//! binary and served on the HTTP listener under `/ui/` (`/` redirects
//! there).
//!
//! The page is plain JavaScript with no build step (`app.js`), charting with
//! the vendored uPlot (`vendor/uplot/`, MIT, fetched once with
//! `npm pack uplot@1.6`), so it works offline: no CDN, no Node at build or
//! run time. It reads the same HTTP/JSON API as any client, so API keys
//! apply to the data: the page itself is open (it is outside `/v1/`, see
//! `edge::auth::scope_for`; it holds nothing but code), and a key typed into
//! it is kept in the tab's session storage and sent as `x-api-key`.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::http::json::Outcome;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every embedded file: its path, bytes and content type. The page first.
const FILES: [(&str, &[u8], &str); 6] = [
    ("/ui/", include_bytes!("index.html"), HTML),
    ("/ui/app.js", include_bytes!("app.js"), JS),
    ("/ui/app.css", include_bytes!("app.css"), CSS),
    (
        "/ui/vendor/uplot/uPlot.iife.min.js",
        include_bytes!("vendor/uplot/uPlot.iife.min.js"),
        JS,
    ),
    (
        "/ui/vendor/uplot/uPlot.min.css",
        include_bytes!("vendor/uplot/uPlot.min.css"),
        CSS,
    ),
    (
        "/ui/vendor/uplot/LICENSE",
        include_bytes!("vendor/uplot/LICENSE"),
        TEXT,
    ),
];

/// Scripts and styles from this origin only (nothing inline, no CDN);
/// `style-src 'unsafe-inline'` because uPlot sizes its elements with style
/// attributes; `connect-src 'self'` since the page talks to its own API
/// only; `frame-ancestors 'none'` so it cannot be framed (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The dashboard's routes, merged into the HTTP router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/", get(|| async { to_ui() }))
        .route("/ui", get(|| async { to_ui() }))
        // Browsers ask for it on any page of the origin (the page itself
        // declares none); 204 rather than a 404 in the browser's console.
        .route(
            "/favicon.ico",
            get(|| async { mark(StatusCode::NO_CONTENT.into_response()) }),
        );
    for (path, body, content_type) in FILES {
        router = router.route(path, get(move || async move { serve(body, content_type) }));
    }
    router
}

/// Metrics label of every dashboard response: a fixed name, so the routes
/// add one label value, not one per file.
fn mark(mut res: Response) -> Response {
    res.extensions_mut().insert(Outcome {
        rpc: "ui",
        error: None,
    });
    res
}

fn to_ui() -> Response {
    mark(Redirect::permanent("/ui/").into_response())
}

fn serve(body: &'static [u8], content_type: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change only with the binary; `no-cache` makes the browser
    // revalidate, so an upgraded server never runs a stale script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    mark(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page references exactly the files served above (a renamed asset
    /// would otherwise be a 404 found only in a browser).
    #[test]
    fn index_references_served_assets() {
        let (page, index, _) = FILES[0];
        assert_eq!(page, "/ui/");
        let index = std::str::from_utf8(index).expect("utf-8");
        for (path, _, content_type) in &FILES[1..] {
            if *content_type != TEXT {
                assert!(index.contains(path), "index.html does not load {path}");
            }
        }
    }
}
