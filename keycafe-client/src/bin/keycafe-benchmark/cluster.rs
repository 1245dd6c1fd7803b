//! `--cluster`: which node owns which slot, from the seed's CLUSTER SLOTS.
//!
//! The reply has Redis's shape: one entry per slot range,
//! `[start, end, [host, port, id, ...], replicas...]`; the first address is
//! the primary, the one a benchmark client sends to. A standalone node
//! answers with one range covering every slot, so `--cluster` works against
//! it too.

use anyhow::{Context, bail};
use keycafe_core::{Frame, SLOT_COUNT, Slot};

use crate::wire::join_host_port;

/// The primaries and, for every slot, the index of its owner among them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotTable {
    pub nodes: Vec<String>,
    owners: Vec<u16>,
}

impl SlotTable {
    /// Parses a CLUSTER SLOTS reply. `seed_host` stands in for an empty
    /// host, which Redis sends when a node does not know its own address.
    pub fn from_cluster_slots(reply: &Frame, seed_host: &str) -> anyhow::Result<SlotTable> {
        let ranges = match reply {
            Frame::Array(ranges) => ranges,
            Frame::Error(text) => bail!("CLUSTER SLOTS failed: {}", String::from_utf8_lossy(text)),
            other => bail!("unexpected CLUSTER SLOTS reply: {other:?}"),
        };
        const UNOWNED: u16 = u16::MAX;
        let mut table = SlotTable {
            nodes: Vec::new(),
            owners: vec![UNOWNED; usize::from(SLOT_COUNT)],
        };
        for range in ranges {
            let Frame::Array(fields) = range else {
                bail!("malformed slot range: {range:?}")
            };
            let (
                Some(Frame::Integer(start)),
                Some(Frame::Integer(end)),
                Some(Frame::Array(primary)),
            ) = (fields.first(), fields.get(1), fields.get(2))
            else {
                bail!("malformed slot range: {range:?}");
            };
            let (Some(Frame::Bulk(host)), Some(Frame::Integer(port))) =
                (primary.first(), primary.get(1))
            else {
                bail!("malformed node address: {primary:?}");
            };
            let host = std::str::from_utf8(host).context("node host is not UTF-8")?;
            let host = if host.is_empty() || host == "?" {
                seed_host
            } else {
                host
            };
            let port = u16::try_from(*port).context("node port out of range")?;
            let addr = join_host_port(host, port);
            let index = match table.nodes.iter().position(|n| *n == addr) {
                Some(index) => index,
                None => {
                    table.nodes.push(addr);
                    table.nodes.len() - 1
                }
            };
            let valid = |n: i64| (0..i64::from(SLOT_COUNT)).contains(&n);
            if !valid(*start) || !valid(*end) || start > end {
                bail!("slot range {start}-{end} out of bounds");
            }
            let index = u16::try_from(index).context("too many nodes")?;
            table.owners[*start as usize..=*end as usize].fill(index);
        }
        if let Some(slot) = table.owners.iter().position(|&o| o == UNOWNED) {
            bail!("slot {slot} has no owner; is the cluster fully configured?");
        }
        Ok(table)
    }

    /// The index in [`SlotTable::nodes`] of the node that owns `slot`.
    pub fn owner(&self, slot: Slot) -> usize {
        usize::from(self.owners[usize::from(slot)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: i64, end: i64, host: &str, port: i64) -> Frame {
        Frame::Array(vec![
            Frame::Integer(start),
            Frame::Integer(end),
            Frame::Array(vec![
                Frame::bulk(host.to_string()),
                Frame::Integer(port),
                Frame::bulk("id"),
            ]),
        ])
    }

    #[test]
    fn maps_slots_to_primaries() {
        let reply = Frame::Array(vec![
            range(0, 8191, "10.0.0.1", 7000),
            range(8192, 16383, "", 7001),
            range(100, 100, "10.0.0.1", 7000),
        ]);
        let table = SlotTable::from_cluster_slots(&reply, "seed").expect("valid reply");
        assert_eq!(table.nodes, vec!["10.0.0.1:7000", "seed:7001"]);
        assert_eq!(table.owner(0), 0);
        assert_eq!(table.owner(8192), 1);
        assert_eq!(table.owner(16383), 1);
    }

    #[test]
    fn refuses_incomplete_or_malformed_maps() {
        let partial = Frame::Array(vec![range(0, 100, "h", 1)]);
        assert!(SlotTable::from_cluster_slots(&partial, "seed").is_err());
        let bad = Frame::Array(vec![range(0, 16384, "h", 1)]);
        assert!(SlotTable::from_cluster_slots(&bad, "seed").is_err());
        assert!(SlotTable::from_cluster_slots(&Frame::error("ERR no cluster"), "seed").is_err());
        assert!(
            SlotTable::from_cluster_slots(&Frame::Array(vec![Frame::Integer(1)]), "s").is_err()
        );
    }
}
