//! Opening a connection: TCP connect, the TLS handshake when configured, the
//! native hello, and AUTH.
//!
//! All of it runs under one connect timeout, so a node that accepts a TCP
//! connection but never answers the hello costs at most that long. Until the
//! hello is answered the connection is not shared with anyone, so plain
//! request/response over the socket is enough here; the pipelined machinery
//! in [`crate::connection`] takes over afterwards. What the bytes mean is
//! [`keycafe_core::handshake`]'s business; this module only moves them.

use bytes::BytesMut;
use keycafe_core::ProtocolError;
use keycafe_core::handshake::{Handshake, HandshakeError};
use keycafe_core::tls::ClientStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ClientConfig;
use crate::error::{Error, Result, ServerError, TimeoutKind};

/// Connects to `addr`, says hello and authenticates. Returns the stream and
/// any bytes that arrived after the handshake (normally none).
pub(crate) async fn open(addr: &str, config: &ClientConfig) -> Result<(ClientStream, BytesMut)> {
    let timeout = config.connect_timeout;
    match tokio::time::timeout(timeout, open_untimed(addr, config)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            during: TimeoutKind::Connect,
            addr: addr.to_string(),
            after: timeout,
        }),
    }
}

async fn open_untimed(addr: &str, config: &ClientConfig) -> Result<(ClientStream, BytesMut)> {
    // With TCP_NODELAY: requests are batched by the writer task, and Nagle
    // would only add latency. A refused certificate is an I/O error here.
    let mut stream = ClientStream::connect(addr, config.tls_connector())
        .await
        .map_err(|e| Error::io(addr, e))?;

    // AUTH goes right behind the hello: one round trip for both.
    let auth = config.password.as_deref().map(|password| {
        let user = config.username.as_deref().map(str::as_bytes);
        (user, password.as_bytes())
    });
    let mut handshake = Handshake::new(auth);
    let mut out = BytesMut::with_capacity(64);
    handshake.encode(&mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| Error::io(addr, e))?;
    stream.flush().await.map_err(|e| Error::io(addr, e))?;

    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match handshake.poll(&mut buf, &config.limits) {
            Ok(Some(())) => return Ok((stream, buf)),
            Ok(None) => fill(&mut stream, &mut buf, addr).await?,
            Err(err) => return Err(handshake_error(addr, err)),
        }
    }
}

/// The client's error for a failed handshake: a node's refusal (of the hello
/// or of AUTH) is [`Error::Server`], with the node's own words.
fn handshake_error(addr: &str, err: HandshakeError) -> Error {
    let protocol = |source| Error::Protocol {
        addr: addr.to_string(),
        source,
    };
    match err {
        HandshakeError::Refused(text) | HandshakeError::AuthRefused(text) => {
            Error::Server(ServerError::from_bytes(&text))
        }
        HandshakeError::UnsupportedVersion(version) => {
            protocol(ProtocolError::UnsupportedVersion(version))
        }
        HandshakeError::Unexpected { expected, reply } => {
            Error::UnexpectedReply { expected, reply }
        }
        HandshakeError::Protocol(source) => protocol(source),
    }
}

/// Reads more bytes; the node closing the connection here is an I/O error.
async fn fill(stream: &mut ClientStream, buf: &mut BytesMut, addr: &str) -> Result<()> {
    match stream.read_buf(buf).await {
        Ok(0) => Err(Error::io(
            addr,
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "node closed the connection during the handshake",
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(Error::io(addr, e)),
    }
}
