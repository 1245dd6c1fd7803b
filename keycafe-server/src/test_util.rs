//! A real node inside a test process (cargo feature `test-util`).
//!
//! Tests all over the workspace need a real node to talk to: this crate's
//! protocol and cluster tests, the client's, the examples'. They start it the
//! way the binary does — [`crate::run`] with a listener and a shutdown future —
//! but on a loopback port the OS picks, so that tests run in parallel and never
//! collide with a node someone is running on the default port. This module is
//! that one way of doing it, so that the stop signal, the bounded wait for a
//! clean exit and the loopback-only binding live in one place.
//!
//! [`TestServer`] runs on the test's own tokio runtime. [`BlockingTestServer`]
//! brings a runtime of its own, for plain `#[test]` functions that drive the
//! node from threads or child processes (the blocking client, the command-line
//! tools).
//!
//! The feature is off by default and nothing in the node uses it; test crates
//! turn it on in their `[dev-dependencies]`:
//!
//! ```toml
//! keycafe-server = { path = "../keycafe-server", features = ["test-util"] }
//! ```
//!
//! ```no_run
//! # async fn example() {
//! use keycafe_server::test_util::TestServer;
//!
//! let server = TestServer::standalone().await;
//! let seed = server.address(); // "127.0.0.1:<port>", for any client
//! # let _ = seed;
//! server.stop().await; // panics unless the node exits cleanly
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Config;

/// How long a stopping node may take to close its connections and tasks.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration for a node in cluster mode that registers with the
/// coordinator at `coordinator` (`host:port`) and lets the OS pick its bus
/// port, as a test needs; everything else is [`Config::default`].
pub fn cluster_config(coordinator: &str) -> Config {
    Config {
        coordinator: Some(coordinator.to_string()),
        cluster_port: Some(0),
        cluster_secret: Some(TEST_CLUSTER_SECRET.to_string()),
        ..Config::default()
    }
}

/// The cluster secret of [`cluster_config`].
pub const TEST_CLUSTER_SECRET: &str = "a cluster secret for tests";

/// A node running on the test's tokio runtime, on a loopback port.
///
/// [`stop`](TestServer::stop) shuts it down gracefully and asserts that it
/// exited cleanly. Dropping it sends the same shutdown signal without waiting,
/// so a test that ends (or fails) early does not leave the node serving.
pub struct TestServer {
    addr: SocketAddr,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// A standalone node (a cluster of one) with the default configuration.
    pub async fn standalone() -> TestServer {
        TestServer::start(Config::default()).await
    }

    /// A node with `config`, on a loopback port the OS picks. `bind` and
    /// `service_port` in `config` are ignored.
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("an ephemeral loopback port is free");
        TestServer::serve(listener, config)
    }

    /// A node whose client port speaks TLS only (`tls_port` set to the port
    /// the OS picks, the same as `service_port`); `config` names the
    /// certificate and key.
    pub async fn start_tls(mut config: Config) -> TestServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("an ephemeral loopback port is free");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        config.tls_port = Some(port);
        TestServer::serve(listener, config)
    }

    /// A node with `config` on `addr`, a loopback address the OS handed out
    /// earlier: the same port as a node that was stopped (a restart), or a
    /// port reserved and released so that clients could be pointed at it
    /// before anything listened there.
    pub async fn start_on(addr: SocketAddr, config: Config) -> TestServer {
        assert!(
            addr.ip().is_loopback(),
            "test nodes listen on loopback only, not on {addr}"
        );
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|err| panic!("cannot listen on {addr} again: {err}"));
        TestServer::serve(listener, config)
    }

    fn serve(listener: TcpListener, mut config: Config) -> TestServer {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        config.bind = addr.ip().to_string();
        config.service_port = addr.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            // A dropped sender means the same as a sent signal: stop.
            let _ = stopped.await;
        };
        let task = tokio::spawn(crate::run(config.clone(), listener, shutdown));
        TestServer {
            addr,
            config,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The client address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The client address as `host:port`, the form clients take as a seed.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The configuration it was started with, `bind` and `service_port` set
    /// to where it listens. A bus port of 0 stays 0 here; the node announces
    /// the port it got when it registers with the coordinator.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Shuts the node down and waits until its listener, connections and
    /// background tasks are gone. Panics unless it exits cleanly within
    /// 10 seconds.
    pub async fn stop(self) {
        if let Err(problem) = self.shut_down().await {
            panic!("{problem}");
        }
    }

    /// Sends the shutdown signal and waits (bounded) for `run` to return.
    async fn shut_down(mut self) -> Result<(), String> {
        self.signal_stop();
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Err(_) => Err(format!(
                "keycafe-server on {} did not stop within {STOP_TIMEOUT:?}",
                self.addr
            )),
            Ok(Err(join)) => Err(format!(
                "keycafe-server on {} did not run to the end: {join}",
                self.addr
            )),
            Ok(Ok(Err(err))) => Err(format!(
                "keycafe-server on {} exited with an error: {err:#}",
                self.addr
            )),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// A node on a tokio runtime of its own, for tests without one: plain
/// `#[test]` functions that use the blocking client or run the command-line
/// tools as child processes.
///
/// [`stop`](BlockingTestServer::stop) and dropping it both shut the node down
/// gracefully and wait for it; either panics if it did not exit cleanly
/// (dropping does not while the test is already failing). Create, stop and
/// drop it outside any tokio runtime.
pub struct BlockingTestServer {
    server: Option<TestServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingTestServer {
    /// A standalone node (a cluster of one) with the default configuration.
    pub fn standalone() -> BlockingTestServer {
        BlockingTestServer::start(Config::default())
    }

    /// A node with `config`, on a loopback port the OS picks.
    pub fn start(config: Config) -> BlockingTestServer {
        BlockingTestServer::start_with(TestServer::start(config))
    }

    /// A node whose client port speaks TLS only; see [`TestServer::start_tls`].
    pub fn start_tls(config: Config) -> BlockingTestServer {
        BlockingTestServer::start_with(TestServer::start_tls(config))
    }

    fn start_with(start: impl Future<Output = TestServer>) -> BlockingTestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the test node");
        let server = runtime.block_on(start);
        BlockingTestServer {
            server: Some(server),
            runtime: Some(runtime),
        }
    }

    fn server(&self) -> &TestServer {
        self.server
            .as_ref()
            .expect("the node runs until the BlockingTestServer is dropped")
    }

    /// The client address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server().addr()
    }

    /// The client port it listens on.
    pub fn port(&self) -> u16 {
        self.server().port()
    }

    /// The client address as `host:port`.
    pub fn address(&self) -> String {
        self.server().address()
    }

    /// The configuration it was started with; see [`TestServer::config`].
    pub fn config(&self) -> &Config {
        self.server().config()
    }

    /// Shuts the node down and waits until it is gone, as
    /// [`TestServer::stop`] does; panics unless it exits cleanly.
    pub fn stop(mut self) {
        if let Err(problem) = self.shut_down() {
            panic!("{problem}");
        }
    }

    /// Stops the node, then its runtime. Does nothing the second time.
    fn shut_down(&mut self) -> Result<(), String> {
        let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.take()) else {
            return Ok(());
        };
        let stopped = runtime.block_on(server.shut_down());
        runtime.shutdown_timeout(Duration::from_secs(1));
        stopped
    }
}

impl Drop for BlockingTestServer {
    fn drop(&mut self) {
        if let Err(problem) = self.shut_down()
            && !std::thread::panicking()
        {
            panic!("{problem}");
        }
    }
}
