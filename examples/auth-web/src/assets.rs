//! The site's own static files, compiled into the binary: one stylesheet and
//! the logo (also the favicon). No CDN, no fonts to download: the pages look
//! the same offline.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

const STYLE_CSS: &str = include_str!("../static/style.css");
const LOGO_SVG: &str = include_str!("../static/logo.svg");

/// `/static/style.css` and `/static/logo.svg`. These routes sit outside the
/// session layer: fetching a stylesheet neither needs nor touches a session.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/static/style.css",
            get(|| file("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/static/logo.svg", get(|| file("image/svg+xml", LOGO_SVG)))
}

async fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}
