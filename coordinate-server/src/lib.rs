//! # coordinate-server
//!
//! Keycafe's control plane. Nodes connect to it, it decides which node owns
//! each of the 16384 slots, and it pushes every new configuration, stamped
//! with a growing epoch and persisted first, to every node. It moves as few
//! slots as possible when nodes join or leave, decides which nodes are
//! replicas of which primaries, notices nodes that stop reporting, promotes
//! a replica when a primary dies, and shows all of it on a dashboard.
//!
//! The decisions live in a deterministic state machine ([`state`]) with no
//! I/O; around it, a single driver task ([`driver`]) feeds it events from the
//! node connections ([`nodes`]) and the HTTP server ([`http`]), and carries
//! out its effects: persist ([`persist`]), then send. `docs/protocol.md`
//! ("Coordination") specifies the messages.
//!
//! # Layout
//!
//! - [`config`]: [`Config`] from defaults, a YAML file and flags.
//! - [`server`]: [`run`], start-up and graceful shutdown.
//! - [`state`]: [`state::Coordinator`], the state machine: events in, effects out.
//! - [`planner`]: the pure slot planner: fair targets, fewest moves.
//! - [`persist`]: the data directory: atomic, durable saves and a lock.
//! - [`group`]: the coordinator group, replicated with Raft.
//! - [`driver`]: the task that owns the state machine and executes effects.
//! - [`nodes`]: the node listener and one task per node connection.
//! - [`http`]: the dashboard and the JSON API (axum + askama).
//! - [`error`]: [`Error`] and [`error::Refusal`].

pub mod config;
pub mod driver;
pub mod error;
pub mod group;
pub mod http;
pub mod nodes;
pub mod persist;
pub mod planner;
pub mod server;
pub mod state;

pub use config::Config;
pub use error::{Error, Result};
pub use server::run;
