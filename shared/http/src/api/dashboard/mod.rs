//! The web dashboard: one static page, its script and its stylesheet, compiled into the binary (no build step, no
//! framework). It is public (it holds no data and asks for the token); everything it shows comes from `/api/*`.
//! A strict Content-Security-Policy allows only this origin's script, style and API.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("index.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /`, `GET /assets/dashboard.js` and `GET /assets/dashboard.css`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/dashboard.js",
            get(|| async { asset(DASHBOARD_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/dashboard.css",
            get(|| async { asset(DASHBOARD_CSS, "text/css; charset=utf-8", "no-cache") }),
        )
}

fn asset(body: &'static str, content_type: &'static str, cache_control: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}
