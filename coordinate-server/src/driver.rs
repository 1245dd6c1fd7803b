//! The one task that owns the [`Coordinator`] and carries out its effects.
//!
//! Node connections ([`crate::nodes`]) and the HTTP server ([`crate::http`])
//! send it `Input`s over a channel; it steps the state machine and executes
//! the resulting effects in order: a [`Effect::Persist`] is awaited (on a
//! blocking thread) before anything after it, so a configuration is on disk
//! before any node can see it. If a write fails the driver stops with the
//! error, and with it the coordinator: announcing state that a restart would
//! forget is worse than being unavailable.
//!
//! Messages to nodes go through each connection's bounded outbox with
//! `try_send`, so a node that stops reading can never stall the coordinator:
//! its outbox fills, the driver drops it, and the connection closes (the node
//! reconnects and registers again, receiving the newest configuration).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use keycafe_core::cluster::NodeId;
use keycafe_core::coord;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::error::{Error, Refusal};
use crate::persist::DataDir;
use crate::state::view::ClusterView;
use crate::state::{ConnId, Coordinator, Effect, Event};

/// How often the state machine ticks: the latency of applying
/// `migration_done` reports, and the resolution of failure detection.
pub const TICK: Duration = Duration::from_millis(50);

/// What the driver is asked to do.
#[derive(Debug)]
pub(crate) enum Input {
    /// A node connection opened; `outbox` carries encoded messages to it.
    Connected {
        conn: ConnId,
        outbox: mpsc::Sender<Bytes>,
    },
    /// Something for the state machine.
    Event(Event),
    /// The HTTP API asks a node to leave.
    Leave {
        node: NodeId,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The HTTP server wants a snapshot.
    View { reply: oneshot::Sender<ClusterView> },
}

/// A cheap, cloneable way to ask the running coordinator things.
#[derive(Debug, Clone)]
pub struct Handle {
    inputs: mpsc::Sender<Input>,
}

impl Handle {
    pub(crate) fn new(inputs: mpsc::Sender<Input>) -> Handle {
        Handle { inputs }
    }

    /// The cluster as of now.
    pub async fn view(&self) -> Result<ClusterView, Error> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::View { reply })
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// Asks `node` to leave the cluster.
    pub async fn leave(&self, node: NodeId) -> Result<Result<(), Refusal>, Error> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(Input::Leave { node, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }
}

/// The state machine and the means to carry out its effects.
pub(crate) struct Driver {
    coordinator: Coordinator,
    data: Arc<DataDir>,
    outboxes: HashMap<ConnId, mpsc::Sender<Bytes>>,
}

impl Driver {
    pub(crate) fn new(coordinator: Coordinator, data: DataDir) -> Driver {
        Driver {
            coordinator,
            data: Arc::new(data),
            outboxes: HashMap::new(),
        }
    }

    /// Handles inputs and ticks until `stop` is cancelled (or a write fails).
    pub(crate) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input).await?,
                    None => break,
                },
                _ = ticker.tick() => self.step(Event::Tick).await?,
                () = &mut stopped => break,
            }
        }
        // Apply results that have been acknowledged but not yet ticked in,
        // so they are on disk before the process ends.
        self.step(Event::Tick).await
    }

    async fn handle(&mut self, input: Input) -> anyhow::Result<()> {
        match input {
            Input::Connected { conn, outbox } => {
                self.outboxes.insert(conn, outbox);
            }
            Input::Event(event) => {
                if let Event::Disconnected { conn } = &event {
                    self.outboxes.remove(conn);
                }
                self.step(event).await?;
            }
            Input::Leave { node, reply } => {
                let result = match self.coordinator.request_leave(&node, Instant::now()) {
                    Ok(effects) => {
                        self.execute(effects).await?;
                        Ok(())
                    }
                    Err(refusal) => Err(refusal),
                };
                let _ = reply.send(result);
            }
            Input::View { reply } => {
                let _ = reply.send(self.coordinator.view(Instant::now()));
            }
        }
        Ok(())
    }

    async fn step(&mut self, event: Event) -> anyhow::Result<()> {
        let effects = self.coordinator.step(event, Instant::now());
        self.execute(effects).await
    }

    /// Carries out effects in order.
    pub(crate) async fn execute(&mut self, effects: Vec<Effect>) -> anyhow::Result<()> {
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    let data = self.data.clone();
                    let epoch = state.config.epoch;
                    let saved = tokio::task::spawn_blocking(move || data.save(&state)).await;
                    let result = saved
                        .map_err(anyhow::Error::from)
                        .and_then(|r| r.map_err(anyhow::Error::from));
                    if let Err(err) = result {
                        error!(%err, epoch, "cannot persist the cluster state; stopping so that nothing unpersisted is announced");
                        return Err(err.context(format!("persisting epoch {epoch}")));
                    }
                }
                Effect::Send { to, message } => {
                    let mut buf = BytesMut::new();
                    coord::encode_message(&message, &mut buf);
                    let bytes = buf.freeze();
                    for conn in to {
                        self.send(conn, bytes.clone());
                    }
                }
                Effect::Close(conn) => {
                    // Dropping the outbox lets the connection send what is
                    // queued and then close.
                    self.outboxes.remove(&conn);
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        let Some(outbox) = self.outboxes.get(&conn) else {
            return;
        };
        match outbox.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(
                    conn,
                    "node connection is not reading its messages; closing it"
                );
                self.outboxes.remove(&conn);
            }
            Err(TrySendError::Closed(_)) => {
                self.outboxes.remove(&conn);
            }
        }
    }
}
