//! The client's nodes: one lazily (re)opened connection per address.
//!
//! A [`Node`] holds at most one open [`Connection`]. When it has none (never
//! opened, or closed by a failure) the next request opens one; concurrent
//! requests wait for that single attempt instead of each opening their own,
//! and if it fails they all get its error rather than queueing a thousand
//! connect timeouts one after another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::connection::{Connection, Expect, Hold, Reply, SendError};
use crate::topology::Topology;
use crate::{ClientConfig, Error};

/// One node's address and its shared connection.
pub(crate) struct Node {
    addr: String,
    state: Mutex<State>,
    /// Held while opening a connection, so only one attempt runs at a time.
    opening: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    connection: Option<Connection>,
    /// Counts connection attempts, so that a waiter can tell whether one
    /// finished while it waited.
    attempts: u64,
    last_error: Option<Error>,
}

impl Node {
    fn new(addr: &str) -> Node {
        Node {
            addr: addr.to_string(),
            state: Mutex::new(State::default()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// The node's address, `host:port`.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("node state lock poisoned")
    }

    /// The open connection, if there is one.
    fn current(&self) -> Option<Connection> {
        self.state()
            .connection
            .as_ref()
            .filter(|c| c.is_open())
            .cloned()
    }

    /// The open connection, opening one if needed.
    pub(crate) async fn connection(&self, config: &ClientConfig) -> Result<Connection, Error> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let attempts_before = self.state().attempts;
        let _opening = self.opening.lock().await;
        {
            let state = self.state();
            if let Some(connection) = state.connection.as_ref().filter(|c| c.is_open()) {
                return Ok(connection.clone());
            }
            if state.attempts != attempts_before
                && let Some(error) = &state.last_error
            {
                return Err(error.clone());
            }
        }
        let result = Connection::open(&self.addr, config).await;
        let mut state = self.state();
        state.attempts += 1;
        match &result {
            Ok(connection) => {
                state.connection = Some(connection.clone());
                state.last_error = None;
            }
            Err(error) => {
                tracing::debug!(addr = %self.addr, %error, "connect failed");
                state.connection = None;
                state.last_error = Some(error.clone());
            }
        }
        result
    }

    /// Sends a request, or a batch back to back, opening the connection
    /// first if needed: [`Connection::request`] under `config`'s response
    /// timeout.
    pub(crate) async fn request<E: Expect>(
        &self,
        bytes: Bytes,
        expect: E,
        hold: Hold,
        config: &ClientConfig,
    ) -> Reply<E::Output> {
        let connection = self.connection(config).await.map_err(SendError::NotSent)?;
        connection
            .request(bytes, expect, hold, config.response_timeout)
            .await
    }
}

/// Every node this client knows, by address.
#[derive(Default)]
pub(crate) struct Pool {
    nodes: Mutex<HashMap<String, Arc<Node>>>,
}

impl Pool {
    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Node>>> {
        self.nodes.lock().expect("node pool lock poisoned")
    }

    /// The node at `addr`, created (unconnected) if new.
    pub(crate) fn get(&self, addr: &str) -> Arc<Node> {
        let mut nodes = self.nodes();
        if let Some(node) = nodes.get(addr) {
            return node.clone();
        }
        let node = Arc::new(Node::new(addr));
        nodes.insert(addr.to_string(), node.clone());
        node
    }

    /// Forgets nodes that `map` does not list (as primaries or replicas);
    /// their connections close once no request is using them.
    pub(crate) fn retain(&self, map: &Topology) {
        self.nodes().retain(|addr, _| map.knows(addr));
    }
}
