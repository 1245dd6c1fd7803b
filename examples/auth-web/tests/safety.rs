//! What the security review found in the demo, now tested: session keys
//! that give away cookies, a Keycafe outage that hung pages for 11 s and
//! answered an empty 500, and the browser address that auth-server must be
//! able to believe.

mod support;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_web::api::{ApiClient, LoginOutcome};
use auth_web::config::InternalSecret;
use axum::Router;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use support::{INTERNAL_SECRET, Stack, body, bounded};

/// Listing every key in Keycafe, as any client of the node can, reveals
/// neither the browser's cookie nor the API token it holds.
#[tokio::test(flavor = "multi_thread")]
async fn no_key_in_keycafe_reveals_the_cookie_or_the_token() {
    bounded(async {
        let stack = Stack::start().await;
        let (_client, cookie, api_token) = stack.signed_in().await;
        let keys = stack.all_keys().await;
        assert!(keys.contains(&stack.session_key(&cookie)), "{keys:?}");
        assert!(
            keys.iter().any(|key| key.starts_with("session:")),
            "auth-server's session is there too: {keys:?}"
        );
        for key in &keys {
            assert!(
                !key.contains(&cookie) && !key.contains(&api_token),
                "{key} gives a secret away"
            );
        }
    })
    .await;
}

/// With every Keycafe node down (its port closed), pages answer a 503 page
/// with a message, promptly: not an empty 500 after the client's long
/// retry budget. The bound is generous; it is not a speed test.
#[tokio::test(flavor = "multi_thread")]
async fn keycafe_down_gives_a_503_page_within_seconds() {
    bounded(async {
        let mut stack = Stack::start().await;
        let (signed_in, _, _) = stack.signed_in().await;
        stack.stop_keycafe().await;

        let fresh = stack.client();
        for (client, path) in [
            (&fresh, "/login"),
            (&signed_in, "/login"),
            (&signed_in, "/profile"),
        ] {
            let started = Instant::now();
            let response = client.get(path).await;
            let took = started.elapsed();
            let status = response.status();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let page = body(response).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {page}");
            assert!(
                content_type.starts_with("text/html"),
                "{path}: {content_type}"
            );
            assert!(
                page.contains("Sessions unavailable") && page.contains("try again"),
                "{path}: {page}"
            );
            assert!(took < Duration::from_secs(5), "{path} took {took:?}");
        }
        // Without a cookie, the login guard needs no Keycafe to say where to go.
        let response = fresh.get("/profile").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    })
    .await;
}

/// What a login request tells auth-server: the browser's address, and the
/// proof that auth-web is the one saying so. Without a configured secret,
/// neither is sent (auth-server would not believe the address anyway).
#[tokio::test(flavor = "multi_thread")]
async fn logins_name_the_browser_with_the_internal_secret() {
    bounded(async {
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let record = seen.clone();
        let app = Router::new().route(
            "/api/v1/login",
            post(move |headers: HeaderMap| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(headers);
                    (
                        AxumStatus::UNAUTHORIZED,
                        r#"{"error":"invalid email or password"}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let browser: IpAddr = [198, 51, 100, 7].into();
        let timeout = Duration::from_secs(5);
        let secret = Some(InternalSecret::new(INTERNAL_SECRET));
        for client in [
            ApiClient::new(&url, timeout, secret).unwrap(),
            ApiClient::new(&url, timeout, None).unwrap(),
        ] {
            let outcome = client.login("a@b.c", "pw", Some(browser)).await.unwrap();
            assert!(matches!(outcome, LoginOutcome::Invalid), "{outcome:?}");
        }
        let seen = seen.lock().unwrap();
        let header =
            |n: usize, name: &str| seen[n].get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            header(0, "x-internal-auth").as_deref(),
            Some(INTERNAL_SECRET)
        );
        assert_eq!(
            header(0, "x-forwarded-for").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(header(1, "x-internal-auth"), None);
        assert_eq!(header(1, "x-forwarded-for"), None);
    })
    .await;
}
