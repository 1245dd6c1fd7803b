//! Messages between nodes and the coordinator.
//!
//! A node keeps one TCP connection to the coordinator. Both directions carry
//! native-protocol frames (see [`crate::native`]) whose value is a single bulk
//! string holding one JSON message: [`NodeMessage`] from a node,
//! [`CoordinatorMessage`] from the coordinator. JSON keeps the control plane
//! readable in a packet capture and easy to extend; the data plane (client
//! commands, key migration) stays binary.
//!
//! The conversation: the node says `hello` with a challenge; the coordinator
//! answers it with a `challenge` of its own and its proof of the cluster
//! secret; the node checks that proof and sends `register` with its own
//! ([`crate::auth`]); the coordinator checks it and answers with the current
//! `config` and from then on pushes every new configuration
//! to every registered node. The node sends a `heartbeat` at least every
//! second, and `migration_done` when it has moved all keys of a slot it was
//! asked to give away. The coordinator answers each heartbeat of a primary
//! with a `lease`: the primary may acknowledge writes for that long, counted
//! from when it sent the heartbeat. `docs/protocol.md` ("Coordination")
//! specifies the fields.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterConfig, NodeId, NodeInfo};
use crate::slot::Slot;
use crate::{Frame, Limits, Protocol, ProtocolError};

/// What a node tells the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage {
    /// Must be the first message: who the node says it is, and its
    /// challenge to the coordinator (see [`crate::auth`]).
    Hello { node: NodeId, nonce: String },
    /// Join (or rejoin after either side restarted), once the coordinator
    /// has proved itself.
    Register {
        node: NodeInfo,
        /// Epoch of the newest configuration the node holds (0 if none).
        epoch: u64,
        /// The node's answer to the coordinator's challenge:
        /// [`crate::auth::proof`] for [`crate::auth::Step::CoordinatorClient`]
        /// over the coordinator's nonce, the node's nonce and the node's id.
        proof: String,
        /// Client address (`host:port`) of the primary this node is
        /// configured to replicate (`replica_of` in its YAML). Without it the
        /// coordinator decides whether the node is a primary or a replica.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        primary: Option<String>,
    },
    /// Liveness and load, at least every second; also asks for a lease.
    Heartbeat(NodeReport),
    /// Every key of `slot` has been moved from this node to `to`.
    MigrationDone { slot: Slot, to: NodeId },
    /// Move my slots away, then remove me from the cluster.
    Leave,
    /// Manual failover (CLUSTER FAILOVER on a replica): this replica has
    /// caught up with `primary`, which has stopped accepting writes; make it
    /// the primary of `primary`'s slots and `primary` its replica.
    Failover { primary: NodeId },
}

/// A node's periodic report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeReport {
    /// Numbers this heartbeat, so that the node can tell which one a
    /// `lease` answers. Increases with every heartbeat the node sends.
    #[serde(default)]
    pub seq: u64,
    pub epoch: u64,
    /// Keys held in total.
    pub keys: u64,
    /// Keys per owned slot range, `(start, end, keys)`.
    #[serde(default)]
    pub slot_keys: Vec<(Slot, Slot, u64)>,
    /// Keys still to move, per slot this node is migrating away.
    #[serde(default)]
    pub migrating: Vec<(Slot, u64)>,
    /// Where this node's replication stream stands.
    #[serde(default)]
    pub replication: ReplicationReport,
    /// Commands processed since the node started (INFO's
    /// `total_commands_processed`). A count rather than a rate, so that the
    /// coordinator measures the rate over the interval it actually saw
    /// between two heartbeats. `None` from nodes that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_processed: Option<u64>,
    /// Bytes of memory the node accounts for (INFO's `used_memory`, what
    /// `maxmemory` is compared with). `None` from nodes that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_memory: Option<u64>,
}

/// The replication part of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplicationReport {
    /// Bytes of the replication stream this node has produced (a primary)
    /// or applied (a replica): Redis's `master_repl_offset`.
    pub offset: u64,
    /// For a replica: the primary it is following.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub following: Option<NodeId>,
    /// For a replica: the link to `following` is up and streaming.
    #[serde(default)]
    pub link_up: bool,
    /// For a replica: it holds a complete copy of its primary's data (a full
    /// copy finished at some point), so it may be promoted.
    #[serde(default)]
    pub synced: bool,
    /// For a replica: milliseconds since it last heard from its primary.
    #[serde(default)]
    pub last_io_ms: u64,
    /// For a primary: replicas connected and streaming.
    #[serde(default)]
    pub replicas_connected: u32,
}

/// What the coordinator tells a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoordinatorMessage {
    /// The answer to `hello`: the coordinator's own challenge, and its
    /// proof ([`crate::auth::Step::Coordinator`]) over the node's nonce and
    /// this one.
    Challenge { nonce: String, proof: String },
    /// The current configuration. Adopt it if its epoch is newer.
    Config(ClusterConfig),
    /// The coordinator refuses the last message (bad secret, unknown node, ...).
    Error { message: String },
    /// The answer to heartbeat `seq` of a primary: it may acknowledge
    /// writes for `ms` milliseconds, counted from when it sent that
    /// heartbeat. Until then the coordinator promotes none of its replicas.
    Lease { seq: u64, ms: u64 },
    /// This coordinator is not the group's leader (`docs/coordinator-group.md`):
    /// connect to `leader` (its node address) if given, else try the next
    /// coordinator. The connection closes after it.
    NotLeader {
        #[serde(default)]
        leader: Option<String>,
    },
}

/// Appends one message as a native frame.
pub fn encode_message<M: Serialize>(message: &M, out: &mut BytesMut) {
    let json = serde_json::to_vec(message).expect("coordination messages always serialise");
    Protocol::Native.encode_frame(&Frame::Bulk(json.into()), out);
}

/// Errors reading a coordination message.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("coordination frame is not a bulk string")]
    NotBulk,
    #[error("invalid coordination message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Limits for coordination frames: a configuration is a few hundred KiB at
/// most, so anything near a megabyte-scale limit is hostile.
pub const MESSAGE_LIMITS: Limits = Limits {
    max_bulk_len: 16 * 1024 * 1024,
    max_args: 1,
    max_inline_len: 0,
    max_frame_len: 16 * 1024 * 1024 + 16,
    unauthenticated: false,
};

/// Takes one message from the front of `buf`, or `None` if it has not fully
/// arrived.
pub fn decode_message<M: DeserializeOwned>(buf: &mut BytesMut) -> Result<Option<M>, MessageError> {
    match Protocol::Native.decode_frame(buf, &MESSAGE_LIMITS)? {
        None => Ok(None),
        Some(Frame::Bulk(json)) => Ok(Some(serde_json::from_slice(&json)?)),
        Some(_) => Err(MessageError::NotBulk),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let messages = vec![
            NodeMessage::Register {
                node: NodeInfo {
                    id: "a".repeat(40),
                    client_addr: "127.0.0.1:9814".into(),
                    bus_addr: "127.0.0.1:19814".into(),
                    replica_of: None,
                },
                epoch: 0,
                proof: "ab".repeat(32),
                primary: Some("127.0.0.1:9815".into()),
            },
            NodeMessage::Heartbeat(NodeReport {
                epoch: 4,
                keys: 10,
                ..NodeReport::default()
            }),
            NodeMessage::MigrationDone {
                slot: 7,
                to: "b".repeat(40),
            },
            NodeMessage::Leave,
            NodeMessage::Failover {
                primary: "c".repeat(40),
            },
        ];
        let mut buf = BytesMut::new();
        messages.iter().for_each(|m| encode_message(m, &mut buf));
        for expected in &messages {
            let got: NodeMessage = decode_message(&mut buf).unwrap().unwrap();
            assert_eq!(&got, expected);
        }
        assert!(decode_message::<NodeMessage>(&mut buf).unwrap().is_none());
    }

    #[test]
    fn load_figures_are_optional_both_ways() {
        // From a node that predates them: still a heartbeat, load unknown.
        let old = r#"{"type":"heartbeat","epoch":3,"keys":5}"#;
        let NodeMessage::Heartbeat(report) = serde_json::from_str(old).unwrap() else {
            panic!("a heartbeat");
        };
        assert_eq!(
            (report.commands_processed, report.used_memory),
            (None, None)
        );
        assert_eq!(report.keys, 5);
        // Unknown, they are left out, so what older coordinators read is unchanged.
        let json = serde_json::to_string(&NodeMessage::Heartbeat(report)).unwrap();
        assert!(!json.contains("commands_processed") && !json.contains("used_memory"));
        let new =
            r#"{"type":"heartbeat","epoch":3,"keys":5,"commands_processed":9,"used_memory":4096}"#;
        let NodeMessage::Heartbeat(report) = serde_json::from_str(new).unwrap() else {
            panic!("a heartbeat");
        };
        assert_eq!(
            (report.commands_processed, report.used_memory),
            (Some(9), Some(4096))
        );
    }

    #[test]
    fn json_is_tagged_by_type() {
        let json = serde_json::to_string(&NodeMessage::Leave).unwrap();
        assert_eq!(json, r#"{"type":"leave"}"#);
        let json = serde_json::to_string(&CoordinatorMessage::Error {
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(json, r#"{"type":"error","message":"x"}"#);
        let json = serde_json::to_string(&CoordinatorMessage::Lease { seq: 9, ms: 2500 }).unwrap();
        assert_eq!(json, r#"{"type":"lease","seq":9,"ms":2500}"#);
        let not_leader = CoordinatorMessage::NotLeader {
            leader: Some("10.0.0.2:9800".into()),
        };
        let json = serde_json::to_string(&not_leader).unwrap();
        assert_eq!(json, r#"{"type":"not_leader","leader":"10.0.0.2:9800"}"#);
        let unknown: CoordinatorMessage = serde_json::from_str(r#"{"type":"not_leader"}"#).unwrap();
        assert_eq!(unknown, CoordinatorMessage::NotLeader { leader: None });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        Protocol::Native.encode_frame(&Frame::Bulk("{not json".into()), &mut buf);
        assert!(decode_message::<NodeMessage>(&mut buf).is_err());
        let mut buf = BytesMut::new();
        Protocol::Native.encode_frame(&Frame::Integer(1), &mut buf);
        assert!(matches!(
            decode_message::<NodeMessage>(&mut buf),
            Err(MessageError::NotBulk)
        ));
    }
}
