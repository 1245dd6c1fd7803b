//! A replicated cluster for tests: [`ReplicatedCluster`] starts a
//! coordinator with `--replicas` and nodes that join as primaries or
//! replicas, with the short [`NODE_TIMEOUT`] that keeps failovers quick;
//! the helpers compare a replica's data with its primary's.

use std::collections::HashMap;
use std::time::Duration;

use keycafe_core::cluster::ClusterConfig;
use keycafe_core::{Frame, Slot};

use crate::resp::text;
use crate::{
    Coordinator, CoordinatorOptions, Host, Node, NodeOptions, RespClient, TempDir, eventually,
    is_fair_replicated, node_at, owner_of, primaries,
};

/// Node timeout of the coordinator and every node.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);
/// Forming a cluster moves slots between nodes; generous for a loaded machine.
pub const SETTLE: Duration = Duration::from_secs(60);

/// How one node joins the cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Join {
    /// Index (among the nodes started before) of the primary it is
    /// configured to replicate (`--replica-of`); `None`: the coordinator
    /// decides.
    pub replica_of: Option<usize>,
    /// `--repl-backlog-size`.
    pub repl_backlog_size: Option<usize>,
}

/// A node whose role the coordinator decides.
pub const AUTO: Join = Join {
    replica_of: None,
    repl_backlog_size: None,
};

/// A node configured to replicate the `primary`-th node started.
pub fn replica_of(primary: usize) -> Join {
    Join {
        replica_of: Some(primary),
        ..AUTO
    }
}

/// A coordinator (with `--replicas` and the short node timeout) and its
/// nodes, each stopped when this is dropped.
pub struct ReplicatedCluster {
    pub coordinator: Coordinator,
    /// In the order of the joins.
    pub nodes: Vec<Node>,
    _dir: TempDir,
}

impl ReplicatedCluster {
    /// Starts the nodes one by one, each registered before the next starts
    /// (so that automatic roles come out the same every time), then waits
    /// until `primaries` primaries with `replicas` replicas each share the
    /// slots fairly and every replica has a full copy and a live link.
    pub async fn start(
        replicas_setting: usize,
        joins: &[Join],
        primaries: usize,
        replicas: usize,
    ) -> ReplicatedCluster {
        let hosts = vec![Host::loopback(); joins.len()];
        let coordinator = Host::loopback();
        ReplicatedCluster::start_on(
            &coordinator,
            &hosts,
            replicas_setting,
            joins,
            primaries,
            replicas,
        )
        .await
    }

    /// [`ReplicatedCluster::start`] with the coordinator on `coordinator`
    /// and the `i`-th node on `hosts[i]`.
    pub async fn start_on(
        coordinator: &Host,
        hosts: &[Host],
        replicas_setting: usize,
        joins: &[Join],
        primaries: usize,
        replicas: usize,
    ) -> ReplicatedCluster {
        assert_eq!(hosts.len(), joins.len(), "one host per node");
        let dir = TempDir::new();
        let options = CoordinatorOptions {
            host: coordinator.clone(),
            replicas: Some(replicas_setting),
            node_timeout_ms: Some(NODE_TIMEOUT.as_millis() as u64),
            ..CoordinatorOptions::default()
        };
        let coordinator = Coordinator::start_with(dir.path.clone(), &options)
            .await
            .expect("coordinator starts");
        let mut nodes: Vec<Node> = Vec::new();
        for (join, host) in joins.iter().zip(hosts) {
            let options = NodeOptions {
                host: host.clone(),
                replica_of: join.replica_of.map(|i| nodes[i].addr()),
                node_timeout_ms: Some(NODE_TIMEOUT.as_millis() as u64),
                repl_backlog_size: join.repl_backlog_size,
                ..NodeOptions::default()
            };
            let node = Node::start_with(&coordinator.addr(), &options)
                .await
                .expect("node starts");
            let addr = node.addr();
            coordinator
                .wait_until("the node registered", SETTLE, |c| {
                    node_at(c, &addr).is_some()
                })
                .await
                .expect("node registers");
            nodes.push(node);
        }
        let cluster = ReplicatedCluster {
            coordinator,
            nodes,
            _dir: dir,
        };
        cluster
            .coordinator
            .wait_until("the cluster is fair", SETTLE, |c| {
                is_fair_replicated(c, primaries, replicas)
            })
            .await
            .expect("cluster forms");
        cluster.wait_replicas_ready().await;
        cluster
    }

    pub async fn config(&self) -> ClusterConfig {
        self.coordinator.config().await.expect("/api/cluster")
    }

    pub fn node(&self, addr: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node at {addr}"))
    }

    pub fn node_mut(&mut self, addr: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node at {addr}"))
    }

    /// Waits until every replica in the configuration has a full copy and a
    /// live link, as it says itself and as the coordinator has heard (a
    /// failover needs the latter).
    pub async fn wait_replicas_ready(&self) {
        wait_replicas_synced(&self.coordinator).await;
    }
}

/// Waits until every replica in `coordinator`'s configuration says its link
/// is up and its first sync done, and the coordinator agrees.
pub async fn wait_replicas_synced(coordinator: &Coordinator) {
    let config = coordinator.config().await.expect("/api/cluster");
    for replica in config.nodes.iter().filter(|n| n.is_replica()) {
        let addr = replica.client_addr.clone();
        eventually(&format!("replica {addr} is synced"), SETTLE, async || {
            let info = RespClient::connect(&addr)
                .await?
                .info("replication")
                .await?;
            let view = coordinator.node_view(&addr).await?;
            Ok(info["role"] == "slave"
                && info["master_link_status"] == "up"
                && info["master_sync_in_progress"] == "0"
                && view["synced"] == true
                && view["link_up"] == true)
        })
        .await
        .unwrap();
    }
}

/// Each primary's client address with its replicas'.
pub fn replica_sets(config: &ClusterConfig) -> Vec<(String, Vec<String>)> {
    primaries(config)
        .map(|p| {
            let replicas = config.replicas_of(&p.id).map(|r| r.client_addr.clone());
            (p.client_addr.clone(), replicas.collect())
        })
        .collect()
}

/// Waits until `replica` has applied everything `primary` produced:
/// `slave_repl_offset` equals `master_repl_offset`. (An idle primary adds a
/// PING to its stream every second; one poll between two of those sees
/// them equal.)
pub async fn wait_caught_up(primary: &str, replica: &str) -> u64 {
    let mut offset = 0;
    eventually(
        &format!("{replica} caught up with {primary}"),
        SETTLE,
        async || {
            let applied = RespClient::connect(replica)
                .await?
                .info_u64("replication", "slave_repl_offset")
                .await?;
            offset = RespClient::connect(primary)
                .await?
                .info_u64("replication", "master_repl_offset")
                .await?;
            Ok(applied == offset)
        },
    )
    .await
    .unwrap();
    offset
}

/// Asserts that `replica` holds exactly what `primary` holds: the same
/// DBSIZE and, for each of `keys`, the same value (read on the replica
/// after READONLY) and the same remaining time to live within a second.
/// Returns the primary's values.
pub async fn assert_same_data(
    primary: &str,
    replica: &str,
    keys: &[String],
) -> HashMap<String, Option<String>> {
    let mut on_primary = RespClient::connect(primary).await.unwrap();
    let mut on_replica = RespClient::connect(replica).await.unwrap();
    on_replica.ok(&["READONLY"]).await.unwrap();
    assert_eq!(
        on_replica.dbsize().await.unwrap(),
        on_primary.dbsize().await.unwrap(),
        "DBSIZE of replica {replica} and primary {primary}"
    );
    let mut values = HashMap::new();
    for chunk in keys.chunks(500) {
        let gets: Vec<[&str; 2]> = chunk.iter().map(|k| ["GET", k.as_str()]).collect();
        let pttls: Vec<[&str; 2]> = chunk.iter().map(|k| ["PTTL", k.as_str()]).collect();
        let primary_values = on_primary.pipeline(&gets).await.unwrap();
        let replica_values = on_replica.pipeline(&gets).await.unwrap();
        let primary_ttls = on_primary.pipeline(&pttls).await.unwrap();
        let replica_ttls = on_replica.pipeline(&pttls).await.unwrap();
        for (i, key) in chunk.iter().enumerate() {
            assert_eq!(
                replica_values[i], primary_values[i],
                "{key} on replica {replica} vs primary {primary}"
            );
            let (Frame::Integer(p), Frame::Integer(r)) = (&primary_ttls[i], &replica_ttls[i])
            else {
                panic!("PTTL {key}: {:?} / {:?}", primary_ttls[i], replica_ttls[i]);
            };
            let same = if *p < 0 || *r < 0 {
                p == r
            } else {
                p.abs_diff(*r) <= 1000
            };
            assert!(
                same,
                "PTTL {key}: {p} on primary {primary}, {r} on replica {replica}"
            );
            values.insert(key.clone(), text(&primary_values[i]));
        }
    }
    values
}

/// The slots the node with this id owns, in order.
pub fn slots_of(config: &ClusterConfig, id: &str) -> Vec<Slot> {
    let index = config.nodes.iter().position(|n| n.id == id);
    index.map_or_else(Vec::new, |i| config.slot_map().slots_of(i))
}

/// Keys `{prefix}{i}` whose slots `owner` owns, `count` of them.
pub fn keys_owned_by(
    config: &ClusterConfig,
    owner: &str,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|key| owner_of(config, key).as_deref() == Some(owner))
        .take(count)
        .collect()
}
