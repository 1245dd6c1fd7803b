//! [`RespClient`]: one RESP2 connection to one node, for what a cluster
//! client routes away from on purpose: INFO and ROLE of a given node, reads
//! from a replica after `READONLY`, `WAIT`, `CLIENT KILL`, `CLUSTER
//! FAILOVER`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use keycafe_core::Frame;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long any one reply may take before the call fails (longer than any
/// `WAIT` the tests issue).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP2 connection to one node.
pub struct RespClient {
    addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// One range of `CLUSTER SLOTS`: the primary's address first, then its
/// replicas'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotsEntry {
    pub start: u16,
    pub end: u16,
    pub addrs: Vec<String>,
}

impl RespClient {
    pub async fn connect(addr: &str) -> anyhow::Result<RespClient> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(RespClient {
            addr: addr.to_string(),
            reader: BufReader::new(reader),
            writer,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and returns its reply (an error reply is a
    /// [`Frame::Error`], not an `Err`).
    pub async fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<Frame> {
        let mut replies = self.pipeline(std::slice::from_ref(&args)).await?;
        Ok(replies.remove(0))
    }

    /// Sends every command at once, then reads their replies in order.
    pub async fn pipeline<C, A>(&mut self, commands: &[C]) -> anyhow::Result<Vec<Frame>>
    where
        C: AsRef<[A]>,
        A: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        for command in commands {
            encode(command.as_ref(), &mut out);
        }
        self.writer.write_all(&out).await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            let reply = tokio::time::timeout(REPLY_TIMEOUT, self.read_frame())
                .await
                .with_context(|| format!("{} did not answer within {REPLY_TIMEOUT:?}", self.addr))?
                .with_context(|| format!("reading a reply from {}", self.addr))?;
            replies.push(reply);
        }
        Ok(replies)
    }

    /// Sends a command that must answer `+OK`.
    pub async fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<()> {
        match self.cmd(args).await? {
            Frame::Simple(s) if s.as_ref() == b"OK" => Ok(()),
            other => bail!("{} answered {other:?}", self.addr),
        }
    }

    /// Sends a command that must answer an integer.
    pub async fn int<A: AsRef<[u8]>>(&mut self, args: &[A]) -> anyhow::Result<i64> {
        match self.cmd(args).await? {
            Frame::Integer(n) => Ok(n),
            other => bail!("{} answered {other:?}, not an integer", self.addr),
        }
    }

    /// `INFO section` as `field → value`.
    pub async fn info(&mut self, section: &str) -> anyhow::Result<HashMap<String, String>> {
        let reply = self.cmd(&["INFO", section]).await?;
        let Frame::Bulk(text) = &reply else {
            bail!("INFO {section} on {} answered {reply:?}", self.addr);
        };
        Ok(String::from_utf8_lossy(text)
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(field, value)| (field.to_string(), value.to_string()))
            .collect())
    }

    /// One field of `INFO section`.
    pub async fn info_field(&mut self, section: &str, field: &str) -> anyhow::Result<String> {
        let info = self.info(section).await?;
        info.get(field)
            .cloned()
            .with_context(|| format!("INFO {section} on {} has no {field}: {info:?}", self.addr))
    }

    /// One numeric field of `INFO section`.
    pub async fn info_u64(&mut self, section: &str, field: &str) -> anyhow::Result<u64> {
        let value = self.info_field(section, field).await?;
        value
            .trim()
            .parse()
            .with_context(|| format!("INFO {field} on {} is {value:?}", self.addr))
    }

    /// `role:master` or `role:slave`, from `INFO replication`.
    pub async fn role(&mut self) -> anyhow::Result<String> {
        self.info_field("replication", "role").await
    }

    pub async fn dbsize(&mut self) -> anyhow::Result<u64> {
        let n = self.int(&["DBSIZE"]).await?;
        Ok(u64::try_from(n)?)
    }

    /// `CLUSTER SLOTS`, parsed.
    pub async fn cluster_slots(&mut self) -> anyhow::Result<Vec<SlotsEntry>> {
        let reply = self.cmd(&["CLUSTER", "SLOTS"]).await?;
        let Frame::Array(ranges) = &reply else {
            bail!("CLUSTER SLOTS on {} answered {reply:?}", self.addr);
        };
        ranges.iter().map(slots_entry).collect()
    }

    async fn read_frame(&mut self) -> anyhow::Result<Frame> {
        // Arrays being filled, innermost last: (length, items so far).
        let mut open: Vec<(usize, Vec<Frame>)> = Vec::new();
        loop {
            let mut frame = match self.read_head().await? {
                Head::Frame(frame) => frame,
                Head::Array(0) => Frame::Array(Vec::new()),
                Head::Array(len) => {
                    open.push((len, Vec::with_capacity(len)));
                    continue;
                }
            };
            loop {
                let Some((len, items)) = open.last_mut() else {
                    return Ok(frame);
                };
                items.push(frame);
                if items.len() < *len {
                    break;
                }
                let (_, items) = open.pop().expect("an open array");
                frame = Frame::Array(items);
            }
        }
    }

    /// One line and, for a bulk string, its payload.
    async fn read_head(&mut self) -> anyhow::Result<Head> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).await?;
        if !line.ends_with(b"\r\n") {
            bail!("connection closed or malformed reply line {line:?}");
        }
        line.truncate(line.len() - 2);
        let (&kind, rest) = line.split_first().context("empty reply line")?;
        let number = || -> anyhow::Result<i64> {
            std::str::from_utf8(rest)?
                .parse()
                .with_context(|| format!("bad length or integer {rest:?}"))
        };
        Ok(match kind {
            b'+' => Head::Frame(Frame::Simple(rest.to_vec().into())),
            b'-' => Head::Frame(Frame::Error(rest.to_vec().into())),
            b':' => Head::Frame(Frame::Integer(number()?)),
            b'$' => match usize::try_from(number()?) {
                Err(_) => Head::Frame(Frame::Null),
                Ok(len) => {
                    let mut data = vec![0; len + 2];
                    self.reader.read_exact(&mut data).await?;
                    data.truncate(len);
                    Head::Frame(Frame::Bulk(data.into()))
                }
            },
            b'*' => match usize::try_from(number()?) {
                Err(_) => Head::Frame(Frame::Null),
                Ok(len) => Head::Array(len),
            },
            other => bail!("unknown RESP type byte {:?}", other as char),
        })
    }
}

enum Head {
    Frame(Frame),
    Array(usize),
}

fn encode<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// `[start, end, [host, port, id?], ...]` → [`SlotsEntry`].
fn slots_entry(range: &Frame) -> anyhow::Result<SlotsEntry> {
    let Frame::Array(items) = range else {
        bail!("a CLUSTER SLOTS range is {range:?}");
    };
    let slot = |frame: Option<&Frame>| match frame {
        Some(Frame::Integer(n)) => Ok(u16::try_from(*n)?),
        other => bail!("a slot number is {other:?}"),
    };
    let mut addrs = Vec::new();
    for node in items.iter().skip(2) {
        let Frame::Array(parts) = node else {
            bail!("a CLUSTER SLOTS node is {node:?}");
        };
        let (Some(Frame::Bulk(host)), Some(Frame::Integer(port))) = (parts.first(), parts.get(1))
        else {
            bail!("a CLUSTER SLOTS node is {node:?}");
        };
        addrs.push(format!("{}:{port}", String::from_utf8_lossy(host)));
    }
    Ok(SlotsEntry {
        start: slot(items.first())?,
        end: slot(items.get(1))?,
        addrs,
    })
}

/// The text of a bulk or simple reply; `None` for anything else.
pub fn text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}
