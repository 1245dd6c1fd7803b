//! `KeycafeSessionStore` (feature `tower-sessions`) against a real node
//! running in-process: each `SessionStore` call, the key's TTL following the
//! record's expiry, the id-collision path of `create`, and failures as errors.
//!
//! `cargo test --workspace` builds keycafe-client with the feature because
//! auth-web enables it; on its own: `cargo test -p keycafe-client --features
//! tower-sessions --test session_store`.
#![cfg(feature = "tower-sessions")]

mod client_support;

use std::collections::HashMap;
use std::time::Duration;

use client_support::bounded;
use keycafe_client::{ClientConfig, KeycafeCluster, KeycafeSessionStore, Ttl};
use keycafe_server::test_util::TestServer;
use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error as StoreError, SessionStore};

async fn store_on(server: &TestServer) -> KeycafeSessionStore {
    let kc = KeycafeCluster::connect(server.address())
        .await
        .expect("connect to the test server");
    KeycafeSessionStore::new(kc)
}

fn record(id: i128, expires_in: TimeDuration) -> Record {
    let mut data = HashMap::new();
    data.insert(
        "user".to_string(),
        serde_json::json!({"name": "Ada", "id": 7}),
    );
    Record {
        id: Id(id),
        data,
        expiry_date: OffsetDateTime::now_utc() + expires_in,
    }
}

/// The key's remaining TTL, which must match `expires_in` within `slack`.
async fn assert_ttl_close(kc: &KeycafeCluster, key: &str, expires_in: Duration) {
    let Ttl::ExpiresIn(left) = kc.pttl(key).await.expect("PTTL") else {
        panic!("{key} should exist with an expiry");
    };
    let slack = Duration::from_secs(5);
    assert!(
        left <= expires_in && left + slack >= expires_in,
        "TTL of {key} is {left:?}, expected about {expires_in:?}"
    );
}

#[tokio::test]
async fn create_then_load_returns_the_same_record_under_the_default_prefix() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        let mut created = record(42, TimeDuration::minutes(30));
        store.create(&mut created).await.expect("create");
        assert_eq!(created.id, Id(42), "a free id is kept");

        let key = store.key(&created.id);
        assert!(key.starts_with("session:") && key.len() == "session:".len() + 64);
        assert!(store.client().exists(&key).await.expect("EXISTS"));
        // Listing the keys (as anyone with a connection can, slot by slot)
        // reveals no cookie value.
        let cookie = created.id.to_string();
        let slot = keycafe_client::key_slot(key.as_bytes()).to_string();
        let keys = store
            .client()
            .command(["CLUSTER", "GETKEYSINSLOT", slot.as_str(), "100"])
            .await
            .expect("CLUSTER GETKEYSINSLOT");
        let keys = format!("{keys:?}");
        assert!(
            keys.contains(&key[..20]) && !keys.contains(&cookie),
            "{keys}"
        );
        assert_ttl_close(store.client(), &key, Duration::from_secs(30 * 60)).await;

        let loaded = store.load(&created.id).await.expect("load");
        assert_eq!(loaded, Some(created));
    })
    .await;
}

#[tokio::test]
async fn save_overwrites_data_and_moves_the_ttl_to_the_new_expiry() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        let mut r = record(1, TimeDuration::minutes(5));
        store.create(&mut r).await.expect("create");

        r.data.insert("token".into(), serde_json::json!("t-123"));
        r.expiry_date = OffsetDateTime::now_utc() + TimeDuration::hours(2);
        store.save(&r).await.expect("save");

        assert_eq!(store.load(&r.id).await.expect("load"), Some(r.clone()));
        let key = store.key(&r.id);
        assert_ttl_close(store.client(), &key, Duration::from_secs(2 * 3600)).await;
    })
    .await;
}

#[tokio::test]
async fn the_key_expires_with_the_session() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        let mut r = record(2, TimeDuration::milliseconds(300));
        store.create(&mut r).await.expect("create");
        assert!(store.load(&r.id).await.expect("load").is_some());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(store.load(&r.id).await.expect("load"), None);
        assert_eq!(
            store.client().pttl(store.key(&r.id)).await.expect("PTTL"),
            Ttl::Missing
        );
    })
    .await;
}

#[tokio::test]
async fn saving_an_already_expired_record_removes_it() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        let mut r = record(3, TimeDuration::minutes(5));
        store.create(&mut r).await.expect("create");
        r.expiry_date = OffsetDateTime::now_utc() - TimeDuration::seconds(1);
        store.save(&r).await.expect("save");
        assert_eq!(store.load(&r.id).await.expect("load"), None);
    })
    .await;
}

#[tokio::test]
async fn delete_removes_the_session_and_load_of_an_unknown_id_is_none() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        let mut r = record(4, TimeDuration::minutes(5));
        store.create(&mut r).await.expect("create");
        store.delete(&r.id).await.expect("delete");
        assert_eq!(store.load(&r.id).await.expect("load"), None);
        assert!(
            !store
                .client()
                .exists(store.key(&r.id))
                .await
                .expect("EXISTS")
        );
        // Deleting what is not there is not an error.
        store.delete(&r.id).await.expect("delete again");
        assert_eq!(store.load(&Id(999)).await.expect("load"), None);
    })
    .await;
}

#[tokio::test]
async fn create_draws_a_fresh_id_when_the_key_is_taken() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        // Someone else's session already sits where this record would go.
        let taken = Id(5);
        let theirs = b"{\"someone\":\"else\"}";
        store
            .client()
            .set(store.key(&taken), theirs)
            .await
            .expect("pre-insert");

        let mut mine = record(5, TimeDuration::minutes(5));
        store.create(&mut mine).await.expect("create");

        assert_ne!(mine.id, taken, "create picked another id");
        let untouched = store.client().get(store.key(&taken)).await.expect("GET");
        assert_eq!(untouched.as_deref(), Some(&theirs[..]), "NX kept theirs");
        assert_eq!(store.load(&mine.id).await.expect("load"), Some(mine));
    })
    .await;
}

#[tokio::test]
async fn a_custom_prefix_separates_applications() {
    bounded(async {
        let server = TestServer::standalone().await;
        let default_store = store_on(&server).await;
        let app_store = default_store.clone().with_prefix("myapp:s:");
        assert_eq!(app_store.prefix(), "myapp:s:");

        let mut r = record(6, TimeDuration::minutes(5));
        app_store.create(&mut r).await.expect("create");
        let key = app_store.key(&r.id);
        assert_eq!(&key[8..], &default_store.key(&r.id)["session:".len()..]);
        assert!(key.starts_with("myapp:s:"));
        assert!(
            app_store
                .client()
                .exists(app_store.key(&r.id))
                .await
                .expect("EXISTS")
        );
        assert_eq!(default_store.load(&r.id).await.expect("load"), None);
        assert_eq!(app_store.load(&r.id).await.expect("load"), Some(r));
    })
    .await;
}

#[tokio::test]
async fn a_value_that_is_not_a_record_is_a_decode_error() {
    bounded(async {
        let server = TestServer::standalone().await;
        let store = store_on(&server).await;
        store
            .client()
            .set(store.key(&Id(8)), "not json")
            .await
            .expect("SET");
        let err = store.load(&Id(8)).await.expect_err("garbage is refused");
        assert!(matches!(err, StoreError::Decode(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_node_is_a_backend_error() {
    bounded(async {
        let server = TestServer::standalone().await;
        let kc = ClientConfig::new([server.address()])
            .connect_timeout(Duration::from_millis(200))
            .response_timeout(Duration::from_millis(500))
            .max_retries(1)
            .backoff(Duration::from_millis(10), Duration::from_millis(20))
            .connect()
            .await
            .expect("connect");
        let store = KeycafeSessionStore::new(kc);
        server.stop().await;

        let err = store.load(&Id(9)).await.expect_err("node is down");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        let mut r = record(9, TimeDuration::minutes(5));
        let err = store.create(&mut r).await.expect_err("node is down");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    })
    .await;
}
