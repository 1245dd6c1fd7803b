//! The API end to end: a real Keycafe node, a real SQLite file, HTTP.

mod support;

use std::collections::BTreeSet;

use auth_server::api::{Health, LoginResponse, SessionInfo, UserProfile};
use keycafe_server::test_util::TestServer;
use reqwest::StatusCode;
use support::{AuthServer, DEMO_EMAIL, DEMO_PASSWORD, all_keys, bounded};

async fn stack() -> (TestServer, AuthServer) {
    let keycafe = TestServer::standalone().await;
    let api = AuthServer::start(keycafe.addr(), |_| {}).await;
    (keycafe, api)
}

#[tokio::test]
async fn demo_login_returns_a_token_and_the_profile_without_the_hash() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let answer = api.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        answer.assert_status(StatusCode::OK);
        let login: LoginResponse = answer.json();
        assert_eq!(login.token.len(), 64, "256 bits, hex");
        assert!(login.expires_at.ends_with('Z') && login.expires_at.starts_with("20"));

        let answer = api.get_with("/api/v1/user", &login.token).await;
        answer.assert_status(StatusCode::OK);
        let profile: UserProfile = answer.json();
        assert_eq!(profile.id, 1);
        assert_eq!(profile.name, "Lissa Impett");
        assert_eq!(profile.email, DEMO_EMAIL);
        assert!(!profile.country.is_empty() && !profile.job.is_empty());

        // Exactly the documented fields; nothing hash-like anywhere.
        let raw: serde_json::Map<String, serde_json::Value> = answer.json();
        let fields: BTreeSet<&str> = raw.keys().map(String::as_str).collect();
        let expected = [
            "country",
            "created_at",
            "email",
            "gender",
            "id",
            "job",
            "name",
        ];
        assert_eq!(fields, expected.into_iter().collect());
        let text = answer.text();
        assert!(
            !text.contains("argon2") && !text.contains("password"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test]
async fn migrations_seed_users_and_the_readme_logins_work() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let db = api.database().await;
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&db)
            .await
            .expect("count users");
        assert!(count >= 100, "only {count} users");
        let hashes: Vec<(String,)> = sqlx::query_as("SELECT password_hash FROM users")
            .fetch_all(&db)
            .await
            .expect("hashes");
        let salts: BTreeSet<&str> = hashes
            .iter()
            .map(|(hash,)| {
                assert!(
                    hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                    "{hash}"
                );
                hash.split('$').nth(4).expect("salt field")
            })
            .collect();
        assert_eq!(salts.len(), hashes.len(), "every hash has its own salt");
        // The email index is unique whatever the case.
        let duplicate = sqlx::query(
            "INSERT INTO users (name, email, password_hash, gender, country, job) \
             VALUES ('X', 'LIMPETT0@SMUGMUG.COM', '$argon2id$x', 'Male', 'Peru', 'Editor')",
        )
        .execute(&db)
        .await;
        assert!(duplicate.is_err(), "case-insensitive unique email");

        // The logins the README lists (examples/auth-server/README.md).
        let readme = include_str!("../README.md");
        let logins: Vec<(&str, &str)> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let email = cells.get(1)?.split('`').nth(1)?;
                let password = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
                email.contains('@').then_some((email, password))
            })
            .collect();
        assert!(logins.len() >= 4, "README lists demo logins: {logins:?}");
        assert!(logins.contains(&(DEMO_EMAIL, DEMO_PASSWORD)));
        for (email, password) in logins {
            api.login(email, password).await;
        }
    })
    .await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_indistinguishable() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let before = api.stats.password_verifications();
        let wrong = api.login_raw(DEMO_EMAIL, "pCHecmGBZ8").await;
        let unknown = api.login_raw("nobody@example.com", DEMO_PASSWORD).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status, wrong.status);
        assert_eq!(unknown.body, wrong.body, "byte-identical bodies");
        assert_eq!(wrong.error(), "invalid email or password");
        assert_eq!(unknown.header("content-type"), wrong.header("content-type"));
        // The unknown email cost an argon2 verification too (the dummy hash).
        assert_eq!(api.stats.password_verifications(), before + 2);
    })
    .await;
}

#[tokio::test]
async fn emails_match_case_insensitively() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let token = api.login(" LImpett0@SmugMug.COM", DEMO_PASSWORD).await;
        let profile: UserProfile = api.get_with("/api/v1/user", &token).await.json();
        assert_eq!(profile.email, DEMO_EMAIL);
    })
    .await;
}

#[tokio::test]
async fn a_token_works_until_logout_and_not_after() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let token = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(api.get_with("/api/v1/user", &token).await.status, 200);
        assert_eq!(api.get_with("/api/v1/user", &token).await.status, 200);

        let other = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_ne!(other, token, "each login gets its own session");

        assert_eq!(api.logout(&token).await.status, StatusCode::NO_CONTENT);
        let after = api.get_with("/api/v1/user", &token).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED);
        assert_eq!(after.header("www-authenticate"), Some("Bearer"));
        assert_eq!(after.error(), "missing, invalid or expired session token");
        assert_eq!(api.logout(&token).await.status, StatusCode::NO_CONTENT);
        // The other session is untouched.
        assert_eq!(api.get_with("/api/v1/user", &other).await.status, 200);

        // No token, a malformed one, an unknown one: all 401.
        assert_eq!(api.get("/api/v1/user").await.status, 401);
        assert_eq!(api.get_with("/api/v1/user", "garbage").await.status, 401);
        let unknown = "0".repeat(64);
        assert_eq!(api.get_with("/api/v1/user", &unknown).await.status, 401);
        assert_eq!(api.logout("garbage").await.status, 401);
    })
    .await;
}

#[tokio::test]
async fn a_cached_login_does_not_query_sqlite() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let lookups = api.stats.sqlite_user_lookups();
        let token = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert_eq!(
            api.stats.sqlite_user_lookups(),
            lookups + 1,
            "first login misses"
        );

        let hits = api.stats.user_cache_hits();
        api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        api.login("LIMPETT0@smugmug.com", DEMO_PASSWORD).await;
        assert_eq!(api.get_with("/api/v1/user", &token).await.status, 200);
        assert_eq!(api.stats.sqlite_user_lookups(), lookups + 1, "cached since");
        assert_eq!(api.stats.user_cache_hits(), hits + 3);
    })
    .await;
}

#[tokio::test]
async fn long_passwords_are_used_whole_and_absurd_ones_refused() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let password: String = "Tr0ub4dor&3-".repeat(10); // 120 characters
        let hash = tokio::task::spawn_blocking({
            let password = password.clone();
            move || auth_server::password::hash_blocking(&password)
        })
        .await
        .expect("hash task")
        .expect("hash");
        sqlx::query(
            "INSERT INTO users (name, email, password_hash, gender, country, job) \
             VALUES ('Long Pass', 'long@example.com', ?1, 'Female', 'Peru', 'Editor')",
        )
        .bind(hash)
        .execute(&api.database().await)
        .await
        .expect("insert user");

        api.login("long@example.com", &password).await;
        let truncated = api.login_raw("long@example.com", &password[..64]).await;
        assert_eq!(truncated.status, StatusCode::UNAUTHORIZED, "not truncated");

        let absurd = api.login_raw(DEMO_EMAIL, &"x".repeat(1025)).await;
        assert_eq!(absurd.status, StatusCode::BAD_REQUEST);
        assert!(absurd.error().contains("1024"));
        let empty = api.login_raw(DEMO_EMAIL, "").await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let login = api.url("/api/v1/login");
        for (content_type, body) in [
            ("application/json", "{not json"),
            ("application/json", r#"{"email":"a@b.c"}"#),
            ("text/plain", r#"{"email":"a@b.c","password":"x"}"#),
        ] {
            let response = api
                .http
                .post(&login)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
            let error: auth_server::api::ErrorBody = response.json().await.expect("JSON error");
            assert!(!error.error.is_empty());
        }
        let missing = api.get("/api/v1/nothing-here").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.error(), "not found");
    })
    .await;
}

#[tokio::test]
async fn session_info_shows_where_the_session_lives() {
    bounded(async {
        let (keycafe, api) = stack().await;
        let token = api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        let answer = api.get_with("/api/v1/session", &token).await;
        answer.assert_status(StatusCode::OK);
        let info: SessionInfo = answer.json();
        assert!(info.key.starts_with("session:"));
        assert!(
            !info.key.contains(&token),
            "the key does not reveal the token"
        );
        assert_eq!(info.slot, keycafe_client::key_slot(info.key.as_bytes()));
        assert_eq!(info.node, Some(keycafe.addr().to_string()));
        let ttl = info.ttl_ms.expect("the session expires");
        assert!(ttl > 0 && ttl <= 30 * 60 * 1000, "{ttl}");

        // It is really there, under that key, and goes at logout.
        let direct = keycafe_client::KeycafeCluster::connect(keycafe.addr().to_string())
            .await
            .expect("connect to Keycafe");
        assert!(direct.exists(&info.key).await.expect("EXISTS"));
        api.logout(&token).await;
        assert!(!direct.exists(&info.key).await.expect("EXISTS"));
    })
    .await;
}

/// Listing every key (which any client of the node can) reveals no token:
/// sessions are keyed by its hash.
#[tokio::test]
async fn no_key_in_keycafe_reveals_a_token() {
    bounded(async {
        let (keycafe, api) = stack().await;
        let tokens = [
            api.login(DEMO_EMAIL, DEMO_PASSWORD).await,
            api.login(DEMO_EMAIL, DEMO_PASSWORD).await,
        ];
        let direct = keycafe_client::KeycafeCluster::connect(keycafe.addr().to_string())
            .await
            .expect("connect to Keycafe");
        let keys = all_keys(&direct).await;
        let sessions = keys.iter().filter(|k| k.starts_with("session:")).count();
        assert_eq!(sessions, 2, "{keys:?}");
        for token in &tokens {
            assert!(
                keys.iter().all(|key| !key.contains(token.as_str())),
                "{keys:?}"
            );
        }
    })
    .await;
}

/// With `requirepass` on the node, auth-server connects with
/// `KEYCAFE_PASSWORD`; without it, it gets no further than an error.
#[tokio::test]
async fn a_keycafe_password_is_sent() {
    bounded(async {
        let keycafe = TestServer::start(keycafe_server::Config {
            requirepass: Some("node-password-123".into()),
            ..keycafe_server::Config::default()
        })
        .await;
        let api = AuthServer::start(keycafe.addr(), |config| {
            config.keycafe.password = Some("node-password-123".into());
        })
        .await;
        api.login(DEMO_EMAIL, DEMO_PASSWORD).await;
        let without = AuthServer::start(keycafe.addr(), |_| {}).await;
        let answer = without.login_raw(DEMO_EMAIL, DEMO_PASSWORD).await;
        assert!(answer.status.is_server_error(), "{}", answer.status);
    })
    .await;
}

#[tokio::test]
async fn healthz_reports_both_dependencies() {
    bounded(async {
        let (_keycafe, api) = stack().await;
        let answer = api.get("/healthz").await;
        answer.assert_status(StatusCode::OK);
        let health: Health = answer.json();
        assert_eq!(
            (
                health.status.as_str(),
                health.sqlite.as_str(),
                health.keycafe.as_str()
            ),
            ("ok", "ok", "ok")
        );
        assert_eq!(health.error, None);
        api.stop().await;
    })
    .await;
}
