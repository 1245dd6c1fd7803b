//! The listener nodes connect to, and one task per node connection.
//!
//! A connection task does only transport: it decodes [`NodeMessage`]s from
//! the socket and hands them to the driver as events, and writes whatever the
//! driver puts in its outbox. Every decision (is this registration allowed?
//! is this `migration_done` current?) belongs to the state machine.
//!
//! A peer that sends bytes that are not a coordination message gets an
//! `error` message and the connection is closed; nothing a peer sends can
//! panic the coordinator or make it allocate more than one message's limit
//! ([`keycafe_core::coord::MESSAGE_LIMITS`]). A connection that says nothing
//! for [`FIRST_MESSAGE_TIMEOUT`] is closed, and so is one whose writes stall
//! for [`WRITE_TIMEOUT`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keycafe_core::coord::{self, CoordinatorMessage, NodeMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::driver::Input;
use crate::state::{ConnId, Event};

/// Messages queued for one node before it counts as not reading.
const OUTBOX: usize = 64;
/// A new connection must send its first message (`register`) within this.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a write to a node may take before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts node connections until `stop` is cancelled. Each connection runs
/// on `tasks`, so the caller can wait for all of them to end.
pub(crate) async fn serve(
    listener: TcpListener,
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
        tasks.spawn(async move {
            if let Err(reason) = connection(conn, stream, &inputs, &stop).await {
                info!(conn, %peer, %reason, "node connection closed");
            }
            // The driver may already have stopped (shutdown): nothing to tell.
            let _ = inputs
                .send(Input::Event(Event::Disconnected { conn }))
                .await;
        });
    }
}

/// Serves one connection; `Err` says why it ended abnormally.
async fn connection(
    conn: ConnId,
    stream: TcpStream,
    inputs: &mpsc::Sender<Input>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let (outbox_tx, mut outbox) = mpsc::channel::<Bytes>(OUTBOX);
    if inputs
        .send(Input::Connected {
            conn,
            outbox: outbox_tx,
        })
        .await
        .is_err()
    {
        return Ok(()); // shutting down
    }
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    let first_message = tokio::time::sleep(FIRST_MESSAGE_TIMEOUT);
    tokio::pin!(first_message);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut heard = false;
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
                        Ok(Some(message)) => {
                            heard = true;
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
            _ = &mut first_message, if !heard => {
                let reason = format!("no register within {FIRST_MESSAGE_TIMEOUT:?}");
                refuse(&mut writer, &reason).await;
                return Err(reason);
            }
            () = &mut stopped => return Ok(()),
        }
    }
}

async fn write(writer: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("write failed: {err}")),
        Err(_) => Err(format!("write stalled for {WRITE_TIMEOUT:?}")),
    }
}

/// Reads and discards what the peer still sends, briefly: closing a socket
/// with unread input makes the kernel reset the connection, which can destroy
/// the error message before the peer has read it.
async fn drain(reader: &mut tokio::net::tcp::OwnedReadHalf) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(1..) = reader.read(&mut sink).await {}
    })
    .await;
}

/// Best effort: tell the peer why it is being dropped.
async fn refuse(writer: &mut tokio::net::tcp::OwnedWriteHalf, reason: &str) {
    let mut buf = BytesMut::new();
    let message = CoordinatorMessage::Error {
        message: reason.to_string(),
    };
    coord::encode_message(&message, &mut buf);
    let _ = write(writer, &buf).await;
    let _ = writer.shutdown().await;
}
