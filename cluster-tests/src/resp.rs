//! [`RespClient`]: one RESP2 connection to one node, for what a cluster
//! client routes away from on purpose: INFO and ROLE of a given node, reads
//! from a replica after `READONLY`, `WAIT`, `CLIENT KILL`, `CLUSTER
//! FAILOVER`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use keycafe_core::tls::{ClientStream, Connector};
use keycafe_core::{Frame, Limits, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any one reply may take before the call fails (longer than any
/// `WAIT` the tests issue).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP2 connection to one node, over TCP or TLS.
pub struct RespClient {
    addr: String,
    stream: ClientStream,
    /// Bytes read and not yet decoded.
    input: BytesMut,
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
        RespClient::connect_with(addr, None).await
    }

    /// Connects over TLS with `tls`, or over plain TCP without.
    pub async fn connect_with(addr: &str, tls: Option<&Connector>) -> anyhow::Result<RespClient> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, ClientStream::connect(addr, tls))
            .await
            .with_context(|| format!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(RespClient {
            addr: addr.to_string(),
            stream,
            input: BytesMut::new(),
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
        let mut out = BytesMut::new();
        for command in commands {
            Protocol::Resp2.encode_request(command.as_ref(), &mut out);
        }
        self.stream.write_all(&out).await?;
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
        loop {
            if let Some(frame) = Protocol::Resp2.decode_frame(&mut self.input, &Limits::DEFAULT)? {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.input).await? == 0 {
                bail!("{} closed the connection", self.addr);
            }
        }
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
        let port = u16::try_from(*port)?;
        addrs.push(keycafe_core::addr::join(
            &String::from_utf8_lossy(host),
            port,
        ));
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
