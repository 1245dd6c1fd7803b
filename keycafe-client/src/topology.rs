//! Which node serves which slot: the client's cached copy of the cluster map.
//!
//! The map is learnt from any node's `CLUSTER SLOTS` answer (Redis's shape:
//! an array of `[start, end, [host, port, id], replica...]`) and kept as an
//! immutable snapshot that request paths read without locking beyond an
//! `Arc` clone. A `MOVED` reply replaces the snapshot with a copy that has
//! the one slot changed, and schedules a full refresh, because a moved slot
//! usually means more has changed than that slot.
//!
//! Requests go to the primary, the first node of each entry. The replicas
//! after it are remembered only as more nodes to ask for the map: when a
//! primary dies, its replicas are the first to learn that one of them has
//! taken over its slots.
//!
//! The per-slot table is keycafe-core's [`SlotMap`], the one the node and
//! the coordinator use; a [`Topology`] adds the addresses its indexes point
//! to. Everything here is pure data: no I/O, so it is tested without sockets.

use std::ops::RangeInclusive;

use keycafe_core::cluster::SlotMap;
use keycafe_core::{Frame, SLOT_COUNT, Slot};

/// A contiguous range of slots and the primary that serves it.
///
/// The client's view of a [`keycafe_core::cluster::SlotRange`]: the client
/// knows nodes by the address `CLUSTER SLOTS` gives, not by their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    /// The slots, both ends included.
    pub slots: RangeInclusive<Slot>,
    /// The serving node's address, `host:port`.
    pub addr: String,
}

/// Slot → primary address, for all [`SLOT_COUNT`] slots, and the
/// replicas' addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Topology {
    /// The owner of every slot, as an index into `nodes`.
    slots: SlotMap,
    /// Primary addresses, each once, each serving at least one slot.
    nodes: Vec<String>,
    /// Replica addresses that are not also primaries, each once.
    replicas: Vec<String>,
}

impl Topology {
    /// A map in which no slot has an owner (before the first refresh).
    pub(crate) fn empty() -> Topology {
        Topology {
            slots: SlotMap::default(),
            nodes: Vec::new(),
            replicas: Vec::new(),
        }
    }

    /// A standalone node that serves every slot.
    pub(crate) fn single(addr: &str) -> Topology {
        let mut map = Topology::empty();
        map.assign(0..=SLOT_COUNT - 1, addr);
        map
    }

    /// Parses a `CLUSTER SLOTS` reply from the node at `asked` (whose host
    /// stands in for an empty or unknown host, as in Redis).
    ///
    /// A malformed range or primary makes the whole answer unusable; a
    /// replica entry this client cannot read is skipped, because replicas
    /// are only extra nodes to ask for the map.
    pub(crate) fn from_cluster_slots(reply: &Frame, asked: &str) -> Result<Topology, &'static str> {
        let Frame::Array(entries) = reply else {
            return Err("CLUSTER SLOTS reply is not an array");
        };
        let asked_host = asked.rsplit_once(':').map_or(asked, |(host, _)| host);
        let mut map = Topology::empty();
        let mut replicas = Vec::new();
        for entry in entries {
            let Frame::Array(parts) = entry else {
                return Err("CLUSTER SLOTS entry is not an array");
            };
            let (Some(start), Some(end), Some(Frame::Array(primary))) = (
                parts.first().and_then(integer),
                parts.get(1).and_then(integer),
                parts.get(2),
            ) else {
                return Err("CLUSTER SLOTS entry needs a start, an end and a node");
            };
            if start > end || end >= i64::from(SLOT_COUNT) || start < 0 {
                return Err("CLUSTER SLOTS range out of bounds");
            }
            let addr = node_address(primary, asked_host)?;
            // The bounds were checked above, so the casts are lossless.
            map.assign(start as Slot..=end as Slot, &addr);
            replicas.extend(parts[3..].iter().filter_map(|replica| match replica {
                Frame::Array(replica) => node_address(replica, asked_host).ok(),
                _ => None,
            }));
        }
        for replica in replicas {
            if !map.knows(&replica) {
                map.replicas.push(replica);
            }
        }
        Ok(map)
    }

    /// The address serving `slot`, if any.
    pub(crate) fn owner(&self, slot: Slot) -> Option<&str> {
        let index = self.slots.owner(slot)?;
        self.nodes.get(index).map(String::as_str)
    }

    /// Every primary's address.
    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Every replica's address (of those that are not primaries too).
    pub(crate) fn replicas(&self) -> &[String] {
        &self.replicas
    }

    /// True if `addr` is listed, as a primary or as a replica.
    pub(crate) fn knows(&self, addr: &str) -> bool {
        self.nodes
            .iter()
            .chain(&self.replicas)
            .any(|node| node == addr)
    }

    /// True when no slot has an owner.
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A copy with `slot` served by `addr`, or `None` if it already is.
    pub(crate) fn with_owner(&self, slot: Slot, addr: &str) -> Option<Topology> {
        if self.owner(slot) == Some(addr) || slot >= SLOT_COUNT {
            return None;
        }
        let mut map = self.clone();
        map.assign(slot..=slot, addr);
        Some(map)
    }

    /// The map as ranges, in slot order.
    pub(crate) fn ranges(&self) -> Vec<SlotRange> {
        self.slots
            .runs()
            .filter_map(|(slots, index)| {
                let addr = self.nodes.get(index)?.clone();
                Some(SlotRange { slots, addr })
            })
            .collect()
    }

    fn assign(&mut self, slots: RangeInclusive<Slot>, addr: &str) {
        let index = match self.nodes.iter().position(|node| node == addr) {
            Some(index) => index,
            None => {
                self.nodes.push(addr.to_string());
                self.nodes.len() - 1
            }
        };
        self.slots.assign(slots, Some(index));
        // A node that lost its last slot is no longer a primary.
        let kept = self.slots.compact();
        if kept.len() < self.nodes.len() {
            let nodes = std::mem::take(&mut self.nodes);
            self.nodes = kept
                .iter()
                .filter_map(|&old| nodes.get(old).cloned())
                .collect();
        }
    }
}

/// The `host:port` of a node entry, `[host, port, id, ...]`.
fn node_address(node: &[Frame], asked_host: &str) -> Result<String, &'static str> {
    let host = node
        .first()
        .and_then(Frame::as_bytes)
        .ok_or("node entry without a host")?;
    let host = std::str::from_utf8(host).map_err(|_| "node host is not UTF-8")?;
    let port = node
        .get(1)
        .and_then(integer)
        .ok_or("node entry without a port")?;
    let port = u16::try_from(port).map_err(|_| "node port out of range")?;
    let host = if host.is_empty() || host == "?" {
        asked_host
    } else {
        host
    };
    Ok(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

fn integer(frame: &Frame) -> Option<i64> {
    match frame {
        Frame::Integer(n) => Some(*n),
        Frame::Bulk(text) | Frame::Simple(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Frame {
        Frame::Array(vec![
            Frame::bulk(host.to_string()),
            Frame::Integer(port),
            Frame::bulk("id"),
        ])
    }

    /// A `CLUSTER SLOTS` entry: the range, then the primary and replicas
    /// (or whatever else a test puts there).
    fn entry(start: i64, end: i64, nodes: impl IntoIterator<Item = Frame>) -> Frame {
        let range = [Frame::Integer(start), Frame::Integer(end)];
        Frame::Array(range.into_iter().chain(nodes).collect())
    }

    #[test]
    fn standalone_answer_covers_every_slot() {
        let reply = Frame::Array(vec![entry(0, 16383, [node("127.0.0.1", 9814)])]);
        let map = Topology::from_cluster_slots(&reply, "localhost:9814").unwrap();
        assert_eq!(map.owner(0), Some("127.0.0.1:9814"));
        assert_eq!(map.owner(16383), Some("127.0.0.1:9814"));
        assert_eq!(map, Topology::single("127.0.0.1:9814"));
    }

    #[test]
    fn three_nodes_with_a_replica_and_a_gap() {
        let reply = Frame::Array(vec![
            entry(0, 5460, [node("10.0.0.1", 9814)]),
            entry(
                5461,
                10922,
                [node("10.0.0.2", 9815), node("10.0.0.5", 9815)],
            ),
            entry(10923, 16000, [node("", 9816)]),
        ]);
        let map = Topology::from_cluster_slots(&reply, "10.0.0.9:1").unwrap();
        assert_eq!(map.owner(5460), Some("10.0.0.1:9814"));
        assert_eq!(map.owner(5461), Some("10.0.0.2:9815"));
        assert_eq!(
            map.owner(12000),
            Some("10.0.0.9:9816"),
            "empty host means the node asked"
        );
        assert_eq!(map.owner(16001), None);
        assert_eq!(map.nodes().len(), 3);
        assert_eq!(map.replicas(), ["10.0.0.5:9815"]);
        assert!(map.knows("10.0.0.5:9815") && map.knows("10.0.0.1:9814"));
        let ranges = map.ranges();
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[2].slots, 10923..=16000);
    }

    #[test]
    fn replicas_are_remembered_but_never_routed_to() {
        let reply = Frame::Array(vec![
            entry(
                0,
                8191,
                [
                    node("10.0.0.1", 9814),
                    node("10.0.0.3", 9814),
                    node("10.0.0.2", 9815),
                    Frame::Integer(7),
                    Frame::Array(vec![Frame::bulk("no port")]),
                ],
            ),
            entry(
                8192,
                16383,
                [
                    node("10.0.0.2", 9815),
                    node("", 9816),
                    node("10.0.0.3", 9814),
                ],
            ),
        ]);
        let map = Topology::from_cluster_slots(&reply, "10.0.0.9:1").unwrap();
        assert_eq!(map.owner(0), Some("10.0.0.1:9814"));
        assert_eq!(map.owner(16383), Some("10.0.0.2:9815"));
        assert_eq!(map.nodes(), ["10.0.0.1:9814", "10.0.0.2:9815"]);
        assert_eq!(
            map.replicas(),
            ["10.0.0.3:9814", "10.0.0.9:9816"],
            "each once, primaries and unreadable entries left out"
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let bad = [
            Frame::Integer(1),
            Frame::Array(vec![Frame::Integer(1)]),
            Frame::Array(vec![entry(10, 5, [node("h", 1)])]),
            Frame::Array(vec![entry(0, 16384, [node("h", 1)])]),
            Frame::Array(vec![entry(-1, 5, [node("h", 1)])]),
            Frame::Array(vec![entry(0, 5, [node("h", 70000)])]),
            Frame::Array(vec![entry(0, 5, [Frame::Array(vec![])])]),
        ];
        for reply in bad {
            assert!(
                Topology::from_cluster_slots(&reply, "h:1").is_err(),
                "{reply:?}"
            );
        }
    }

    #[test]
    fn moved_updates_one_slot_and_drops_idle_nodes() {
        let map = Topology::single("a:1");
        assert!(map.with_owner(7, "a:1").is_none(), "no change, no copy");
        let moved = map.with_owner(7, "b:2").unwrap();
        assert_eq!(moved.owner(7), Some("b:2"));
        assert_eq!(moved.owner(8), Some("a:1"));
        assert_eq!(moved.ranges().len(), 3);
        let back = moved.with_owner(7, "a:1").unwrap();
        assert_eq!(back, map, "b:2 serves nothing any more and is forgotten");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let reply = Frame::Array(vec![entry(0, 16383, [node("::1", 9814)])]);
        let map = Topology::from_cluster_slots(&reply, "[::1]:9814").unwrap();
        assert_eq!(map.owner(1), Some("[::1]:9814"));
    }
}
