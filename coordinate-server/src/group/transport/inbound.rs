//! The group port: accepts connections from peers, authenticates them and
//! delivers the Raft messages they send to the driver.
//!
//! An inbound connection only delivers: this member never writes on it
//! after the handshake (its messages to the peer go on its own outbound
//! link). A message is delivered only if it comes from the member that
//! authenticated the connection and is addressed to this one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::{Context, HANDSHAKE_TIMEOUT, Inbound, decode_raft, handshake, lock, reserve_frame};
use crate::group::MemberId;

/// Accepts connections until `stop` is cancelled, each served on its own
/// task on `tasks`.
pub(super) async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // Out of file descriptors and the like: wait and retry.
                warn!(%err, "group port: accept failed; retrying in {backoff:?}");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let context = context.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = connection(stream, from, &context) => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// Serves one accepted connection to its end.
async fn connection(stream: TcpStream, from: SocketAddr, context: &Context) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let ended = match &context.tls {
        None => serve(stream, from, deadline, context).await,
        Some((acceptor, _)) => {
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(stream, from, deadline, context).await,
                Ok(Err(err)) => Err(Ended::Refused(format!("TLS handshake failed: {err}"))),
                Err(_) => Err(Ended::Refused(format!(
                    "no TLS handshake within {HANDSHAKE_TIMEOUT:?}"
                ))),
            }
        }
    };
    match ended {
        Ok(()) => debug!(%from, "group connection closed"),
        Err(Ended::Refused(reason)) => warn!(%from, %reason, "group connection refused"),
        Err(Ended::Broken(peer, reason)) => warn!(%from, peer, %reason, "group connection closed"),
    }
}

/// Why a connection ended early.
enum Ended {
    /// Before or during the handshake.
    Refused(String),
    /// After it, from the member with this id.
    Broken(MemberId, String),
}

/// The handshake (by `deadline`), then delivery until the peer closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    from: SocketAddr,
    deadline: tokio::time::Instant,
    context: &Context,
) -> Result<(), Ended> {
    let mut buf = BytesMut::with_capacity(4096);
    let handshake = handshake::accept(&mut stream, &mut buf, &context.me, &context.secret);
    let member = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(member)) => member,
        Ok(Err(reason)) => return Err(Ended::Refused(reason)),
        Err(_) => {
            let reason = format!("no handshake within {HANDSHAKE_TIMEOUT:?}");
            handshake::refuse(&mut stream, &reason).await;
            return Err(Ended::Refused(reason));
        }
    };
    debug!(%from, peer = member.id, "group connection authenticated");
    let id = member.id;
    if context.inbox.send(Inbound::Hello(member)).await.is_err() {
        return Ok(()); // the driver has stopped
    }
    deliver(&mut stream, &mut buf, id, context)
        .await
        .map_err(|reason| Ended::Broken(id, reason))
}

/// Reads Raft messages from the authenticated member `peer` and hands them
/// to the driver. `Ok` when the peer closes or the driver has stopped.
async fn deliver(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    peer: MemberId,
    context: &Context,
) -> Result<(), String> {
    loop {
        while let Some(message) = decode_raft(buf)? {
            if message.from != peer {
                return Err(format!(
                    "a message from member {} on member {peer}'s link",
                    message.from
                ));
            }
            lock(&context.received).insert(peer, Instant::now());
            if message.to != context.me.id {
                debug!(
                    peer,
                    to = message.to,
                    "a Raft message for another member; dropped"
                );
                continue;
            }
            if context.inbox.send(Inbound::Message(message)).await.is_err() {
                return Ok(());
            }
        }
        reserve_frame(buf);
        match reader.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(()),
            Ok(0) => return Err("closed in the middle of a message".into()),
            Ok(_) => {}
            Err(err) => return Err(format!("read failed: {err}")),
        }
    }
}
