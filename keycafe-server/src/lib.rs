//! # keycafe-server
//!
//! A Keycafe node: an in-memory key-value store that serves Keycafe's native
//! protocol and RESP2 on one port. Standalone, it is a cluster of one that
//! owns all 16384 slots.
//!
//! The path of one command: [`server`] accepts a socket and spawns a
//! [`connection::Connection`]; the connection reads a batch of bytes, and for
//! each complete request the parser from `keycafe-core` yields borrowed
//! arguments; [`cmd::execute`] finds the command in the table, checks arity
//! and authentication, and runs it against the [`store::Store`], writing the
//! reply straight into the connection's output buffer; the whole batch of
//! replies leaves in one write. `docs/architecture.md` tells the same story
//! with the file names.
//!
//! # Layout
//!
//! - [`config`]: [`Config`] from defaults, a YAML file and flags.
//! - [`server`]: [`run`], the accept loop, active expiry, graceful shutdown.
//! - [`connection`]: the per-client read → execute → write loop.
//! - [`metrics`]: the optional metrics port: `/metrics` in Prometheus's
//!   text format, and `/health`.
//! - [`state`]: [`state::Shared`], what every connection shares.
//! - [`figures`]: the node's figures, gathered once for INFO and
//!   `/metrics` alike.
//! - [`clients`]: the registry of connections behind CLIENT LIST, CLIENT
//!   KILL, CLIENT PAUSE and MONITOR.
//! - [`runtime`]: settings `CONFIG SET` may change while the node runs, and
//!   the table CONFIG reads every setting from.
//! - [`stats`]: commandstats, errorstats, the slow log and the latency
//!   monitor, and what measuring them costs each command.
//! - [`cmd`]: the command table and one module per command family.
//! - [`cluster`]: cluster mode: slot checks, coordinator link, bus, migration.
//! - [`replication`]: replicas, the replication stream, WAIT and failover.
//! - [`persist`]: the data directory: the node's identity, snapshots and
//!   the append-only file.
//! - [`store`]: the sharded, slot-organised in-memory store with expiry,
//!   memory accounting and eviction.

pub mod clients;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod connection;
pub mod figures;
pub mod metrics;
pub mod persist;
pub mod replication;
pub mod runtime;
pub mod server;
pub mod state;
pub mod stats;
pub mod store;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use config::Config;
pub use server::run;
