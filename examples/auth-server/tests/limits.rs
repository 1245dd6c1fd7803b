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
        assert_eq!(api.stats.logins_throttled(), 1);

        // Five failures are under the address's own limit: another account
        // from here still works.
        let other = api.login_raw(OTHER_EMAIL, OTHER_PASSWORD).await;
        other.assert_status(StatusCode::OK);
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

/// The attack of the security review: a local process rotating
/// `X-Forwarded-For` on every guess. Without the internal secret (or with
/// a wrong one), the header is ignored and every guess counts against the
/// caller's own address.
#[tokio::test]
async fn rotating_x_forwarded_for_without_the_secret_does_not_escape_the_limits() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            // The old demo setting: the peer address alone used to be enough.
            config.trusted_proxies = vec![[127, 0, 0, 1].into()];
        })
        .await;
        let spoofed = |n: u8| IpAddr::from([203, 0, 113, n]);
        let wrong_secret = "not-the-internal-secret-at-all";
        for n in 1..=5 {
            let secret = (n % 2 == 0).then_some(wrong_secret);
            let answer = api
                .login_claiming(spoofed(n), secret, DEMO_EMAIL, "guess")
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {n}");
        }
        let answer = api
            .login_claiming(spoofed(6), None, DEMO_EMAIL, DEMO_PASSWORD)
            .await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(api.stats.password_verifications(), 5);

        // Spraying other accounts with a fresh "address" each time hits the
        // caller's own address limit (20) just the same.
        let limit = 20;
        for n in 0..limit - 5 {
            let email = format!("nobody{n}@example.com");
            let answer = api
                .login_claiming(spoofed(100 + n as u8), None, &email, "guess")
                .await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "spray {n}");
        }
        let answer = api
            .login_claiming(spoofed(250), None, OTHER_EMAIL, OTHER_PASSWORD)
            .await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(api.stats.password_verifications(), limit);
    })
    .await;
}

/// auth-web proves the secret, so its `X-Forwarded-For` is believed: each
/// browser is throttled by its own address.
#[tokio::test]
async fn with_the_secret_each_client_has_its_own_counters() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        let attacker: IpAddr = [203, 0, 113, 7].into();
        let bystander: IpAddr = [198, 51, 100, 20].into();
        for _ in 0..5 {
            api.login_from(attacker, OTHER_EMAIL, "wrong").await;
        }
        let answer = api.login_from(attacker, OTHER_EMAIL, OTHER_PASSWORD).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        let answer = api.login_from(bystander, OTHER_EMAIL, OTHER_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
        // The direct caller (127.0.0.1) has no failures of its own.
        let answer = api.login_raw(OTHER_EMAIL, OTHER_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
    })
    .await;
}

/// The lockout of the security review: failures sent against one account
/// from one address must not keep the owner out from another.
#[tokio::test]
async fn a_flood_from_one_address_cannot_lock_the_owner_out() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.login_account_delay = Duration::from_millis(10);
        })
        .await;
        let attacker: IpAddr = [203, 0, 113, 66].into();
        let owner: IpAddr = [192, 0, 2, 1].into();
        let mut statuses = Vec::new();
        for n in 0..60 {
            let password = format!("guess{n}");
            statuses.push(api.login_from(attacker, DEMO_EMAIL, &password).await.status);
        }
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!((60 - refused, refused), (5, 55), "{statuses:?}");

        let answer = api.login_from(owner, DEMO_EMAIL, DEMO_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
        assert_eq!(
            api.stats.logins_slowed(),
            0,
            "refused attempts count for nothing: the account never slowed down"
        );
        // Nor did the refused attempts use up the attacker's address budget.
        let answer = api.login_from(attacker, OTHER_EMAIL, OTHER_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
    })
    .await;
}

/// Guessing one account from many addresses slows it down but never locks
/// it: no attempt is refused, and the owner still gets in.
#[tokio::test]
async fn many_addresses_slow_an_account_down_without_locking_it() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.login_account_slow_after = 6;
            config.login_account_delay = Duration::from_millis(50);
        })
        .await;
        for n in 1..=12u8 {
            let guesser = IpAddr::from([203, 0, 113, n]);
            let answer = api.login_from(guesser, DEMO_EMAIL, "guess").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guesser {n}");
        }
        assert_eq!(api.stats.logins_throttled(), 0);
        assert_eq!(api.stats.logins_slowed(), 6, "attempts 7 to 12");

        let owner: IpAddr = [192, 0, 2, 1].into();
        let answer = api.login_from(owner, DEMO_EMAIL, DEMO_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
        assert_eq!(api.stats.logins_slowed(), 7, "the owner waited too");
    })
    .await;
}

#[tokio::test]
async fn a_good_login_forgives_the_owners_own_failures() {
    bounded(async {
        let keycafe = TestServer::standalone().await;
        let api = AuthServer::start(keycafe.addr(), |_| {}).await;
        let owner: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..4 {
            api.login_from(owner, DEMO_EMAIL, "typo").await;
        }
        api.login_from(owner, DEMO_EMAIL, DEMO_PASSWORD)
            .await
            .assert_status(StatusCode::OK);
        // Four more failures would have tripped the limit without the reset.
        for _ in 0..4 {
            let answer = api.login_from(owner, DEMO_EMAIL, "typo").await;
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
