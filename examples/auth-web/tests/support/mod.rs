//! Test fixtures: the whole example stack in-process on loopback ports — a
//! Keycafe node (`keycafe_server::test_util::TestServer`), auth-server (its
//! own SQLite file in a temp dir) and auth-web — and a cookie-keeping HTTP
//! client that does not follow redirects, so that every hop can be checked.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keycafe_client::KeycafeCluster;
use keycafe_core::process::KeycafeSettings;
use keycafe_server::test_util::TestServer;
use reqwest::StatusCode;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The demo account seeded by the migrations.
pub const DEMO_EMAIL: &str = "limpett0@smugmug.com";
pub const DEMO_PASSWORD: &str = "pCHecmGBZ7";
pub const DEMO_NAME: &str = "Lissa Impett";

/// The secret auth-web and auth-server share in every stack.
pub const INTERNAL_SECRET: &str = "test-internal-secret-0123456789";

/// Every test future is bounded: a hang is a failure, not a stuck suite.
pub async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("test finished within 60 s")
}

/// One server task with its stop signal; stopped on drop.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Running {
    fn spawn<F>(name: &'static str, serve: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let serve = serve(stopped);
        let handle = tokio::spawn(async move {
            if let Err(e) = serve.await {
                eprintln!("{name} failed: {e:#}");
            }
        });
        Running {
            stop: Some(stop),
            handle,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.abort();
    }
}

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// How to start auth-web.
#[derive(Clone, Default)]
pub struct Options {
    pub secure_cookies: bool,
    /// Point auth-web at a port where nothing listens instead of auth-server.
    pub api_down: bool,
}

impl Options {
    /// auth-web with `Secure` session cookies.
    pub fn secure_cookies() -> Options {
        Options {
            secure_cookies: true,
            ..Options::default()
        }
    }

    /// auth-web pointed at a port where nothing listens.
    pub fn api_down() -> Options {
        Options {
            api_down: true,
            ..Options::default()
        }
    }
}

/// Keycafe, auth-server and auth-web, running until dropped.
pub struct Stack {
    /// `http://127.0.0.1:<port>` of auth-web.
    pub web: String,
    /// `http://127.0.0.1:<port>` of auth-server.
    pub api: String,
    /// A client of the same Keycafe node, to look at sessions directly.
    pub keycafe: KeycafeCluster,
    pub config: auth_web::Config,
    servers: Vec<Running>,
    node: Option<TestServer>,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Stack::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut servers = Vec::new();

        let node = TestServer::standalone().await;
        let keycafe_addr = node.addr();
        let keycafe_settings = KeycafeSettings {
            seeds: vec![keycafe_addr.to_string()],
            ..KeycafeSettings::default()
        };

        let (listener, api_addr) = loopback().await;
        let api_config = auth_server::Config {
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("auth.db").display()),
            keycafe: keycafe_settings.clone(),
            // auth-web proves this, so its X-Forwarded-For is believed, as in the demo.
            internal_secret: Some(auth_server::config::InternalSecret::new(INTERNAL_SECRET)),
            ..Default::default()
        };
        let api_server = auth_server::Server::start(api_config)
            .await
            .expect("auth-server starts (database migrated)");
        servers.push(Running::spawn("auth-server", |stopped| {
            api_server.serve(listener, async {
                let _ = stopped.await;
            })
        }));
        let api = format!("http://{api_addr}");

        let auth_server_url = if options.api_down {
            // A port that was just free: nothing listens there.
            let (closed, addr) = loopback().await;
            drop(closed);
            format!("http://{addr}")
        } else {
            api.clone()
        };
        let config = auth_web::Config {
            auth_server_url,
            keycafe: keycafe_settings,
            secure_cookies: options.secure_cookies,
            api_timeout: Duration::from_secs(10),
            internal_secret: Some(auth_web::config::InternalSecret::new(INTERNAL_SECRET)),
            ..Default::default()
        };
        let (listener, web_addr) = loopback().await;
        let web_config = config.clone();
        servers.push(Running::spawn("auth-web", |stopped| {
            auth_web::run(web_config, listener, async {
                let _ = stopped.await;
            })
        }));

        let keycafe = KeycafeCluster::connect(keycafe_addr.to_string())
            .await
            .expect("connect to the test Keycafe node");
        let stack = Stack {
            web: format!("http://{web_addr}"),
            api,
            keycafe,
            config,
            servers,
            node: Some(node),
            _dir: dir,
        };
        stack.wait_until_serving().await;
        stack
    }

    /// auth-web connects to Keycafe before it serves; wait for its listener
    /// to answer.
    async fn wait_until_serving(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client
                .get(format!("{}/static/logo.svg", self.web))
                .send()
                .await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("auth-web did not start serving");
    }

    /// Stops the Keycafe node (and waits until it is gone): every node of
    /// auth-web's cluster is down, its port closed.
    pub async fn stop_keycafe(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    /// A fresh browser-like client of auth-web.
    pub fn client(&self) -> WebClient {
        WebClient::new(&self.web)
    }

    /// A fresh browser, signed in through the form with the demo account;
    /// with its browser session id and the auth-server token it holds.
    pub async fn signed_in(&self) -> (WebClient, String, String) {
        let client = self.client();
        client.sign_in().await;
        let id = client.session_id().expect("a session after login");
        let api_token = self.api_token(&id).await;
        (client, id, api_token)
    }

    /// The Keycafe key of a browser session id (its cookie value): the
    /// prefix and the SHA-256 of the id, in hex.
    pub fn session_key(&self, id: &str) -> String {
        let id: tower_sessions::session::Id = id.parse().expect("a session id");
        keycafe_client::KeycafeSessionStore::new(self.keycafe.clone())
            .with_prefix(self.config.session_prefix.clone())
            .key(&id)
    }

    /// Every key the Keycafe node holds, listed slot by slot with `CLUSTER
    /// GETKEYSINSLOT`, as any client of the node can.
    pub async fn all_keys(&self) -> Vec<String> {
        let mut pipeline = keycafe_client::Pipeline::new();
        for slot in 0..keycafe_core::SLOT_COUNT {
            pipeline.cmd(["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"]);
        }
        let replies = self
            .keycafe
            .execute(&pipeline)
            .await
            .expect("GETKEYSINSLOT");
        replies
            .into_iter()
            .flat_map(|reply| {
                <Vec<String> as keycafe_client::FromFrame>::from_frame(reply)
                    .expect("a list of keys")
            })
            .collect()
    }

    /// The stored record of a browser session, as JSON, if it exists.
    pub async fn session_record(&self, id: &str) -> Option<serde_json::Value> {
        let value = self
            .keycafe
            .get(self.session_key(id))
            .await
            .expect("GET from Keycafe")?;
        Some(serde_json::from_slice(&value).expect("session records are JSON"))
    }

    /// The auth-server token that a signed-in browser session holds.
    pub async fn api_token(&self, id: &str) -> String {
        let record = self.session_record(id).await.expect("session stored");
        record["data"]["api_token"]
            .as_str()
            .expect("a signed-in session holds an API token")
            .to_string()
    }

    /// What auth-server says about an API token: the status of `GET /api/v1/user`.
    pub async fn api_user_status(&self, token: &str) -> StatusCode {
        reqwest::Client::new()
            .get(format!("{}/api/v1/user", self.api))
            .bearer_auth(token)
            .send()
            .await
            .expect("auth-server answers")
            .status()
    }
}

/// A cookie-keeping client that does not follow redirects.
pub struct WebClient {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

impl WebClient {
    pub fn new(base: &str) -> WebClient {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("build the test client");
        WebClient {
            http,
            jar,
            base: base.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("auth-web answers")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .expect("auth-web answers")
    }

    /// The value of the session cookie the client holds now, if any.
    pub fn session_id(&self) -> Option<String> {
        let url = self.base.parse().expect("valid base URL");
        let header = self.jar.cookies(&url)?;
        let cookies = header.to_str().expect("ASCII cookies").to_string();
        cookies
            .split("; ")
            .find_map(|pair| pair.strip_prefix("auth_web_session=").map(str::to_string))
    }

    /// `GET /login`, returning the CSRF token of the form.
    pub async fn login_form_token(&self) -> String {
        let response = self.get("/login").await;
        assert_eq!(response.status(), StatusCode::OK);
        csrf_token(&body(response).await)
    }

    /// `POST /login` with the form's fields: the CSRF token, the
    /// credentials, and `next` when given.
    pub async fn post_login(
        &self,
        csrf_token: &str,
        email: &str,
        password: &str,
        next: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("csrf_token", csrf_token),
            ("email", email),
            ("password", password),
        ];
        form.extend(next.map(|next| ("next", next)));
        self.post_form("/login", &form).await
    }

    /// Signs in with the demo account through the form; returns the response
    /// to the POST.
    pub async fn sign_in(&self) -> reqwest::Response {
        let token = self.login_form_token().await;
        let response = self
            .post_login(&token, DEMO_EMAIL, DEMO_PASSWORD, Some(""))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login succeeds");
        response
    }

    /// `GET /profile`, returning the CSRF token of its sign-out form.
    pub async fn profile_token(&self) -> String {
        let response = self.get("/profile").await;
        assert_eq!(response.status(), StatusCode::OK, "signed in");
        csrf_token(&body(response).await)
    }
}

/// A response's body, as text.
pub async fn body(response: reqwest::Response) -> String {
    response.text().await.expect("a readable body")
}

/// The hidden `csrf_token` field's value in a page.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    let len = html[start..].find('"').expect("closing quote");
    html[start..start + len].to_string()
}

/// The `Location` header of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a redirect has a Location")
        .to_str()
        .expect("ASCII Location")
        .to_string()
}

/// The session cookie's `Set-Cookie` header, if the response sets it.
pub fn session_set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(str::to_string)
}
