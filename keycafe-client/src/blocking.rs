//! The same client for synchronous code.
//!
//! [`KeycafeCluster`] here owns a small tokio runtime (one worker thread)
//! that runs the async client's connection tasks, and each method blocks the
//! calling thread on the async method of the same name. Handles are cheap to
//! clone and may be used from many threads at once; they share connections
//! exactly as async handles do.
//!
//! Do not use it from inside an async runtime (blocking a runtime thread
//! would stall it, and tokio panics if asked to): use
//! [`crate::KeycafeCluster`] there.
//!
//! ```no_run
//! use keycafe_client::blocking::KeycafeCluster;
//!
//! # fn main() -> keycafe_client::Result<()> {
//! let kc = KeycafeCluster::new("localhost", 9814)?;
//! kc.set("example_key", "KEY")?;
//! assert_eq!(kc.get_string("example_key")?.as_deref(), Some("KEY"));
//! assert_eq!(kc.get("no_key")?, None);
//! kc.close();
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keycafe_core::Frame;
use tokio::runtime::Runtime;

use crate::{ClientConfig, Error, Pipeline, Result, SetOptions, SetOutcome, SlotRange, Ttl};

/// A blocking handle to a Keycafe cluster or node; see the [module
/// docs](self).
#[derive(Clone, Debug)]
pub struct KeycafeCluster {
    inner: crate::KeycafeCluster,
    runtime: Arc<Runtime>,
}

impl KeycafeCluster {
    /// Connects to the node at `host`:`port` (and so to its cluster).
    pub fn new(host: &str, port: u16) -> Result<KeycafeCluster> {
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        KeycafeCluster::connect(addr)
    }

    /// Connects to the cluster that `addr` (`host:port`) belongs to.
    pub fn connect(addr: impl Into<String>) -> Result<KeycafeCluster> {
        KeycafeCluster::connect_with(ClientConfig::new([addr.into()]))
    }

    /// Connects with explicit settings.
    ///
    /// ```no_run
    /// use keycafe_client::{blocking::KeycafeCluster, ClientConfig};
    ///
    /// # fn main() -> keycafe_client::Result<()> {
    /// let kc = KeycafeCluster::connect_with(ClientConfig::new(["localhost:9814"]).password("s3cret"))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect_with(config: ClientConfig) -> Result<KeycafeCluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keycafe-client")
            .enable_all()
            .build()
            .map_err(|e| Error::io("(starting the client's runtime)", e))?;
        let inner = runtime.block_on(crate::KeycafeCluster::connect_with(config))?;
        Ok(KeycafeCluster {
            inner,
            runtime: Arc::new(runtime),
        })
    }

    /// The async handle underneath, sharing this handle's connections.
    pub fn as_async(&self) -> &crate::KeycafeCluster {
        &self.inner
    }

    /// Closes this handle. Connections close once every clone is gone.
    pub fn close(self) {}

    fn block<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// See [`crate::KeycafeCluster::get`].
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.block(self.inner.get(key))
    }

    /// See [`crate::KeycafeCluster::get_string`].
    pub fn get_string(&self, key: impl AsRef<[u8]>) -> Result<Option<String>> {
        self.block(self.inner.get_string(key))
    }

    /// See [`crate::KeycafeCluster::set`].
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.block(self.inner.set(key, value))
    }

    /// See [`crate::KeycafeCluster::set_ex`].
    pub fn set_ex(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.block(self.inner.set_ex(key, value, ttl))
    }

    /// See [`crate::KeycafeCluster::set_with`].
    pub fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<SetOutcome> {
        self.block(self.inner.set_with(key, value, options))
    }

    /// See [`crate::KeycafeCluster::delete`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.block(self.inner.delete(key))
    }

    /// See [`crate::KeycafeCluster::delete_many`].
    pub fn delete_many<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<u64> {
        self.block(self.inner.delete_many(keys))
    }

    /// See [`crate::KeycafeCluster::exists`].
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.block(self.inner.exists(key))
    }

    /// See [`crate::KeycafeCluster::expire`].
    pub fn expire(&self, key: impl AsRef<[u8]>, seconds: u64) -> Result<bool> {
        self.block(self.inner.expire(key, seconds))
    }

    /// See [`crate::KeycafeCluster::pexpire`].
    pub fn pexpire(&self, key: impl AsRef<[u8]>, millis: u64) -> Result<bool> {
        self.block(self.inner.pexpire(key, millis))
    }

    /// See [`crate::KeycafeCluster::ttl`].
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        self.block(self.inner.ttl(key))
    }

    /// See [`crate::KeycafeCluster::pttl`].
    pub fn pttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        self.block(self.inner.pttl(key))
    }

    /// See [`crate::KeycafeCluster::persist`].
    pub fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.block(self.inner.persist(key))
    }

    /// See [`crate::KeycafeCluster::incr`].
    pub fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.block(self.inner.incr(key))
    }

    /// See [`crate::KeycafeCluster::decr`].
    pub fn decr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.block(self.inner.decr(key))
    }

    /// See [`crate::KeycafeCluster::incr_by`].
    pub fn incr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.block(self.inner.incr_by(key, delta))
    }

    /// See [`crate::KeycafeCluster::decr_by`].
    pub fn decr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.block(self.inner.decr_by(key, delta))
    }

    /// See [`crate::KeycafeCluster::mget`].
    pub fn mget<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>> {
        self.block(self.inner.mget(keys))
    }

    /// See [`crate::KeycafeCluster::mset`].
    pub fn mset<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        self.block(self.inner.mset(pairs))
    }

    /// See [`crate::KeycafeCluster::ping`].
    pub fn ping(&self) -> Result<()> {
        self.block(self.inner.ping())
    }

    /// See [`crate::KeycafeCluster::wait`]: blocks this thread until
    /// `numreplicas` replicas of the node serving `key` have acknowledged its
    /// writes or `timeout` passes, and returns how many did.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use keycafe_client::blocking::KeycafeCluster;
    ///
    /// # fn main() -> keycafe_client::Result<()> {
    /// let kc = KeycafeCluster::new("localhost", 9814)?;
    /// kc.set("order:42", "paid")?;
    /// let replicas = kc.wait("order:42", 1, Duration::from_millis(500))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait(&self, key: impl AsRef<[u8]>, numreplicas: u32, timeout: Duration) -> Result<u32> {
        self.block(self.inner.wait(key, numreplicas, timeout))
    }

    /// See [`crate::KeycafeCluster::scan_all`]: every key matching
    /// `pattern`, from `SCAN` on each primary. (For pages, walk
    /// [`crate::KeycafeCluster::scan`] on an async runtime.)
    ///
    /// ```no_run
    /// use keycafe_client::blocking::KeycafeCluster;
    ///
    /// # fn main() -> keycafe_client::Result<()> {
    /// let kc = KeycafeCluster::new("localhost", 9814)?;
    /// let sessions = kc.scan_all("session:*")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_all(&self, pattern: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        self.block(self.inner.scan_all(pattern))
    }

    /// See [`crate::KeycafeCluster::command`].
    pub fn command<I, A>(&self, args: I) -> Result<Frame>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.block(self.inner.command(args))
    }

    /// See [`crate::KeycafeCluster::execute`].
    ///
    /// ```no_run
    /// use keycafe_client::{blocking::KeycafeCluster, Pipeline};
    ///
    /// # fn main() -> keycafe_client::Result<()> {
    /// let kc = KeycafeCluster::new("localhost", 9814)?;
    /// let mut pipeline = Pipeline::new();
    /// pipeline.set("a", "1").get("a");
    /// let replies = kc.execute(&pipeline)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn execute(&self, pipeline: &Pipeline) -> Result<Vec<Frame>> {
        self.block(self.inner.execute(pipeline))
    }

    /// See [`crate::KeycafeCluster::refresh_topology`].
    pub fn refresh_topology(&self) -> Result<()> {
        self.block(self.inner.refresh_topology())
    }

    /// See [`crate::KeycafeCluster::slot_ranges`].
    pub fn slot_ranges(&self) -> Vec<SlotRange> {
        self.inner.slot_ranges()
    }

    /// See [`crate::KeycafeCluster::node_for_key`].
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> Option<String> {
        self.inner.node_for_key(key)
    }
}
