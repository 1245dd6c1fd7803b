//! Talking to a node in a test: a bare client that shows exact replies, and
//! helpers to write the expected ones. The node itself is
//! `keycafe_server::test_util::TestServer`.
#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use keycafe_core::{Frame, Limits, Protocol, native};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bare client speaking one protocol through keycafe-core's codecs, for
/// tests that need to see exact replies.
pub struct RawClient {
    stream: TcpStream,
    protocol: Protocol,
    buf: BytesMut,
}

impl RawClient {
    pub async fn resp(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        RawClient {
            stream,
            protocol: Protocol::Resp2,
            buf: BytesMut::new(),
        }
    }

    /// Connects and completes the native hello.
    pub async fn native(addr: SocketAddr) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut hello = BytesMut::new();
        native::encode_hello(native::VERSION, &mut hello);
        stream.write_all(&hello).await.expect("send hello");
        let mut client = RawClient {
            stream,
            protocol: Protocol::Native,
            buf: BytesMut::new(),
        };
        while client.buf.len() < native::HELLO_LEN {
            client.read_some().await.expect("hello answered");
        }
        assert_eq!(native::decode_hello(&client.buf), Ok(Some(native::VERSION)));
        let _ = client.buf.split_to(native::HELLO_LEN);
        client
    }

    pub async fn send(&mut self, args: &[&[u8]]) {
        let mut out = BytesMut::new();
        self.protocol.encode_request(args, &mut out);
        self.stream.write_all(&out).await.expect("send");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("send raw");
    }

    /// Runs one command and returns its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Frame {
        self.send(args).await;
        self.read_frame().await.expect("a reply")
    }

    /// Runs one command given as a string split on spaces.
    pub async fn cmd(&mut self, line: &str) -> Frame {
        let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.call(&args).await
    }

    /// The next reply, or `None` if the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        let limits = Limits::DEFAULT;
        loop {
            if let Some(frame) = self
                .protocol
                .decode_frame(&mut self.buf, &limits)
                .expect("well-formed reply")
            {
                return Some(frame);
            }
            if self.read_some().await? == 0 {
                return None;
            }
        }
    }

    async fn read_some(&mut self) -> Option<usize> {
        let read = self.stream.read_buf(&mut self.buf);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("server answers within 10 s")
            .ok()
    }
}

/// `Frame::Simple`/`Frame::Error`/`Frame::Bulk` from a string, for asserts.
pub fn simple(text: &str) -> Frame {
    Frame::Simple(text.to_string().into())
}

pub fn error(text: &str) -> Frame {
    Frame::Error(text.to_string().into())
}

pub fn bulk(data: impl AsRef<[u8]>) -> Frame {
    Frame::Bulk(data.as_ref().to_vec().into())
}

/// Formats a reply the way redis-cli prints it in a terminal, for scripts.
pub fn redis_cli_format(frame: &Frame) -> String {
    let mut out = String::new();
    format_into(frame, "", &mut out);
    out
}

/// redis-cli's layout: array indexes right-aligned to the width of the
/// largest, nested arrays indented under their parent's index.
fn format_into(frame: &Frame, prefix: &str, out: &mut String) {
    match frame {
        Frame::Simple(text) => out.push_str(&String::from_utf8_lossy(text)),
        Frame::Error(text) => out.push_str(&format!("(error) {}", String::from_utf8_lossy(text))),
        Frame::Integer(n) => out.push_str(&format!("(integer) {n}")),
        Frame::Bulk(data) => out.push_str(&quoted(data)),
        Frame::Null => out.push_str("(nil)"),
        Frame::Array(items) if items.is_empty() => out.push_str("(empty array)"),
        Frame::Array(items) => {
            let width = items.len().to_string().len();
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(prefix);
                }
                out.push_str(&format!("{:>width$}) ", i + 1));
                format_into(item, &inner, out);
            }
        }
    }
}

/// A bulk string quoted and escaped as redis-cli shows it.
fn quoted(data: &[u8]) -> String {
    let mut out = String::from("\"");
    for &byte in data {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(char::from(b)),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Starts the real `keycafe-server` binary with `args` and waits for its
/// "ready" log line, which carries the address it actually bound (tests
/// pass `--port 0`). The process is killed when the handle is dropped.
pub async fn start_binary(args: &[&str]) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keycafe-server"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("keycafe-server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let find_ready = async {
        while let Some(line) = lines.next_line().await.expect("readable log") {
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                return addr.parse().expect("ready line has an address");
            }
        }
        panic!("keycafe-server exited before it was ready");
    };
    let addr = tokio::time::timeout(Duration::from_secs(10), find_ready)
        .await
        .expect("ready within 10 s");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}
