//! A node for the command-line tool tests: keycafe-server on its own tokio
//! runtime and an ephemeral loopback port, so that plain (synchronous) tests
//! can run the tools as processes against it. Stopped when dropped.

use std::net::SocketAddr;
use std::time::Duration;

/// A node running on its own runtime until dropped.
pub struct Node {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Node {
    pub fn start(requirepass: Option<&str>) -> Node {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind an ephemeral port");
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = keycafe_server::Config {
            requirepass: requirepass.map(str::to_string),
            ..keycafe_server::Config::default()
        };
        runtime.spawn(keycafe_server::run(config, listener, async move {
            let _ = stopped.await;
        }));
        Node {
            addr,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
