//! MULTI/EXEC and WATCH end to end: WATCH turns concurrent increments into
//! safe compare-and-set loops; nobody ever sees half a transaction, on its
//! primary or on a replica it reached through the replication stream; in a
//! cluster, EXEC passes the slot check with the keys of the whole queue.
//! (Single-connection replies are in `tests/scripts/transactions.txt`.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::cluster::{FakeCoordinator, config, eventually, range};
use common::{RawClient, bulk, simple};
use keycafe_core::Frame;
use keycafe_server::Config;
use keycafe_server::test_util::{TestServer, cluster_config};

fn integer_of(frame: &Frame) -> i64 {
    match frame {
        Frame::Bulk(text) => std::str::from_utf8(text).unwrap().parse().unwrap(),
        Frame::Null => 0,
        other => panic!("expected a number, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_makes_concurrent_increments_safe() {
    const CLIENTS: usize = 4;
    const INCREMENTS: usize = 50;
    let server = TestServer::start(Config::default()).await;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let addr = server.addr();
        tasks.push(tokio::spawn(async move {
            let mut client = RawClient::resp(addr).await;
            let mut aborted = 0;
            for _ in 0..INCREMENTS {
                // A compare-and-set loop, bounded so that a bug cannot spin
                // forever.
                let done = 'attempts: {
                    for _ in 0..10_000 {
                        assert_eq!(client.cmd("WATCH counter").await, simple("OK"));
                        let seen = integer_of(&client.cmd("GET counter").await);
                        assert_eq!(client.cmd("MULTI").await, simple("OK"));
                        let set = format!("SET counter {}", seen + 1);
                        assert_eq!(client.cmd(&set).await, simple("QUEUED"));
                        match client.cmd("EXEC").await {
                            Frame::Array(replies) => {
                                assert_eq!(replies, [simple("OK")]);
                                break 'attempts true;
                            }
                            Frame::Null => aborted += 1,
                            other => panic!("EXEC answered {other:?}"),
                        }
                    }
                    false
                };
                assert!(done, "an increment never got through");
            }
            aborted
        }));
    }
    let mut aborted = 0;
    for task in tasks {
        aborted += task.await.unwrap();
    }
    let mut client = RawClient::resp(server.addr()).await;
    // Every increment that EXEC acknowledged is there, and no other.
    assert_eq!(
        client.cmd("GET counter").await,
        bulk((CLIENTS * INCREMENTS).to_string())
    );
    println!("{aborted} transactions aborted by WATCH and retried");
    server.stop().await;
}

/// Reads `{t}a` and `{t}b` until `done`; panics if they ever differ.
async fn read_pairs(mut client: RawClient, done: Arc<AtomicBool>) -> usize {
    let mut reads = 0;
    while !done.load(Ordering::SeqCst) && reads < 100_000 {
        match client.cmd("MGET {t}a {t}b").await {
            Frame::Array(pair) => assert_eq!(
                integer_of(&pair[0]),
                integer_of(&pair[1]),
                "half a transaction was visible"
            ),
            other => panic!("MGET answered {other:?}"),
        }
        reads += 1;
    }
    reads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_sees_half_a_transaction_on_the_primary_or_its_replica() {
    const TRANSACTIONS: i64 = 300;
    let mut coordinator = FakeCoordinator::start().await;
    let start = || {
        TestServer::start(Config {
            node_timeout_ms: 2000,
            ..cluster_config(&coordinator.addr)
        })
    };
    let primary = start().await;
    let p = coordinator.registered.recv().await.unwrap();
    let replica = start().await;
    let mut r = coordinator.registered.recv().await.unwrap();
    r.replica_of = Some(p.id.clone());
    coordinator
        .push(&config(
            1,
            &[p.clone(), r],
            vec![range(0, 16383, &p)],
            vec![],
        ))
        .await;
    let mut to_primary = RawClient::resp(primary.addr()).await;
    let mut to_replica = RawClient::resp(replica.addr()).await;
    assert_eq!(to_replica.cmd("READONLY").await, simple("OK"));
    eventually("the primary serves its slots", async || {
        to_primary.cmd("MSET {t}a 0 {t}b 0").await == simple("OK")
    })
    .await;
    eventually("the replica follows", async || {
        to_replica.cmd("MGET {t}a {t}b").await == Frame::Array(vec![bulk("0"), bulk("0")])
    })
    .await;

    let done = Arc::new(AtomicBool::new(false));
    let readers = [
        tokio::spawn(read_pairs(to_replica, done.clone())),
        tokio::spawn(read_pairs(
            RawClient::resp(primary.addr()).await,
            done.clone(),
        )),
    ];
    // Each transaction increments both keys, with writes of another key
    // in between that widen the window a reader could see one without the
    // other in.
    let mut transaction = vec!["MULTI", "INCR {t}a"];
    transaction.extend(["SET {t}pad x"; 32]);
    transaction.extend(["INCR {t}b", "EXEC"]);
    let transaction: Vec<u8> = transaction
        .iter()
        .flat_map(|line| format!("{line}\r\n").into_bytes())
        .collect();
    for _ in 0..TRANSACTIONS {
        to_primary.send_raw(&transaction).await;
        for _ in 0..35 {
            to_primary.read_frame().await.expect("a reply");
        }
        match to_primary.read_frame().await {
            Some(Frame::Array(replies)) => assert_eq!(replies[0], replies[33]),
            other => panic!("EXEC answered {other:?}"),
        }
    }
    assert_eq!(to_primary.cmd("WAIT 1 10000").await, Frame::Integer(1));
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "a reader never read");
    }
    let mut to_replica = RawClient::resp(replica.addr()).await;
    assert_eq!(to_replica.cmd("READONLY").await, simple("OK"));
    let total = bulk(TRANSACTIONS.to_string());
    assert_eq!(
        to_replica.cmd("MGET {t}a {t}b").await,
        Frame::Array(vec![total.clone(), total])
    );

    // A write queued on the replica is redirected, which fails the
    // transaction.
    assert_eq!(to_replica.cmd("MULTI").await, simple("OK"));
    assert!(
        matches!(to_replica.cmd("SET {t}a 0").await, Frame::Error(e) if e.starts_with(b"MOVED ")),
    );
    assert_eq!(
        to_replica.cmd("EXEC").await,
        Frame::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    replica.stop().await;
    primary.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_exec_checks_the_keys_of_the_whole_queue() {
    let mut coordinator = FakeCoordinator::start().await;
    let node = TestServer::start(cluster_config(&coordinator.addr)).await;
    let n = coordinator.registered.recv().await.unwrap();
    coordinator
        .push(&config(
            1,
            std::slice::from_ref(&n),
            vec![range(0, 16383, &n)],
            vec![],
        ))
        .await;
    let mut client = RawClient::resp(node.addr()).await;
    eventually("the node serves its slots", async || {
        client.cmd("SET {a}x 1").await == simple("OK")
    })
    .await;

    // Each command alone is fine; together they span two slots.
    assert_eq!(client.cmd("MULTI").await, simple("OK"));
    assert_eq!(client.cmd("SET {a}x 2").await, simple("QUEUED"));
    assert_eq!(client.cmd("SET {b}x 2").await, simple("QUEUED"));
    assert_eq!(
        client.cmd("EXEC").await,
        Frame::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    // The redirected EXEC discarded the transaction; nothing ran.
    assert_eq!(
        client.cmd("EXEC").await,
        Frame::Error("ERR EXEC without MULTI".into())
    );
    assert_eq!(client.cmd("GET {a}x").await, bulk("1"));

    // One slot: it runs.
    assert_eq!(client.cmd("MULTI").await, simple("OK"));
    assert_eq!(client.cmd("SET {a}x 3").await, simple("QUEUED"));
    assert_eq!(client.cmd("GET {a}y").await, simple("QUEUED"));
    assert_eq!(
        client.cmd("EXEC").await,
        Frame::Array(vec![simple("OK"), Frame::Null])
    );
    node.stop().await;
}
