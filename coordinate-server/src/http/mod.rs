//! The HTTP side: a dashboard for people and a JSON API for scripts.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the dashboard (`dashboard.rs`), refreshing itself every 2 s |
//! | `GET /api/cluster` | [`ClusterView`](crate::state::view::ClusterView) as JSON |
//! | `GET /metrics` | the same snapshot for Prometheus (`metrics.rs`, `docs/metrics.md`) |
//! | `POST /api/nodes/{id}/leave` | ask a node to leave (admin token as `Bearer`); `202` + JSON, `401`, `404`, `409` |
//! | `GET /nodes/{id}/leave` | the dashboard's confirmation page for a leave, with a field for the admin token |
//! | `POST /nodes/{id}/leave` | its button: asks the node to leave, redirects to `/` |
//!
//! Every answer comes from the driver through a [`Handle`], so the HTTP side
//! never touches the state machine directly. It binds to 127.0.0.1 by
//! default, and three checks keep it that way in spirit (see [`access`]):
//! a request must name one of the dashboard's own hosts in `Host` (against
//! DNS rebinding), a write needs the admin token, and, because a page on
//! any other site could still make a browser POST to it, the POST routes
//! refuse requests whose `Origin` or `Sec-Fetch-Site` says they come from
//! elsewhere (see `same_origin`).

pub mod access;
mod api;
mod dashboard;
mod error;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::driver::Handle;

pub use access::Access;
pub use error::HttpError;

/// What the handlers share: the driver's handle and the access rules.
#[derive(Clone)]
struct HttpState {
    handle: Handle,
    access: Arc<Access>,
}

impl FromRef<HttpState> for Handle {
    fn from_ref(state: &HttpState) -> Handle {
        state.handle.clone()
    }
}

impl FromRef<HttpState> for Arc<Access> {
    fn from_ref(state: &HttpState) -> Arc<Access> {
        state.access.clone()
    }
}

/// The routes, over a running coordinator, behind [`access::guard`].
pub fn router(handle: Handle, access: Arc<Access>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route(
            "/nodes/{id}/leave",
            get(dashboard::confirm_leave).post(dashboard::leave),
        )
        .route("/api/cluster", get(api::cluster))
        .route("/api/nodes/{id}/leave", post(api::leave))
        .route("/api/group/members", post(api::add_member))
        .route("/api/group/members/{id}", delete(api::remove_member))
        .route("/metrics", get(metrics::metrics))
        .with_state(HttpState {
            handle,
            access: access.clone(),
        })
        .layer(from_fn_with_state(access, access::guard))
}

/// Serves HTTP until `shutdown` completes, then lets requests in progress
/// finish. The access rules come from `config` and the listener's address,
/// decided (and a generated admin token logged) before this returns.
pub(crate) fn serve(
    listener: TcpListener,
    handle: Handle,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
    let access = listener
        .local_addr()
        .map(|bound| Arc::new(Access::from_config(config, bound)));
    async move {
        axum::serve(listener, router(handle, access?))
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// False if the browser says this request comes from another site. Requests
/// without these headers (curl, scripts) pass: they are not forged by a page.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (header(ORIGIN.as_str()), header(HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn cross_site_posts_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:9880"),
            ("origin", "http://127.0.0.1:9880")
        ])));
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:9880"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("origin", "null")])));
    }
}
