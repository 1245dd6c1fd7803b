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

/// Formats a reply the way redis-cli prints it in a terminal (`redis-cli -3`
/// for RESP3's types), without the final newline, for scripts.
pub fn redis_cli_format(frame: &Frame) -> String {
    let mut out = String::new();
    format_into(frame, "", &mut out);
    // redis-cli ends every reply with a newline; scripts compare without it.
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// redis-cli's layout (`cliFormatReplyTTY`): every value ends with a
/// newline; elements are numbered `1)` (arrays, pushes), `1~` (sets) or `1#`
/// (maps, whose pairs print as `key => value`), indexes right-aligned to the
/// width of the largest, nested values indented under their parent's index;
/// a map value that takes several lines starts on a line of its own.
/// Verbatim strings print as their bare text.
fn format_into(frame: &Frame, prefix: &str, out: &mut String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match frame {
        Frame::Simple(status) => out.push_str(&format!("{}\n", text(status))),
        Frame::Error(error) => out.push_str(&format!("(error) {}\n", text(error))),
        Frame::Integer(n) => out.push_str(&format!("(integer) {n}\n")),
        Frame::Double(double) => out.push_str(&format!("(double) {}\n", text(double))),
        Frame::BigNumber(number) => out.push_str(&format!("(big number) {}\n", text(number))),
        Frame::Boolean(value) => out.push_str(if *value { "(true)\n" } else { "(false)\n" }),
        Frame::Bulk(data) => out.push_str(&format!("{}\n", quoted(data))),
        Frame::Verbatim { text: body, .. } => out.push_str(&format!("{}\n", text(body))),
        Frame::Null => out.push_str("(nil)\n"),
        Frame::Array(items) if items.is_empty() => out.push_str("(empty array)\n"),
        Frame::Set(items) if items.is_empty() => out.push_str("(empty set)\n"),
        Frame::Push(items) if items.is_empty() => out.push_str("(empty push)\n"),
        Frame::Map(pairs) if pairs.is_empty() => out.push_str("(empty hash)\n"),
        Frame::Array(items) | Frame::Push(items) => format_list(items, ')', prefix, out),
        Frame::Set(items) => format_list(items, '~', prefix, out),
        Frame::Map(pairs) => {
            let (width, inner) = indent(pairs.len(), prefix);
            for (i, (key, value)) in pairs.iter().enumerate() {
                let lead = if i == 0 { "" } else { prefix };
                out.push_str(&format!("{lead}{:>width$}# ", i + 1));
                format_into(key, &inner, out);
                out.pop(); // the key's newline
                out.push_str(" => ");
                if is_multiline(value) {
                    out.push('\n');
                    out.push_str(&inner);
                }
                format_into(value, &inner, out);
            }
        }
    }
}

fn format_list(items: &[Frame], separator: char, prefix: &str, out: &mut String) {
    let (width, inner) = indent(items.len(), prefix);
    for (i, item) in items.iter().enumerate() {
        let lead = if i == 0 { "" } else { prefix };
        out.push_str(&format!("{lead}{:>width$}{separator} ", i + 1));
        format_into(item, &inner, out);
    }
}

/// The width of the largest index of `count` elements, and the prefix of
/// the lines nested under them.
fn indent(count: usize, prefix: &str) -> (usize, String) {
    let width = count.to_string().len();
    (width, format!("{prefix}{}", " ".repeat(width + 2)))
}

/// Whether redis-cli prints the value on several lines.
fn is_multiline(frame: &Frame) -> bool {
    match frame {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            items.len() > 1 || items.first().is_some_and(is_multiline)
        }
        Frame::Map(pairs) => pairs.len() > 1 || pairs.first().is_some_and(|(_, v)| is_multiline(v)),
        _ => false,
    }
}

/// A bulk string quoted and escaped as redis-cli shows it.
fn quoted(data: &[u8]) -> String {
    let mut out = String::new();
    keycafe_core::repr::quote(&mut out, data);
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
