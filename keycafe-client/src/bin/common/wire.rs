//! A bare request/reply connection shared by `keycafe-cli` and
//! `keycafe-benchmark`.
//!
//! Both tools talk to a node with nothing but keycafe-core's codecs over a
//! tokio socket, so that neither depends on the client library's API and the
//! benchmark's hot loop has no layer between it and the wire. This module
//! holds what they share: connecting (with the native hello), AUTH, one
//! request → one reply, and `host:port` handling. The socket is plain TCP
//! or TLS ([`ClientStream`]).

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use keycafe_core::handshake::{Handshake, HandshakeError};
use keycafe_core::tls::{ClientStream, Connector};
use keycafe_core::{Frame, Limits, Protocol, native};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a connection attempt (TCP, TLS and hello) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection to one node, speaking one protocol.
pub struct Wire {
    pub stream: ClientStream,
    /// Bytes read but not yet decoded.
    pub read_buf: BytesMut,
    pub protocol: Protocol,
    pub limits: Limits,
    write_buf: BytesMut,
}

impl Wire {
    /// Connects to `addr` (`host:port`), over TLS when `tls` is given,
    /// and, for the native protocol, exchanges the hello.
    pub async fn connect(
        addr: &str,
        protocol: Protocol,
        tls: Option<&Connector>,
    ) -> anyhow::Result<Wire> {
        tokio::time::timeout(CONNECT_TIMEOUT, Wire::connect_inner(addr, protocol, tls))
            .await
            .context("timed out")?
    }

    async fn connect_inner(
        addr: &str,
        protocol: Protocol,
        tls: Option<&Connector>,
    ) -> anyhow::Result<Wire> {
        let stream = ClientStream::connect(addr, tls).await?;
        let mut wire = Wire {
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            protocol,
            limits: Limits::DEFAULT,
            write_buf: BytesMut::with_capacity(1024),
        };
        if protocol == Protocol::Native {
            wire.hello().await?;
        }
        Ok(wire)
    }

    /// Sends the native hello and checks the server's answer: the same magic
    /// and the version it will speak, or an error frame. AUTH is separate
    /// ([`Wire::auth`]), because it is for both protocols and a failed one
    /// keeps the connection.
    async fn hello(&mut self) -> anyhow::Result<()> {
        let mut handshake = Handshake::new(None);
        let mut hello = BytesMut::with_capacity(native::HELLO_LEN);
        handshake.encode(&mut hello);
        self.stream.write_all(&hello).await?;
        loop {
            match handshake.poll(&mut self.read_buf, &self.limits) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => self.fill().await.context("during the native hello")?,
                Err(HandshakeError::Unexpected { reply, .. }) => {
                    bail!("unexpected answer to the native hello: {reply:?}")
                }
                // The server's refusal in its own words, a version mismatch
                // or a protocol error.
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Reads more bytes into the read buffer; an error if the peer closed.
    pub async fn fill(&mut self) -> anyhow::Result<()> {
        self.read_buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.read_buf).await? == 0 {
            bail!("Server closed the connection");
        }
        Ok(())
    }

    /// Reads one whole reply.
    pub async fn read_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self
                .protocol
                .decode_frame(&mut self.read_buf, &self.limits)?
            {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Sends one request and waits for its reply.
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Frame> {
        self.write_buf.clear();
        self.protocol.encode_request(args, &mut self.write_buf);
        self.stream.write_all(&self.write_buf).await?;
        self.read_frame().await
    }

    /// Authenticates; an error carries the server's reason.
    pub async fn auth(&mut self, password: &str) -> anyhow::Result<()> {
        match self
            .call(&[b"AUTH".as_slice(), password.as_bytes()])
            .await?
        {
            Frame::Error(text) => bail!("{}", String::from_utf8_lossy(&text)),
            _ => Ok(()),
        }
    }
}

/// Splits `host:port` at the last colon (so `::1:9814` works too).
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

/// Joins a host and port into an address `TcpStream::connect` accepts.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A redirect reply: `MOVED <slot> <host>:<port>` or `ASK <slot> <host>:<port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub ask: bool,
    pub slot: u16,
    pub host: String,
    pub port: u16,
}

impl Redirect {
    /// Recognises a redirect in an error reply's text.
    pub fn parse(error: &[u8]) -> Option<Redirect> {
        let text = std::str::from_utf8(error).ok()?;
        let mut words = text.split_ascii_whitespace();
        let ask = match words.next()? {
            "MOVED" => false,
            "ASK" => true,
            _ => return None,
        };
        let slot = words.next()?.parse().ok()?;
        let (host, port) = split_host_port(words.next()?)?;
        Some(Redirect {
            ask,
            slot,
            host: host.to_string(),
            port,
        })
    }
}

/// Writes a line to standard output. When the reader has gone away (the tool
/// was piped into `head`, say), exit quietly, as Unix tools do, instead of
/// panicking the way `println!` does.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("cannot write to standard output: {err}");
            std::process::exit(1);
        }
    }};
}
pub(crate) use outln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redirects() {
        assert_eq!(
            Redirect::parse(b"MOVED 3999 127.0.0.1:6381"),
            Some(Redirect {
                ask: false,
                slot: 3999,
                host: "127.0.0.1".into(),
                port: 6381
            })
        );
        assert_eq!(
            Redirect::parse(b"ASK 12 ::1:7000"),
            Some(Redirect {
                ask: true,
                slot: 12,
                host: "::1".into(),
                port: 7000
            })
        );
        assert_eq!(Redirect::parse(b"ERR MOVED"), None);
        assert_eq!(Redirect::parse(b"MOVED x 1.2.3.4:5"), None);
        assert_eq!(Redirect::parse(b"MOVED 1 nohostport"), None);
    }

    #[test]
    fn host_port_round_trip() {
        assert_eq!(split_host_port("localhost:9814"), Some(("localhost", 9814)));
        assert_eq!(split_host_port("[::1]:9814"), Some(("::1", 9814)));
        assert_eq!(join_host_port("::1", 9814), "[::1]:9814");
        assert_eq!(join_host_port("127.0.0.1", 1), "127.0.0.1:1");
        assert_eq!(split_host_port("nope"), None);
    }
}
