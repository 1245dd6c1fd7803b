//! [`Scan`]: every key of a cluster, a page at a time.
//!
//! `SCAN` is a per-node command: a node walks the keys it holds in the slots
//! it serves (see the node's `docs/keyspace.md`). A cluster-wide walk
//! therefore asks each primary in turn, running its cursor to the end before
//! moving on to the next. The primaries are those of a slot map fetched
//! when the walk starts; each primary's `SCAN`s are routed by one of its
//! slots, so that if it fails over meanwhile they go to the replica that
//! took its slots over, which understands the same cursor (a Keycafe
//! cursor names a slot, and a slot is the same on every node).
//!
//! The guarantee is SCAN's, node by node: a key present on its node for the
//! whole walk is returned, once. Keys written or deleted meanwhile may or
//! may not be. A slot that moves to another node during the walk may have
//! its keys returned twice, or missed if it moves from a node not yet
//! scanned to one already finished.

use bytes::Bytes;
use keycafe_core::{Frame, Slot};

use crate::routing::Request;
use crate::{Error, KeycafeCluster, Result};

/// A walk over every key of the cluster; see the [module documentation](self).
/// Made by [`KeycafeCluster::scan`]; pages come from [`Scan::next_page`].
///
/// ```no_run
/// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
/// let mut sessions = kc.scan().pattern("session:*").count(500);
/// while let Some(page) = sessions.next_page().await? {
///     for key in page {
///         println!("{}", String::from_utf8_lossy(&key));
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Scan {
    cluster: KeycafeCluster,
    pattern: Option<Bytes>,
    count: Option<u32>,
    /// One slot of each primary still to finish, the current one last;
    /// `None` until the walk starts.
    nodes: Option<Vec<Slot>>,
    /// The current primary's cursor.
    cursor: Bytes,
}

impl Scan {
    pub(crate) fn new(cluster: KeycafeCluster) -> Scan {
        Scan {
            cluster,
            pattern: None,
            count: None,
            nodes: None,
            cursor: Bytes::from_static(b"0"),
        }
    }

    /// Only keys matching this glob pattern (`MATCH`; Redis's rules: `*`,
    /// `?`, `[a-z]`, `[^a]`, `\` escapes). The nodes filter, so fewer keys
    /// cross the network, but the walk still reads every key.
    pub fn pattern(mut self, pattern: impl AsRef<[u8]>) -> Scan {
        self.pattern = Some(Bytes::copy_from_slice(pattern.as_ref()));
        self
    }

    /// About how many keys a node examines per request (`COUNT`, 10 unless
    /// set): more means fewer round trips and longer replies. A node always
    /// answers with whole slots, so a page may hold more.
    pub fn count(mut self, count: u32) -> Scan {
        self.count = Some(count.max(1));
        self
    }

    /// The next page of keys, or `None` when every primary has been walked.
    /// Pages are never empty; a key may come back twice only if its slot
    /// moved between nodes during the walk. After an error, calling this
    /// again resends the request that failed.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Bytes>>> {
        if self.nodes.is_none() {
            self.nodes = Some(self.primaries().await?);
        }
        loop {
            let Some(&slot) = self.nodes.as_ref().and_then(|nodes| nodes.last()) else {
                return Ok(None);
            };
            let reply = self.cluster.run(&self.request(slot)).await?;
            let (next, keys) = page(reply)?;
            if &next[..] == b"0" {
                self.nodes.as_mut().map(Vec::pop);
            }
            self.cursor = next;
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
        }
    }

    /// One slot of each primary of a fresh slot map, the first to walk last.
    async fn primaries(&self) -> Result<Vec<Slot>> {
        self.cluster.refresh_topology().await?;
        let mut seen: Vec<String> = Vec::new();
        let mut slots = Vec::new();
        for range in self.cluster.slot_ranges() {
            if !seen.contains(&range.addr) {
                slots.push(*range.slots.start());
                seen.push(range.addr);
            }
        }
        slots.reverse();
        Ok(slots)
    }

    fn request(&self, slot: Slot) -> Request {
        let mut args: Vec<&[u8]> = vec![b"SCAN", &self.cursor];
        if let Some(pattern) = &self.pattern {
            args.extend([&b"MATCH"[..], pattern]);
        }
        let count = self.count.map(|n| n.to_string());
        if let Some(count) = &count {
            args.extend([&b"COUNT"[..], count.as_bytes()]);
        }
        Request::for_slot(&args, Some(slot))
    }
}

/// A SCAN reply: the next cursor and the keys.
fn page(reply: Frame) -> Result<(Bytes, Vec<Bytes>)> {
    let unexpected = |reply| Error::UnexpectedReply {
        expected: "a SCAN reply (a cursor and an array of keys)",
        reply,
    };
    let Frame::Array(parts) = reply else {
        return Err(unexpected(reply));
    };
    match <[Frame; 2]>::try_from(parts) {
        Ok([Frame::Bulk(cursor), Frame::Array(keys)]) => {
            let keys = keys
                .into_iter()
                .map(|key| match key {
                    Frame::Bulk(key) => Ok(key),
                    other => Err(unexpected(other)),
                })
                .collect::<Result<_>>()?;
            Ok((cursor, keys))
        }
        Ok(parts) => Err(unexpected(Frame::Array(parts.into()))),
        Err(parts) => Err(unexpected(Frame::Array(parts))),
    }
}

impl KeycafeCluster {
    /// A walk over every key of the cluster (or node), a page at a time:
    /// `SCAN` on each primary in turn. Narrow it with [`Scan::pattern`],
    /// tune it with [`Scan::count`]; see [`Scan`] for what it guarantees.
    pub fn scan(&self) -> Scan {
        Scan::new(self.clone())
    }

    /// Every key matching `pattern` (Redis's glob rules; `*` for all), from
    /// a whole [`KeycafeCluster::scan`]. Holds them all in memory: walk
    /// pages with [`KeycafeCluster::scan`] where there may be many.
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// for key in kc.scan_all("user:*").await? {
    ///     kc.delete(&key).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scan_all(&self, pattern: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        let mut scan = self.scan().pattern(pattern).count(1000);
        let mut keys = Vec::new();
        while let Some(page) = scan.next_page().await? {
            keys.extend(page);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_strictly() {
        let reply = Frame::Array(vec![
            Frame::bulk("17"),
            Frame::Array(vec![Frame::bulk("a"), Frame::bulk("b")]),
        ]);
        let (cursor, keys) = page(reply).unwrap();
        assert_eq!(&cursor[..], b"17");
        assert_eq!(keys, [Bytes::from("a"), Bytes::from("b")]);
        for bad in [
            Frame::bulk("0"),
            Frame::Array(vec![Frame::bulk("0")]),
            Frame::Array(vec![Frame::Integer(0), Frame::Array(vec![])]),
            Frame::Array(vec![
                Frame::bulk("0"),
                Frame::Array(vec![Frame::Integer(1)]),
            ]),
        ] {
            assert!(matches!(page(bad), Err(Error::UnexpectedReply { .. })));
        }
    }
}
