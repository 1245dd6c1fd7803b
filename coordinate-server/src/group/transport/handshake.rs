//! The challenge-response that opens every group link, before any Raft
//! message crosses it.
//!
//! Both sides prove that they hold the cluster secret, without sending it
//! ([`keycafe_core::auth`]), and name their member ids in their proofs:
//!
//! 1. the dialler sends `hello`: its [`Member`] (id and addresses, so that
//!    the acceptor learns where a new member is) and its nonce;
//! 2. the acceptor answers `challenge`: its id, its nonce, and its proof
//!    ([`Step::GroupServer`]) over the dialler's nonce, its own and its id;
//! 3. the dialler checks that proof, and that it reached the member it meant
//!    to dial, and sends `proof` ([`Step::GroupClient`], over the acceptor's
//!    nonce, its own and its id);
//! 4. the acceptor checks it and answers `accepted`.
//!
//! Each message is JSON in a native frame, as on the coordination link
//! ([`keycafe_core::coord::encode_message`]); the side that refuses sends
//! `error` with the reason, then closes. A handshake message is small: one
//! that says it is longer than [`MAX_HANDSHAKE_LEN`] is refused at once, so
//! a stranger cannot make a member buffer more before it has proved
//! anything.

use std::time::Duration;

use bytes::BytesMut;
use keycafe_core::auth::{self, Step};
use keycafe_core::coord;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::write_watched;
use crate::group::{Member, MemberId};

/// The longest handshake message, in bytes (a member's addresses and two
/// hex strings fit many times over).
pub const MAX_HANDSHAKE_LEN: usize = 64 * 1024;

/// The messages of the handshake, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handshake {
    /// Dialler, first: who and where it is, and its challenge.
    Hello { member: Member, nonce: String },
    /// Acceptor: who answered, its challenge, and its proof.
    Challenge {
        id: MemberId,
        nonce: String,
        proof: String,
    },
    /// Dialler: its answer to the acceptor's challenge.
    Proof { proof: String },
    /// Acceptor: the link is open; Raft messages follow.
    Accepted,
    /// Either side: why it closes the connection.
    Error { message: String },
}

/// The dialler's side, on a fresh connection to the member `peer` is
/// expected to be. `Ok` once the acceptor has accepted; on `Err` (the
/// reason) the acceptor has been told why, if it was still listening.
pub(super) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    me: &Member,
    peer: MemberId,
    secret: &str,
) -> Result<(), String> {
    let result = dial_steps(stream, buf, me, peer, secret).await;
    if let Err(reason) = &result {
        refuse(stream, reason).await;
    }
    result
}

async fn dial_steps<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    me: &Member,
    peer: MemberId,
    secret: &str,
) -> Result<(), String> {
    let key = secret.as_bytes();
    let ours = new_nonce()?;
    let hello = Handshake::Hello {
        member: me.clone(),
        nonce: ours.clone(),
    };
    send(stream, &hello).await?;
    let (id, theirs, proof) = match next(stream, buf).await? {
        Handshake::Challenge { id, nonce, proof } => (id, nonce, proof),
        Handshake::Error { message } => return Err(format!("refused: {message}")),
        _ => return Err("the answer to hello must be a challenge".into()),
    };
    let proved = auth::is_nonce(&theirs)
        && auth::verify(
            key,
            Step::GroupServer,
            &ours,
            &theirs,
            &id.to_string(),
            &proof,
        );
    if !proved {
        return Err(
            "authentication failed: the member there does not hold this cluster's secret".into(),
        );
    }
    if id != peer {
        return Err(format!("reached member {id} there, not member {peer}"));
    }
    let proof = auth::proof(key, Step::GroupClient, &theirs, &ours, &me.id.to_string());
    send(stream, &Handshake::Proof { proof }).await?;
    match next(stream, buf).await? {
        Handshake::Accepted => Ok(()),
        Handshake::Error { message } => Err(format!("refused: {message}")),
        _ => Err("the answer to proof must be accepted".into()),
    }
}

/// The acceptor's side, on a connection `me` accepted. Returns the member
/// that proved itself; on `Err` (the reason) the dialler has been told why,
/// if it was still listening.
pub(super) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    me: &Member,
    secret: &str,
) -> Result<Member, String> {
    let result = accept_steps(stream, buf, me, secret).await;
    if let Err(reason) = &result {
        refuse(stream, reason).await;
    }
    result
}

async fn accept_steps<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    me: &Member,
    secret: &str,
) -> Result<Member, String> {
    let key = secret.as_bytes();
    let Handshake::Hello {
        member,
        nonce: theirs,
    } = next(stream, buf).await?
    else {
        return Err("the first message must be hello".into());
    };
    if member.id == me.id {
        return Err(format!("member id {} is this coordinator's own", me.id));
    }
    if member.id == 0 {
        return Err("member ids start at 1".into());
    }
    if !auth::is_nonce(&theirs) {
        return Err("hello needs a nonce of 64 hex digits".into());
    }
    let ours = new_nonce()?;
    let challenge = Handshake::Challenge {
        id: me.id,
        nonce: ours.clone(),
        proof: auth::proof(key, Step::GroupServer, &theirs, &ours, &me.id.to_string()),
    };
    send(stream, &challenge).await?;
    let id = member.id.to_string();
    match next(stream, buf).await? {
        Handshake::Proof { proof }
            if auth::verify(key, Step::GroupClient, &ours, &theirs, &id, &proof) => {}
        Handshake::Proof { .. } => {
            return Err("authentication failed: wrong cluster secret".into());
        }
        Handshake::Error { message } => return Err(format!("the dialler gave up: {message}")),
        _ => return Err("after hello, proof".into()),
    }
    send(stream, &Handshake::Accepted).await?;
    Ok(member)
}

fn new_nonce() -> Result<String, String> {
    auth::nonce().map_err(|err| format!("no random numbers for a nonce: {err}"))
}

async fn send(writer: &mut (impl AsyncWrite + Unpin), message: &Handshake) -> Result<(), String> {
    let mut out = BytesMut::new();
    coord::encode_message(message, &mut out);
    write_watched(writer, &out).await
}

/// Reads until one whole handshake message has arrived.
pub(super) async fn next(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<Handshake, String> {
    loop {
        if let Some(message) = parse(buf)? {
            return Ok(message);
        }
        match reader.read_buf(buf).await {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(_) => {}
            Err(err) => return Err(format!("read failed during the handshake: {err}")),
        }
    }
}

/// Takes one handshake message from the front of `buf`, if it has fully
/// arrived; refuses one that says it is over [`MAX_HANDSHAKE_LEN`] as soon
/// as its length prefix is in.
pub(super) fn parse(buf: &mut BytesMut) -> Result<Option<Handshake>, String> {
    if let Some(prefix) = buf.get(..4) {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > MAX_HANDSHAKE_LEN {
            return Err(format!(
                "not a group handshake message: a frame of {len} bytes (at most {MAX_HANDSHAKE_LEN})"
            ));
        }
    }
    coord::decode_message(buf).map_err(|err| format!("malformed handshake message: {err}"))
}

/// Best effort: tells the peer why it is dropped, then closes. Reads and
/// discards what the peer still sends, briefly: closing a socket with
/// unread input makes the kernel reset the connection, which can destroy
/// the message before the peer has read it.
pub(super) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, reason: &str) {
    let mut out = BytesMut::new();
    let error = Handshake::Error {
        message: reason.to_string(),
    };
    coord::encode_message(&error, &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&out).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(1..) = stream.read(&mut sink).await {}
    })
    .await;
}
