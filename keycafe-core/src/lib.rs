//! # keycafe-core
//!
//! What every Keycafe process agrees on: the values that travel on the wire,
//! the two codecs that carry them, and which slot a key belongs to. The node,
//! the coordinator and the client all build on this crate, and it depends on
//! nothing of theirs.
//!
//! # Layout
//!
//! - [`slot`]: key → hash slot (CRC16/XMODEM mod 16384 with hash tags).
//! - [`frame`]: [`Frame`], the one wire value type of both protocols.
//! - [`args`]: [`Args`], a borrowed, allocation-free view of a request.
//! - [`codec`]: [`Protocol`] detection, [`RequestParser`] and [`Reply`], the
//!   interface the server and client use instead of bytes.
//! - [`resp`]: RESP2, RESP3 and inline commands.
//! - [`native`]: Keycafe's length-prefixed binary protocol.
//! - [`handshake`]: [`handshake::Handshake`], the client's side of a native
//!   connection's opening (hello and AUTH), without I/O.
//! - [`command`]: the command table: names, arity, typed flags, key
//!   positions.
//! - [`glob`]: [`glob::Glob`], Redis's glob patterns (`KEYS`, `SCAN MATCH`,
//!   `CONFIG GET`).
//! - [`repr`]: quoting a binary-safe string as Redis shows it to people.
//! - [`addr`]: `host:port` as Keycafe writes it (IPv6 without brackets,
//!   split at the last colon), and which hosts may not be announced.
//! - [`cluster`]: [`cluster::ClusterConfig`], the epoch-stamped layout of a
//!   cluster, and [`cluster::SlotMap`].
//! - [`coord`]: messages between nodes and the coordinator.
//! - [`limits`]: [`Limits`] on what a peer may make a decoder accept.
//! - [`prometheus`]: Prometheus's text exposition format, which the
//!   coordinator's `/metrics` and a node's are written in.
//! - [`error`]: [`ProtocolError`], the ways a peer can break the protocol.
//! - `process` (feature `process`): what every Keycafe process does alike —
//!   the shutdown signal, tracing set-up, and configuration in layers.
//! - `tls` (feature `tls`): rustls settings from PEM files, with errors that
//!   name the file, and a client stream that is plain TCP or TLS; `test_pki`
//!   inside it (feature `test-pki`) makes certificates for tests.

pub mod addr;
pub mod args;
pub mod auth;
pub mod cluster;
pub mod codec;
pub mod command;
pub mod coord;
pub mod error;
pub mod frame;
pub mod glob;
pub mod handshake;
pub mod limits;
pub mod native;
#[cfg(feature = "process")]
pub mod process;
pub mod prometheus;
pub mod repr;
pub mod resp;
pub mod slot;
#[cfg(feature = "tls")]
pub mod tls;

pub use args::Args;
pub use codec::{Protocol, Reply, RequestParser};
pub use error::ProtocolError;
pub use frame::Frame;
pub use limits::Limits;
pub use slot::{SLOT_COUNT, Slot, key_slot};
