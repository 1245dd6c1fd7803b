//! The cluster-wide scan: against two scripted primaries (the walk goes to
//! each in turn and runs its cursor out), and against a real node.

mod client_support;

use std::collections::HashMap;

use bytes::Bytes;
use client_support::{Action, Seen, bounded, bulk, cluster_slots, config, two_nodes};
use keycafe_client::{Error, Frame, KeycafeCluster};
use keycafe_server::test_util::{BlockingTestServer, TestServer};

fn page(cursor: &str, keys: &[&str]) -> Action {
    Action::Reply(Frame::Array(vec![
        bulk(cursor),
        Frame::Array(keys.iter().map(|k| bulk(k)).collect()),
    ]))
}

fn strings(keys: Vec<Bytes>) -> Vec<String> {
    keys.iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[tokio::test]
async fn the_walk_runs_each_primarys_cursor_to_the_end() {
    bounded(async {
        let (a, b) = two_nodes(|seen: &Seen<'_>, a: &str, b: &str| -> Action {
            if seen.is("CLUSTER") {
                return Action::Reply(cluster_slots(&[(0, 8191, a), (8192, 16383, b)]));
            }
            let cursor = seen.args.get(1).map_or(&b""[..], |c| &c[..]);
            match (seen.me == a, cursor) {
                (true, b"0") => page("5", &["a1", "a2"]),
                (true, b"5") => page("0", &["a3"]),
                // An empty page is skipped, not handed out.
                (false, b"0") => page("9000", &[]),
                (false, b"9000") => page("0", &["b1"]),
                _ => Action::Reply(Frame::error("ERR invalid cursor")),
            }
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();

        let mut scan = kc.scan().pattern("*1").count(3);
        let mut pages = Vec::new();
        while let Some(page) = scan.next_page().await.unwrap() {
            pages.push(strings(page));
        }
        assert_eq!(pages, [vec!["a1", "a2"], vec!["a3"], vec!["b1"]]);
        assert!(scan.next_page().await.unwrap().is_none(), "done stays done");
        let scans = |node: &client_support::FakeNode| -> Vec<String> {
            node.received()
                .into_iter()
                .filter(|r| r.starts_with("SCAN"))
                .collect()
        };
        assert_eq!(
            scans(&a),
            ["SCAN 0 MATCH *1 COUNT 3", "SCAN 5 MATCH *1 COUNT 3"]
        );
        assert_eq!(
            scans(&b),
            ["SCAN 0 MATCH *1 COUNT 3", "SCAN 9000 MATCH *1 COUNT 3"]
        );

        let all = strings(kc.scan_all("*").await.unwrap());
        assert_eq!(all, ["a1", "a2", "a3", "b1"]);
    })
    .await;
}

#[tokio::test]
async fn a_node_that_cannot_scan_is_an_error() {
    bounded(async {
        let (a, _b) = two_nodes(|seen: &Seen<'_>, a: &str, b: &str| -> Action {
            match () {
                _ if seen.is("CLUSTER") => {
                    Action::Reply(cluster_slots(&[(0, 8191, a), (8192, 16383, b)]))
                }
                _ if seen.is("SCAN") => Action::Reply(Frame::Integer(3)),
                _ => Action::Reply(Frame::ok()),
            }
        })
        .await;
        let kc = config(&a.address()).connect().await.unwrap();
        let error = kc.scan().next_page().await.unwrap_err();
        assert!(matches!(error, Error::UnexpectedReply { .. }), "{error:?}");
    })
    .await;
}

#[tokio::test]
async fn scan_all_against_a_real_node() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = KeycafeCluster::connect(server.address()).await.unwrap();
        for i in 0..300 {
            kc.set(format!("user:{i}"), "u").await.unwrap();
            kc.set(format!("session:{i}"), "s").await.unwrap();
        }
        kc.set("{tagged}a", "t").await.unwrap();

        let mut users = strings(kc.scan_all("user:*").await.unwrap());
        users.sort();
        let mut expected: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();
        expected.sort();
        assert_eq!(users, expected);

        // Small pages: every key once.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut scan = kc.scan().count(7);
        let mut pages = 0;
        while let Some(page) = scan.next_page().await.unwrap() {
            pages += 1;
            for key in strings(page) {
                *seen.entry(key).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 601);
        assert!(seen.values().all(|&n| n == 1));
        assert!(pages > 10, "COUNT 7 takes many pages, not {pages}");

        assert_eq!(
            strings(kc.scan_all("{tagged}*").await.unwrap()),
            ["{tagged}a"]
        );
        assert!(kc.scan_all("nothing:*").await.unwrap().is_empty());
        server.stop().await;
    })
    .await;
}

#[test]
fn the_blocking_client_scans_too() {
    let server = BlockingTestServer::standalone();
    let kc = keycafe_client::blocking::KeycafeCluster::new("127.0.0.1", server.port()).unwrap();
    kc.set("a:1", "v").unwrap();
    kc.set("a:2", "v").unwrap();
    kc.set("b:1", "v").unwrap();
    let mut found = strings(kc.scan_all("a:*").unwrap());
    found.sort();
    assert_eq!(found, ["a:1", "a:2"]);
    kc.close();
    server.stop();
}
