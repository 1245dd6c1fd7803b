//! The one task that owns the coordinator's state: the Raft member of the
//! coordinator group, and on the leader the [`Coordinator`] state machine.
//!
//! Node connections ([`crate::nodes`]), the HTTP server ([`crate::http`])
//! and the links to the other coordinators ([`Transport`]) send it inputs;
//! a ticker drives time. The driver steps Raft and, while this member leads,
//! the state machine, and carries out their effects in order:
//!
//! - **Persist, then announce.** The state machine's `Persist(state)` is
//!   proposed to the group; every effect after it waits ([`Held`]) until the
//!   entry is committed, on a majority's disks. A lone coordinator is a
//!   group of one: its entries commit once on its own disk.
//! - **Raft's order.** Each `Ready` is handled as `raft-rs` asks: messages
//!   for followers go out at once, entries and the hard state are written
//!   and fsynced ([`RaftLog::persist`]) before the messages that acknowledge
//!   them, committed entries are applied ([`Applied`]) in order.
//! - **Only a leader decides.** The state machine starts when this member
//!   has become leader and applied everything before its term, from the
//!   replicated state, as a restarted coordinator starts; it is dropped, and
//!   every node connection closed with `not_leader`, the moment the member
//!   is leader no more. A follower answers nodes `not_leader` and serves
//!   the dashboard from its copy of the state.
//!
//! If a write fails the driver stops with the error, and with it the
//! coordinator: acknowledging what a restart would forget is worse than
//! being unavailable. Messages to nodes go through each connection's bounded
//! outbox with `try_send`, so a node that stops reading can never stall the
//! driver: its outbox fills, the driver drops it, and the connection closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use keycafe_core::cluster::NodeId;
use keycafe_core::coord::{self, CoordinatorMessage};
use raft::prelude::{ConfChangeSingle, ConfChangeType, ConfChangeV2, Entry, Message, Snapshot};
use raft::{RawNode, StateRole};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::{Error, Refusal};
use crate::group::log::RaftLog;
use crate::group::replicated::{Applied, Change, Held};
use crate::group::transport::{Inbound, Transport};
use crate::group::view::{GroupView, MemberView};
use crate::group::{Member, MemberId, Proposal, SnapshotData};
use crate::persist::DataDir;
use crate::state::view::ClusterView;
use crate::state::{ConnId, Coordinator, Effect, Event, Settings};

/// How often the driver ticks: Raft's clock, the latency of applying
/// `migration_done` reports, and the resolution of failure detection.
pub const TICK: Duration = Duration::from_millis(50);
/// Raft's heartbeat, in ticks.
const HEARTBEAT_TICKS: usize = 3;
/// Applied entries between two snapshots of the state.
const SNAPSHOT_EVERY: u64 = 256;

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
    /// The HTTP API adds a coordinator to the group.
    AddMember {
        member: Member,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The HTTP API removes a coordinator from the group.
    RemoveMember {
        id: MemberId,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
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

    async fn ask<T>(&self, input: impl FnOnce(oneshot::Sender<T>) -> Input) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(input(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// The cluster as of now (and the group, as this member sees it).
    pub async fn view(&self) -> Result<ClusterView, Error> {
        self.ask(|reply| Input::View { reply }).await
    }

    /// Asks `node` to leave the cluster.
    pub async fn leave(&self, node: NodeId) -> Result<Result<(), Refusal>, Error> {
        self.ask(|reply| Input::Leave { node, reply }).await
    }

    /// Adds a coordinator to the group (on the leader).
    pub async fn add_member(&self, member: Member) -> Result<Result<(), Refusal>, Error> {
        self.ask(|reply| Input::AddMember { member, reply }).await
    }

    /// Removes a coordinator from the group (on the leader).
    pub async fn remove_member(&self, id: MemberId) -> Result<Result<(), Refusal>, Error> {
        self.ask(|reply| Input::RemoveMember { id, reply }).await
    }
}

/// What the driver starts from.
pub(crate) struct Start {
    pub settings: Settings,
    pub me: Member,
    /// The Raft log, opened (and recovered) from the data directory.
    pub log: RaftLog,
    /// The members the configuration lists, when the log holds none yet.
    pub members: Vec<Member>,
    /// A lone coordinator's state from before the group (`cluster.json`
    /// without a Raft log): the first state the group takes.
    pub upgraded: Option<crate::state::Durable>,
    pub election_timeout: Duration,
    pub data: DataDir,
    pub transport: Transport,
}

/// The Raft member, the state machine while leading, and the means to
/// carry out their effects.
pub(crate) struct Driver {
    settings: Settings,
    me: Member,
    raft: RawNode<RaftLog>,
    transport: Transport,
    /// What the committed log has made.
    applied: Applied,
    /// A state from before the group, proposed as the first decision.
    upgraded: Option<crate::state::Durable>,
    /// The index of the first entry of this member's term as leader, once
    /// it is leader: the state machine starts once that is applied.
    leader_from: Option<u64>,
    /// The state machine, while this member leads.
    coordinator: Option<Coordinator>,
    /// Effects waiting for their state to commit, or for a confirmation
    /// that this member still leads.
    held: Held,
    /// The last leadership confirmation asked for, and the last received.
    confirmations_asked: u64,
    confirmed: u64,
    data: Arc<DataDir>,
    outboxes: HashMap<ConnId, mpsc::Sender<Bytes>>,
    /// Entries applied since the last snapshot.
    since_snapshot: u64,
}

impl Driver {
    pub(crate) fn new(start: Start) -> anyhow::Result<Driver> {
        let Start {
            settings,
            me,
            log,
            members,
            upgraded,
            election_timeout,
            data,
            transport,
        } = start;
        // The log starts after a snapshot: a new group's has no data (its
        // voters are the members configured), later ones hold what was
        // applied up to them.
        let snapshot: Snapshot = log.last_snapshot().clone();
        let index = snapshot.get_metadata().index;
        let applied = match snapshot.get_data() {
            [] => Applied {
                members: members.into_iter().map(|m| (m.id, m)).collect(),
                index,
                ..Applied::default()
            },
            data => {
                let contents = serde_json::from_slice(data)
                    .map_err(|err| anyhow::anyhow!("the group's snapshot does not parse: {err}"))?;
                Applied::from_snapshot(contents, index)
            }
        };
        let election_ticks = (election_timeout.as_millis() / TICK.as_millis()).max(4) as usize;
        let config = raft::Config {
            id: me.id,
            election_tick: election_ticks,
            heartbeat_tick: HEARTBEAT_TICKS.min(election_ticks / 2),
            // Entries from the snapshot on are applied again at start.
            applied: applied.index,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raft = RawNode::new(&config, log, &logger)
            .map_err(|err| anyhow::anyhow!("starting the group's Raft member: {err}"))?;
        // Alone in its group, a coordinator need not wait out an election
        // timeout to lead: it is its own majority.
        let voters = raft.raft.prs().conf().voters().ids();
        if voters.len() == 1 && voters.contains(me.id) {
            raft.campaign()
                .map_err(|err| anyhow::anyhow!("taking the lead of a group of one: {err}"))?;
        }
        for member in applied.members.values().filter(|m| m.id != me.id) {
            transport.set_peer(member.clone());
        }
        Ok(Driver {
            settings,
            me,
            raft,
            transport,
            applied,
            upgraded,
            leader_from: None,
            coordinator: None,
            held: Held::default(),
            confirmations_asked: 0,
            confirmed: 0,
            data: Arc::new(data),
            outboxes: HashMap::new(),
            since_snapshot: 0,
        })
    }

    /// Handles inputs, the group's messages and ticks until `stop` is
    /// cancelled (or a write fails).
    pub(crate) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut group: mpsc::Receiver<Inbound>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        // A group of one (or a restart) may have something to do at once.
        self.after_input()?;
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input)?,
                    None => break,
                },
                Some(inbound) = group.recv() => self.inbound(inbound),
                _ = ticker.tick() => self.tick()?,
                () = &mut stopped => break,
            }
            self.after_input()?;
        }
        // Apply results that have been acknowledged but not yet ticked in,
        // so they are proposed before the process ends (a group of one
        // commits them at once).
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.step(Event::Tick, Instant::now());
            self.execute(effects)?;
            self.after_input()?;
        }
        Ok(())
    }

    fn handle(&mut self, input: Input) -> anyhow::Result<()> {
        match input {
            Input::Connected { conn, outbox } => {
                self.outboxes.insert(conn, outbox);
            }
            Input::Event(event) => self.event(event)?,
            Input::Leave { node, reply } => {
                let result = match &mut self.coordinator {
                    None => Err(self.not_leader()),
                    Some(coordinator) => coordinator.request_leave(&node, Instant::now()),
                };
                let result = match result {
                    Ok(effects) => {
                        self.execute(effects)?;
                        Ok(())
                    }
                    Err(refusal) => Err(refusal),
                };
                let _ = reply.send(result);
            }
            Input::View { reply } => {
                let _ = reply.send(self.view());
            }
            Input::AddMember { member, reply } => {
                let _ = reply.send(self.change_members(Some(member), None));
            }
            Input::RemoveMember { id, reply } => {
                let _ = reply.send(self.change_members(None, Some(id)));
            }
        }
        Ok(())
    }

    /// A node's message or disconnection: for the state machine on the
    /// leader; on a follower a node is sent to the leader.
    fn event(&mut self, event: Event) -> anyhow::Result<()> {
        if let Event::Disconnected { conn } = &event {
            self.outboxes.remove(conn);
        }
        match (&mut self.coordinator, event) {
            (Some(coordinator), event) => {
                let effects = coordinator.step(event, Instant::now());
                self.execute(effects)?;
            }
            (None, Event::Received { conn, .. }) => self.redirect(conn),
            (None, _) => {}
        }
        Ok(())
    }

    fn inbound(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Message(message) => {
                debug!(
                    from = message.from,
                    kind = ?message.get_msg_type(),
                    term = message.term,
                    "a message from another coordinator"
                );
                // Messages from a peer this member no longer (or not yet)
                // counts are Raft's to judge; a malformed one is dropped.
                if let Err(err) = self.raft.step(message) {
                    warn!(%err, "a message from another coordinator was not taken");
                }
            }
            Inbound::Hello(member) => {
                // Where a member is that this one may not know of yet (a
                // member being added sends its first answers from there).
                if member.id != self.me.id {
                    self.transport.set_peer(member);
                }
            }
            Inbound::Dropped { to, snapshot } => {
                self.raft.report_unreachable(to);
                if snapshot {
                    self.raft.report_snapshot(to, raft::SnapshotStatus::Failure);
                }
            }
        }
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        self.raft.tick();
        if let Some(coordinator) = &mut self.coordinator {
            let effects = coordinator.step(Event::Tick, Instant::now());
            self.execute(effects)?;
        }
        Ok(())
    }

    /// What follows every input: Raft's `Ready`, then a change of leader,
    /// then the effects whose states are now committed.
    fn after_input(&mut self) -> anyhow::Result<()> {
        self.handle_ready()?;
        self.follow_role()?;
        // Starting the state machine may have proposed its first state.
        self.handle_ready()?;
        for effect in self.held.released(self.applied.index, self.confirmed) {
            self.carry_out(effect);
        }
        Ok(())
    }

    /// One `Ready`, in the order `raft-rs` requires.
    fn handle_ready(&mut self) -> anyhow::Result<()> {
        if !self.raft.has_ready() {
            return Ok(());
        }
        let mut ready = self.raft.ready();
        self.send(ready.take_messages());
        for state in ready.take_read_states() {
            if let Ok(bytes) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) {
                self.confirmed = self.confirmed.max(u64::from_be_bytes(bytes));
            }
        }
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(snapshot)?;
        }
        self.apply(ready.take_committed_entries())?;
        let (entries, hard_state) = (ready.entries().clone(), ready.hs().cloned());
        blocking(|| self.raft.mut_store().persist(&entries, hard_state.as_ref()))
            .map_err(|err| anyhow::anyhow!("writing the group's log: {err}"))?;
        self.send(ready.take_persisted_messages());
        let mut light = self.raft.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hard_state = self.raft.store().hard_state();
            hard_state.commit = commit;
            blocking(|| self.raft.mut_store().persist(&[], Some(&hard_state)))
                .map_err(|err| anyhow::anyhow!("writing the group's log: {err}"))?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raft.advance_apply();
        self.maybe_snapshot()
    }

    /// A snapshot from the leader: this member's state becomes its.
    fn install_snapshot(&mut self, snapshot: Snapshot) -> anyhow::Result<()> {
        let contents = match snapshot.get_data() {
            [] => SnapshotData::default(),
            data => serde_json::from_slice(data).map_err(|err| {
                anyhow::anyhow!("a snapshot from the leader does not parse: {err}")
            })?,
        };
        let index = snapshot.get_metadata().index;
        blocking(|| self.raft.mut_store().apply_snapshot(snapshot))
            .map_err(|err| anyhow::anyhow!("writing the group's snapshot: {err}"))?;
        self.applied = Applied::from_snapshot(contents, index);
        for member in self.applied.members.values().filter(|m| m.id != self.me.id) {
            self.transport.set_peer(member.clone());
        }
        self.export_state()?;
        info!(index, "took the leader's snapshot");
        Ok(())
    }

    /// Applies committed entries in order.
    fn apply(&mut self, entries: Vec<Entry>) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let before = self.applied.state.as_ref().map(|s| s.config.epoch);
        for entry in &entries {
            match self.applied.apply(entry)? {
                Change::None => {}
                Change::Members {
                    change,
                    added,
                    removed,
                } => {
                    let conf_state = self
                        .raft
                        .apply_conf_change(&change)
                        .map_err(|err| anyhow::anyhow!("applying a membership change: {err}"))?;
                    // A snapshot at once: the voters it names are the new
                    // ones, so a member being added can take it (Raft
                    // refuses a snapshot that leaves it out).
                    let _ = conf_state;
                    self.since_snapshot = SNAPSHOT_EVERY;
                    for member in added.into_iter().filter(|m| m.id != self.me.id) {
                        info!(member = member.id, addr = %member.group_addr, "a coordinator joined the group");
                        self.transport.set_peer(member);
                    }
                    for id in removed {
                        info!(member = id, "a coordinator left the group");
                        if id != self.me.id {
                            self.transport.remove_peer(id);
                        }
                    }
                }
            }
        }
        self.since_snapshot += entries.len() as u64;
        if self.applied.state.as_ref().map(|s| s.config.epoch) != before {
            self.export_state()?;
        }
        Ok(())
    }

    /// Writes the latest state to `cluster.json` too, for people, backups
    /// and the scripts that look for it.
    fn export_state(&self) -> anyhow::Result<()> {
        let Some(state) = &self.applied.state else {
            return Ok(());
        };
        blocking(|| self.data.save(state)).map_err(anyhow::Error::from)
    }

    /// After enough entries, a snapshot of the state; the log before it is
    /// dropped.
    fn maybe_snapshot(&mut self) -> anyhow::Result<()> {
        if self.since_snapshot < SNAPSHOT_EVERY || self.applied.index == 0 {
            return Ok(());
        }
        let data = serde_json::to_vec(&self.applied.snapshot_data())?;
        let conf_state = self.raft.raft.prs().conf().to_conf_state();
        let index = self.applied.index;
        blocking(|| self.raft.mut_store().compact(index, data, conf_state))
            .map_err(|err| anyhow::anyhow!("writing the group's snapshot: {err}"))?;
        self.since_snapshot = 0;
        Ok(())
    }

    /// Starts the state machine once leading with everything applied, and
    /// drops it the moment this member leads no more.
    fn follow_role(&mut self) -> anyhow::Result<()> {
        let leading = self.raft.raft.state == StateRole::Leader;
        if !leading {
            if self.leader_from.take().is_some() || self.coordinator.is_some() {
                self.step_down();
            }
            return Ok(());
        }
        let from = *self
            .leader_from
            .get_or_insert_with(|| self.raft.raft.raft_log.last_index());
        if self.coordinator.is_some() || self.applied.index < from {
            return Ok(());
        }
        let restored = self.applied.state.clone().or_else(|| self.upgraded.take());
        let term = self.raft.raft.term;
        info!(
            term,
            epoch = restored.as_ref().map(|s| s.config.epoch),
            "leading the coordinator group"
        );
        let (coordinator, effects) =
            Coordinator::new(self.settings.clone(), restored, Instant::now());
        self.coordinator = Some(coordinator);
        self.execute(effects)
    }

    /// Leadership lost: nothing more is decided here, what was held is
    /// dropped (nobody saw it), and nodes are sent to the new leader.
    fn step_down(&mut self) {
        if self.coordinator.take().is_some() {
            warn!(
                leader = self.raft.raft.leader_id,
                "no longer the coordinator group's leader"
            );
        }
        self.held.clear();
        let conns: Vec<ConnId> = self.outboxes.keys().copied().collect();
        for conn in conns {
            self.redirect(conn);
        }
    }

    /// Carries out the state machine's effects in order: a state is
    /// proposed, and what follows it waits for its commit.
    pub(crate) fn execute(&mut self, effects: Vec<Effect>) -> anyhow::Result<()> {
        for effect in effects {
            match effect {
                Effect::Persist(state) => {
                    let data = serde_json::to_vec(&Proposal::State(state))?;
                    if let Err(err) = self.raft.propose(Vec::new(), data) {
                        // Not leader any more: nothing after it may go out.
                        warn!(%err, "a decision could not be proposed");
                        self.step_down();
                        return Ok(());
                    }
                    self.held.proposed(self.raft.raft.raft_log.last_index());
                }
                lease @ Effect::Send {
                    message: CoordinatorMessage::Lease { ms, .. },
                    ..
                } if ms > 0 => {
                    // A lease goes out once a majority has confirmed, after
                    // it was made, that this member still leads (`Held`).
                    self.confirmations_asked += 1;
                    let asked = self.confirmations_asked;
                    self.raft.read_index(asked.to_be_bytes().to_vec());
                    self.held.hold_for_confirmation(lease, asked);
                }
                other => {
                    if let Some(effect) = self.held.hold_or_release(other, self.applied.index) {
                        self.carry_out(effect);
                    }
                }
            }
        }
        Ok(())
    }

    fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Persist(_) => {} // proposed in `execute`
            Effect::Send { to, message } => {
                let bytes = encode(&message);
                for conn in to {
                    self.send_to_node(conn, bytes.clone());
                }
            }
            Effect::Close(conn) => {
                // Dropping the outbox lets the connection send what is
                // queued and then close.
                self.outboxes.remove(&conn);
            }
        }
    }

    /// Tells a node connection to go to the leader, and closes it.
    fn redirect(&mut self, conn: ConnId) {
        let leader = self.leader().map(|m| m.node_addr);
        let message = CoordinatorMessage::NotLeader { leader };
        self.send_to_node(conn, encode(&message));
        self.outboxes.remove(&conn);
    }

    /// The leader as far as this member knows, if another.
    fn leader(&self) -> Option<Member> {
        let id = self.raft.raft.leader_id;
        (id != self.me.id).then(|| self.applied.members.get(&id).cloned())?
    }

    fn not_leader(&self) -> Refusal {
        Refusal::NotLeader(self.leader().and_then(|m| m.http_addr))
    }

    fn send_to_node(&mut self, conn: ConnId, bytes: Bytes) {
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

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            self.transport.send(message);
        }
    }

    /// Adds or removes one coordinator through Raft's own membership
    /// change; the member's addresses travel in the change.
    fn change_members(
        &mut self,
        add: Option<Member>,
        remove: Option<MemberId>,
    ) -> Result<(), Refusal> {
        if self.coordinator.is_none() {
            return Err(self.not_leader());
        }
        let mut change = ConfChangeV2::default();
        let mut single = ConfChangeSingle::default();
        match (&add, remove) {
            (Some(member), _) => {
                single.node_id = member.id;
                single.set_change_type(ConfChangeType::AddNode);
                let context = serde_json::to_vec(&[member]).unwrap_or_default();
                change.set_context(context.into());
            }
            (None, Some(id)) => {
                if !self.applied.members.contains_key(&id) {
                    return Err(Refusal::UnknownMember(id));
                }
                single.node_id = id;
                single.set_change_type(ConfChangeType::RemoveNode);
            }
            (None, None) => return Ok(()),
        }
        change.mut_changes().push(single);
        if let Some(member) = add {
            // The leader must reach the new member to send it the log.
            self.transport.set_peer(member);
        }
        self.raft
            .propose_conf_change(Vec::new(), change)
            .map_err(|err| Refusal::GroupBusy(err.to_string()))
    }

    /// The cluster (from the state machine on the leader, from the
    /// replicated state elsewhere) and the group.
    fn view(&self) -> ClusterView {
        let now = Instant::now();
        let mut view = match &self.coordinator {
            Some(coordinator) => coordinator.view(now),
            None => Coordinator::observer(self.settings.clone(), self.applied.state.clone(), now)
                .view(now),
        };
        view.group = Some(self.group_view());
        view
    }

    /// The group as this member sees it.
    fn group_view(&self) -> GroupView {
        let raft = &self.raft.raft;
        let peers = self.transport.peers();
        let members = self
            .applied
            .members
            .values()
            .map(|member| {
                let progress = raft.prs().get(member.id);
                let link = peers.iter().find(|p| p.id == member.id);
                MemberView {
                    id: member.id,
                    group_addr: member.group_addr.clone(),
                    node_addr: member.node_addr.clone(),
                    http_addr: member.http_addr.clone(),
                    is_me: member.id == self.me.id,
                    is_leader: member.id == raft.leader_id,
                    matched: (raft.state == StateRole::Leader)
                        .then(|| progress.map(|p| p.matched))
                        .flatten(),
                    linked: link.map(|l| l.connected),
                    heard_ms: link
                        .and_then(|l| l.last_received)
                        .map(|at| at.elapsed().as_millis() as u64),
                }
            })
            .collect();
        GroupView {
            id: self.me.id,
            role: role_name(raft.state).to_string(),
            leader: (raft.leader_id != 0).then_some(raft.leader_id),
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.applied.index,
            last_index: raft.raft_log.last_index(),
            members,
        }
    }
}

fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

fn encode(message: &CoordinatorMessage) -> Bytes {
    let mut buf = BytesMut::new();
    coord::encode_message(message, &mut buf);
    buf.freeze()
}

/// Runs a disk write where the runtime allows blocking (the driver's own
/// thread on a multi-threaded runtime; inline otherwise, as in tests on a
/// current-thread runtime).
fn blocking<T>(write: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
        _ => write(),
    }
}
