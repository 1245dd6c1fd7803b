//! Keycafe going away and coming back.

mod support;

use std::time::Duration;

use auth_server::api::Health;
use keycafe_server::test_util::TestServer;
use reqwest::StatusCode;
use support::{AuthServer, DEMO_EMAIL, DEMO_PASSWORD, bounded, loopback};

/// Logs in until it works (Keycafe is coming back), within `limit`.
async fn login_eventually(api: &AuthServer, limit: Duration) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let answer = api.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        if answer.status == StatusCode::OK {
            return answer.json::<auth_server::api::LoginResponse>().token;
        }
        answer.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keycafe_down_gives_503_then_recovers_on_restart() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let addr = keycafe.addr();
        let api = AuthServer::start(addr, |_| {}).await;
        let token = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;

        keycafe.stop().await;
        let started = tokio::time::Instant::now();
        let login = api.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        login.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        assert!(login.error().contains("Keycafe"), "{}", login.text());
        assert_eq!(login.header("retry-after"), Some("1"));
        assert!(started.elapsed() < Duration::from_secs(10), "prompt 503");
        let user = api.get_with("/api/v1/user", &token).await;
        assert_eq!(user.status, StatusCode::SERVICE_UNAVAILABLE);
        let logout = api.logout(&token).await;
        assert_eq!(logout.status, StatusCode::SERVICE_UNAVAILABLE);

        let health = api.get("/healthz").await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
        let health: Health = health.json();
        assert_eq!(
            (health.sqlite.as_str(), health.keycafe.as_str()),
            ("ok", "failing")
        );
        assert_eq!(health.error.as_deref(), Some("Keycafe is not answering"));

        // Back on the same port (empty: sessions were in memory).
        let _keycafe = TestServer::start_on(addr, keycafe_server::Config::default()).await;
        let fresh = login_eventually(&api, Duration::from_secs(15)).await;
        assert_eq!(api.get_with("/api/v1/user", &fresh).await.status, 200);
        assert_eq!(api.get_with("/api/v1/user", &token).await.status, 401);
        assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn starts_while_keycafe_is_down_and_serves_once_it_is_up() {
    bounded(async {
        // A port that was free a moment ago: nothing listens there yet.
        let (reserved, addr) = loopback().await;
        drop(reserved);
        let api = AuthServer::start(addr, |_| {}).await;
        let login = api.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        login.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(api.get("/healthz").await.status, 503);

        let _keycafe = TestServer::start_on(addr, keycafe_server::Config::default()).await;
        let token = login_eventually(&api, Duration::from_secs(15)).await;
        assert_eq!(api.get_with("/api/v1/user", &token).await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_the_server_cleanly() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        let url = api.url("/healthz");
        assert_eq!(api.get("/healthz").await.status, 200);
        api.stop().await; // panics unless `run` returns Ok within 10 s
        let client = reqwest::Client::new();
        assert!(client.get(url).send().await.is_err(), "no longer listening");
    })
    .await;
}

#[tokio::test]
async fn a_bad_database_url_fails_start_up_with_context() {
    let result = auth_server::Server::start(auth_server::Config {
        database_url: "postgres://nope".into(),
        ..Default::default()
    })
    .await;
    let error = result.err().expect("not a SQLite URL");
    assert!(format!("{error:#}").contains("DATABASE_URL"), "{error:#}");
}
