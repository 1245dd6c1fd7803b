//! auth-web over HTTP, with the real auth-server and a real Keycafe node
//! in-process: redirects, cookies and their attributes, the session id
//! cycling at login, CSRF refusals that change nothing, `next` that cannot
//! leave the site, and logout ending both sessions.

mod support;

use keycafe_client::Ttl;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER};
use support::{
    DEMO_EMAIL, DEMO_NAME, DEMO_PASSWORD, Options, Stack, body, bounded, csrf_token, location,
    session_set_cookie,
};

const COOKIE: &str = "auth_web_session";

fn header(response: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("response has a {name} header"))
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_session_pages_lead_to_login_and_create_nothing() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();

        let root = client.get("/").await;
        assert_eq!(root.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&root), "/login");

        let profile = client.get("/profile").await;
        assert_eq!(profile.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&profile), "/login?next=%2Fprofile");
        assert_eq!(header(&profile, CACHE_CONTROL), "no-store");
        assert_eq!(session_set_cookie(profile.headers(), COOKIE), None);
        assert_eq!(client.session_id(), None, "looking costs no session");

        // Signing out without a session needs a token too; there is none.
        let logout = client.post_form("/logout", &[]).await;
        assert_eq!(logout.status(), StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_form_starts_a_session_with_safe_cookie_attributes() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();
        let response = client.get("/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, CACHE_CONTROL), "no-store");
        assert!(header(&response, CONTENT_SECURITY_POLICY).contains("default-src 'none'"));
        let cookie = session_set_cookie(response.headers(), COOKIE).expect("a session cookie");
        let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
        for expected in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(attributes.contains(&expected), "{expected} in {cookie}");
        }
        assert!(
            !attributes.contains(&"Secure"),
            "Secure is off by default: {cookie}"
        );
        assert!(
            attributes.iter().any(|a| a.starts_with("Max-Age=")),
            "{cookie}"
        );

        let html = body(response).await;
        assert!(
            html.contains(r#"<label for="email">"#) && html.contains(r#"<label for="password">"#)
        );
        let token = csrf_token(&html);
        assert_eq!(token.len(), 64);

        // The session is in Keycafe, holding the token, expiring with the idle timeout.
        let id = client.session_id().expect("cookie kept");
        let record = stack.session_record(&id).await.expect("session stored");
        assert_eq!(record["data"]["csrf_token"], token.as_str());
        let Ttl::ExpiresIn(left) = stack
            .keycafe
            .pttl(stack.session_key(&id))
            .await
            .expect("PTTL")
        else {
            panic!("the session key expires");
        };
        let idle = stack.config.session_idle;
        assert!(
            left <= idle && left + std::time::Duration::from_secs(10) > idle,
            "{left:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_cookies_add_secure_and_the_host_prefix() {
    bounded(async {
        let stack = Stack::start_with(Options::secure_cookies()).await;
        let response = stack.client().get("/login").await;
        let cookie = session_set_cookie(response.headers(), "__Host-auth_web_session")
            .expect("a __Host- cookie");
        for expected in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(
                cookie.split("; ").any(|a| a == expected),
                "{expected} in {cookie}"
            );
        }
        assert!(!cookie.contains("Domain="), "{cookie}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_cycles_the_session_id_and_shows_the_profile() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();
        let token = client.login_form_token().await;
        let before = client.session_id().expect("session before login");

        let response = client
            .post_login(&token, DEMO_EMAIL, DEMO_PASSWORD, Some(""))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/profile");
        let after = client.session_id().expect("session after login");
        assert_ne!(before, after, "a new session id at login");
        assert_eq!(stack.session_record(&before).await, None, "old id deleted");
        let record = stack
            .session_record(&after)
            .await
            .expect("new session stored");
        assert!(record["data"]["api_token"].is_string());
        assert_ne!(
            record["data"]["csrf_token"],
            token.as_str(),
            "CSRF token replaced"
        );

        let profile = client.get("/profile").await;
        assert_eq!(profile.status(), StatusCode::OK);
        assert_eq!(header(&profile, CACHE_CONTROL), "no-store");
        let html = body(profile).await;
        for text in [
            DEMO_NAME,
            DEMO_EMAIL,
            "session-panel",
            "web:session:",
            "Slot",
        ] {
            assert!(html.contains(text), "profile shows {text:?}");
        }
        assert!(
            !html.contains(&after),
            "the whole session id is not printed"
        );
        let root = client.get("/").await;
        assert_eq!(location(&root), "/profile");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_without_the_right_csrf_token_are_refused_and_change_nothing() {
    bounded(async {
        let stack = Stack::start().await;
        let credentials = [("email", DEMO_EMAIL), ("password", DEMO_PASSWORD)];

        // No session at all: refused, and no session is created.
        let stranger = stack.client();
        let response = stranger.post_form("/login", &credentials).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(body(response).await.contains("Nothing was changed"));
        assert_eq!(stranger.session_id(), None);

        // A session, but no token or a wrong one: refused, still signed out.
        let client = stack.client();
        let token = client.login_form_token().await;
        let id = client.session_id().expect("session");
        let wrong = "0".repeat(64);
        for form_token in [None, Some(""), Some(wrong.as_str()), Some(&token[..32])] {
            let mut form = credentials.to_vec();
            if let Some(t) = form_token {
                form.push(("csrf_token", t));
            }
            let response = client.post_form("/login", &form).await;
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "token {form_token:?}"
            );
            assert_eq!(client.session_id().as_deref(), Some(id.as_str()), "same id");
            let record = stack.session_record(&id).await.expect("session kept");
            assert!(record["data"].get("api_token").is_none(), "not signed in");
        }
        // A JSON body cannot smuggle the token past the form check either.
        let response = client
            .http
            .post(format!("{}/login", stack.web))
            .header(CONTENT_TYPE, "application/json")
            .body(format!(r#"{{"csrf_token":"{token}"}}"#))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);

        // Signed in: a forged logout leaves both sessions alone.
        client.sign_in().await;
        let id = client.session_id().expect("session");
        let api_token = stack.api_token(&id).await;
        let response = client.post_form("/logout", &[("csrf_token", &token)]).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "the pre-login token is stale"
        );
        let response = client.post_form("/logout", &[]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(client.get("/profile").await.status(), StatusCode::OK);
        assert_eq!(stack.api_user_status(&api_token).await, StatusCode::OK);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_show_one_generic_error() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();
        for (email, password) in [
            (DEMO_EMAIL, "wrong-password-1"),
            ("nobody@example.com", "unknown-user-password-2"),
        ] {
            let token = client.login_form_token().await;
            let response = client.post_login(&token, email, password, None).await;
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let html = body(response).await;
            assert!(html.contains("Invalid email or password."), "{html}");
            assert!(html.contains(&format!(r#"value="{email}""#)), "email kept");
            assert!(!html.contains(password), "password not echoed");
        }
        assert_eq!(client.get("/profile").await.status(), StatusCode::SEE_OTHER);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_show_the_throttle_message() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();
        let token = client.login_form_token().await;
        let form = [
            ("csrf_token", token.as_str()),
            ("email", DEMO_EMAIL),
            ("password", "not the password"),
        ];
        let mut last = None;
        for _ in 0..6 {
            last = Some(client.post_form("/login", &form).await);
        }
        let response = last.expect("six attempts");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&response, RETRY_AFTER).parse::<u64>().is_ok());
        let html = body(response).await;
        assert!(html.contains("Too many failed sign-in attempts"), "{html}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn next_only_ever_leads_to_a_local_path() {
    bounded(async {
        let stack = Stack::start().await;
        let hostile = [
            "//evil.example",
            "//evil.example/profile",
            "https://evil.example/",
            "http:evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
        ];
        for next in hostile {
            let client = stack.client();
            // The form does not even carry it along...
            let query: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
            let html = body(client.get(&format!("/login?next={query}")).await).await;
            assert!(
                html.contains(r#"name="next" value="""#),
                "{next:?} dropped from the form"
            );
            // ...and a forged one is ignored.
            let token = csrf_token(&html);
            let response = client
                .post_login(&token, DEMO_EMAIL, DEMO_PASSWORD, Some(next))
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            assert_eq!(location(&response), "/profile", "next {next:?}");
        }

        // A local page is remembered through the round trip.
        let client = stack.client();
        let page = client.get("/login?next=%2Fprofile%3Ftab%3D1").await;
        let token = csrf_token(&body(page).await);
        let response = client
            .post_login(&token, DEMO_EMAIL, DEMO_PASSWORD, Some("/profile?tab=1"))
            .await;
        assert_eq!(location(&response), "/profile?tab=1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_ends_both_sessions() {
    bounded(async {
        let stack = Stack::start().await;
        let (client, id, api_token) = stack.signed_in().await;
        assert_eq!(stack.api_user_status(&api_token).await, StatusCode::OK);

        let token = client.profile_token().await;
        let response = client.post_form("/logout", &[("csrf_token", &token)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/login");

        assert_eq!(
            stack.session_record(&id).await,
            None,
            "browser session deleted"
        );
        assert_eq!(
            stack.api_user_status(&api_token).await,
            StatusCode::UNAUTHORIZED,
            "API session ended"
        );
        assert_ne!(client.session_id(), Some(id), "the old cookie is gone");
        let page = body(client.get("/login").await).await;
        assert!(page.contains("You have been signed out."));
        assert_eq!(
            location(&client.get("/profile").await),
            "/login?next=%2Fprofile"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_session_ended_elsewhere_ends_the_browser_session() {
    bounded(async {
        let stack = Stack::start().await;
        let (client, id, api_token) = stack.signed_in().await;
        let ended = reqwest::Client::new()
            .post(format!("{}/api/v1/logout", stack.api))
            .bearer_auth(api_token)
            .send()
            .await
            .expect("auth-server answers");
        assert!(ended.status().is_success());

        let profile = client.get("/profile").await;
        assert_eq!(profile.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&profile), "/login?next=%2Fprofile");
        assert_eq!(
            stack.session_record(&id).await,
            None,
            "browser session ended"
        );
        let html = body(client.get("/login?next=%2Fprofile").await).await;
        assert!(html.contains("Your session has ended."), "{html}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_server_down_gives_a_polite_503() {
    bounded(async {
        let stack = Stack::start_with(Options::api_down()).await;
        let client = stack.client();
        let token = client.login_form_token().await;
        let response = client
            .post_login(&token, DEMO_EMAIL, DEMO_PASSWORD, None)
            .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body(response).await.contains("unavailable right now"));
        let health = client.get("/healthz").await;
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_and_health_need_no_session() {
    bounded(async {
        let stack = Stack::start().await;
        let client = stack.client();
        for (path, content_type) in [
            ("/static/style.css", "text/css; charset=utf-8"),
            ("/static/logo.svg", "image/svg+xml"),
        ] {
            let response = client.get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, CONTENT_TYPE), content_type);
            assert_eq!(session_set_cookie(response.headers(), COOKIE), None);
        }
        let health = client.get("/healthz").await;
        assert_eq!(health.status(), StatusCode::OK);
        let missing = client.get("/nope").await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(client.session_id(), None);
    })
    .await;
}
