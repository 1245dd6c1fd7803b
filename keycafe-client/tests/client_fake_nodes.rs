//! Redirects and failures, against scripted fake nodes on loopback.
//!
//! Each fake speaks the native protocol and answers from a small script, so
//! that every cluster situation (MOVED, ASK, TRYAGAIN, a silent node, a node
//! dying mid-reply, garbage on the wire) can be produced exactly, and the
//! client is checked to follow, time out, or fail with the right error.

mod client_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use client_support::{
    Action, FakeNode, Seen, all_slots, bounded, bulk, cluster_slots, config, moved, two_nodes,
};
use keycafe_client::{Error, Frame, KeycafeCluster, Pipeline, TimeoutKind, key_slot};
use keycafe_core::Protocol;

async fn connect(node: &FakeNode) -> KeycafeCluster {
    config(&node.address())
        .connect()
        .await
        .expect("connect to the fake node")
}

#[tokio::test]
async fn moved_updates_the_map_and_retries() {
    bounded(async {
        let b = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(bulk("from-b")),
        })
        .await;
        let b_addr = b.address();
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            // The first answer claims every slot; later ones know better.
            _ if seen.is("CLUSTER") && seen.count == 0 => Action::Reply(all_slots(seen.me)),
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(&b_addr)),
            _ => moved("k", &b_addr),
        })
        .await;
        let kc = connect(&a).await;
        assert_eq!(kc.node_for_key("k"), Some(a.address()));

        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("from-b"));
        assert_eq!(
            kc.node_for_key("k"),
            Some(b.address()),
            "MOVED updated the map"
        );
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("from-b"));
        assert_eq!(
            a.count("GET"),
            1,
            "the second GET went straight to the new owner"
        );
        assert_eq!(b.count("GET"), 2);
    })
    .await;
}

#[tokio::test]
async fn ask_sends_asking_first_and_leaves_the_map_alone() {
    bounded(async {
        let a_addr = Arc::new(OnceLock::<String>::new());
        let b = {
            let a_addr = a_addr.clone();
            FakeNode::start(move |seen: &Seen<'_>| {
                let after_asking = seen
                    .previous
                    .is_some_and(|p| p[0].eq_ignore_ascii_case(b"ASKING"));
                match () {
                    _ if seen.is("ASKING") => Action::Reply(Frame::ok()),
                    _ if after_asking => Action::Reply(bulk("migrated")),
                    // Without ASKING the target sends the client back.
                    _ => moved("k", a_addr.get().expect("a started")),
                }
            })
            .await
        };
        let b_addr = b.address();
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::error(format!("ASK {} {b_addr}", key_slot(b"k")))),
        })
        .await;
        a_addr.set(a.address()).expect("set once");
        let kc = connect(&a).await;

        assert_eq!(
            kc.get_string("k").await.unwrap().as_deref(),
            Some("migrated")
        );
        assert_eq!(b.received(), ["ASKING", "GET k"]);
        assert_eq!(
            kc.node_for_key("k"),
            Some(a.address()),
            "ASK leaves the map unchanged"
        );

        assert_eq!(
            kc.get_string("k").await.unwrap().as_deref(),
            Some("migrated")
        );
        assert_eq!(a.count("GET"), 2, "the next request asks the owner again");
        assert_eq!(b.received(), ["ASKING", "GET k", "ASKING", "GET k"]);
    })
    .await;
}

#[tokio::test]
async fn tryagain_is_retried_with_backoff() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            // Requests 1 and 2 (after CLUSTER SLOTS) are turned away.
            _ if seen.count <= 2 => Action::Reply(Frame::error(
                "TRYAGAIN Multiple keys request during rehashing",
            )),
            _ => Action::Reply(bulk("v")),
        })
        .await;
        let kc = connect(&a).await;
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(a.count("GET"), 3);
    })
    .await;
}

#[tokio::test]
async fn tryagain_gives_up_when_the_budget_runs_out() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::error("TRYAGAIN not yet")),
        })
        .await;
        let kc = config(&a.address()).max_retries(2).connect().await.unwrap();
        match kc.get("k").await {
            Err(Error::Server(e)) => assert_eq!(e.code(), "TRYAGAIN"),
            other => panic!("expected TRYAGAIN, got {other:?}"),
        }
        assert_eq!(a.count("GET"), 3, "the first try and two retries");
    })
    .await;
}

#[tokio::test]
async fn redirect_loops_end_in_redirects_exhausted() {
    bounded(async {
        let a_addr = Arc::new(OnceLock::<String>::new());
        let b = {
            let a_addr = a_addr.clone();
            FakeNode::start(move |_: &Seen<'_>| moved("k", a_addr.get().expect("a started"))).await
        };
        let b_addr = b.address();
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => moved("k", &b_addr),
        })
        .await;
        a_addr.set(a.address()).expect("set once");
        let kc = config(&a.address())
            .max_redirects(5)
            .connect()
            .await
            .unwrap();
        match kc.get("k").await {
            Err(Error::RedirectsExhausted { redirects, last }) => {
                assert_eq!(redirects, 5);
                assert_eq!(last.code(), "MOVED");
            }
            other => panic!("expected RedirectsExhausted, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn clusterdown_becomes_cluster_down_after_retries() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::error("CLUSTERDOWN The cluster is down")),
        })
        .await;
        let kc = connect(&a).await;
        let result = kc.set("k", "v").await;
        assert!(
            matches!(result, Err(Error::ClusterDown(ref text)) if text.contains("CLUSTERDOWN")),
            "{result:?}"
        );
        assert_eq!(a.count("SET"), 4);
    })
    .await;
}

/// A primary that was cut off and replaced answers CLUSTERDOWN (its lease
/// ran out) and still claims its slots in CLUSTER SLOTS: the client asks
/// another node for the map, finds the new owner and writes there.
#[tokio::test]
async fn clusterdown_refreshes_the_map_from_another_node() {
    bounded(async {
        let b = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::ok()),
        })
        .await;
        let b_addr = b.address();
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Reply(Frame::error("CLUSTERDOWN This primary has no lease")),
        })
        .await;
        let kc = keycafe_client::ClientConfig::new([a.address(), b_addr])
            .connect_timeout(std::time::Duration::from_millis(300))
            .response_timeout(std::time::Duration::from_millis(300))
            .backoff(
                std::time::Duration::from_millis(2),
                std::time::Duration::from_millis(20),
            )
            .max_retries(3)
            .connect()
            .await
            .expect("connects through a");
        kc.set("k", "v").await.expect("written to the new owner");
        assert_eq!((a.count("SET"), b.count("SET")), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_node_that_never_answers_the_hello_times_out() {
    bounded(async {
        let mute = FakeNode::mute().await;
        match connect_result(&mute.address()).await {
            Err(Error::Timeout {
                during: TimeoutKind::Connect,
                ..
            }) => {}
            other => panic!("expected a connect timeout, got {other:?}"),
        }
    })
    .await;
}

async fn connect_result(addr: &str) -> keycafe_client::Result<KeycafeCluster> {
    config(addr).connect().await
}

#[tokio::test]
async fn a_node_that_stops_replying_times_out_and_never_hangs() {
    bounded(async {
        let a = FakeNode::start(|seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ => Action::Silence,
        })
        .await;
        let kc = connect(&a).await;
        match kc.get("k").await {
            Err(Error::Timeout {
                during: TimeoutKind::Response,
                ..
            }) => {}
            other => panic!("expected a response timeout, got {other:?}"),
        }
        // Many callers at once: every one of them gets an error, none hangs.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let kc = kc.clone();
            tasks.spawn(async move { kc.get(format!("k{i}")).await });
        }
        while let Some(result) = tasks.join_next().await {
            let error = result
                .expect("task ran")
                .expect_err("a silent node gives no values");
            assert!(error.is_network(), "{error:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_node_closing_mid_reply_is_an_io_error_then_the_client_recovers() {
    bounded(async {
        let cut_once = Arc::new(AtomicBool::new(false));
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            _ if !cut_once.swap(true, Ordering::SeqCst) => {
                let mut reply = BytesMut::new();
                Protocol::Native
                    .encode_frame(&bulk("a value that never fully arrives"), &mut reply);
                Action::WriteAndClose(reply[..reply.len() / 2].to_vec())
            }
            _ => Action::Reply(bulk("v")),
        })
        .await;
        let kc = connect(&a).await;
        match kc.get("k").await {
            Err(Error::Io { .. }) => {}
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert_eq!(
            kc.get_string("k").await.unwrap().as_deref(),
            Some("v"),
            "reconnected by itself"
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_is_a_protocol_error_then_the_client_recovers() {
    bounded(async {
        let garbage_once = Arc::new(AtomicBool::new(false));
        let a = FakeNode::start(move |seen: &Seen<'_>| match () {
            _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
            // A well-framed value with a type tag that does not exist.
            _ if !garbage_once.swap(true, Ordering::SeqCst) => {
                Action::Raw(vec![0, 0, 0, 3, 0x01, 0x02, 0x03])
            }
            _ => Action::Reply(bulk("v")),
        })
        .await;
        let kc = connect(&a).await;
        match kc.get("k").await {
            Err(Error::Protocol { .. }) => {}
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
    })
    .await;
}

#[tokio::test]
async fn a_refused_hello_is_a_server_error() {
    bounded(async {
        let node = FakeNode::rejecting("ERR Protocol error: unsupported protocol version 1").await;
        match connect_result(&node.address()).await {
            Err(Error::Server(e)) => assert!(e.message().contains("unsupported protocol version")),
            other => panic!("expected the node's refusal, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn nothing_listening_fails_to_connect() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let error = connect_result(&addr)
            .await
            .expect_err("nothing is listening");
        assert!(error.is_network(), "{error:?}");
    })
    .await;
}

/// Two fake nodes splitting the slots in half; GET answers `key@node`.
async fn two_node_cluster(b_takes_over: Arc<AtomicBool>) -> (FakeNode, FakeNode) {
    two_nodes(move |seen: &Seen<'_>, a: &str, b: &str| -> Action {
        let who = seen.me;
        match () {
            _ if seen.is("CLUSTER") && b_takes_over.load(Ordering::SeqCst) => {
                Action::Reply(all_slots(b))
            }
            _ if seen.is("CLUSTER") => {
                Action::Reply(cluster_slots(&[(0, 8191, a), (8192, 16383, b)]))
            }
            _ if seen.is("GET") => Action::Reply(Frame::bulk(format!(
                "{}@{who}",
                String::from_utf8_lossy(&seen.args[1])
            ))),
            _ if seen.is("MGET") => Action::Reply(Frame::Array(
                seen.args[1..]
                    .iter()
                    .map(|k| Frame::bulk(format!("{}@{who}", String::from_utf8_lossy(k))))
                    .collect(),
            )),
            _ => Action::Reply(Frame::ok()),
        }
    })
    .await
}

#[tokio::test]
async fn pipelines_and_mget_span_nodes_and_keep_the_callers_order() {
    bounded(async {
        let (a, b) = two_node_cluster(Arc::new(AtomicBool::new(false))).await;
        let kc = connect(&a).await;
        let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
        let owner = |key: &str| {
            if key_slot(key.as_bytes()) <= 8191 {
                a.address()
            } else {
                b.address()
            }
        };

        let mut pipeline = Pipeline::new();
        keys.iter().for_each(|key| {
            pipeline.get(key);
        });
        let replies = kc.execute(&pipeline).await.unwrap();
        assert_eq!(replies.len(), keys.len());
        for (key, reply) in keys.iter().zip(&replies) {
            assert_eq!(reply, &Frame::bulk(format!("{key}@{}", owner(key))));
        }

        let values = kc.mget(&keys).await.unwrap();
        for (key, value) in keys.iter().zip(values) {
            assert_eq!(
                value.as_deref(),
                Some(format!("{key}@{}", owner(key)).as_bytes())
            );
        }
        assert!(
            a.count("MGET") > 0 && b.count("MGET") > 0,
            "both nodes were asked"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_node_is_replaced_after_a_topology_refresh() {
    bounded(async {
        let b_takes_over = Arc::new(AtomicBool::new(false));
        let (a, b) = two_node_cluster(b_takes_over.clone()).await;
        // Seeded from b, so no connection to a exists yet.
        let kc = connect(&b).await;
        assert_eq!(key_slot(b"bar"), 5061, "a key of a's half");
        assert_eq!(kc.node_for_key("bar"), Some(a.address()));

        a.kill();
        b_takes_over.store(true, Ordering::SeqCst);
        let value = kc.get_string("bar").await.unwrap();
        assert_eq!(value, Some(format!("bar@{}", b.address())));
        assert_eq!(kc.node_for_key("bar"), Some(b.address()));
    })
    .await;
}

#[tokio::test]
async fn a_dead_cluster_fails_within_the_retry_budget() {
    bounded(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let a = FakeNode::start(move |seen: &Seen<'_>| {
            counted.fetch_add(1, Ordering::SeqCst);
            Action::Reply(all_slots(seen.me))
        })
        .await;
        let kc = connect(&a).await;
        a.kill();
        let error = kc.get("k").await.expect_err("the only node is gone");
        assert!(error.is_network(), "{error:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the first CLUSTER SLOTS was answered"
        );
    })
    .await;
}
