//! Replicas, WAIT and failover, against scripted fake nodes on loopback.
//!
//! A fake node answers from a script, so the moments of a failover can be
//! staged exactly: a primary with a replica, the primary dying with a
//! request in flight, a gap in which its port refuses connections and the
//! replica still names it, and the replica taking over its slots.

mod client_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use client_support::{
    Action, FakeNode, Seen, all_slots, all_slots_with_replicas, bounded, bulk, cluster_slots,
    config, moved, two_nodes,
};
use keycafe_client::{ClientConfig, Error, Frame, key_slot};

/// Polls `done` until it holds (bounded by the caller's `bounded`).
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn wait_goes_to_the_keys_node_after_the_writes_and_returns_the_count() {
    bounded(async {
        let (a, b) = two_nodes(|seen: &Seen<'_>, a: &str, b: &str| -> Action {
            let after_set = seen
                .previous
                .is_some_and(|p| p[0].eq_ignore_ascii_case(b"SET"));
            match () {
                _ if seen.is("CLUSTER") => {
                    Action::Reply(cluster_slots(&[(0, 8191, a), (8192, 16383, b)]))
                }
                // Two replicas have the write, if WAIT came right after it.
                _ if seen.is("WAIT") && after_set => Action::Reply(Frame::Integer(2)),
                _ if seen.is("WAIT") => Action::Reply(Frame::error("ERR not after a SET")),
                _ => Action::Reply(Frame::ok()),
            }
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();
        assert_eq!(key_slot(b"foo"), 12182, "a key of b's half");

        kc.set("foo", "v").await.unwrap();
        let acknowledged = kc
            .wait("foo", 2, Duration::from_millis(1500))
            .await
            .unwrap();
        assert_eq!(acknowledged, 2);
        assert_eq!(b.received(), ["SET foo v", "WAIT 2 1500"]);
        assert_eq!(a.count("WAIT"), 0, "WAIT goes to the node of the key");
    })
    .await;
}

#[tokio::test]
async fn wait_is_given_its_timeout_on_top_of_the_response_timeout() {
    bounded(async {
        // Longer than the response timeout (300 ms), shorter than WAIT's.
        let held = Duration::from_millis(900);
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ if seen.is("WAIT") => Action::After(held, Frame::Integer(1)),
            _ => Action::Reply(bulk("v")),
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();

        let waiting = {
            let kc = kc.clone();
            tokio::spawn(async move { kc.wait("k", 1, Duration::from_secs(5)).await })
        };
        until(|| a.count("WAIT") == 1).await;
        // Queued behind the WAIT on the shared connection: answered after it,
        // and not timed out meanwhile.
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(waiting.await.expect("task ran").unwrap(), 1);

        // Zero: no limit at all.
        assert_eq!(kc.wait("k", 1, Duration::ZERO).await.unwrap(), 1);
        assert_eq!(a.received()[1..], ["WAIT 1 5000", "GET k", "WAIT 1 0"]);
    })
    .await;
}

#[tokio::test]
async fn a_wait_that_outlasts_its_timeout_is_a_timeout() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Silence,
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();
        match kc.wait("k", 1, Duration::from_millis(200)).await {
            Err(Error::Timeout { after, .. }) => {
                assert_eq!(after, Duration::from_millis(500), "300 ms + 200 ms")
            }
            other => panic!("expected a response timeout, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn a_wait_refused_by_the_node_is_a_server_error() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::error(
                "ERR WAIT cannot be used with replica instances",
            )),
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();
        match kc.wait("k", 1, Duration::from_millis(100)).await {
            Err(Error::Server(e)) => {
                assert_eq!(e.code(), "ERR");
                assert!(e.message().contains("replica instances"), "{e}");
            }
            other => panic!("expected the node's refusal, got {other:?}"),
        }
        assert_eq!(a.count("WAIT"), 1, "an error reply is final");
    })
    .await;
}

/// A replica: it knows the map, and sends key `k` to `primary`.
async fn replica_of(primary: Arc<OnceLock<String>>) -> FakeNode {
    FakeNode::start(move |seen: &Seen<'_>| {
        let primary = primary.get().expect("primary started");
        match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots_with_replicas(primary, &[seen.me])),
            _ => moved("k", primary),
        }
    })
    .await
}

#[tokio::test]
async fn replicas_in_cluster_slots_are_not_routed_to() {
    bounded(async {
        let primary_addr = Arc::new(OnceLock::<String>::new());
        let replica = replica_of(primary_addr.clone()).await;
        let primary = {
            let replica_addr = replica.address();
            FakeNode::start(move |seen: &Seen<'_>| match () {
                _ if seen.is("CLUSTER") => {
                    Action::Reply(all_slots_with_replicas(seen.me, &[&replica_addr]))
                }
                _ => Action::Reply(bulk("from-primary")),
            })
            .await
        };
        primary_addr.set(primary.address()).expect("set once");

        // The replica is the only seed; it names the primary.
        let kc = config(&replica.address()).connect().await.unwrap();
        let ranges = kc.slot_ranges();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].slots, 0..=16383);
        assert_eq!(ranges[0].addr, primary.address());
        assert_eq!(
            kc.get_string("k").await.unwrap().as_deref(),
            Some("from-primary")
        );
        assert_eq!(replica.count("GET"), 0, "nothing is routed to a replica");
    })
    .await;
}

#[tokio::test]
async fn a_replica_answering_moved_sends_the_client_to_its_primary() {
    bounded(async {
        let primary_addr = Arc::new(OnceLock::<String>::new());
        let replica = {
            let primary_addr = primary_addr.clone();
            FakeNode::start(move |seen: &Seen<'_>| {
                let primary = primary_addr.get().expect("primary started");
                match () {
                    // What it said while it was the primary itself.
                    _ if seen.is("CLUSTER") && seen.count == 0 => Action::Reply(all_slots(seen.me)),
                    _ if seen.is("CLUSTER") => {
                        Action::Reply(all_slots_with_replicas(primary, &[seen.me]))
                    }
                    _ => moved("k", primary),
                }
            })
            .await
        };
        let primary = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(bulk("from-primary")),
        })
        .await;
        primary_addr.set(primary.address()).expect("set once");

        let kc = config(&replica.address()).connect().await.unwrap();
        assert_eq!(kc.node_for_key("k"), Some(replica.address()));
        kc.set("k", "v").await.unwrap();
        assert_eq!(replica.count("SET"), 1);
        assert_eq!(primary.count("SET"), 1, "the write followed MOVED");
        assert_eq!(kc.node_for_key("k"), Some(primary.address()));
    })
    .await;
}

#[tokio::test]
async fn the_client_follows_a_failover_and_never_resends_what_was_in_flight() {
    bounded(async {
        let promoted = Arc::new(AtomicBool::new(false));
        let a_addr = Arc::new(OnceLock::<String>::new());
        // b replicates a until it is promoted, then serves every slot.
        let b = {
            let (promoted, a_addr) = (promoted.clone(), a_addr.clone());
            FakeNode::start(move |seen: &Seen<'_>| {
                let a = a_addr.get().expect("a started");
                let key = seen.args.get(1).map(|k| String::from_utf8_lossy(k));
                match () {
                    _ if seen.is("CLUSTER") && promoted.load(Ordering::SeqCst) => {
                        Action::Reply(all_slots(seen.me))
                    }
                    _ if seen.is("CLUSTER") => {
                        Action::Reply(all_slots_with_replicas(a, &[seen.me]))
                    }
                    _ if promoted.load(Ordering::SeqCst) => {
                        Action::Reply(Frame::bulk(format!("{}@b", key.unwrap_or_default())))
                    }
                    _ => moved(&key.unwrap_or_default(), a),
                }
            })
            .await
        };
        let a = {
            let b_addr = b.address();
            FakeNode::start(move |seen: &Seen<'_>| match () {
                _ if seen.is("CLUSTER") => {
                    Action::Reply(all_slots_with_replicas(seen.me, &[&b_addr]))
                }
                // The request in flight when a dies.
                _ if seen.args.get(1).is_some_and(|key| key == "in-flight") => Action::Silence,
                _ => Action::Reply(bulk("a")),
            })
            .await
        };
        a_addr.set(a.address()).expect("set once");

        // Only a is a seed: b is known from a's CLUSTER SLOTS answer. The
        // response timeout is long, so that the in-flight request fails
        // because a died, not because it was slow.
        let kc = ClientConfig::new([a.address()])
            .connect_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_secs(20))
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
            .max_retries(200)
            .connect()
            .await
            .unwrap();
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("a"));

        let in_flight = {
            let kc = kc.clone();
            tokio::spawn(async move { kc.incr("in-flight").await })
        };
        until(|| a.count("INCR") == 1).await;
        a.kill();
        match in_flight.await.expect("task ran") {
            Err(Error::Io { addr, .. }) => assert_eq!(addr, a.address()),
            other => panic!("expected the in-flight INCR to fail, got {other:?}"),
        }

        // The gap: a refuses connections, b still names a as the primary.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..10 {
            let kc = kc.clone();
            calls.spawn(async move { (i, kc.get_string(format!("key:{i}")).await) });
        }
        until(|| b.count("CLUSTER") >= 3).await;
        promoted.store(true, Ordering::SeqCst);

        while let Some(joined) = calls.join_next().await {
            let (i, value) = joined.expect("task ran");
            assert_eq!(value.unwrap(), Some(format!("key:{i}@b")));
        }
        assert_eq!(kc.node_for_key("k"), Some(b.address()));
        assert_eq!(a.count("INCR"), 1);
        assert_eq!(b.count("INCR"), 0, "what may have run on a is not resent");
    })
    .await;
}
