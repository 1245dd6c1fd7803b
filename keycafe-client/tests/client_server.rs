//! Every method against a real node running in-process on a loopback port.

mod client_support;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use client_support::{Action, FakeNode, Seen, all_slots, bounded};
use keycafe_client::{
    ClientConfig, Error, Frame, FromFrame, KeycafeCluster, Pipeline, SetOptions, SetOutcome, Ttl,
};
use keycafe_server::Config;
use keycafe_server::test_util::TestServer;

async fn connect(server: &TestServer) -> KeycafeCluster {
    KeycafeCluster::connect(server.address())
        .await
        .expect("connect to the test server")
}

#[test]
fn handles_are_cheap_shared_values() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<KeycafeCluster>();
    shareable::<keycafe_client::blocking::KeycafeCluster>();
    shareable::<Error>();
}

#[tokio::test]
async fn the_seed_example_reads_naturally() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = KeycafeCluster::connect(server.address()).await.unwrap();
        kc.set("example_key", "KEY").await.unwrap();
        assert_eq!(
            kc.get("example_key").await.unwrap().as_deref(),
            Some(&b"KEY"[..])
        );
        assert_eq!(kc.get("no_key").await.unwrap(), None);
        assert_eq!(
            kc.get_string("example_key").await.unwrap().as_deref(),
            Some("KEY")
        );
        kc.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_standalone_node_is_a_cluster_of_one() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let ranges = kc.slot_ranges();
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].slots, 0..=16383);
        assert_eq!(ranges[0].addr, server.address());
        assert_eq!(kc.node_for_key("anything"), Some(server.address()));
        kc.refresh_topology().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn set_options() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;

        let nx = SetOptions::new().nx();
        assert_eq!(
            kc.set_with("k", "1", &nx).await.unwrap(),
            SetOutcome {
                written: true,
                previous: None
            }
        );
        assert!(!kc.set_with("k", "2", &nx).await.unwrap().written);
        assert!(
            !kc.set_with("missing", "2", &SetOptions::new().xx())
                .await
                .unwrap()
                .written
        );
        assert!(
            kc.set_with("k", "3", &SetOptions::new().xx())
                .await
                .unwrap()
                .written
        );
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("3"));

        let swapped = kc
            .set_with("k", "4", &SetOptions::new().get())
            .await
            .unwrap();
        assert_eq!(
            swapped,
            SetOutcome {
                written: true,
                previous: Some("3".into())
            }
        );
        let fresh = kc
            .set_with("new", "x", &SetOptions::new().get())
            .await
            .unwrap();
        assert_eq!(
            fresh,
            SetOutcome {
                written: true,
                previous: None
            }
        );

        let ttl = SetOptions::new().expire_in(Duration::from_secs(100));
        kc.set_with("k", "5", &ttl).await.unwrap();
        let left = kc.pttl("k").await.unwrap().remaining().expect("k expires");
        assert!(
            left > Duration::from_secs(90) && left <= Duration::from_secs(100),
            "{left:?}"
        );
        kc.set_with("k", "6", &SetOptions::new().keep_ttl())
            .await
            .unwrap();
        assert!(
            matches!(kc.ttl("k").await.unwrap(), Ttl::ExpiresIn(_)),
            "KEEPTTL kept it"
        );
        kc.set("k", "7").await.unwrap();
        assert_eq!(
            kc.ttl("k").await.unwrap(),
            Ttl::Persistent,
            "a plain SET clears it"
        );

        let at = SystemTime::now() + Duration::from_secs(1000);
        kc.set_with("k", "8", &SetOptions::new().expire_at(at))
            .await
            .unwrap();
        let left = kc.ttl("k").await.unwrap().remaining().expect("k expires");
        assert!(left > Duration::from_secs(990), "{left:?}");

        kc.set_ex("short", "v", Duration::from_millis(1))
            .await
            .unwrap();
        // Expiry is the server's business; waiting for it is the point here.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(kc.get("short").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn key_and_counter_methods() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;

        assert!(!kc.exists("k").await.unwrap());
        kc.set("k", "v").await.unwrap();
        assert!(kc.exists("k").await.unwrap());
        assert_eq!(kc.ttl("k").await.unwrap(), Ttl::Persistent);
        assert_eq!(kc.ttl("nope").await.unwrap(), Ttl::Missing);
        assert_eq!(kc.pttl("nope").await.unwrap(), Ttl::Missing);
        assert!(kc.expire("k", 100).await.unwrap());
        assert!(!kc.expire("nope", 100).await.unwrap());
        assert!(matches!(kc.ttl("k").await.unwrap(), Ttl::ExpiresIn(d) if d <= Duration::from_secs(100)));
        assert!(kc.pexpire("k", 50_000).await.unwrap());
        assert!(matches!(kc.pttl("k").await.unwrap(), Ttl::ExpiresIn(d) if d <= Duration::from_millis(50_000)));
        assert!(kc.persist("k").await.unwrap());
        assert!(!kc.persist("k").await.unwrap());
        assert_eq!(kc.ttl("k").await.unwrap(), Ttl::Persistent);
        assert!(kc.delete("k").await.unwrap());
        assert!(!kc.delete("k").await.unwrap());

        assert_eq!(kc.incr("n").await.unwrap(), 1);
        assert_eq!(kc.incr_by("n", 41).await.unwrap(), 42);
        assert_eq!(kc.decr("n").await.unwrap(), 41);
        assert_eq!(kc.decr_by("n", 50).await.unwrap(), -9);
        assert_eq!(kc.incr_by("n", -1).await.unwrap(), -10);

        kc.set("text", "abc").await.unwrap();
        match kc.incr("text").await {
            Err(Error::Server(e)) => assert_eq!(e.code(), "ERR"),
            other => panic!("expected a server error, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn multi_key_methods_split_by_slot() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let pairs: Vec<(String, String)> = (0..100)
            .map(|i| (format!("user:{i}"), format!("name {i}")))
            .collect();
        kc.mset(pairs.iter().map(|(k, v)| (k, v))).await.unwrap();

        let mut keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
        keys.insert(50, "missing".to_string());
        let values = kc.mget(&keys).await.unwrap();
        assert_eq!(values.len(), 101);
        assert_eq!(values[50], None);
        for (key, value) in keys.iter().zip(&values).filter(|(k, _)| *k != "missing") {
            let expected = format!("name {}", &key["user:".len()..]);
            assert_eq!(value.as_deref(), Some(expected.as_bytes()));
        }
        assert_eq!(kc.mget(Vec::<String>::new()).await.unwrap(), Vec::new());

        assert_eq!(kc.delete_many(&keys).await.unwrap(), 100);
        assert_eq!(kc.delete_many(&keys).await.unwrap(), 0);
        kc.mset(Vec::<(String, String)>::new()).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_raw_command_escape_hatch() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        assert_eq!(
            kc.command(["APPEND", "greeting", "hello"]).await.unwrap(),
            Frame::Integer(5)
        );
        assert_eq!(
            kc.command(["STRLEN", "greeting"]).await.unwrap(),
            Frame::Integer(5)
        );
        assert_eq!(kc.command(["ping"]).await.unwrap(), Frame::simple("PONG"));
        let slots = kc.command(["CLUSTER", "SLOTS"]).await.unwrap();
        assert!(matches!(slots, Frame::Array(ref ranges) if ranges.len() == 1));

        match kc.command(["NOSUCHCOMMAND", "x"]).await {
            Err(Error::Server(e)) => assert_eq!(e.code(), "ERR"),
            other => panic!("expected a server error, got {other:?}"),
        }
        for refused in [&["MULTI"][..], &["select", "1"], &["AUTH", "pw"]] {
            let result = kc.command(refused.iter().copied()).await;
            assert!(
                matches!(result, Err(Error::InvalidRequest(_))),
                "{refused:?}: {result:?}"
            );
        }
        assert!(matches!(
            kc.command(Vec::<String>::new()).await,
            Err(Error::InvalidRequest(_))
        ));
        kc.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn binary_keys_and_values_round_trip() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let key: Vec<u8> = [b"bin\r\n\0".as_slice(), &every_byte].concat();
        kc.set(&key, &every_byte).await.unwrap();
        assert_eq!(
            kc.get(&key).await.unwrap().as_deref(),
            Some(every_byte.as_slice())
        );

        kc.set("empty", b"").await.unwrap();
        assert_eq!(kc.get("empty").await.unwrap().as_deref(), Some(&b""[..]));

        let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        kc.set("big", &big).await.unwrap();
        assert_eq!(
            kc.get("big").await.unwrap().as_deref(),
            Some(big.as_slice())
        );

        kc.set("bad utf8", [0xff, 0xfe]).await.unwrap();
        assert!(matches!(
            kc.get_string("bad utf8").await,
            Err(Error::NotUtf8(_))
        ));
    })
    .await;
}

#[tokio::test]
async fn a_transaction_runs_on_one_slot_as_one_unit() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let mut transfer = Pipeline::new();
        transfer
            .set("{acct}:alice", "100")
            .incr_by("{acct}:alice", -10)
            .incr_by("{acct}:bob", 10)
            .set("{acct}:note", "text")
            .incr("{acct}:note")
            .get("{acct}:bob");
        let replies = kc.transaction(&transfer).await.unwrap();
        assert_eq!(replies.len(), transfer.len());
        assert_eq!(replies[1], Frame::Integer(90));
        assert_eq!(replies[2], Frame::Integer(10));
        assert!(
            matches!(replies[4], Frame::Error(_)),
            "INCR of text fails in place: {:?}",
            replies[4]
        );
        assert_eq!(replies[5], Frame::bulk("10"), "and the rest still runs");

        // Keys of two slots: refused before anything is sent.
        let mut spread = Pipeline::new();
        spread.set("{a}x", "1").set("{b}x", "1");
        assert!(matches!(
            kc.transaction(&spread).await,
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(kc.get("{a}x").await.unwrap(), None);

        // A command the node refuses while queuing: the whole transaction is
        // refused with that command's error, and nothing ran.
        let mut refused = Pipeline::new();
        refused
            .set("{acct}:alice", "0")
            .cmd(["SET", "{acct}:alice"]);
        match kc.transaction(&refused).await {
            Err(Error::Server(error)) => assert!(
                error.to_string().contains("wrong number of arguments"),
                "{error}"
            ),
            other => panic!("expected the queuing error, got {other:?}"),
        }
        assert_eq!(
            kc.get("{acct}:alice").await.unwrap().as_deref(),
            Some(&b"90"[..])
        );
    })
    .await;
}

#[tokio::test]
async fn pipelines_return_replies_in_order_with_errors_in_place() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let mut pipeline = Pipeline::new();
        pipeline
            .set("a", "1")
            .incr("a")
            .get("a")
            .set("s", "text")
            .incr("s")
            .incr_by("a", 10)
            .exists("a");
        pipeline
            .expire("a", 100)
            .pttl("a")
            .delete("a")
            .cmd(["PING"]);
        let replies = kc.execute(&pipeline).await.unwrap();
        assert_eq!(replies.len(), pipeline.len());
        assert_eq!(replies[0], Frame::ok());
        assert_eq!(replies[1], Frame::Integer(2));
        assert_eq!(replies[2], Frame::bulk("2"));
        assert!(
            matches!(replies[4], Frame::Error(_)),
            "INCR of text fails in place: {:?}",
            replies[4]
        );
        assert_eq!(replies[5], Frame::Integer(12), "and the pipeline goes on");
        assert!(bool::from_frame(replies[6].clone()).unwrap());
        assert!(i64::from_frame(replies[8].clone()).unwrap() > 0);
        assert_eq!(replies[10], Frame::simple("PONG"));

        // A long pipeline in one go.
        let mut long = Pipeline::new();
        for i in 0..10_000 {
            long.set(format!("p:{i}"), i.to_string());
        }
        for i in 0..10_000 {
            long.get(format!("p:{i}"));
        }
        let replies = kc.execute(&long).await.unwrap();
        for (i, reply) in replies[10_000..].iter().enumerate() {
            assert_eq!(reply, &Frame::bulk(i.to_string()));
        }
        assert!(kc.execute(&Pipeline::new()).await.unwrap().is_empty());
        let mut bad = Pipeline::new();
        bad.get("a").cmd(["MULTI"]);
        assert!(matches!(
            kc.execute(&bad).await,
            Err(Error::InvalidRequest(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tasks_share_one_handle_without_mixing_replies() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = connect(&server).await;
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..1000 {
            let kc = kc.clone();
            tasks.spawn(async move {
                for round in 0..10 {
                    let key = format!("task:{task}");
                    let value = format!("value {task}/{round}");
                    kc.set(&key, &value).await.unwrap();
                    let got = kc.get_string(&key).await.unwrap();
                    assert_eq!(
                        got.as_deref(),
                        Some(value.as_str()),
                        "task {task} got someone else's reply"
                    );
                    kc.incr("shared-counter").await.unwrap();
                }
                task
            });
        }
        let mut finished = HashSet::new();
        while let Some(result) = tasks.join_next().await {
            finished.insert(result.expect("task succeeded"));
        }
        assert_eq!(finished.len(), 1000);
        assert_eq!(
            kc.get_string("shared-counter").await.unwrap().as_deref(),
            Some("10000")
        );
    })
    .await;
}

#[tokio::test]
async fn a_password_protected_node() {
    bounded(async {
        let server = TestServer::start(Config {
            requirepass: Some("s3cret".to_string()),
            ..Config::default()
        })
        .await;

        match KeycafeCluster::connect(server.address()).await {
            Err(Error::Server(e)) => assert!(e.is_auth(), "{e}"),
            other => panic!("expected NOAUTH, got {other:?}"),
        }
        let wrong = ClientConfig::new([server.address()])
            .password("wrong")
            .connect()
            .await;
        match wrong {
            Err(Error::Server(e)) => assert!(e.is_auth(), "{e}"),
            other => panic!("expected WRONGPASS, got {other:?}"),
        }

        let kc = ClientConfig::new([server.address()])
            .password("s3cret")
            .connect()
            .await
            .unwrap();
        kc.set("k", "v").await.unwrap();
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
    })
    .await;
}

#[tokio::test]
async fn the_handle_reconnects_after_a_server_restart() {
    bounded(async {
        let server = TestServer::standalone().await;
        let addr = server.addr();
        let kc = ClientConfig::new([server.address()])
            .max_retries(2)
            .backoff(Duration::from_millis(5), Duration::from_millis(20))
            .connect()
            .await
            .unwrap();
        kc.set("k", "before").await.unwrap();

        server.stop().await;
        let error = kc.get("k").await.expect_err("nothing is listening");
        assert!(error.is_network(), "{error:?}");

        let _restarted = TestServer::start_on(addr, Config::default()).await;
        // The data was in memory, so it is gone; the handle works again.
        assert_eq!(kc.get("k").await.unwrap(), None);
        kc.set("k", "after").await.unwrap();
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("after"));
    })
    .await;
}

#[tokio::test]
async fn a_request_made_while_its_node_is_down_completes_once_it_is_back() {
    bounded(async {
        // A port with nothing on it yet, which the seed says serves every slot.
        let reserved = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node_addr = reserved.local_addr().unwrap();
        drop(reserved);
        let seed =
            FakeNode::start(move |_: &Seen<'_>| Action::Reply(all_slots(&node_addr.to_string())))
                .await;
        let kc = ClientConfig::new([seed.address()])
            .max_retries(1000)
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .connect()
            .await
            .unwrap();

        let pending = tokio::spawn({
            let kc = kc.clone();
            async move { kc.set("k", "v").await }
        });
        // Failing to reach the node makes the client ask the seed again.
        while seed.count("CLUSTER") < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let _node = TestServer::start_on(node_addr, Config::default()).await;
        pending
            .await
            .expect("task ran")
            .expect("the retried SET succeeds");
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
    })
    .await;
}
