//! The string commands that change a value in place or compute it
//! (SETRANGE, SETBIT, INCRBYFLOAT, GETSET) reach a replica as the value the
//! primary ended with, byte for byte, time to live included.

mod common;

use common::cluster::{FakeCoordinator, config, eventually, range};
use common::{RawClient, simple};
use keycafe_core::Frame;
use keycafe_server::Config;
use keycafe_server::test_util::{TestServer, cluster_config};

async fn node(coordinator: &str) -> TestServer {
    TestServer::start(Config {
        node_timeout_ms: 2000,
        ..cluster_config(coordinator)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_holds_the_primarys_resulting_values() {
    let mut coordinator = FakeCoordinator::start().await;
    let primary = node(&coordinator.addr).await;
    let p = coordinator.registered.recv().await.unwrap();
    let replica = node(&coordinator.addr).await;
    let mut r = coordinator.registered.recv().await.unwrap();
    r.replica_of = Some(p.id.clone());
    coordinator
        .push(&config(
            1,
            &[p.clone(), r.clone()],
            vec![range(0, 16383, &p)],
            vec![],
        ))
        .await;
    let mut to_primary = RawClient::resp(primary.addr()).await;
    let mut to_replica = RawClient::resp(replica.addr()).await;
    eventually("the replica is attached", async || {
        to_primary.cmd("SET probe 1").await == simple("OK")
            && to_primary.cmd("WAIT 1 100").await == Frame::Integer(1)
    })
    .await;

    let writes = [
        "INCRBYFLOAT float 10.5",
        "INCRBYFLOAT float 0.1",
        "SET ttl 1.5 EX 1000",
        "INCRBYFLOAT ttl 1e30",
        "SETRANGE range 5 abc",
        "SETRANGE range 0 xy",
        "SETBIT bits 100 1",
        "SETBIT bits 3 1",
        "SETBIT bits 100 0",
        "SET old value EX 1000",
        "GETSET old new",
    ];
    for write in writes {
        let reply = to_primary.cmd(write).await;
        assert!(!matches!(reply, Frame::Error(_)), "{write}: {reply:?}");
    }
    assert_eq!(to_primary.cmd("WAIT 1 5000").await, Frame::Integer(1));

    assert_eq!(to_replica.cmd("READONLY").await, simple("OK"));
    for key in ["float", "ttl", "range", "bits", "old"] {
        let on_primary = to_primary.cmd(&format!("GET {key}")).await;
        assert!(
            matches!(on_primary, Frame::Bulk(_)),
            "{key}: {on_primary:?}"
        );
        assert_eq!(
            to_replica.cmd(&format!("GET {key}")).await,
            on_primary,
            "{key}"
        );
    }
    assert_eq!(
        to_replica.cmd("GET float").await,
        Frame::Bulk("10.6".into())
    );
    assert_eq!(
        to_replica.cmd("GET range").await,
        Frame::Bulk("xy\0\0\0abc".into())
    );
    let Frame::Integer(ttl) = to_replica.cmd("TTL ttl").await else {
        panic!("TTL is an integer");
    };
    assert!(
        (990..=1000).contains(&ttl),
        "INCRBYFLOAT keeps the TTL: {ttl}"
    );
    assert_eq!(to_replica.cmd("TTL old").await, Frame::Integer(-1));

    primary.stop().await;
    replica.stop().await;
}
