//! Opening a connection: TCP connect, the native hello, and AUTH.
//!
//! All of it runs under one connect timeout, so a node that accepts a TCP
//! connection but never answers the hello costs at most that long. Until the
//! hello is answered the connection is not shared with anyone, so plain
//! request/response over the socket is enough here; the pipelined machinery
//! in [`crate::connection`] takes over afterwards.

use bytes::{Buf, BytesMut};
use keycafe_core::native::{self, HELLO_LEN, MAGIC, VERSION};
use keycafe_core::{Frame, Protocol, ProtocolError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ClientConfig;
use crate::error::{Error, Result, ServerError, TimeoutKind};

/// Connects to `addr`, says hello and authenticates. Returns the stream and
/// any bytes that arrived after the handshake (normally none).
pub(crate) async fn open(addr: &str, config: &ClientConfig) -> Result<(TcpStream, BytesMut)> {
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

async fn open_untimed(addr: &str, config: &ClientConfig) -> Result<(TcpStream, BytesMut)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Error::io(addr, e))?;
    // Requests are batched by the writer task; Nagle would only add latency.
    stream.set_nodelay(true).map_err(|e| Error::io(addr, e))?;

    let mut out = BytesMut::with_capacity(64);
    native::encode_hello(VERSION, &mut out);
    if let Some(password) = &config.password {
        let mut auth: Vec<&[u8]> = vec![b"AUTH"];
        auth.extend(config.username.as_deref().map(str::as_bytes));
        auth.push(password.as_bytes());
        // Sent right behind the hello: one round trip for both.
        Protocol::Native.encode_request(&auth, &mut out);
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| Error::io(addr, e))?;

    let mut buf = BytesMut::with_capacity(4096);
    read_hello(&mut stream, &mut buf, addr, config).await?;
    if config.password.is_some() {
        match read_frame(&mut stream, &mut buf, addr, config).await? {
            Frame::Simple(_) => {}
            Frame::Error(text) => return Err(Error::Server(ServerError::from_bytes(&text))),
            other => {
                return Err(Error::UnexpectedReply {
                    expected: "OK to AUTH",
                    reply: other,
                });
            }
        }
    }
    Ok((stream, buf))
}

/// Waits for the node's hello. A node that rejects ours answers with an
/// error frame instead, which becomes [`Error::Server`].
async fn read_hello(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    addr: &str,
    config: &ClientConfig,
) -> Result<()> {
    loop {
        if buf.first().is_some_and(|&b| b != MAGIC[0]) {
            // Not a hello: the server's refusal, as one error frame.
            return match read_frame(stream, buf, addr, config).await? {
                Frame::Error(text) => Err(Error::Server(ServerError::from_bytes(&text))),
                other => Err(Error::UnexpectedReply {
                    expected: "a hello",
                    reply: other,
                }),
            };
        }
        match native::decode_hello(buf) {
            Ok(Some(VERSION)) => {
                buf.advance(HELLO_LEN);
                return Ok(());
            }
            Ok(Some(other)) => {
                let source = ProtocolError::UnsupportedVersion(other);
                return Err(Error::Protocol {
                    addr: addr.to_string(),
                    source,
                });
            }
            Ok(None) => fill(stream, buf, addr).await?,
            Err(source) => {
                return Err(Error::Protocol {
                    addr: addr.to_string(),
                    source,
                });
            }
        }
    }
}

async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    addr: &str,
    config: &ClientConfig,
) -> Result<Frame> {
    loop {
        match Protocol::Native.decode_frame(buf, &config.limits) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => fill(stream, buf, addr).await?,
            Err(source) => {
                return Err(Error::Protocol {
                    addr: addr.to_string(),
                    source,
                });
            }
        }
    }
}

/// Reads more bytes; the node closing the connection here is an I/O error.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut, addr: &str) -> Result<()> {
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
