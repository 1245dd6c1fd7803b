//! Throttling and session expiry.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use auth_server::api::LoginRequest;
use keycafe_server::test_util::TestServer;
use reqwest::StatusCode;
use support::{AuthServer, DEMO_EMAIL, DEMO_PASSWORD, bounded};

const OTHER_EMAIL: &str = "jstallybrass1@wufoo.com";
const OTHER_PASSWORD: &str = "qviXpncdky";

#[tokio::test]
async fn five_failures_then_429_with_retry_after() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        for attempt in 1..=5 {
            let answer = api.login_raw(DEMO_EMAIL, "wrong").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        }
        let verifications = api.stats.password_verifications();

        // Even the right password is refused now, before any argon2 work.
        let blocked = api.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = blocked
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("whole seconds");
        assert!((1..=900).contains(&retry_after), "{retry_after}");
        assert!(blocked.error().contains("too many failed login attempts"));
        assert_eq!(api.stats.password_verifications(), verifications);

        // The address is throttled too: another account from here is refused.
        let other = api.login_raw(OTHER_EMAIL, OTHER_PASSWORD).await;
        assert_eq!(other.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(api.stats.logins_throttled(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_only_five_tries() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        let mut guesses = tokio::task::JoinSet::new();
        for n in 0..30 {
            let (http, url) = (api.http.clone(), api.url("/api/v1/login"));
            let request = LoginRequest {
                email: DEMO_EMAIL.into(),
                password: format!("guess{n}"),
            };
            guesses.spawn(async move {
                let response = http.post(url).json(&request).send().await;
                response.expect("login").status()
            });
        }
        let statuses = guesses.join_all().await;
        let refused = statuses.iter().filter(|s| **s == 429).count();
        let checked = statuses.iter().filter(|s| **s == 401).count();
        assert_eq!(
            (checked, refused),
            (5, 25),
            "the limit holds under concurrency"
        );
        assert_eq!(api.stats.password_verifications(), 5);
    })
    .await;
}

#[tokio::test]
async fn unknown_emails_are_throttled_like_real_ones() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        for _ in 0..5 {
            api.login_raw("ghost@example.com", "guess").await;
        }
        let answer = api.login_raw("ghost@example.com", "guess").await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

#[tokio::test]
async fn a_trusted_proxy_gets_per_client_counters() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.trusted_proxies = vec![[127, 0, 0, 1].into()];
        })
        .await;
        let attacker: IpAddr = [203, 0, 113, 7].into();
        let bystander: IpAddr = [198, 51, 100, 20].into();
        for _ in 0..5 {
            api.login_from(attacker, DEMO_EMAIL, "wrong").await;
        }
        // The attacker's address is blocked for every account...
        let answer = api.login_from(attacker, OTHER_EMAIL, OTHER_PASSWORD).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        // ... another client is not, except on the account under attack.
        let answer = api.login_from(bystander, OTHER_EMAIL, OTHER_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
        let answer = api.login_from(bystander, DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

#[tokio::test]
async fn a_good_login_clears_the_account_counter() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.trusted_proxies = vec![[127, 0, 0, 1].into()];
        })
        .await;
        let owner: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..4 {
            api.login_from([192, 0, 2, 99].into(), DEMO_EMAIL, "typo")
                .await;
        }
        api.login_from(owner, DEMO_EMAIL, DEMO_PASSWORD).await;
        // Four more failures would have tripped the limit without the reset.
        for _ in 0..4 {
            let answer = api
                .login_from([192, 0, 2, 98].into(), DEMO_EMAIL, "typo")
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        }
    })
    .await;
}

#[tokio::test]
async fn sessions_slide_while_used_and_end_at_the_absolute_limit() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.session_idle = Duration::from_secs(1);
            config.session_absolute = Duration::from_secs(2);
        })
        .await;
        let used = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        let idle = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        let start = tokio::time::Instant::now();

        tokio::time::sleep_until(start + Duration::from_millis(600)).await;
        assert_eq!(api.get_with("/api/v1/user", &used).await.status, 200);
        tokio::time::sleep_until(start + Duration::from_millis(1300)).await;
        // Past the first idle expiry: alive only because the use slid it.
        assert_eq!(api.get_with("/api/v1/user", &used).await.status, 200);
        assert_eq!(api.get_with("/api/v1/user", &idle).await.status, 401);

        tokio::time::sleep_until(start + Duration::from_millis(2200)).await;
        // Used recently, but past the absolute limit.
        assert_eq!(api.get_with("/api/v1/user", &used).await.status, 401);
    })
    .await;
}
