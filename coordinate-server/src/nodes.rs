//! The listener nodes connect to, and one task per node connection.
//!
//! A connection task does transport and authentication: it makes the peer
//! prove that it holds the cluster secret (and proves it holds it too; see
//! [`keycafe_core::auth`]) before anything the peer says reaches the state
//! machine; then it decodes [`NodeMessage`]s from the socket and hands them
//! to the driver as events, and writes whatever the driver puts in its
//! outbox. Every other decision (is this registration allowed? is this
//! `migration_done` current?) belongs to the state machine.
//!
//! A peer that sends bytes that are not a coordination message gets an
//! `error` message and the connection is closed; nothing a peer sends can
//! panic the coordinator or make it allocate more than one message's limit
//! ([`keycafe_core::coord::MESSAGE_LIMITS`]). A connection that has not
//! proved itself within [`FIRST_MESSAGE_TIMEOUT`] is closed, and so is one whose writes stall
//! for [`WRITE_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::auth::{self, Step};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage};
use keycafe_core::tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::driver::Input;
use crate::state::{ConnId, Event};

/// Messages queued for one node before it counts as not reading.
const OUTBOX: usize = 64;
/// A new connection must have proved itself (`hello`, then `register`)
/// within this.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a write to a node may take before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts node connections until `stop` is cancelled. Each connection runs
/// on `tasks`, so the caller can wait for all of them to end. With `tls`,
/// each starts with a TLS handshake (mutual: the acceptor requires a
/// member's certificate), on the connection's own task and within
/// [`FIRST_MESSAGE_TIMEOUT`].
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    secret: Arc<str>,
    inputs: mpsc::Sender<Input>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut next_conn: ConnId = 0;
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // Out of file descriptors and the like: wait and retry.
                warn!(%err, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        next_conn += 1;
        let conn = next_conn;
        debug!(conn, %peer, "node connection");
        let inputs = inputs.clone();
        let stop = stop.clone();
        let secret = secret.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let served = match tls {
                None => connection(conn, stream, &secret, &inputs, &stop).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => connection(conn, stream, &secret, &inputs, &stop).await,
                        Ok(Err(err)) => Err(format!("TLS handshake failed: {err}")),
                        Err(_) => Err(format!("no TLS handshake within {FIRST_MESSAGE_TIMEOUT:?}")),
                    }
                }
            };
            if let Err(reason) = served {
                info!(conn, %peer, %reason, "node connection closed");
            }
            // The driver may already have stopped (shutdown): nothing to tell.
            let _ = inputs
                .send(Input::Event(Event::Disconnected { conn }))
                .await;
        });
    }
}

/// Serves one connection; `Err` says why it ended abnormally. Nothing a
/// peer sends reaches the state machine before it has proved that it holds
/// the cluster secret.
async fn connection(
    conn: ConnId,
    stream: impl AsyncRead + AsyncWrite + Send,
    secret: &str,
    inputs: &mpsc::Sender<Input>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    let handshake = authenticate(&mut reader, &mut writer, &mut buf, secret);
    let register = match tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, handshake).await {
        Ok(Ok(register)) => register,
        Ok(Err(reason)) => {
            refuse(&mut writer, &reason).await;
            drain(&mut reader).await;
            return Err(reason);
        }
        Err(_) => {
            let reason = format!("no hello and register within {FIRST_MESSAGE_TIMEOUT:?}");
            refuse(&mut writer, &reason).await;
            return Err(reason);
        }
    };
    let (outbox_tx, mut outbox) = mpsc::channel::<Bytes>(OUTBOX);
    let connected = Input::Connected {
        conn,
        outbox: outbox_tx,
    };
    let registered = Input::Event(Event::Received {
        conn,
        message: register,
    });
    if inputs.send(connected).await.is_err() || inputs.send(registered).await.is_err() {
        return Ok(()); // shutting down
    }
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            read = reader.read_buf(&mut buf) => {
                match read {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(err) => return Err(format!("read failed: {err}")),
                }
                loop {
                    match coord::decode_message::<NodeMessage>(&mut buf) {
                        Ok(Some(NodeMessage::Hello { .. })) => {
                            let reason = "hello is only the first message".to_string();
                            refuse(&mut writer, &reason).await;
                            return Err(reason);
                        }
                        Ok(Some(message)) => {
                            let event = Event::Received { conn, message };
                            if inputs.send(Input::Event(event)).await.is_err() {
                                return Ok(());
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            let reason = format!("malformed message: {err}");
                            refuse(&mut writer, &reason).await;
                            drain(&mut reader).await;
                            return Err(reason);
                        }
                    }
                }
            }
            queued = outbox.recv() => match queued {
                Some(bytes) => write(&mut writer, &bytes).await?,
                // The driver dropped us: everything queued has been written.
                None => {
                    let _ = writer.shutdown().await;
                    drain(&mut reader).await;
                    return Ok(());
                }
            },
            () = &mut stopped => return Ok(()),
        }
    }
}

/// The challenge-response that opens a connection (`docs/protocol.md`,
/// "The conversation"): the node's `hello` carries its challenge, we answer
/// with ours and our proof, and its `register` must carry its proof, for the
/// id it said hello with. Returns that `register`.
async fn authenticate(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    buf: &mut BytesMut,
    secret: &str,
) -> Result<NodeMessage, String> {
    let NodeMessage::Hello {
        node,
        nonce: theirs,
    } = next_message(reader, buf).await?
    else {
        return Err("the first message must be hello".into());
    };
    if !auth::is_nonce(&theirs) {
        return Err("hello needs a nonce of 64 hex digits".into());
    }
    let ours = auth::nonce().map_err(|err| format!("no random numbers: {err}"))?;
    let proof = auth::proof(secret.as_bytes(), Step::Coordinator, &theirs, &ours, "");
    let mut out = BytesMut::new();
    let challenge = CoordinatorMessage::Challenge {
        nonce: ours.clone(),
        proof,
    };
    coord::encode_message(&challenge, &mut out);
    write(writer, &out).await?;
    let register = next_message(reader, buf).await?;
    let NodeMessage::Register {
        node: info, proof, ..
    } = &register
    else {
        return Err("after hello, register".into());
    };
    let step = Step::CoordinatorClient;
    if info.id != node || !auth::verify(secret.as_bytes(), step, &ours, &theirs, &node, proof) {
        warn!(%node, "a node failed to prove the cluster secret; refused");
        return Err("authentication failed: wrong cluster secret".into());
    }
    Ok(register)
}

/// Reads until one whole message has arrived.
async fn next_message(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<NodeMessage, String> {
    loop {
        match coord::decode_message::<NodeMessage>(buf) {
            Ok(Some(message)) => return Ok(message),
            Ok(None) => {}
            Err(err) => return Err(format!("malformed message: {err}")),
        }
        match reader.read_buf(buf).await {
            Ok(0) => return Err("closed before registering".into()),
            Ok(_) => {}
            Err(err) => return Err(format!("read failed: {err}")),
        }
    }
}

async fn write(writer: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<(), String> {
    // Flushed: over TLS the tail of a write can otherwise wait in the
    // session until the next one.
    let written = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("write failed: {err}")),
        Err(_) => Err(format!("write stalled for {WRITE_TIMEOUT:?}")),
    }
}

/// Reads and discards what the peer still sends, briefly: closing a socket
/// with unread input makes the kernel reset the connection, which can destroy
/// the error message before the peer has read it.
async fn drain(reader: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(1..) = reader.read(&mut sink).await {}
    })
    .await;
}

/// Best effort: tell the peer why it is being dropped.
async fn refuse(writer: &mut (impl AsyncWrite + Unpin), reason: &str) {
    let mut buf = BytesMut::new();
    let message = CoordinatorMessage::Error {
        message: reason.to_string(),
    };
    coord::encode_message(&message, &mut buf);
    let _ = write(writer, &buf).await;
    let _ = writer.shutdown().await;
}
