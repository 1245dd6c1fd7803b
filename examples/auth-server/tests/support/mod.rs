//! Test fixtures: a real auth-server in-process on a loopback port chosen by
//! the OS, over a SQLite file in a temp directory. Its Keycafe node is
//! `keycafe_server::test_util::TestServer`.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use auth_server::api::{ErrorBody, INTERNAL_AUTH_HEADER, LoginRequest, LoginResponse};
use auth_server::config::InternalSecret;
use auth_server::{Config, Stats};
use keycafe_core::process::KeycafeSettings;
use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The documented demo login.
pub const DEMO_EMAIL: &str = "limpett0@smugmug.com";
pub const DEMO_PASSWORD: &str = "pCHecmGBZ7";

/// The internal secret every test server shares with its "auth-web" (the
/// test, in [`AuthServer::login_from`]).
pub const INTERNAL_SECRET: &str = "test-internal-secret-0123456789";

/// Every key the standalone Keycafe node behind `keycafe` holds, listed
/// slot by slot with `CLUSTER GETKEYSINSLOT`, as any client of the node can.
pub async fn all_keys(keycafe: &keycafe_client::KeycafeCluster) -> Vec<String> {
    let mut pipeline = keycafe_client::Pipeline::new();
    for slot in 0..keycafe_core::SLOT_COUNT {
        pipeline.cmd(["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"]);
    }
    let replies = keycafe.execute(&pipeline).await.expect("GETKEYSINSLOT");
    replies
        .into_iter()
        .flat_map(|reply| {
            <Vec<String> as keycafe_client::FromFrame>::from_frame(reply).expect("a list of keys")
        })
        .collect()
}

/// Every test is bounded: a hang is a failure, not a stuck suite.
pub async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("test finished within 60 s")
}

/// A loopback listener on a free port.
pub async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// A task serving until told to stop.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn spawn<F, Fut>(serve: F) -> Running
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(serve(stopped));
        Running {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("stops within 10 s")
                .expect("task ran")
                .expect("exits cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Who a login claims to come from, and with what proof.
struct Forwarded<'a> {
    client: IpAddr,
    secret: Option<&'a str>,
}

/// auth-server over a fresh database.
pub struct AuthServer {
    pub url: String,
    pub stats: Arc<Stats>,
    pub database_url: String,
    pub http: reqwest::Client,
    running: Running,
    _dir: tempfile::TempDir,
}

impl AuthServer {
    /// auth-server using the Keycafe node at `keycafe`, with test settings
    /// (a short Keycafe timeout) changed further by `adjust`.
    pub async fn start(keycafe: SocketAddr, adjust: impl FnOnce(&mut Config)) -> AuthServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display());
        let mut config = Config {
            database_url: database_url.clone(),
            keycafe: KeycafeSettings {
                seeds: vec![keycafe.to_string()],
                timeout: Duration::from_millis(500),
                ..KeycafeSettings::default()
            },
            internal_secret: Some(InternalSecret::new(INTERNAL_SECRET)),
            ..Config::default()
        };
        adjust(&mut config);
        let server = auth_server::Server::start(config)
            .await
            .expect("auth-server starts (database migrated)");
        let stats = server.stats();
        let (listener, addr) = loopback().await;
        let running = Running::spawn(|stopped| {
            server.serve(listener, async {
                let _ = stopped.await;
            })
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client");
        AuthServer {
            url: format!("http://{addr}"),
            stats,
            database_url,
            http,
            running,
            _dir: dir,
        }
    }

    /// Stops serving; `run` must return cleanly.
    pub async fn stop(mut self) {
        self.running.stop().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `POST /api/v1/login`, returning status, headers and raw body.
    pub async fn login_raw(&self, email: &str, password: &str) -> Answer {
        self.post_login(email, password, None).await
    }

    /// [`AuthServer::login_raw`] as auth-web sends it on behalf of `client`:
    /// the internal secret in `X-Internal-Auth`, the client in
    /// `X-Forwarded-For`.
    pub async fn login_from(&self, client: IpAddr, email: &str, password: &str) -> Answer {
        let forwarded = Forwarded {
            client,
            secret: Some(INTERNAL_SECRET),
        };
        self.post_login(email, password, Some(forwarded)).await
    }

    /// A login naming `client` in `X-Forwarded-For` with `secret` (none, or
    /// a wrong one) in `X-Internal-Auth`: what any local process can send.
    pub async fn login_claiming(
        &self,
        client: IpAddr,
        secret: Option<&str>,
        email: &str,
        password: &str,
    ) -> Answer {
        let forwarded = Forwarded { client, secret };
        self.post_login(email, password, Some(forwarded)).await
    }

    async fn post_login(&self, email: &str, password: &str, via: Option<Forwarded<'_>>) -> Answer {
        let request = LoginRequest {
            email: email.to_string(),
            password: password.to_string(),
        };
        let mut post = self.http.post(self.url("/api/v1/login"));
        if let Some(Forwarded { client, secret }) = via {
            post = post.header("x-forwarded-for", client.to_string());
            if let Some(secret) = secret {
                post = post.header(INTERNAL_AUTH_HEADER, secret);
            }
        }
        let response = post.json(&request).send().await.expect("login request");
        Answer::read(response).await
    }

    /// Logs in and returns the token; panics unless 200.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let answer = self.login_raw(email, password).await;
        answer.assert_status(StatusCode::OK);
        answer.json::<LoginResponse>().token
    }

    /// `GET path` with `Authorization: Bearer token`.
    pub async fn get_with(&self, path: &str, token: &str) -> Answer {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        Answer::read(response).await
    }

    /// `POST /api/v1/logout` with the token.
    pub async fn logout(&self, token: &str) -> Answer {
        let response = self
            .http
            .post(self.url("/api/v1/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("logout");
        Answer::read(response).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        Answer::read(response).await
    }

    /// The test's own connection to the same database.
    pub async fn database(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&self.database_url)
            .await
            .expect("open the test database")
    }
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("response body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Panics unless the status is `expected`, showing the body.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) {
        assert_eq!(self.status, expected, "{}", self.text());
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not the expected JSON ({e}): {}", self.text()))
    }

    pub fn error(&self) -> String {
        self.json::<ErrorBody>().error
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
