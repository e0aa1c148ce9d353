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

/// One embedded file: its bytes and content type.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_bytes!("index.html"),
    content_type: "text/html; charset=utf-8",
};
const APP_JS: Asset = Asset {
    body: include_bytes!("app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const APP_CSS: Asset = Asset {
    body: include_bytes!("app.css"),
    content_type: "text/css; charset=utf-8",
};
const UPLOT_JS: Asset = Asset {
    body: include_bytes!("vendor/uplot/uPlot.iife.min.js"),
    content_type: "text/javascript; charset=utf-8",
};
const UPLOT_CSS: Asset = Asset {
    body: include_bytes!("vendor/uplot/uPlot.min.css"),
    content_type: "text/css; charset=utf-8",
};
const UPLOT_LICENSE: Asset = Asset {
    body: include_bytes!("vendor/uplot/LICENSE"),
    content_type: "text/plain; charset=utf-8",
};

/// Scripts and styles from this origin only (nothing inline, no CDN);
/// `style-src 'unsafe-inline'` because uPlot sizes its elements with style
/// attributes; `connect-src 'self'` since the page talks to its own API
/// only; `frame-ancestors 'none'` so it cannot be framed (clickjacking).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// The dashboard's routes, merged into the HTTP router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { to_ui() }))
        .route("/ui", get(|| async { to_ui() }))
        // Browsers ask for it on any page of the origin (the page itself
        // declares none); 204 rather than a 404 in the browser's console.
        .route(
            "/favicon.ico",
            get(|| async { mark(StatusCode::NO_CONTENT.into_response()) }),
        )
        .route("/ui/", get(|| async { serve(&INDEX) }))
        .route("/ui/app.js", get(|| async { serve(&APP_JS) }))
        .route("/ui/app.css", get(|| async { serve(&APP_CSS) }))
        .route(
            "/ui/vendor/uplot/uPlot.iife.min.js",
            get(|| async { serve(&UPLOT_JS) }),
        )
        .route(
            "/ui/vendor/uplot/uPlot.min.css",
            get(|| async { serve(&UPLOT_CSS) }),
        )
        .route(
            "/ui/vendor/uplot/LICENSE",
            get(|| async { serve(&UPLOT_LICENSE) }),
        )
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

fn serve(asset: &Asset) -> Response {
    let mut res = (StatusCode::OK, asset.body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
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
        let index = std::str::from_utf8(INDEX.body).expect("utf-8");
        for path in [
            "/ui/app.js",
            "/ui/app.css",
            "/ui/vendor/uplot/uPlot.iife.min.js",
            "/ui/vendor/uplot/uPlot.min.css",
        ] {
            assert!(index.contains(path), "index.html does not load {path}");
        }
    }
}
