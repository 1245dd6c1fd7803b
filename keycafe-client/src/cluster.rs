//! [`KeycafeCluster`]: the handle, and the loop that gets one request answered.
//!
//! Every request goes through `KeycafeCluster::dispatch`, which routes it
//! by slot to the node the cached map names and then acts on the answer:
//!
//! | answer                         | action                                                     |
//! |--------------------------------|------------------------------------------------------------|
//! | a reply                        | done (error replies too: retrying would not change them)   |
//! | `MOVED slot addr`              | record the new owner, refresh the map in the background, resend |
//! | `ASK slot addr`                | send `ASKING` + the request to `addr` back to back, map unchanged |
//! | `TRYAGAIN`, `LOADING`          | wait (exponential backoff), resend                          |
//! | `CLUSTERDOWN`                  | refresh the map from another node, wait, resend             |
//! | no known owner for the slot    | refresh the map, wait, resend                               |
//! | node unreachable, request unsent | refresh the map from the other nodes, wait, resend        |
//! | I/O error or timeout after sending | give up, refreshing the map in the background: the request may have been applied |
//!
//! Redirects and retries each have a budget in [`ClientConfig`], so a call
//! always ends. A standalone node is a cluster of one: it answers `CLUSTER
//! SLOTS` with a single range, and the same code serves both.
//!
//! # Failover
//!
//! When a primary dies, the requests it was answering fail (they may have
//! been applied, so they are never resent), and the ones after them find
//! its port closed. Those never left the client, so they are retried, each
//! retry first asking the other nodes for the map; the dead primary's
//! replicas are among them, remembered from `CLUSTER SLOTS`. Once one
//! replica has been promoted and the map names it, the retry goes there.
//! With the default budget this rides out a failover of about ten seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bytes::BytesMut;
use keycafe_core::{Frame, Slot, key_slot};

use crate::connection::{Batch, One, SendError};
use crate::node::{Node, Pool};
use crate::routing::{self, Outcome, Request, check_command};
use crate::topology::{SlotRange, Topology};
use crate::{ClientConfig, Error, Result, ServerError};

/// A connection to a Keycafe cluster (or a single node, which is a cluster
/// of one).
///
/// Cloning is cheap and every clone shares the same connections, one per
/// node, each multiplexing all the requests made through any clone. Share one
/// handle across the whole application, e.g. in axum state.
///
/// ```no_run
/// use keycafe_client::KeycafeCluster;
///
/// # async fn demo() -> keycafe_client::Result<()> {
/// let kc = KeycafeCluster::connect("localhost:9814").await?;
/// kc.set("example_key", "KEY").await?;
/// assert_eq!(kc.get_string("example_key").await?.as_deref(), Some("KEY"));
/// assert_eq!(kc.get("no_key").await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeycafeCluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    pool: Pool,
    map: RwLock<Arc<Topology>>,
    /// Serialises refreshes; counts those that succeeded.
    refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    background_refresh: AtomicBool,
    /// Spreads keyless commands over the nodes.
    next_node: AtomicUsize,
}

impl KeycafeCluster {
    /// Connects to the cluster that `addr` (`host:port`) belongs to, with
    /// default settings, and learns its topology.
    ///
    /// ```no_run
    /// # async fn demo() -> keycafe_client::Result<()> {
    /// let kc = keycafe_client::KeycafeCluster::connect("localhost:9814").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(addr: impl Into<String>) -> Result<KeycafeCluster> {
        KeycafeCluster::connect_with(ClientConfig::new([addr.into()])).await
    }

    /// Connects with explicit settings: tries the seeds in order until one
    /// answers `CLUSTER SLOTS`. Fails if none does.
    pub async fn connect_with(mut config: ClientConfig) -> Result<KeycafeCluster> {
        config.validate()?;
        config.load_tls()?;
        let cluster = KeycafeCluster {
            inner: Arc::new(Inner {
                config,
                pool: Pool::default(),
                map: RwLock::new(Arc::new(Topology::empty())),
                refresh_lock: tokio::sync::Mutex::new(()),
                generation: AtomicU64::new(0),
                background_refresh: AtomicBool::new(false),
                next_node: AtomicUsize::new(0),
            }),
        };
        cluster.refresh(0, None).await?;
        Ok(cluster)
    }

    /// The settings this handle was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Sends any command (name first, then its arguments) and returns the
    /// reply, following redirects like every typed method does.
    ///
    /// An error reply becomes [`Error::Server`]. Commands that would change
    /// the state of the shared connection (`MULTI`, `SELECT`, `AUTH`,
    /// `SUBSCRIBE`, ...) are refused with [`Error::InvalidRequest`]. A
    /// `WAIT` gets its own timeout on top of the response timeout, but goes
    /// to any node, as keyless commands do; [`KeycafeCluster::wait`] sends
    /// it to the node of a key.
    ///
    /// ```no_run
    /// use keycafe_client::{Frame, KeycafeCluster};
    ///
    /// # async fn demo(kc: KeycafeCluster) -> keycafe_client::Result<()> {
    /// let reply = kc.command(["APPEND", "greeting", "hello"]).await?;
    /// assert_eq!(reply, Frame::Integer(5));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn command<I, A>(&self, args: I) -> Result<Frame>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args: Vec<A> = args.into_iter().collect();
        check_command(&args)?;
        self.run(&Request::new(&args)).await
    }

    /// Asks the cluster for its slot map again (normally automatic).
    pub async fn refresh_topology(&self) -> Result<()> {
        self.refresh(self.inner.generation.load(Ordering::Acquire), None)
            .await
    }

    /// The cached slot map: which node serves which slots.
    pub fn slot_ranges(&self) -> Vec<SlotRange> {
        self.map().ranges()
    }

    /// The address of the node that (as far as this client knows) serves
    /// `key`, or `None` if its slot has no known owner.
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) {
    /// let slot = keycafe_client::key_slot(b"session:42");
    /// println!("slot {slot} lives on {:?}", kc.node_for_key("session:42"));
    /// # }
    /// ```
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> Option<String> {
        self.map().owner(key_slot(key.as_ref())).map(str::to_string)
    }

    fn map(&self) -> Arc<Topology> {
        self.inner
            .map
            .read()
            .expect("slot map lock poisoned")
            .clone()
    }

    /// Runs a request; an error reply becomes [`Error::Server`].
    pub(crate) async fn run(&self, request: &Request) -> Result<Frame> {
        match self.dispatch(request).await? {
            Frame::Error(text) => Err(Error::Server(ServerError::from_bytes(&text))),
            reply => Ok(reply),
        }
    }

    /// Gets a request answered: routes it, follows redirects and retries
    /// within the budget (see the module docs). Error replies that no retry
    /// can fix are returned as [`Frame::Error`].
    pub(crate) async fn dispatch(&self, request: &Request) -> Result<Frame> {
        let config = &self.inner.config;
        let (mut redirects, mut retries) = (0u32, 0u32);
        let mut ask: Option<String> = None;
        loop {
            let asking = ask.take();
            let node = match &asking {
                Some(addr) => self.inner.pool.get(addr),
                None => match self.route(request.slot).await {
                    Ok(node) => node,
                    // No known owner and no node to learn one from: during
                    // a failover, a moment later there may be.
                    Err(error)
                        if (error.is_network() || matches!(error, Error::ClusterDown(_)))
                            && retries < config.max_retries =>
                    {
                        tracing::debug!(%error, retries, "no route, retrying");
                        tokio::time::sleep(config.backoff_for(retries)).await;
                        retries += 1;
                        continue;
                    }
                    Err(error) => return Err(error),
                },
            };
            let sent = match &asking {
                None => {
                    node.request(request.bytes.clone(), One, request.hold, config)
                        .await
                }
                Some(_) => {
                    let mut both = BytesMut::from(&routing::asking()[..]);
                    both.extend_from_slice(&request.bytes);
                    let replies = node
                        .request(both.freeze(), Batch(2), request.hold, config)
                        .await;
                    replies.map(|mut replies| replies.pop().expect("two replies were asked for"))
                }
            };
            let reply = match sent {
                Ok(reply) => reply,
                Err(SendError::NotSent(error))
                    if error.is_network() && retries < config.max_retries =>
                {
                    // The node is unreachable and the request never left:
                    // learn the map again from the other nodes and resend.
                    tracing::debug!(addr = node.addr(), %error, retries, "node unreachable, retrying");
                    let generation = self.inner.generation.load(Ordering::Acquire);
                    if let Err(error) = self.refresh(generation, Some(node.addr())).await {
                        tracing::debug!(%error, "topology refresh failed");
                    }
                    tokio::time::sleep(config.backoff_for(retries)).await;
                    retries += 1;
                    continue;
                }
                // It may have been applied, or the retry budget is spent.
                Err(error) => return Err(self.no_reply(node.addr(), error)),
            };
            match Outcome::of(&reply, node.addr()) {
                Outcome::Done => return Ok(reply),
                Outcome::Moved { slot, addr } => {
                    check_redirects(&mut redirects, config, &reply)?;
                    self.learn_owner(slot, &addr);
                }
                Outcome::Ask { addr } => {
                    check_redirects(&mut redirects, config, &reply)?;
                    ask = Some(addr);
                }
                Outcome::TryAgain | Outcome::ClusterDown if retries >= config.max_retries => {
                    return match reply {
                        Frame::Error(text) if text.starts_with(b"CLUSTERDOWN") => Err(
                            Error::ClusterDown(String::from_utf8_lossy(&text).into_owned()),
                        ),
                        reply => Ok(reply),
                    };
                }
                Outcome::TryAgain => {
                    tokio::time::sleep(config.backoff_for(retries)).await;
                    retries += 1;
                }
                Outcome::ClusterDown => {
                    // Not from the node that refused: a primary that lost
                    // its lease may have been replaced and not know it yet,
                    // so its own map is the one most likely stale.
                    let generation = self.inner.generation.load(Ordering::Acquire);
                    if let Err(error) = self.refresh(generation, Some(node.addr())).await {
                        tracing::debug!(%error, "topology refresh failed");
                    }
                    tokio::time::sleep(config.backoff_for(retries)).await;
                    retries += 1;
                }
            }
        }
    }

    /// The node for `slot` (any node when `None`), refreshing the map once
    /// if it names none.
    pub(crate) async fn route(&self, slot: Option<Slot>) -> Result<Arc<Node>> {
        for attempt in 0..2 {
            let map = self.map();
            let addr = match slot {
                Some(slot) => map.owner(slot),
                None if map.is_empty() => None,
                None => {
                    let next = self.inner.next_node.fetch_add(1, Ordering::Relaxed);
                    Some(map.nodes()[next % map.nodes().len()].as_str())
                }
            };
            if let Some(addr) = addr {
                return Ok(self.inner.pool.get(addr));
            }
            if attempt == 0 {
                self.refresh(self.inner.generation.load(Ordering::Acquire), None)
                    .await?;
            }
        }
        Err(Error::ClusterDown(match slot {
            Some(slot) => format!("no node serves slot {slot}"),
            None => "no node is known".to_string(),
        }))
    }

    /// Records a MOVED answer and schedules a full refresh.
    pub(crate) fn record_owner(&self, slot: Slot, addr: &str) {
        self.learn_owner(slot, addr);
    }

    /// Counts a redirect against the budget; the error once it is spent.
    pub(crate) fn count_redirect(&self, redirects: &mut u32, reply: &Frame) -> Result<()> {
        check_redirects(redirects, &self.inner.config, reply)
    }

    /// Learns the map again from the nodes other than `addr` (which just
    /// failed), logging a failure: the caller retries anyway.
    pub(crate) async fn refresh_avoiding(&self, addr: &str) {
        let generation = self.inner.generation.load(Ordering::Acquire);
        if let Err(error) = self.refresh(generation, Some(addr)).await {
            tracing::debug!(%error, "topology refresh failed");
        }
    }

    /// Records a MOVED answer and schedules a full refresh.
    fn learn_owner(&self, slot: Slot, addr: &str) {
        {
            let mut map = self.inner.map.write().expect("slot map lock poisoned");
            match map.with_owner(slot, addr) {
                Some(updated) => *map = Arc::new(updated),
                None => return,
            }
        }
        self.refresh_in_background(None);
    }

    /// The error for a request that got no reply from the node at `addr`
    /// and will not be resent. A connection that broke or went silent is
    /// how a dead primary first shows, so the map is refreshed in the
    /// background: the next request may find the slot's new owner.
    pub(crate) fn no_reply(&self, addr: &str, error: SendError) -> Error {
        let error = error.into_error();
        if error.is_network() {
            self.refresh_in_background(Some(addr));
        }
        error
    }

    /// Starts a refresh that no request waits for, unless one is running.
    fn refresh_in_background(&self, avoid: Option<&str>) {
        if self.inner.background_refresh.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        let generation = self.inner.generation.load(Ordering::Acquire);
        let avoid = avoid.map(str::to_string);
        tokio::spawn(async move {
            if let Err(error) = cluster.refresh(generation, avoid.as_deref()).await {
                tracing::debug!(%error, "background topology refresh failed");
            }
            cluster
                .inner
                .background_refresh
                .store(false, Ordering::Release);
        });
    }

    /// Learns the slot map from the first node that answers: the known
    /// primaries, then their replicas, then the seeds, except `avoid` (a
    /// node that just failed: asking it again would only cost another
    /// connect timeout, and the resend reaches it anyway). Does nothing if
    /// another refresh finished since `seen_generation`, or if there is no
    /// one else to ask.
    ///
    /// The replicas matter when a primary dies: they are the ones that
    /// report, a few seconds later, that one of them serves its slots now.
    async fn refresh(&self, seen_generation: u64, avoid: Option<&str>) -> Result<()> {
        let _refreshing = self.inner.refresh_lock.lock().await;
        if self.inner.generation.load(Ordering::Acquire) != seen_generation {
            return Ok(());
        }
        let map = self.map();
        let mut candidates: Vec<&str> = Vec::new();
        let known = map.nodes().iter().chain(map.replicas());
        for addr in known.chain(&self.inner.config.seeds) {
            if Some(addr.as_str()) != avoid && !candidates.contains(&addr.as_str()) {
                candidates.push(addr);
            }
        }
        if candidates.is_empty() && avoid.is_some() {
            return Ok(());
        }
        let mut last_error = None;
        for addr in candidates {
            match self.fetch_slot_map(addr).await {
                Ok(map) => {
                    tracing::debug!(from = addr, nodes = map.nodes().len(), "topology refreshed");
                    self.inner.pool.retain(&map);
                    *self.inner.map.write().expect("slot map lock poisoned") = Arc::new(map);
                    self.inner.generation.fetch_add(1, Ordering::AcqRel);
                    return Ok(());
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::ClusterDown("no node to ask for the topology".into())))
    }

    async fn fetch_slot_map(&self, addr: &str) -> Result<Topology> {
        let node = self.inner.pool.get(addr);
        let request = Request::new(&["CLUSTER", "SLOTS"]);
        let reply = node
            .request(request.bytes, One, request.hold, &self.inner.config)
            .await
            .map_err(SendError::into_error)?;
        match reply {
            // A node without cluster support serves every slot itself.
            Frame::Error(text) if text.starts_with(b"ERR ") => Ok(Topology::single(addr)),
            Frame::Error(text) => Err(Error::Server(ServerError::from_bytes(&text))),
            reply => match Topology::from_cluster_slots(&reply, addr) {
                Ok(map) if map.is_empty() => {
                    Err(Error::ClusterDown(format!("{addr} serves no slots yet")))
                }
                Ok(map) => Ok(map),
                Err(why) => {
                    tracing::debug!(addr, why, "bad CLUSTER SLOTS answer");
                    Err(Error::UnexpectedReply {
                        expected: "a CLUSTER SLOTS answer",
                        reply,
                    })
                }
            },
        }
    }
}

fn check_redirects(redirects: &mut u32, config: &ClientConfig, reply: &Frame) -> Result<()> {
    if *redirects >= config.max_redirects {
        let last = match reply {
            Frame::Error(text) => ServerError::from_bytes(text),
            _ => ServerError::new("redirect"),
        };
        return Err(Error::RedirectsExhausted {
            redirects: *redirects,
            last,
        });
    }
    *redirects += 1;
    Ok(())
}

impl std::fmt::Debug for KeycafeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycafeCluster")
            .field("seeds", &self.inner.config.seeds)
            .field("nodes", &self.map().nodes())
            .finish_non_exhaustive()
    }
}
