//! The blocking facade, used from plain threads against a real node.

mod client_support;

use std::time::Duration;

use client_support::{Action, FakeNode, Seen, all_slots};
use keycafe_client::blocking::KeycafeCluster;
use keycafe_client::{Error, Frame, Pipeline, SetOptions, Ttl};
use keycafe_server::test_util::BlockingTestServer;

#[test]
fn the_blocking_api_mirrors_the_async_one() {
    // The node runs on its own runtime; the client brings its own.
    let server = BlockingTestServer::standalone();

    let kc = KeycafeCluster::new("127.0.0.1", server.port()).expect("connect");
    kc.set("example_key", "KEY").unwrap();
    assert_eq!(
        kc.get_string("example_key").unwrap().as_deref(),
        Some("KEY")
    );
    assert_eq!(kc.get("no_key").unwrap(), None);
    kc.ping().unwrap();

    assert!(
        kc.set_with("example_key", "x", &SetOptions::new().nx())
            .map(|o| !o.written)
            .unwrap()
    );
    kc.set_ex("temp", "v", Duration::from_secs(60)).unwrap();
    assert!(matches!(kc.ttl("temp").unwrap(), Ttl::ExpiresIn(_)));
    assert!(kc.pexpire("temp", 60_000).unwrap());
    assert!(kc.persist("temp").unwrap());
    assert_eq!(kc.pttl("temp").unwrap(), Ttl::Persistent);
    assert!(kc.expire("temp", 60).unwrap());
    assert!(kc.exists("temp").unwrap());
    assert!(kc.delete("temp").unwrap());
    assert_eq!(kc.incr("n").unwrap(), 1);
    assert_eq!(kc.incr_by("n", 9).unwrap(), 10);
    assert_eq!(kc.decr("n").unwrap(), 9);
    assert_eq!(kc.decr_by("n", 9).unwrap(), 0);
    kc.mset([("a", "1"), ("b", "2")]).unwrap();
    assert_eq!(
        kc.mget(["a", "missing", "b"]).unwrap(),
        [Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(kc.delete_many(["a", "b", "missing"]).unwrap(), 2);
    assert_eq!(
        kc.command(["STRLEN", "example_key"]).unwrap(),
        Frame::Integer(3)
    );
    assert!(matches!(
        kc.command(["MULTI"]),
        Err(Error::InvalidRequest(_))
    ));
    let mut pipeline = Pipeline::new();
    pipeline.set("p", "1").incr("p");
    assert_eq!(
        kc.execute(&pipeline).unwrap(),
        [Frame::ok(), Frame::Integer(2)]
    );
    kc.refresh_topology().unwrap();
    assert_eq!(kc.node_for_key("p"), Some(server.address()));
    assert_eq!(kc.slot_ranges().len(), 1);
    assert!(kc.as_async().node_for_key("p").is_some());

    // Clones share connections and work from many threads at once.
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let kc = kc.clone();
            scope.spawn(move || {
                for i in 0..100 {
                    let key = format!("thread:{thread}:{i}");
                    kc.set(&key, &key).unwrap();
                    assert_eq!(kc.get_string(&key).unwrap().as_deref(), Some(key.as_str()));
                }
            });
        }
    });
    kc.close();
    server.stop();
}

#[test]
fn the_blocking_wait_returns_the_count() {
    let node_runtime = tokio::runtime::Runtime::new().expect("node runtime");
    // Held longer than the response timeout: the wait's own timeout covers it.
    let node = node_runtime.block_on(FakeNode::start(|seen: &Seen<'_>| match () {
        _ if seen.is("CLUSTER") => Action::Reply(all_slots(seen.me)),
        _ if seen.is("WAIT") => Action::After(Duration::from_millis(400), Frame::Integer(1)),
        _ => Action::Reply(Frame::ok()),
    }));
    let config = keycafe_client::ClientConfig::new([node.address()])
        .response_timeout(Duration::from_millis(200));
    let kc = KeycafeCluster::connect_with(config).expect("connect");
    kc.set("k", "v").unwrap();
    assert_eq!(kc.wait("k", 1, Duration::from_secs(2)).unwrap(), 1);
    assert_eq!(node.received()[1..], ["SET k v", "WAIT 1 2000"]);
    kc.close();
    drop(node);
}
