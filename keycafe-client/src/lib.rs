//! # keycafe-client
//!
//! The client applications use to talk to Keycafe over its native binary
//! protocol: async on tokio, with a [`blocking`] facade for synchronous code.
//! The same [`KeycafeCluster`] type serves a single node and a sharded
//! cluster, because a standalone node presents itself as a cluster of one.
//!
//! ```no_run
//! use keycafe_client::KeycafeCluster;
//!
//! # async fn demo() -> keycafe_client::Result<()> {
//! let kc = KeycafeCluster::connect("localhost:9814").await?;
//! kc.set("example_key", "KEY").await?;
//! assert_eq!(kc.get("example_key").await?.as_deref(), Some(&b"KEY"[..]));
//! assert_eq!(kc.get("no_key").await?, None);
//! # Ok(())
//! # }
//! ```
//!
//! What the client does for you:
//!
//! - **Routing.** It learns which node serves which of the 16384 slots from
//!   any seed (`CLUSTER SLOTS`), sends each command straight to the right
//!   node, follows `MOVED` and `ASK`, waits out `TRYAGAIN`, and when a node
//!   stops answering re-learns the map from the others, all within a bounded
//!   retry budget ([`ClientConfig`]).
//! - **Failover.** When a primary dies, requests that never reached it wait
//!   until one of its replicas has taken over and then go there; requests
//!   it may have applied fail instead of being resent.
//!   [`KeycafeCluster::wait`] tells how many replicas have a node's writes.
//! - **Multiplexing.** One connection per node carries the requests of every
//!   task using any clone of the handle; requests queued while a write is in
//!   flight go out together in the next one. A broken connection fails only
//!   the requests it was carrying and is reopened by the next request.
//! - **Pipelines and multi-key calls** across slots: grouped per node, sent
//!   concurrently, answered in the caller's order ([`Pipeline`],
//!   [`KeycafeCluster::mget`]).
//!
//! # Layout
//!
//! - [`cluster`]: [`KeycafeCluster`], routing by slot, redirects and retries.
//! - [`commands`]: the typed command methods (`get`, `set`, `mget`, `wait`, ...).
//! - [`options`]: [`SetOptions`], [`SetOutcome`] and [`Ttl`].
//! - [`pipeline`]: [`Pipeline`] and the per-node fan-out behind multi-key calls.
//! - [`reply`]: [`FromFrame`], converting reply frames into Rust values.
//! - [`transaction`]: `KeycafeCluster::transaction`, a [`Pipeline`] as one
//!   MULTI/EXEC on its slot's node.
//! - [`scan`]: [`Scan`], every key of the cluster a page at a time (`SCAN`
//!   on each primary).
//! - [`config`]: [`ClientConfig`]: seeds, credentials, timeouts, retry
//!   budget, and [`TlsOptions`].
//! - [`error`]: [`Error`], [`ServerError`] and the [`Result`] alias.
//! - [`blocking`]: the same API for synchronous code.
//! - `session_store` (feature `tower-sessions`): `KeycafeSessionStore`, web sessions in Keycafe.
//! - `topology`: the cached slot → node map, parsed from `CLUSTER SLOTS`.
//! - `routing`: a request's slot, and what a redirect or refusal means.
//! - `node`: one lazily (re)opened connection per node address.
//! - `connection`: a multiplexed, pipelined connection (writer and reader tasks).
//! - `handshake`: TCP connect, TLS, the protocol hello and AUTH.

#![warn(missing_docs)]

pub mod blocking;
pub mod cluster;
pub mod commands;
pub mod config;
mod connection;
pub mod error;
mod handshake;
mod node;
pub mod options;
pub mod pipeline;
pub mod reply;
mod routing;
pub mod scan;
#[cfg(feature = "tower-sessions")]
pub mod session_store;
mod topology;
pub mod transaction;

pub use bytes::Bytes;
pub use cluster::KeycafeCluster;
pub use config::{ClientConfig, TlsOptions};
pub use error::{Error, Result, ServerError, TimeoutKind};
pub use keycafe_core::{Frame, Slot, key_slot};
pub use options::{SetOptions, SetOutcome, Ttl};
pub use pipeline::Pipeline;
pub use reply::FromFrame;
pub use scan::Scan;
#[cfg(feature = "tower-sessions")]
pub use session_store::KeycafeSessionStore;
pub use topology::SlotRange;
