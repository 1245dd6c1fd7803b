//! The node's client connections, as `CLIENT LIST`, `CLIENT KILL`,
//! `CLIENT PAUSE` and `MONITOR` see them.
//!
//! Redis answers `CLIENT LIST` by walking its own client structs: it is
//! single-threaded, so nothing else is touching them. Here each connection
//! runs on its own task and keeps its state ([`crate::cmd::ConnState`]) to
//! itself, so the registry cannot read that state directly, and must not
//! make every command pay for it being readable. The split:
//!
//! - Each connection has a [`ClientRecord`], registered when the connection
//!   starts and removed when it ends (one lock of [`Clients`] each time).
//!   What never changes (id, addresses, file descriptor, birth) is plain
//!   data; what does is [`Activity`], which the connection *publishes* into
//!   its record at the end of each batch of requests: a dozen relaxed
//!   stores into a record nobody else writes, and no lock. A name or
//!   library name is written when a command sets it. So `CLIENT LIST` sees
//!   each other connection as of its last batch, which is what Redis shows
//!   too (a client is between commands whenever another one runs).
//! - Idle times use a coarse clock ([`Clients::tick`], every 100 ms) so
//!   that publishing reads no clock.
//! - `CLIENT KILL` cancels the connection's own cancellation token (a child
//!   of the node's shutdown token): the connection's task stops at its next
//!   await, whatever it was doing, exactly as it does at shutdown.
//! - The per-command path reads one byte, `Clients::gates`: whether any
//!   connection is a monitor, and whether a `CLIENT PAUSE` is in force. It
//!   sits on a cache line of its own and changes only when one of those
//!   does, so the load is served from each core's cache. Everything else
//!   about monitors and pauses runs only when its bit is set.
//!
//! Bus connections are registered too (they can be killed at shutdown
//! like any other) but not listed, as Redis lists no cluster-bus link; one
//! that becomes a replica's stream (`KC.PSYNC`) is listed with flag `S`,
//! as Redis lists a replica on its primary.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use keycafe_core::command::{COMMANDS, CommandInfo};
use keycafe_core::{Protocol, Reply};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::OutputLimit;

/// How often [`Clients::tick`] should run: the resolution of `idle`.
pub const CLOCK_TICK: Duration = Duration::from_millis(100);

/// Every connection of the node, with what the per-command path consults.
pub struct Clients {
    records: Mutex<BTreeMap<u64, Arc<ClientRecord>>>,
    gates: Gates,
    /// Milliseconds since `epoch`, as of the last [`Clients::tick`].
    clock_ms: AtomicU64,
    epoch: Instant,
    /// The monitors, read without a lock by every command while there are
    /// any; changed (rarely) under `records`' lock.
    monitors: ArcSwap<Vec<Arc<Monitor>>>,
    pause: watch::Sender<Pause>,
    /// Connections waiting for a command's answer or for a pause to end
    /// (INFO's `blocked_clients`).
    blocked: AtomicUsize,
}

/// The bits the per-command path reads, alone on their cache line so that
/// the counters and records around them, which change often, do not evict
/// it from other cores.
#[repr(align(128))]
struct Gates(AtomicU8);

/// Some connection is a monitor.
const MONITORING: u8 = 1;
/// A `CLIENT PAUSE` is (or may still be) in force.
const PAUSED: u8 = 1 << 1;

impl Default for Clients {
    fn default() -> Clients {
        Clients {
            records: Mutex::new(BTreeMap::new()),
            gates: Gates(AtomicU8::new(0)),
            clock_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            monitors: ArcSwap::from_pointee(Vec::new()),
            pause: watch::Sender::new(Pause::default()),
            blocked: AtomicUsize::new(0),
        }
    }
}

impl Clients {
    /// Registers a connection. It stays listed until the returned guard is
    /// dropped; `kill` is what [`ClientRecord::kill`] cancels.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        peer: Peer,
        kind: Kind,
        kill: CancellationToken,
    ) -> Registration {
        let record = Arc::new(ClientRecord {
            id,
            addr: peer.addr,
            laddr: peer.laddr,
            fd: peer.fd,
            created: Instant::now(),
            kill,
            kind: AtomicU8::new(kind as u8),
            activity: Published::default(),
            names: Mutex::new(Names::default()),
        });
        record
            .activity
            .active_ms
            .store(self.now_ms(), Ordering::Relaxed);
        lock(&self.records).insert(id, record.clone());
        Registration {
            clients: self.clone(),
            record,
        }
    }

    /// The listed connections, in order of id (of connection), as Redis
    /// lists them.
    pub fn listed(&self) -> Vec<Arc<ClientRecord>> {
        lock(&self.records)
            .values()
            .filter(|record| record.kind() != Kind::Bus)
            .cloned()
            .collect()
    }

    /// A listed connection by id.
    pub fn get(&self, id: u64) -> Option<Arc<ClientRecord>> {
        lock(&self.records)
            .get(&id)
            .filter(|record| record.kind() != Kind::Bus)
            .cloned()
    }

    /// Counts a connection as blocked until the guard is dropped.
    pub fn block(self: &Arc<Self>) -> Blocked {
        self.blocked.fetch_add(1, Ordering::Relaxed);
        Blocked(self.clone())
    }

    /// Connections blocked now: waiting for WAIT's answer or for a pause
    /// to end, as Redis counts `blocked_clients`.
    pub fn blocked(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Advances the coarse clock idle times are measured with.
    pub fn tick(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.clock_ms.store(now, Ordering::Relaxed);
    }

    /// The coarse clock: milliseconds since the registry was made.
    pub fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    /// True while some connection is a monitor: the one load a command
    /// pays for MONITOR existing.
    #[inline]
    pub fn monitored(&self) -> bool {
        self.gates.0.load(Ordering::Relaxed) & MONITORING != 0
    }

    /// True while a `CLIENT PAUSE` may be in force: the one load a
    /// request pays for CLIENT PAUSE existing. (It may have run out: see
    /// [`Clients::pause_wait`].)
    #[inline]
    pub fn pause_active(&self) -> bool {
        self.gates.0.load(Ordering::Relaxed) & PAUSED != 0
    }

    fn set_gate(&self, bit: u8, on: bool) {
        match on {
            true => self.gates.0.fetch_or(bit, Ordering::Relaxed),
            false => self.gates.0.fetch_and(!bit, Ordering::Relaxed),
        };
    }

    /// Makes the connection of `record` a monitor: from now on it receives
    /// every line given to [`Clients::feed_monitors`], in `protocol`.
    pub fn add_monitor(&self, record: &ClientRecord, protocol: Protocol) -> Arc<Monitor> {
        let monitor = Arc::new(Monitor {
            id: record.id,
            protocol,
            queue: Mutex::new(MonitorQueue::default()),
            ready: Notify::new(),
            kill: record.kill.clone(),
        });
        let _records = lock(&self.records);
        let mut monitors = Vec::clone(&self.monitors.load());
        monitors.push(monitor.clone());
        self.monitors.store(Arc::new(monitors));
        self.set_gate(MONITORING, true);
        monitor
    }

    /// The connection `id` is no longer a monitor (RESET, or it ended).
    pub fn remove_monitor(&self, id: u64) {
        let _records = lock(&self.records);
        let current = self.monitors.load();
        if !current.iter().any(|monitor| monitor.id == id) {
            return;
        }
        let monitors: Vec<_> = current.iter().filter(|m| m.id != id).cloned().collect();
        self.set_gate(MONITORING, !monitors.is_empty());
        self.monitors.store(Arc::new(monitors));
    }

    /// Queues `line` (a `MONITOR` line, without its status marker) for
    /// every monitor. A monitor whose queue breaks `limit` is cut off, as
    /// Redis closes a client over its output buffer limit.
    pub fn feed_monitors(&self, line: &[u8], limit: OutputLimit) {
        for monitor in self.monitors.load().iter() {
            monitor.feed(line, limit);
        }
    }

    /// Pauses clients until `until`: their writes only, or every command
    /// (`mode`). As Redis does, a pause already in force keeps its end if
    /// that is later, and its mode if that is `All`.
    pub fn pause(&self, mode: PauseMode, until: Instant) {
        self.pause.send_modify(|pause| {
            let now = Instant::now();
            let current = pause.in_force(now);
            pause.mode = match (current, mode) {
                (Some(PauseMode::All), _) => PauseMode::All,
                _ => mode,
            };
            pause.until = match current {
                Some(_) => pause.until.max(until),
                None => until,
            };
            self.set_gate(PAUSED, true);
        });
    }

    /// Ends any pause (`CLIENT UNPAUSE`): paused clients go on at once.
    pub fn unpause(&self) {
        self.pause.send_modify(|pause| {
            *pause = Pause::default();
            self.set_gate(PAUSED, false);
        });
    }

    /// If a command (one that `writes` or not) must wait for a pause now,
    /// a future that completes when the pause ends or changes (the caller
    /// then asks again). `None` when it may run.
    pub fn pause_wait(&self, writes: bool) -> Option<impl Future<Output = ()> + Send + 'static> {
        let now = Instant::now();
        let mut changes = self.pause.subscribe();
        let pause = *changes.borrow_and_update();
        let Some(mode) = pause.in_force(now) else {
            // Run out: forget it, so that commands stop asking.
            self.pause.send_if_modified(|pause| {
                let over = pause.in_force(Instant::now()).is_none();
                if over && self.pause_active() {
                    self.set_gate(PAUSED, false);
                }
                false
            });
            return None;
        };
        if mode == PauseMode::Write && !writes {
            return None;
        }
        Some(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(pause.until.into()) => {}
                _ = changes.changed() => {}
            }
        })
    }
}

/// What a connection is, for `CLIENT LIST TYPE` and `CLIENT KILL TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A client on the client port.
    Normal = 0,
    /// A replica's stream, on its primary (flag `S`).
    Replica = 1,
    /// A cluster-bus link: not listed.
    Bus = 2,
}

impl Kind {
    fn from_u8(value: u8) -> Kind {
        match value {
            1 => Kind::Replica,
            2 => Kind::Bus,
            _ => Kind::Normal,
        }
    }
}

/// Where a connection comes from, as its socket says.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The client's address, `ip:port` (`[ip]:port` for IPv6).
    pub addr: String,
    /// The address it connected to.
    pub laddr: String,
    /// The socket's file descriptor (-1 where there is none).
    pub fd: i32,
}

impl Peer {
    /// For connections without a socket (tests over in-memory pipes).
    pub fn unknown() -> Peer {
        Peer {
            addr: "?:0".into(),
            laddr: "?:0".into(),
            fd: -1,
        }
    }
}

/// A connection counted in [`Clients::blocked`] while this lives.
pub struct Blocked(Arc<Clients>);

impl Drop for Blocked {
    fn drop(&mut self) {
        self.0.blocked.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keeps a connection listed; dropping it removes the record (and the
/// monitor, if the connection was one).
pub struct Registration {
    clients: Arc<Clients>,
    record: Arc<ClientRecord>,
}

impl Registration {
    pub fn record(&self) -> &Arc<ClientRecord> {
        &self.record
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clients.remove_monitor(self.record.id);
        lock(&self.clients.records).remove(&self.record.id);
    }
}

/// One connection as others see it.
pub struct ClientRecord {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created: Instant,
    kill: CancellationToken,
    kind: AtomicU8,
    activity: Published,
    names: Mutex<Names>,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("kind", &self.kind())
            .finish()
    }
}

/// The names a connection is given by commands.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// `CLIENT SETNAME`, `HELLO ... SETNAME`.
    pub name: Option<String>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<String>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<String>,
    /// The subcommand of the last command, if it has subcommands
    /// (`client|list`), lower-cased.
    pub sub: Option<String>,
}

impl ClientRecord {
    /// Closes the connection: it stops at its next await (a replica
    /// stream stops as at shutdown).
    pub fn kill(&self) {
        self.kill.cancel();
    }

    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.kind.load(Ordering::Relaxed))
    }

    pub fn set_kind(&self, kind: Kind) {
        self.kind.store(kind as u8, Ordering::Relaxed);
    }

    /// Seconds since the connection was made.
    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }

    /// The names, to read or change.
    pub fn names(&self) -> MutexGuard<'_, Names> {
        lock(&self.names)
    }

    /// Publishes what the connection did in its last batch.
    pub fn publish(&self, activity: &Activity) {
        self.activity.store(activity);
    }

    /// What the connection published last.
    pub fn activity(&self) -> Activity {
        self.activity.load()
    }
}

/// What a connection publishes at the end of each batch: the fields of its
/// `CLIENT LIST` line that change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    pub flags: ClientFlags,
    /// 2 or 3.
    pub resp: u8,
    /// The command run last, if any.
    pub last_command: Option<&'static CommandInfo>,
    /// Commands queued after MULTI; -1 outside a transaction.
    pub multi: i32,
    /// Keys watched.
    pub watch: u32,
    /// Bytes of requests received and not yet run.
    pub qbuf: usize,
    /// Room left in the input buffer.
    pub qbuf_free: usize,
    /// Bytes the MULTI queue holds.
    pub multi_mem: usize,
    /// The output buffer's size.
    pub rbs: usize,
    /// The most the output buffer held in the last batch.
    pub rbp: usize,
    /// Bytes of output waiting (a monitor's queue).
    pub omem: usize,
    /// Every buffer of the connection.
    pub tot_mem: usize,
    /// The coarse clock ([`Clients::now_ms`]) at the last batch.
    pub active_ms: u64,
}

/// [`Activity`] in atomics. Each field is read and written on its own; a
/// reader may see a batch half published, which costs at most a line
/// mixing two consecutive batches.
#[derive(Default)]
struct Published {
    flags: AtomicU32,
    resp: AtomicU8,
    /// Index in `COMMANDS` plus one; 0 for none.
    last_command: AtomicU32,
    multi: AtomicI32,
    watch: AtomicU32,
    qbuf: AtomicUsize,
    qbuf_free: AtomicUsize,
    multi_mem: AtomicUsize,
    rbs: AtomicUsize,
    rbp: AtomicUsize,
    omem: AtomicUsize,
    tot_mem: AtomicUsize,
    active_ms: AtomicU64,
}

impl Published {
    fn store(&self, a: &Activity) {
        let r = Ordering::Relaxed;
        self.flags.store(u32::from(a.flags.0), r);
        self.resp.store(a.resp, r);
        self.last_command
            .store(a.last_command.map_or(0, command_index) as u32, r);
        self.multi.store(a.multi, r);
        self.watch.store(a.watch, r);
        self.qbuf.store(a.qbuf, r);
        self.qbuf_free.store(a.qbuf_free, r);
        self.multi_mem.store(a.multi_mem, r);
        self.rbs.store(a.rbs, r);
        self.rbp.store(a.rbp, r);
        self.omem.store(a.omem, r);
        self.tot_mem.store(a.tot_mem, r);
        self.active_ms.store(a.active_ms, r);
    }

    fn load(&self) -> Activity {
        let r = Ordering::Relaxed;
        let last = self.last_command.load(r) as usize;
        Activity {
            flags: ClientFlags(self.flags.load(r) as u16),
            resp: self.resp.load(r),
            last_command: last.checked_sub(1).and_then(|at| COMMANDS.get(at)),
            multi: self.multi.load(r),
            watch: self.watch.load(r),
            qbuf: self.qbuf.load(r),
            qbuf_free: self.qbuf_free.load(r),
            multi_mem: self.multi_mem.load(r),
            rbs: self.rbs.load(r),
            rbp: self.rbp.load(r),
            omem: self.omem.load(r),
            tot_mem: self.tot_mem.load(r),
            active_ms: self.active_ms.load(r),
        }
    }
}

/// A row of the command table's position in it, plus one (0 is "none").
fn command_index(info: &'static CommandInfo) -> usize {
    let offset = (info as *const CommandInfo as usize).wrapping_sub(COMMANDS.as_ptr() as usize);
    let index = offset / std::mem::size_of::<CommandInfo>();
    debug_assert!(std::ptr::eq(&COMMANDS[index], info), "a row of COMMANDS");
    index + 1
}

/// The flags of a `CLIENT LIST` line that Keycafe has, each one letter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFlags(u16);

impl ClientFlags {
    /// `O`: a monitor.
    pub const MONITOR: ClientFlags = ClientFlags(1);
    /// `S`: a replica's stream.
    pub const REPLICA: ClientFlags = ClientFlags(1 << 1);
    /// `x`: inside MULTI.
    pub const MULTI: ClientFlags = ClientFlags(1 << 2);
    /// `b`: waiting (WAIT, a pause).
    pub const BLOCKED: ClientFlags = ClientFlags(1 << 3);
    /// `c`: closes once its replies are written (QUIT).
    pub const CLOSE_AFTER_REPLY: ClientFlags = ClientFlags(1 << 4);
    /// `r`: READONLY.
    pub const READONLY: ClientFlags = ClientFlags(1 << 5);
    /// `e`: CLIENT NO-EVICT ON.
    pub const NO_EVICT: ClientFlags = ClientFlags(1 << 6);
    /// `T`: CLIENT NO-TOUCH ON.
    pub const NO_TOUCH: ClientFlags = ClientFlags(1 << 7);

    /// In Redis's order of letters.
    const LETTERS: [(ClientFlags, char); 8] = [
        (ClientFlags::MONITOR, 'O'),
        (ClientFlags::REPLICA, 'S'),
        (ClientFlags::MULTI, 'x'),
        (ClientFlags::BLOCKED, 'b'),
        (ClientFlags::CLOSE_AFTER_REPLY, 'c'),
        (ClientFlags::READONLY, 'r'),
        (ClientFlags::NO_EVICT, 'e'),
        (ClientFlags::NO_TOUCH, 'T'),
    ];

    pub fn contains(self, other: ClientFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags and `other` when `on`.
    pub fn with_if(self, other: ClientFlags, on: bool) -> ClientFlags {
        match on {
            true => ClientFlags(self.0 | other.0),
            false => self,
        }
    }
}

impl fmt::Display for ClientFlags {
    /// The letters, or `N` for none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("N");
        }
        for (flag, letter) in Self::LETTERS {
            if self.contains(flag) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// A monitor: where the lines for one `MONITOR` connection wait until it
/// writes them out.
pub struct Monitor {
    id: u64,
    protocol: Protocol,
    queue: Mutex<MonitorQueue>,
    ready: Notify,
    kill: CancellationToken,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("id", &self.id)
            .field("pending", &self.pending())
            .finish()
    }
}

#[derive(Default)]
struct MonitorQueue {
    /// Encoded lines not yet taken by the connection.
    pending: BytesMut,
    /// Since when `pending` has been over the soft limit.
    over_soft_since: Option<Instant>,
    /// Over its limit: cut off, takes no more lines.
    cut: bool,
}

impl Monitor {
    fn feed(&self, line: &[u8], limit: OutputLimit) {
        let mut queue = lock(&self.queue);
        if queue.cut {
            return;
        }
        let mut reply = Reply::start(self.protocol, &mut queue.pending);
        reply.simple(line);
        reply.finish();
        let over_for = queue.over_soft_since.map(|since| since.elapsed());
        match limit.check(queue.pending.len(), over_for) {
            Err(_) => {
                queue.cut = true;
                queue.pending = BytesMut::new();
                drop(queue);
                self.kill.cancel();
                return;
            }
            Ok(Some(_)) => {
                queue.over_soft_since.get_or_insert_with(Instant::now);
            }
            Ok(None) => queue.over_soft_since = None,
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Completes when lines are waiting (at once if some already are).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves the waiting lines to the end of `out`.
    pub fn take(&self, out: &mut BytesMut) {
        let mut queue = lock(&self.queue);
        if out.is_empty() {
            std::mem::swap(out, &mut queue.pending);
        } else {
            out.extend_from_slice(&queue.pending);
            queue.pending.clear();
        }
    }

    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        lock(&self.queue).pending.len()
    }
}

/// How far a `CLIENT PAUSE` reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    /// Commands that write (and EXEC of a transaction that does) wait.
    Write,
    /// Every command of every client waits.
    All,
}

#[derive(Debug, Clone, Copy)]
struct Pause {
    mode: PauseMode,
    until: Instant,
}

impl Default for Pause {
    fn default() -> Pause {
        Pause {
            mode: PauseMode::Write,
            until: Instant::now(),
        }
    }
}

impl Pause {
    /// The mode, if the pause has not run out at `now`.
    fn in_force(&self, now: Instant) -> Option<PauseMode> {
        (now < self.until).then_some(self.mode)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Arc<Clients> {
        Arc::new(Clients::default())
    }

    fn peer(port: u16) -> Peer {
        Peer {
            addr: format!("127.0.0.1:{port}"),
            laddr: "127.0.0.1:6379".into(),
            fd: 9,
        }
    }

    #[test]
    fn records_are_listed_in_id_order_until_dropped_and_bus_links_are_not() {
        let clients = clients();
        let b = clients.register(7, peer(2), Kind::Normal, CancellationToken::new());
        let a = clients.register(3, peer(1), Kind::Normal, CancellationToken::new());
        let bus = clients.register(5, peer(3), Kind::Bus, CancellationToken::new());
        let ids: Vec<u64> = clients.listed().iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 7]);
        assert!(clients.get(5).is_none(), "a bus link is not a client");
        bus.record().set_kind(Kind::Replica);
        assert_eq!(clients.listed().len(), 3, "a replica's stream is listed");
        drop(b);
        let ids: Vec<u64> = clients.listed().iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 5]);
        drop((a, bus));
        assert!(clients.listed().is_empty());
    }

    #[test]
    fn activity_round_trips_through_the_record() {
        let clients = clients();
        let registered = clients.register(1, peer(1), Kind::Normal, CancellationToken::new());
        let get = keycafe_core::command::lookup(b"get");
        let activity = Activity {
            flags: ClientFlags::MULTI.with_if(ClientFlags::NO_EVICT, true),
            resp: 3,
            last_command: get,
            multi: 2,
            watch: 1,
            qbuf: 5,
            qbuf_free: 6,
            multi_mem: 7,
            rbs: 8,
            rbp: 9,
            omem: 10,
            tot_mem: 11,
            active_ms: 12,
        };
        registered.record().publish(&activity);
        assert_eq!(registered.record().activity(), activity);
        assert_eq!(activity.flags.to_string(), "xe");
        assert_eq!(ClientFlags::default().to_string(), "N");
    }

    #[test]
    fn killing_cancels_the_connection_token() {
        let clients = clients();
        let token = CancellationToken::new();
        let registered = clients.register(1, peer(1), Kind::Normal, token.clone());
        registered.record().kill();
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn monitors_get_lines_until_they_go_over_their_limit() {
        let clients = clients();
        let token = CancellationToken::new();
        let registered = clients.register(1, peer(1), Kind::Normal, token.clone());
        assert!(!clients.monitored());
        let monitor = clients.add_monitor(registered.record(), Protocol::Resp2);
        assert!(clients.monitored());
        let limit = OutputLimit {
            hard: 64,
            soft: 0,
            soft_seconds: 0,
        };
        clients.feed_monitors(b"1.0 [0 a] \"ping\"", limit);
        monitor.ready().await;
        let mut out = BytesMut::new();
        monitor.take(&mut out);
        assert_eq!(&out[..], b"+1.0 [0 a] \"ping\"\r\n");
        // Not taken: the queue grows past 64 bytes and the monitor is cut.
        for _ in 0..4 {
            clients.feed_monitors(b"1.0 [0 a] \"ping\"", limit);
        }
        assert!(token.is_cancelled(), "cut off over its hard limit");
        assert_eq!(monitor.pending(), 0, "and its lines dropped");
        drop(registered);
        assert!(!clients.monitored(), "gone with its connection");
    }

    #[tokio::test]
    async fn a_pause_holds_writes_or_everything_until_it_ends() {
        let clients = clients();
        assert!(clients.pause_wait(true).is_none());
        let far = Instant::now() + Duration::from_secs(60);
        clients.pause(PauseMode::Write, far);
        assert!(clients.pause_active());
        assert!(clients.pause_wait(false).is_none(), "reads go on");
        let wait = clients.pause_wait(true).expect("writes wait");
        // A shorter WRITE pause keeps the later end; ALL then widens it.
        clients.pause(PauseMode::Write, Instant::now());
        clients.pause(PauseMode::All, Instant::now());
        assert!(clients.pause_wait(false).is_some(), "everything waits");
        // A less restrictive pause does not narrow ALL.
        clients.pause(PauseMode::Write, Instant::now());
        assert!(clients.pause_wait(false).is_some());
        clients.unpause();
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the waiter wakes on UNPAUSE");
        assert!(clients.pause_wait(true).is_none());
        assert!(!clients.pause_active());
    }

    #[tokio::test]
    async fn a_pause_runs_out() {
        let clients = clients();
        clients.pause(PauseMode::All, Instant::now() + Duration::from_millis(50));
        let wait = clients.pause_wait(false).expect("paused");
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the waiter wakes when the pause ends");
        assert!(clients.pause_wait(true).is_none());
        assert!(!clients.pause_active(), "the gate is closed again");
    }
}
