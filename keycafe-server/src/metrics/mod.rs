//! The metrics port: a node's figures over HTTP, for Prometheus and for
//! container health checks.
//!
//! With `metrics_port` set, the node listens on `bind` and that port and
//! answers three things: `GET /metrics` with its figures in Prometheus's
//! text format ([`families`] lists them; `docs/metrics.md` documents them),
//! `GET /health` with `200 ok` for as long as the node serves, and `404`
//! to anything else. The routes are read-only and ask for no password,
//! like Redis's exporters; the port binds where the client port does, so it
//! is no more exposed than that, and a firewall should keep it to the
//! scrapers (`docs/security.md`).
//!
//! A scrape gathers a fresh [`Figures`] — the same reads INFO makes — so
//! the command path carries no metrics code at all: nothing is counted for
//! Prometheus that the node did not count already.
//!
//! This module is a thin shell over hyper's HTTP/1.1 connection: the
//! accept loop, and per connection a task on the node's [`TaskTracker`]
//! that stops with the node's cancellation token. Because the port may be
//! reachable by anyone who can reach the client port, it is bounded the
//! same way: at most [`MAX_CONNECTIONS`] at once (more are closed as they
//! are accepted), and a request's head must arrive within
//! [`HEADER_READ_TIMEOUT`] (which also closes idle keep-alive
//! connections), so a stranger can neither hold the node's shutdown nor
//! pile up sockets.

pub mod families;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use keycafe_core::prometheus::CONTENT_TYPE_TEXT;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::Config;
use crate::figures::Figures;
use crate::state::Shared;

/// Most metrics connections open at once; Prometheus uses one per target.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a request's head may take to arrive, counted from when the
/// connection is ready for it (so an idle connection is closed after it).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to finish its answer once the node stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The metrics listener, on `bind` and `metrics_port`, if one is set. A
/// port that cannot be had is an error that names it: the node does not
/// start without the metrics it was asked for.
pub async fn bind(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some(port) = config.metrics_port else {
        return Ok(None);
    };
    let addr = config.listen_addr(port)?;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for metrics on {addr} (metrics_port {port}): \
             choose a free port, or leave metrics_port out"
        )
    })?;
    Ok(Some(listener))
}

/// Serves `listener` until `stop` is cancelled, each connection on its own
/// task in `tasks`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: the client port's
                // accept loop has the same trouble and says more.
                warn!(%err, "metrics accept failed; retrying in 100ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            debug!("metrics connection closed at accept: {MAX_CONNECTIONS} already open");
            continue;
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tasks.spawn(async move {
            serve_connection(stream, shared, stop).await;
            drop(permit);
        });
    }
}

/// One HTTP/1.1 connection, until the peer closes it, it breaks a limit,
/// or the node stops (then the answer under way may finish, briefly).
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, stop: CancellationToken) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &shared);
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(served) => served,
                Err(_) => return,
            }
        }
    };
    if let Err(err) = served {
        debug!(%err, "metrics connection ended with an error");
    }
}

/// The answer to `request`: the routes of the module documentation.
fn respond(request: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let body = families::encode(&Figures::gather(shared));
            text(StatusCode::OK, CONTENT_TYPE_TEXT, body)
        }
        "/health" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests;
