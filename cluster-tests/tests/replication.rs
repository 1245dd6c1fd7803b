//! Replication with the real binaries: replicas hold their primary's data
//! (roles configured with `--replica-of` or assigned by `--replicas`), and a
//! replica that lost its link resumes by offset, or takes a full copy when
//! the primary's backlog no longer holds what it missed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster_tests::replicated::{
    AUTO, Join, ReplicatedCluster, SETTLE, assert_same_data, keys_owned_by, replica_of,
    replica_sets, wait_caught_up,
};
use cluster_tests::{Node, RespClient, eventually, node_at, owner_of};
use keycafe_client::{Frame, KeycafeCluster, SetOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_holds_its_primarys_data() {
    // Nodes 1 and 5 are configured replicas; node 3 is made one by
    // `--replicas 1`; nodes 0, 2 and 4 are primaries.
    let joins = [AUTO, replica_of(0), AUTO, AUTO, AUTO, replica_of(4)];
    let cluster = ReplicatedCluster::start(1, &joins, 3, 1).await;
    let config = cluster.config().await;
    let role = |i: usize| {
        let node = node_at(&config, &cluster.nodes[i].addr()).expect("registered");
        node.replica_of
            .as_ref()
            .map(|p| config.node(p).expect("known primary").client_addr.clone())
    };
    assert_eq!(role(1), Some(cluster.nodes[0].addr()), "configured replica");
    assert_eq!(role(3), Some(cluster.nodes[2].addr()), "assigned replica");
    assert_eq!(role(5), Some(cluster.nodes[4].addr()), "configured replica");
    for i in [0, 2, 4] {
        assert_eq!(role(i), None, "node {i} is a primary");
    }
    // CLUSTER SLOTS, even on a replica, lists each range's primary and
    // then its replica.
    let sets: HashMap<String, Vec<String>> = replica_sets(&config).into_iter().collect();
    eventually("CLUSTER SLOTS lists the replicas", SETTLE, async || {
        let slots = cluster.nodes[3].client().await?.cluster_slots().await?;
        Ok(!slots.is_empty()
            && slots.iter().all(|range| {
                sets.get(&range.addrs[0])
                    .is_some_and(|replicas| range.addrs[1..] == replicas[..])
            }))
    })
    .await
    .unwrap();

    // Plain keys, some overwritten and some deleted; keys with a long TTL;
    // keys with a short one, which the primaries expire and delete.
    let kc = KeycafeCluster::connect(cluster.nodes[0].addr())
        .await
        .unwrap();
    let mut writers = Vec::new();
    for part in 0..4 {
        let kc = kc.clone();
        writers.push(tokio::spawn(async move {
            for i in (part..3000).step_by(4) {
                kc.set(format!("plain:{i}"), format!("v1-{i}"))
                    .await
                    .unwrap();
            }
            let long = SetOptions::new().expire_in(Duration::from_secs(600));
            for i in (part..2000).step_by(4) {
                kc.set_with(format!("ttl:{i}"), format!("t-{i}"), &long)
                    .await
                    .unwrap();
            }
            let short = SetOptions::new().expire_in(Duration::from_millis(800));
            for i in (part..300).step_by(4) {
                kc.set_with(format!("short:{i}"), "s", &short)
                    .await
                    .unwrap();
            }
            for i in (part..1000).step_by(4) {
                kc.set(format!("plain:{i}"), format!("v2-{i}"))
                    .await
                    .unwrap();
            }
            for i in (2500 + part..3000).step_by(4) {
                assert!(kc.delete(format!("plain:{i}")).await.unwrap());
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let live_keys = 2500 + 2000;
    eventually("the short-lived keys expired", SETTLE, async || {
        let mut total = 0;
        for (primary, _) in replica_sets(&config) {
            total += RespClient::connect(&primary).await?.dbsize().await?;
        }
        Ok(total == live_keys)
    })
    .await
    .unwrap();

    // Without READONLY a replica redirects reads to its primary.
    let key = keys_owned_by(&config, &cluster.nodes[0].addr(), "plain:", 1).remove(0);
    let mut to_replica = cluster.nodes[1].client().await.unwrap();
    let reply = to_replica.cmd(&["GET", &key]).await.unwrap();
    let expected = format!(
        "MOVED {} {}",
        keycafe_core::key_slot(key.as_bytes()),
        cluster.nodes[0].addr()
    );
    assert_eq!(reply, Frame::Error(expected.into_bytes().into()));

    let keys: Vec<String> = (0..3000)
        .map(|i| format!("plain:{i}"))
        .chain((0..2000).map(|i| format!("ttl:{i}")))
        .chain((0..300).map(|i| format!("short:{i}")))
        .collect();
    let mut checked = 0;
    for (primary, replicas) in replica_sets(&config) {
        let mine: Vec<String> = keys
            .iter()
            .filter(|k| owner_of(&config, k).as_deref() == Some(primary.as_str()))
            .cloned()
            .collect();
        assert!(mine.len() > 1000, "{primary} owns {} keys", mine.len());
        for replica in replicas {
            wait_caught_up(&primary, &replica).await;
            let values = assert_same_data(&primary, &replica, &mine).await;
            for key in &mine {
                let i: usize = key.rsplit(':').next().unwrap().parse().unwrap();
                let expected = match key.split(':').next().unwrap() {
                    "plain" if i >= 2500 => None,
                    "plain" if i < 1000 => Some(format!("v2-{i}")),
                    "plain" => Some(format!("v1-{i}")),
                    "ttl" => Some(format!("t-{i}")),
                    _ => None,
                };
                assert_eq!(values[key], expected, "{key} on {primary}");
            }
            checked += mine.len();
        }
    }
    assert_eq!(checked, keys.len(), "every key checked on one replica");
}

/// Appends `count` keys of `size`-byte values to `keys` and SETs them on
/// `node` in one pipeline.
async fn write_keys(node: &Node, keys: &mut Vec<String>, count: usize, size: usize) {
    let first = keys.len();
    keys.extend((first..first + count).map(|i| format!("k{i}")));
    let value = "x".repeat(size);
    let sets: Vec<[&str; 3]> = keys[first..]
        .iter()
        .map(|k| ["SET", k.as_str(), value.as_str()])
        .collect();
    let mut client = node.client().await.unwrap();
    for reply in client.pipeline(&sets).await.unwrap() {
        assert_eq!(reply, Frame::Simple("OK".into()));
    }
}

/// `(sync_full, sync_partial_ok, sync_partial_err)` from INFO stats.
async fn sync_stats(node: &Node) -> (u64, u64, u64) {
    let info = node.client().await.unwrap().info("stats").await.unwrap();
    let field = |name: &str| info[name].parse::<u64>().unwrap();
    (
        field("sync_full"),
        field("sync_partial_ok"),
        field("sync_partial_err"),
    )
}

/// Freezes `replica` (SIGSTOP), drops its link on `primary` (CLIENT KILL
/// TYPE replica), writes while it is away, and lets it go on (SIGCONT).
/// Returns how long it was stopped.
async fn away_while_writing(
    primary: &Node,
    replica: &Node,
    keys: &mut Vec<String>,
    count: usize,
    size: usize,
) -> Duration {
    let started = Instant::now();
    replica.pause().unwrap();
    let mut admin = primary.client().await.unwrap();
    let killed = admin.int(&["CLIENT", "KILL", "TYPE", "replica"]).await;
    assert_eq!(killed.unwrap(), 1, "one replica link dropped");
    eventually("the primary dropped the link", SETTLE, async || {
        Ok(admin.info_u64("replication", "connected_slaves").await? == 0)
    })
    .await
    .unwrap();
    write_keys(primary, keys, count, size).await;
    replica.resume().unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_resumes_by_offset_or_takes_a_full_copy() {
    let primary_join = Join {
        repl_backlog_size: Some(65536),
        ..AUTO
    };
    let cluster = ReplicatedCluster::start(0, &[primary_join, replica_of(0)], 1, 1).await;
    let (primary, replica) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (primary_addr, replica_addr) = (primary.addr(), replica.addr());
    let mut keys = Vec::new();
    write_keys(primary, &mut keys, 500, 100).await;
    wait_caught_up(&primary_addr, &replica_addr).await;
    let (full, partial_ok, partial_err) = sync_stats(primary).await;
    assert!(full >= 1, "a full copy when the replica first attached");

    // Briefly away, a few writes: it continues from its offset.
    let stopped = away_while_writing(primary, replica, &mut keys, 20, 100).await;
    eventually("the replica resumed by offset", SETTLE, async || {
        Ok(sync_stats(primary).await.1 == partial_ok + 1)
    })
    .await
    .unwrap();
    wait_caught_up(&primary_addr, &replica_addr).await;
    assert_eq!(
        sync_stats(primary).await,
        (full, partial_ok + 1, partial_err),
        "no full copy for a short absence (stopped {stopped:?})"
    );
    assert_same_data(&primary_addr, &replica_addr, &keys).await;

    // Away while the primary wrote five times its 64 KiB backlog: the
    // resumption is refused and a full copy served.
    let stopped = away_while_writing(primary, replica, &mut keys, 320, 1024).await;
    eventually("the replica took a full copy", SETTLE, async || {
        Ok(sync_stats(primary).await.0 == full + 1)
    })
    .await
    .unwrap();
    wait_caught_up(&primary_addr, &replica_addr).await;
    assert_eq!(
        sync_stats(primary).await,
        (full + 1, partial_ok + 1, partial_err + 1),
        "a full copy after a long absence (stopped {stopped:?})"
    );
    let values = assert_same_data(&primary_addr, &replica_addr, &keys).await;
    assert!(values.values().all(Option::is_some), "every key is there");
}
