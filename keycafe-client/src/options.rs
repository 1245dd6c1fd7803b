//! The option and result types of the typed commands: [`SetOptions`],
//! [`SetOutcome`] and [`Ttl`], and how they map to and from the wire.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use keycafe_core::Frame;

use crate::routing::Request;
use crate::{Error, FromFrame, Result};

/// Options for [`KeycafeCluster::set_with`](crate::KeycafeCluster::set_with):
/// expiry, a condition, and whether to return the previous value (Redis's
/// `SET` flags).
///
/// ```
/// use std::time::Duration;
/// use keycafe_client::SetOptions;
///
/// // SET key value PX 30000 NX GET
/// let options = SetOptions::new().expire_in(Duration::from_secs(30)).nx().get();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    expiry: Option<Expiry>,
    condition: Option<Condition>,
    get: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    In(Duration),
    At(SystemTime),
    KeepTtl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Nx,
    Xx,
}

impl SetOptions {
    /// No options: a plain SET, which also clears any expiry.
    pub fn new() -> SetOptions {
        SetOptions::default()
    }

    /// Expire after `ttl` (`PX`), to the millisecond; a non-zero `ttl`
    /// shorter than that rounds up to 1 ms.
    pub fn expire_in(mut self, ttl: Duration) -> SetOptions {
        self.expiry = Some(Expiry::In(ttl));
        self
    }

    /// Expire at a point in wall-clock time (`PXAT`).
    pub fn expire_at(mut self, at: SystemTime) -> SetOptions {
        self.expiry = Some(Expiry::At(at));
        self
    }

    /// Keep the key's current expiry (`KEEPTTL`).
    pub fn keep_ttl(mut self) -> SetOptions {
        self.expiry = Some(Expiry::KeepTtl);
        self
    }

    /// Only write if the key does not exist (`NX`).
    pub fn nx(mut self) -> SetOptions {
        self.condition = Some(Condition::Nx);
        self
    }

    /// Only write if the key already exists (`XX`).
    pub fn xx(mut self) -> SetOptions {
        self.condition = Some(Condition::Xx);
        self
    }

    /// Also return the value the key held before (`GET`).
    pub fn get(mut self) -> SetOptions {
        self.get = true;
        self
    }

    /// Reads the reply to a SET sent with these options.
    pub(crate) fn outcome(&self, reply: Frame) -> Result<SetOutcome> {
        if !self.get {
            return Ok(SetOutcome {
                written: bool::from_frame(reply)?,
                previous: None,
            });
        }
        // With GET the reply is the old value; whether the write happened
        // follows from the condition, as Redis defines it.
        let previous = Option::<Bytes>::from_frame(reply)?;
        let written = match self.condition {
            None => true,
            Some(Condition::Nx) => previous.is_none(),
            Some(Condition::Xx) => previous.is_some(),
        };
        Ok(SetOutcome { written, previous })
    }
}

/// What [`KeycafeCluster::set_with`](crate::KeycafeCluster::set_with) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// False when an `NX`/`XX` condition stopped the write.
    pub written: bool,
    /// The previous value, when [`SetOptions::get`] asked for it and there was one.
    pub previous: Option<Bytes>,
}

/// A key's remaining time to live, from
/// [`KeycafeCluster::ttl`](crate::KeycafeCluster::ttl) and
/// [`KeycafeCluster::pttl`](crate::KeycafeCluster::pttl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    ExpiresIn(Duration),
}

impl Ttl {
    pub(crate) fn from_reply(frame: Frame, unit: fn(u64) -> Duration) -> Result<Ttl> {
        match i64::from_frame(frame)? {
            -2 => Ok(Ttl::Missing),
            -1 => Ok(Ttl::Persistent),
            n if n >= 0 => Ok(Ttl::ExpiresIn(unit(n.unsigned_abs()))),
            n => Err(Error::UnexpectedReply {
                expected: "a TTL of -2, -1 or more",
                reply: Frame::Integer(n),
            }),
        }
    }

    /// The remaining time, if the key exists and expires.
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            Ttl::ExpiresIn(left) => Some(*left),
            _ => None,
        }
    }
}

fn millis(duration: Duration) -> String {
    let ms = duration.as_millis();
    let ms = if ms == 0 && !duration.is_zero() {
        1
    } else {
        ms
    };
    ms.to_string()
}

pub(crate) fn set_request(key: &[u8], value: &[u8], options: &SetOptions) -> Request {
    let mut args: Vec<&[u8]> = vec![b"SET", key, value];
    let expiry = match options.expiry {
        Some(Expiry::In(ttl)) => Some((&b"PX"[..], millis(ttl))),
        Some(Expiry::At(at)) => {
            let since_epoch = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            Some((&b"PXAT"[..], since_epoch.as_millis().to_string()))
        }
        Some(Expiry::KeepTtl) => {
            args.push(b"KEEPTTL");
            None
        }
        None => None,
    };
    if let Some((flag, amount)) = &expiry {
        args.push(flag);
        args.push(amount.as_bytes());
    }
    match options.condition {
        Some(Condition::Nx) => args.push(b"NX"),
        Some(Condition::Xx) => args.push(b"XX"),
        None => {}
    }
    if options.get {
        args.push(b"GET");
    }
    Request::new(&args)
}
