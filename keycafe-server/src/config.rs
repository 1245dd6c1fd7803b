//! Node configuration: defaults, the optional YAML file, and flags on top.
//!
//! Precedence is flags > file > defaults, so `run-server.sh config.yaml
//! --port 7000` does what it says. Unknown keys in the file are errors: a
//! misspelt `requirepass` must not silently leave a node open.
//!
//! This file says only what the settings are; the layering itself, and
//! `Config::from_yaml_file` / `from_yaml_str`, come from
//! [`keycafe_core::process`] through [`LayeredConfig`], shared with the
//! coordinator.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use keycafe_core::process::{self, BoxError, LayeredConfig, set_if_given};
use keycafe_core::tls::{self, MemberTls, TlsAcceptor};
use keycafe_core::{Limits, addr};
use serde::Deserialize;

use crate::persist::{
    self, AutoRewrite,
    aof::{Fsync, LoadPolicy},
    rules::SaveRules,
};
use crate::store::{Policy, Store};

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. 127.0.0.1 unless you mean to expose the node;
    /// `0.0.0.0` or `::` listens on every address (then set
    /// `announce_host` in cluster mode). IPv6 with or without brackets.
    pub bind: String,
    /// The host other machines reach this node at (a name or an address),
    /// announced to the coordinator and in `MOVED`, `ASK` and `CLUSTER
    /// SLOTS`; `bind` when absent. Never `0.0.0.0` or `::`.
    pub announce_host: Option<String>,
    /// The client port others connect to, when it is not `service_port`
    /// (a port mapped by NAT or a container runtime).
    pub announce_port: Option<u16>,
    /// The bus port others connect to, when it is not the bus port bound.
    pub announce_bus_port: Option<u16>,
    /// Redis's protected mode: bound beyond loopback, the node refuses to
    /// start without `requirepass`, so that it is never open to the
    /// network by accident. Turn off only behind a firewall that does the
    /// same job.
    pub protected_mode: bool,
    /// Client port, serving both the native protocol and RESP2.
    pub service_port: u16,
    /// Cluster bus port; `service_port + 10000` when absent.
    pub cluster_port: Option<u16>,
    /// When set, clients must AUTH with this password before anything else.
    pub requirepass: Option<String>,
    /// Most simultaneous client connections; one more gets an error and is
    /// closed as soon as it is accepted.
    pub maxclients: usize,
    /// A client idle this many seconds is disconnected (Redis's `timeout`;
    /// 0, the default, never). Replica links, the bus and clients waiting
    /// in `WAIT` are not idle clients.
    pub timeout: u64,
    /// A request must arrive whole within this many milliseconds of its
    /// first byte, or the connection is closed (0: no limit). Stops a client
    /// that trickles a request byte by byte from holding a connection and
    /// its buffer for ever.
    pub request_timeout_ms: u64,
    /// How much of its replies a client may leave untaken, per class of
    /// client (Redis's `client-output-buffer-limit`); by default none for
    /// normal clients and 256 MiB hard, 64 MiB for 60 s for replicas.
    /// Most bytes the input and output buffers of all clients together may
    /// hold (Redis's `maxmemory-clients`; 0, the default: no limit). A
    /// client whose buffers grow while the total is over it is closed.
    #[serde(deserialize_with = "crate::store::deserialize_memory")]
    pub maxmemory_clients: usize,
    /// In the file as in Redis: `"normal 0 0 0 replica 256mb 64mb 60"`.
    #[serde(deserialize_with = "deserialize_output_limits")]
    pub client_output_buffer_limit: OutputLimits,
    /// Largest key or value, in bytes.
    pub max_bulk_len: usize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Longest inline command line, in bytes.
    pub max_inline_len: usize,
    /// Default log filter when RUST_LOG is not set (`info`, `debug`, ...).
    pub log_level: String,
    /// How often active expiry runs, in milliseconds.
    pub expiry_interval_ms: u64,
    /// Threads serving connections: 0 means one per CPU core.
    pub threads: usize,
    /// Most bytes the node may hold, counted as `docs/memory.md` says (Redis's
    /// `maxmemory`; 0: no limit): a number, or a string with Redis's units
    /// (`64mb`, `1gb`; k/m/g are powers of 1000, kb/mb/gb of 1024).
    #[serde(deserialize_with = "crate::store::deserialize_memory")]
    pub maxmemory: usize,
    /// What a write finds over `maxmemory`: `noeviction` (an OOM error) or
    /// which keys to evict (`allkeys-lru`, `volatile-ttl`, ...), as in Redis.
    pub maxmemory_policy: Policy,
    /// Keys eviction samples per shard to choose one (1 to 64).
    pub maxmemory_samples: usize,
    /// Coordinator address (`host:port`), or the addresses of every member
    /// of a coordinator group separated by commas. When set, the node runs
    /// in cluster mode: it registers with the (leading) coordinator and
    /// serves the slots it is given. Without it, the node is a standalone
    /// cluster of one that owns every slot.
    pub coordinator: Option<String>,
    /// The cluster secret, shared by every node and the coordinator
    /// (required in cluster mode; at least 16 characters). Members prove
    /// they hold it, on the coordinator link and on every bus link, without
    /// sending it.
    pub cluster_secret: Option<String>,
    /// Most simultaneous cluster-bus connections (from other nodes), apart
    /// from `maxclients`.
    pub bus_maxclients: usize,
    /// A peer silent on the bus for this long is flagged `fail?`; a primary
    /// silent this long is given up on by its replica's link.
    pub node_timeout_ms: u64,
    /// Join as a replica of the primary whose client address (`host:port`)
    /// this is (cluster mode only). Without it the coordinator decides.
    pub replica_of: Option<String>,
    /// Bytes of recent replication stream kept for replicas that reconnect
    /// (allocated when the first replica attaches).
    pub repl_backlog_size: usize,
    /// Port of a TLS listener for clients, beside the plain `service_port`
    /// (Redis's `tls-port`). Equal to `service_port`, the client port speaks
    /// TLS only: that is the port the node announces (CLUSTER SLOTS, MOVED,
    /// the coordinator), so a cluster whose clients use TLS sets it so.
    /// Needs `tls_cert_file` and `tls_key_file`.
    pub tls_port: Option<u16>,
    /// The node's certificate chain (PEM, leaf first).
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signs the certificates of TLS clients (see
    /// `tls_auth_clients`) and of the other members of a TLS cluster.
    pub tls_ca_cert_file: Option<PathBuf>,
    /// With `tls_ca_cert_file` set, TLS clients must present a certificate
    /// signed by that CA (Redis's `tls-auth-clients`; default on). Off, any
    /// client may complete the handshake, and AUTH is what guards the data.
    pub tls_auth_clients: bool,
    /// The cluster's own links speak TLS too (Redis's `tls-cluster`): the
    /// bus port (gossip, migration, replication) and the link to the
    /// coordinator. Mutual: every member presents `tls_cert_file` and
    /// accepts only peers whose certificate `tls_ca_cert_file` signed, so it
    /// needs all three files, and the certificate must be usable as a client
    /// certificate too.
    pub tls_cluster: bool,
    /// Port of an HTTP listener on `bind` serving `GET /metrics` (Prometheus
    /// text) and `GET /health`; off when absent. Read-only and without a
    /// password, like Redis's exporters: restrict it with a firewall. 0
    /// lets the system pick a port (`CONFIG GET metrics-port` tells which).
    pub metrics_port: Option<u16>,
    /// The data directory: the node's identity, its snapshots and its
    /// append-only file (see `docs/persistence.md`). Without one the node
    /// keeps nothing across a restart and registers as a new node.
    pub dir: Option<PathBuf>,
    /// Redis's `save`: snapshot after `seconds` if at least `changes` keys
    /// changed, for each pair; empty for snapshots only on request.
    pub save: String,
    /// Keep an append-only file of every change (Redis's `appendonly`).
    pub appendonly: bool,
    /// When the append-only file is synced: `always`, `everysec` or `no`.
    pub appendfsync: Fsync,
    /// Cut off a torn last block of the append-only file at start, with a
    /// warning (Redis's `aof-load-truncated`); off, the node refuses to start.
    pub aof_load_truncated: bool,
    /// Load what comes before damage in the append-only file's last part
    /// and cut the rest off, instead of refusing to start. Off by default:
    /// it loses every change after the damage.
    pub aof_load_damaged: bool,
    /// Rewrite the append-only file once its increments have grown by this
    /// percentage of its base (Redis's `auto-aof-rewrite-percentage`); 0
    /// turns automatic rewrites off.
    pub auto_aof_rewrite_percentage: u64,
    /// ... and are at least this large (`auto-aof-rewrite-min-size`; bytes,
    /// or 64mb, 1gb, ...).
    #[serde(deserialize_with = "crate::store::deserialize_memory")]
    pub auto_aof_rewrite_min_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".to_string(),
            announce_host: None,
            announce_port: None,
            announce_bus_port: None,
            protected_mode: true,
            service_port: 9814,
            cluster_port: None,
            requirepass: None,
            maxclients: 10_000,
            timeout: 0,
            request_timeout_ms: 60_000,
            maxmemory_clients: 0,
            client_output_buffer_limit: OutputLimits::default(),
            max_bulk_len: Limits::DEFAULT.max_bulk_len,
            max_args: Limits::DEFAULT.max_args,
            max_inline_len: Limits::DEFAULT.max_inline_len,
            log_level: "info".to_string(),
            expiry_interval_ms: 100,
            threads: 0,
            maxmemory: 0,
            maxmemory_policy: Policy::NoEviction,
            maxmemory_samples: Store::DEFAULT_SAMPLES,
            coordinator: None,
            cluster_secret: None,
            bus_maxclients: 1024,
            node_timeout_ms: 5000,
            replica_of: None,
            repl_backlog_size: 32 * 1024 * 1024,
            tls_port: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: true,
            tls_cluster: false,
            metrics_port: None,
            dir: None,
            save: SaveRules::redis_default().to_string(),
            appendonly: false,
            appendfsync: Fsync::Everysec,
            aof_load_truncated: true,
            aof_load_damaged: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
        }
    }
}

impl LayeredConfig for Config {
    fn check(&self) -> Result<(), BoxError> {
        Ok(self.validate()?)
    }
}

impl Config {
    /// Rejects settings that cannot work, with a message that says why.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.maxclients > 0, "maxclients must be at least 1");
        anyhow::ensure!(self.max_args >= 1, "max_args must be at least 1");
        anyhow::ensure!(
            self.expiry_interval_ms > 0,
            "expiry_interval_ms must be at least 1"
        );
        anyhow::ensure!(
            self.requirepass.as_deref() != Some(""),
            "requirepass must not be empty (leave it out to disable AUTH)"
        );
        anyhow::ensure!(
            self.repl_backlog_size >= 16 * 1024,
            "repl_backlog_size must be at least 16384 bytes"
        );
        anyhow::ensure!(self.bus_maxclients > 0, "bus_maxclients must be at least 1");
        anyhow::ensure!(
            (1..=64).contains(&self.maxmemory_samples),
            "maxmemory_samples must be between 1 and 64"
        );
        if self.coordinator.is_some() {
            // Without it anyone who can reach the bus port could read every
            // key (as a replica) or push keys in.
            let Some(secret) = self.cluster_secret.as_deref() else {
                anyhow::bail!(
                    "cluster mode needs the cluster secret shared with the coordinator \
                     (`cluster_secret:` in the YAML, --cluster-secret, or {SECRET_VAR}); \
                     generate one with: openssl rand -hex 32"
                );
            };
            keycafe_core::auth::check_secret(secret).map_err(anyhow::Error::msg)?;
        }
        anyhow::ensure!(
            self.replica_of.is_none() || self.coordinator.is_some(),
            "replica_of needs cluster mode (set coordinator)"
        );
        if let Some(primary) = &self.replica_of {
            anyhow::ensure!(
                primary
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
                "replica_of must be the primary's host:port"
            );
        }
        anyhow::ensure!(
            self.tls_cert_file.is_some() == self.tls_key_file.is_some(),
            "tls_cert_file and tls_key_file go together"
        );
        anyhow::ensure!(
            self.tls_port.is_none() || self.tls_cert_file.is_some(),
            "tls_port needs tls_cert_file and tls_key_file"
        );
        anyhow::ensure!(
            self.tls_ca_cert_file.is_none() || self.tls_cert_file.is_some(),
            "tls_ca_cert_file needs tls_cert_file and tls_key_file"
        );
        anyhow::ensure!(
            !self.tls_cluster || (self.tls_cert_file.is_some() && self.tls_ca_cert_file.is_some()),
            "tls_cluster needs tls_cert_file, tls_key_file and tls_ca_cert_file \
             (members present their certificate and check each other's)"
        );
        anyhow::ensure!(
            !self.tls_cluster || self.coordinator.is_some(),
            "tls_cluster needs cluster mode (set coordinator)"
        );
        self.check_metrics_port()?;
        SaveRules::parse(&self.save).map_err(|reason| anyhow::anyhow!("save: {reason}"))?;
        anyhow::ensure!(
            !self.appendonly || self.dir.is_some(),
            "appendonly needs a data directory (`dir:` in the YAML, or --dir)"
        );
        self.validate_addresses()
    }

    /// `bind` is an address; what is announced is something others can
    /// reach; and a node open to the network has a password.
    fn validate_addresses(&self) -> anyhow::Result<()> {
        self.bind_ip()?;
        if let Some(host) = &self.announce_host {
            anyhow::ensure!(
                addr::is_announceable(host),
                "announce_host {host:?} cannot be announced: give the name or address other \
                 machines reach this node at (not 0.0.0.0 or ::)"
            );
        }
        for (key, port) in [
            ("announce_port", self.announce_port),
            ("announce_bus_port", self.announce_bus_port),
        ] {
            anyhow::ensure!(port != Some(0), "{key} must be a port from 1 to 65535");
        }
        if let Some(coordinators) = &self.coordinator {
            let listed = coordinators
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty());
            let mut count = 0;
            for coordinator in listed {
                anyhow::ensure!(
                    addr::split(coordinator).is_some(),
                    "coordinator {coordinator:?} is not host:port (list a group's members \
                     separated by commas: a:9800,b:9800,c:9800)"
                );
                count += 1;
            }
            anyhow::ensure!(count > 0, "coordinator names no address");
        }
        if self.coordinator.is_some() && self.announce_host.is_none() {
            anyhow::ensure!(
                !addr::is_unspecified(&self.bind),
                "bind {} listens on every address, so this node cannot tell which one the \
                 others reach it at: set announce_host (`announce_host:` in the YAML or \
                 --announce-host) to this machine's name or address",
                self.bind
            );
        }
        if self.protected_mode && !addr::is_loopback(&self.bind) {
            anyhow::ensure!(
                self.requirepass.is_some(),
                "protected mode: bind {} accepts connections from other machines, but no \
                 password is set, so anyone who reaches port {} could read and change every \
                 key. Set requirepass (`requirepass:` in the YAML or --requirepass), or bind \
                 127.0.0.1, or set protected_mode: false (--protected-mode no) if a firewall \
                 already keeps strangers out",
                self.bind,
                self.service_port
            );
        }
        Ok(())
    }

    /// The IP address `bind` names.
    pub fn bind_ip(&self) -> anyhow::Result<IpAddr> {
        addr::parse_ip(&self.bind).with_context(|| {
            format!(
                "invalid bind address {:?}: expected an IP address such as 127.0.0.1, \
                 0.0.0.0 or ::",
                self.bind
            )
        })
    }

    /// `port` on the bound address.
    pub fn listen_addr(&self, port: u16) -> anyhow::Result<SocketAddr> {
        Ok(SocketAddr::new(self.bind_ip()?, port))
    }

    /// The host others reach this node at: `announce_host`, or the bound
    /// address. Empty for a standalone node bound to every address without
    /// an `announce_host`: as in Redis, `CLUSTER SLOTS` then says "the host
    /// you asked" (validation refuses that in cluster mode).
    pub fn announced_host(&self) -> String {
        let host = self.announce_host.as_deref().unwrap_or(&self.bind);
        if addr::is_unspecified(host) {
            return String::new();
        }
        addr::unbracket(host).to_string()
    }

    /// The client address announced (`host:port`, IPv6 without brackets).
    pub fn announced_client_addr(&self) -> String {
        let port = self.announce_port.unwrap_or(self.service_port);
        addr::join(&self.announced_host(), port)
    }

    /// The bus address announced.
    pub fn announced_bus_addr(&self) -> String {
        let port = self.announce_bus_port.unwrap_or_else(|| self.bus_port());
        addr::join(&self.announced_host(), port)
    }

    /// `metrics_port` must not be a port the node serves something else on.
    fn check_metrics_port(&self) -> anyhow::Result<()> {
        let Some(port) = self.metrics_port.filter(|&port| port != 0) else {
            return Ok(());
        };
        let taken = [
            ("service_port", Some(self.service_port)),
            ("tls_port", self.tls_port),
            (
                "cluster_port",
                self.coordinator.as_ref().map(|_| self.bus_port()),
            ),
        ];
        for (name, other) in taken {
            anyhow::ensure!(
                other != Some(port),
                "metrics_port {port} is also {name}: give the metrics their own port"
            );
        }
        Ok(())
    }

    /// Where and how to persist, if a data directory is set.
    pub fn persistence(&self) -> Option<(PathBuf, persist::Settings)> {
        let dir = self.dir.clone()?;
        let settings = persist::Settings {
            // Checked by `validate`.
            save: SaveRules::parse(&self.save).unwrap_or_else(|_| SaveRules(Vec::new())),
            appendonly: self.appendonly,
            appendfsync: self.appendfsync,
            load: LoadPolicy {
                truncated: self.aof_load_truncated,
                damaged: self.aof_load_damaged,
            },
            auto_rewrite: AutoRewrite {
                percentage: self.auto_aof_rewrite_percentage,
                min_size: self.auto_aof_rewrite_min_size as u64,
            },
        };
        Some((dir, settings))
    }

    /// True when the client port itself speaks TLS only (`tls_port` equal
    /// to `service_port`): no plain listener, and the announced address is
    /// the TLS one.
    pub fn client_port_is_tls(&self) -> bool {
        self.tls_port == Some(self.service_port)
    }

    /// The client port's TLS settings from `tls_cert_file`, `tls_key_file`
    /// and (with `tls_auth_clients`) `tls_ca_cert_file`, read now so that a
    /// bad file stops the node at start-up; `None` when no certificate is
    /// configured.
    pub fn tls_acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        let client_ca = self
            .tls_ca_cert_file
            .as_deref()
            .filter(|_| self.tls_auth_clients);
        let config =
            tls::server_config(cert, key, client_ca).context("loading the TLS settings")?;
        Ok(Some(TlsAcceptor::from(config)))
    }

    /// The settings for the cluster's own links when `tls_cluster` is on
    /// (read now, like [`Config::tls_acceptor`]).
    pub fn member_tls(&self) -> anyhow::Result<Option<MemberTls>> {
        let (true, Some(cert), Some(key), Some(ca)) = (
            self.tls_cluster,
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_ca_cert_file,
        ) else {
            return Ok(None);
        };
        let member =
            MemberTls::load(cert, key, ca).context("loading the cluster's TLS settings")?;
        Ok(Some(member))
    }

    /// The address the client port binds.
    pub fn client_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen_addr(self.service_port)
    }

    /// The cluster bus port (client port + 10000 unless configured).
    pub fn bus_port(&self) -> u16 {
        self.cluster_port
            .unwrap_or_else(|| self.service_port.wrapping_add(10_000))
    }

    /// Decoder limits derived from this configuration.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.max_bulk_len,
            max_args: self.max_args,
            max_inline_len: self.max_inline_len,
            ..Limits::DEFAULT
        }
    }
}

/// Redis's `client-output-buffer-limit` for one class of client: a client
/// that leaves more than `hard` bytes of replies untaken, or more than
/// `soft` bytes for `soft_seconds` in a row, is disconnected. Zero turns a
/// limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// True when neither limit applies.
    pub fn is_off(&self) -> bool {
        self.hard == 0 && self.soft == 0
    }

    /// Whether `pending` bytes, untaken since `over_soft_since` (when they
    /// were already over the soft limit) with the client not reading now,
    /// break the limit: `Err` says which. `Ok` gives how long the client
    /// may still take before the soft limit is broken, if it is over it.
    pub fn check(
        &self,
        pending: usize,
        over_soft_for: Option<std::time::Duration>,
    ) -> Result<Option<std::time::Duration>, &'static str> {
        if self.hard > 0 && pending > self.hard {
            return Err("hard");
        }
        if self.soft == 0 || pending <= self.soft {
            return Ok(None);
        }
        let allowed = std::time::Duration::from_secs(self.soft_seconds);
        match allowed.checked_sub(over_soft_for.unwrap_or_default()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err("soft"),
        }
    }
}

/// [`OutputLimit`]s for the classes of client Keycafe has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Clients on the client port.
    pub normal: OutputLimit,
    /// Replicas: bytes of the replication stream not yet sent to one.
    pub replica: OutputLimit,
}

impl Default for OutputLimits {
    /// Redis's defaults: none for normal clients, 256 MiB hard and 64 MiB
    /// for 60 s for replicas.
    fn default() -> OutputLimits {
        OutputLimits {
            normal: OutputLimit::default(),
            replica: OutputLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputLimits {
    /// These limits with the classes `text` names replaced, in Redis's form:
    /// `class hard soft seconds`, repeated, sizes with Redis's units
    /// (`256mb`). `replica` may be spelt `slave`; `pubsub` is accepted so
    /// that Redis's whole default string can be given, and bounds nothing
    /// (Keycafe has no Pub/Sub).
    pub fn updated(mut self, text: &str) -> Result<OutputLimits, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("wrong number of arguments: class hard soft seconds, repeated".into());
        }
        for group in words.chunks(4) {
            let limit = OutputLimit {
                hard: crate::store::parse_memory(group[1])?,
                soft: crate::store::parse_memory(group[2])?,
                soft_seconds: group[3]
                    .parse()
                    .map_err(|_| format!("{:?} is not a number of seconds", group[3]))?,
            };
            match group[0].to_ascii_lowercase().as_str() {
                "normal" => self.normal = limit,
                "replica" | "slave" => self.replica = limit,
                "pubsub" => {}
                other => return Err(format!("invalid client class {other:?}")),
            }
        }
        Ok(self)
    }
}

impl std::fmt::Display for OutputLimits {
    /// As CONFIG GET shows it, in bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, r) = (self.normal, self.replica);
        write!(
            f,
            "normal {} {} {} replica {} {} {}",
            n.hard, n.soft, n.soft_seconds, r.hard, r.soft, r.soft_seconds
        )
    }
}

fn deserialize_output_limits<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<OutputLimits, D::Error> {
    let text = String::deserialize(deserializer)?;
    OutputLimits::default()
        .updated(&text)
        .map_err(serde::de::Error::custom)
}

/// Command-line flags; each one given overrides the file.
#[derive(Debug, Default, clap::Parser)]
#[command(name = "keycafe-server", version, about = "A Keycafe node")]
pub struct Flags {
    /// YAML configuration file (optional).
    pub config: Option<PathBuf>,
    /// Address to listen on (0.0.0.0 or :: for every address).
    #[arg(long)]
    pub bind: Option<String>,
    /// The name or address other machines reach this node at.
    #[arg(long)]
    pub announce_host: Option<String>,
    /// The client port to announce, if not the one bound.
    #[arg(long)]
    pub announce_port: Option<u16>,
    /// The bus port to announce, if not the one bound.
    #[arg(long)]
    pub announce_bus_port: Option<u16>,
    /// Refuse to start bound beyond loopback without requirepass (`yes`/`no`).
    #[arg(long, value_parser = process::yes_no)]
    pub protected_mode: Option<bool>,
    /// Client port.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Cluster bus port.
    #[arg(long)]
    pub cluster_port: Option<u16>,
    /// Password clients must AUTH with.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// Maximum simultaneous clients.
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Disconnect clients idle this many seconds (0 = never).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// A request must arrive whole within this many ms of its first byte (0 = no limit).
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Default log filter (RUST_LOG wins when set).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Threads serving connections (0 = one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most memory the node may hold: bytes, or 64mb, 1gb, ... (0 = no limit).
    #[arg(long, value_parser = crate::store::parse_memory)]
    pub maxmemory: Option<usize>,
    /// What to do over maxmemory: noeviction, allkeys-lru, allkeys-lfu,
    /// volatile-lru, volatile-lfu, volatile-ttl, allkeys-random, volatile-random.
    #[arg(long)]
    pub maxmemory_policy: Option<Policy>,
    /// Keys eviction samples per shard (1 to 64).
    #[arg(long)]
    pub maxmemory_samples: Option<usize>,
    /// Coordinator address (`host:port`, or a group's, comma-separated): run in cluster mode.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// The cluster secret (visible to `ps`; prefer the
    /// KEYCAFE_CLUSTER_SECRET environment variable or the YAML file).
    #[arg(long)]
    pub cluster_secret: Option<String>,
    /// Join as a replica of the primary at this client address (`host:port`).
    #[arg(long)]
    pub replica_of: Option<String>,
    /// Silence after which a peer or a primary is considered unreachable (ms).
    #[arg(long)]
    pub node_timeout_ms: Option<u64>,
    /// Replication backlog size in bytes.
    #[arg(long)]
    pub repl_backlog_size: Option<usize>,
    /// Port of a TLS listener for clients (the client port itself if equal to it).
    #[arg(long)]
    pub tls_port: Option<u16>,
    /// The node's TLS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of the TLS certificate (PEM).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signs client and member certificates.
    #[arg(long)]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must present a certificate (`yes`/`no`).
    #[arg(long, value_parser = process::yes_no)]
    pub tls_auth_clients: Option<bool>,
    /// The bus and the coordinator link speak TLS too (`yes`/`no`).
    #[arg(long, value_parser = process::yes_no)]
    pub tls_cluster: Option<bool>,
    /// Serve GET /metrics and /health over HTTP on this port (on `bind`).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// The data directory (identity, snapshots, append-only file).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Save rules: "seconds changes" pairs, e.g. "3600 1 300 100"; "" for none.
    #[arg(long)]
    pub save: Option<String>,
    /// Keep an append-only file (`yes`/`no`).
    #[arg(long, value_parser = process::yes_no)]
    pub appendonly: Option<bool>,
    /// When to sync the append-only file: always, everysec or no.
    #[arg(long, value_parser = parse_fsync)]
    pub appendfsync: Option<Fsync>,
}

/// `--appendfsync` values.
fn parse_fsync(value: &str) -> Result<Fsync, String> {
    Fsync::parse(value).ok_or_else(|| format!("{value:?} is not always, everysec or no"))
}

/// The environment variable that may hold the cluster secret (below a
/// flag, above the YAML file).
pub const SECRET_VAR: &str = "KEYCAFE_CLUSTER_SECRET";

impl Flags {
    /// The file (if any) with these flags applied on top.
    pub fn into_config(mut self) -> anyhow::Result<Config> {
        let file = self.config.take();
        let config = process::load(file.as_deref(), |config: &mut Config| {
            set_if_given(&mut config.bind, self.bind);
            set_if_given(&mut config.announce_host, self.announce_host.map(Some));
            set_if_given(&mut config.announce_port, self.announce_port.map(Some));
            set_if_given(
                &mut config.announce_bus_port,
                self.announce_bus_port.map(Some),
            );
            set_if_given(&mut config.protected_mode, self.protected_mode);
            set_if_given(&mut config.service_port, self.port);
            set_if_given(&mut config.cluster_port, self.cluster_port.map(Some));
            set_if_given(&mut config.requirepass, self.requirepass.map(Some));
            set_if_given(&mut config.maxclients, self.maxclients);
            set_if_given(&mut config.timeout, self.timeout);
            set_if_given(&mut config.request_timeout_ms, self.request_timeout_ms);
            set_if_given(&mut config.log_level, self.log_level);
            set_if_given(&mut config.threads, self.threads);
            set_if_given(&mut config.maxmemory, self.maxmemory);
            set_if_given(&mut config.maxmemory_policy, self.maxmemory_policy);
            set_if_given(&mut config.maxmemory_samples, self.maxmemory_samples);
            set_if_given(&mut config.coordinator, self.coordinator.map(Some));
            let secret = self
                .cluster_secret
                .or_else(|| std::env::var(SECRET_VAR).ok());
            set_if_given(&mut config.cluster_secret, secret.map(Some));
            set_if_given(&mut config.replica_of, self.replica_of.map(Some));
            set_if_given(&mut config.node_timeout_ms, self.node_timeout_ms);
            set_if_given(&mut config.repl_backlog_size, self.repl_backlog_size);
            set_if_given(&mut config.tls_port, self.tls_port.map(Some));
            set_if_given(&mut config.tls_cert_file, self.tls_cert_file.map(Some));
            set_if_given(&mut config.tls_key_file, self.tls_key_file.map(Some));
            set_if_given(
                &mut config.tls_ca_cert_file,
                self.tls_ca_cert_file.map(Some),
            );
            set_if_given(&mut config.tls_auth_clients, self.tls_auth_clients);
            set_if_given(&mut config.tls_cluster, self.tls_cluster);
            set_if_given(&mut config.metrics_port, self.metrics_port.map(Some));
            set_if_given(&mut config.dir, self.dir.map(Some));
            set_if_given(&mut config.save, self.save);
            set_if_given(&mut config.appendonly, self.appendonly);
            set_if_given(&mut config.appendfsync, self.appendfsync);
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_style_file() {
        let config = Config::from_yaml_str("service_port: 9815\ncluster_port: 19815\n").unwrap();
        assert_eq!(config.service_port, 9815);
        assert_eq!(config.bus_port(), 19815);
        assert_eq!(config.bind, "127.0.0.1");
    }

    #[test]
    fn bus_port_defaults_to_client_port_plus_10000() {
        assert_eq!(Config::default().bus_port(), 19814);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::from_yaml_str("requirepas: x\n").is_err());
        assert!(Config::from_yaml_str("service_port: 70000\n").is_err());
        assert!(Config::from_yaml_str("maxclients: 0\n").is_err());
        assert!(Config::from_yaml_str("bind: not an address\n").is_err());
        assert!(Config::from_yaml_str("").is_ok());
        assert!(Config::from_yaml_str("replica_of: 127.0.0.1:9814\n").is_err());
        let replica = "coordinator: 127.0.0.1:9800\nreplica_of: 127.0.0.1:9814\n";
        let secret = "cluster_secret: a long enough secret\n";
        assert!(Config::from_yaml_str(&format!("{replica}{secret}")).is_ok());
        assert!(Config::from_yaml_str("coordinator: a:1\nreplica_of: nope\n").is_err());
    }

    #[test]
    fn announced_addresses_come_from_announce_or_bind() {
        let config = Config::from_yaml_str("bind: '[::1]'\nservice_port: 7000\n").unwrap();
        assert_eq!(config.client_addr().unwrap().to_string(), "[::1]:7000");
        assert_eq!(config.announced_client_addr(), "::1:7000");
        assert_eq!(config.announced_bus_addr(), "::1:17000");
        let yaml = "bind: 0.0.0.0\nrequirepass: pw\nannounce_host: node-1\n\
                    announce_port: 30001\nannounce_bus_port: 30002\n";
        let config = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(
            config.listen_addr(19814).unwrap().to_string(),
            "0.0.0.0:19814"
        );
        assert_eq!(config.announced_client_addr(), "node-1:30001");
        assert_eq!(config.announced_bus_addr(), "node-1:30002");
        // Standalone on every address: "the host you asked", as in Redis.
        let config = Config::from_yaml_str("bind: '::'\nrequirepass: pw\n").unwrap();
        assert_eq!(config.announced_host(), "");
    }

    #[test]
    fn a_cluster_member_bound_everywhere_must_say_where_it_is_reached() {
        let member = "coordinator: 10.0.0.1:9800\ncluster_secret: a long enough secret\n\
                      requirepass: pw\n";
        for bind in ["0.0.0.0", "'::'"] {
            let err = Config::from_yaml_str(&format!("{member}bind: {bind}\n")).unwrap_err();
            assert!(format!("{err:#}").contains("announce_host"), "{err:#}");
            let announced = format!("{member}bind: {bind}\nannounce_host: 10.0.0.7\n");
            assert!(Config::from_yaml_str(&announced).is_ok(), "{bind}");
        }
        for host in ["0.0.0.0", "'::'", "''", "'a b'", "'[::1'"] {
            let yaml = format!("{member}bind: 10.0.0.7\nannounce_host: {host}\n");
            assert!(Config::from_yaml_str(&yaml).is_err(), "{host}");
        }
        assert!(Config::from_yaml_str("announce_port: 0\n").is_err());
        let group = "cluster_secret: a long enough secret\ncoordinator: 'a:1, b:2,c:3'\n";
        assert!(Config::from_yaml_str(group).is_ok());
        let broken = "cluster_secret: a long enough secret\ncoordinator: 'a:1,b'\n";
        assert!(Config::from_yaml_str(broken).is_err());
    }

    #[test]
    fn protected_mode_wants_a_password_beyond_loopback() {
        for bind in ["0.0.0.0", "10.0.0.7", "'::'", "'fd00::7'"] {
            let err = Config::from_yaml_str(&format!("bind: {bind}\n")).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("protected mode") && text.contains("requirepass"),
                "{text}"
            );
            let with_password = format!("bind: {bind}\nrequirepass: pw\n");
            assert!(Config::from_yaml_str(&with_password).is_ok(), "{bind}");
            let unprotected = format!("bind: {bind}\nprotected_mode: false\n");
            assert!(Config::from_yaml_str(&unprotected).is_ok(), "{bind}");
        }
        for bind in ["127.0.0.1", "127.0.0.2", "'::1'"] {
            assert!(
                Config::from_yaml_str(&format!("bind: {bind}\n")).is_ok(),
                "{bind}"
            );
        }
    }

    #[test]
    fn cluster_mode_needs_a_real_secret() {
        let cluster = "coordinator: 127.0.0.1:9800\n";
        let err = Config::from_yaml_str(cluster).unwrap_err().to_string();
        assert!(err.contains("cluster secret"), "{err}");
        let short = format!("{cluster}cluster_secret: short\n");
        assert!(Config::from_yaml_str(&short).is_err());
        // Standalone needs none.
        assert!(Config::from_yaml_str("service_port: 7000\n").is_ok());
    }

    #[test]
    fn the_demo_configurations_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        // The files leave the secret out: the demo passes a fresh one in
        // the environment.
        let load = |name: &str| {
            let yaml = std::fs::read_to_string(root.join(name)).unwrap();
            Config::from_yaml_str(&format!("{yaml}\ncluster_secret: the demo's secret\n")).unwrap()
        };
        for name in ["config.yaml", "config2.yaml", "config3.yaml"] {
            let config = load(name);
            assert!(config.coordinator.is_some() && config.replica_of.is_none());
        }
        for (name, primary) in [
            ("config4.yaml", 9814),
            ("config5.yaml", 9815),
            ("config6.yaml", 9816),
        ] {
            let config = load(name);
            assert_eq!(config.replica_of, Some(format!("127.0.0.1:{primary}")));
        }
    }

    #[test]
    fn tls_settings_come_together() {
        let files = "tls_cert_file: node.crt\ntls_key_file: node.key\n";
        let config = Config::from_yaml_str(&format!("{files}tls_port: 9824\n")).unwrap();
        assert_eq!(config.tls_port, Some(9824));
        assert!(!config.client_port_is_tls());
        let only = Config::from_yaml_str(&format!("{files}tls_port: 9814\n")).unwrap();
        assert!(only.client_port_is_tls());
        assert!(Config::from_yaml_str(files).is_ok());
        assert!(Config::from_yaml_str("tls_port: 9824\n").is_err());
        assert!(Config::from_yaml_str("tls_cert_file: node.crt\n").is_err());
        assert!(Config::from_yaml_str("tls_ca_cert_file: ca.crt\n").is_err());
        // The files are read when the node starts, and a missing one names itself.
        let Err(err) = only.tls_acceptor() else {
            panic!("node.crt does not exist");
        };
        assert!(format!("{err:#}").contains("node.crt"), "{err:#}");
        assert!(Config::default().tls_acceptor().unwrap().is_none());
    }

    #[test]
    fn a_tls_cluster_needs_all_three_files_and_a_coordinator() {
        let cluster = "coordinator: 127.0.0.1:7000\ncluster_secret: a long enough secret\n";
        let files = "tls_cert_file: node.crt\ntls_key_file: node.key\n";
        let on = "tls_cluster: true\n";
        let ca = "tls_ca_cert_file: ca.crt\n";
        assert!(Config::from_yaml_str(&format!("{cluster}{files}{ca}{on}")).is_ok());
        for missing in [
            format!("{cluster}{files}{on}"),
            format!("{cluster}{on}"),
            format!("{files}{ca}{on}"),
        ] {
            assert!(Config::from_yaml_str(&missing).is_err(), "{missing}");
        }
        let off = Config::from_yaml_str(&format!("{cluster}{files}{ca}")).unwrap();
        assert!(off.member_tls().unwrap().is_none());
    }

    #[test]
    fn output_limits_as_redis_counts_them() {
        let limit = OutputLimit {
            hard: 1000,
            soft: 100,
            soft_seconds: 2,
        };
        let second = std::time::Duration::from_secs(1);
        assert_eq!(limit.check(100, None), Ok(None));
        assert_eq!(limit.check(1001, None), Err("hard"));
        assert_eq!(limit.check(500, None), Ok(Some(2 * second)));
        assert_eq!(limit.check(500, Some(second)), Ok(Some(second)));
        assert_eq!(limit.check(500, Some(2 * second)), Err("soft"));
        assert!(OutputLimit::default().is_off());
        assert_eq!(OutputLimit::default().check(usize::MAX, None), Ok(None));
        assert_eq!(OutputLimits::default().replica.hard, 256 << 20);
    }

    #[test]
    fn output_limits_read_as_redis_writes_them() {
        let yaml = "client_output_buffer_limit: normal 1mb 256kb 10 pubsub 32mb 8mb 60\n";
        let config = Config::from_yaml_str(yaml).unwrap();
        let limits = config.client_output_buffer_limit;
        assert_eq!(
            limits.normal,
            OutputLimit {
                hard: 1 << 20,
                soft: 256 << 10,
                soft_seconds: 10
            }
        );
        assert_eq!(limits.replica, OutputLimits::default().replica);
        let text = limits.to_string();
        assert_eq!(OutputLimits::default().updated(&text), Ok(limits));
        for bad in [
            "normal 1mb",
            "teachers 0 0 0",
            "normal lots 0 0",
            "normal 0 0 soon",
        ] {
            assert!(OutputLimits::default().updated(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_metrics_port_is_its_own() {
        let config = Config::from_yaml_str("metrics_port: 9914\n").unwrap();
        assert_eq!(config.metrics_port, Some(9914));
        assert_eq!(Config::default().metrics_port, None);
        assert!(Config::from_yaml_str("metrics_port: 0\n").is_ok());
        let err = Config::from_yaml_str("metrics_port: 9814\n").unwrap_err();
        assert!(format!("{err:#}").contains("service_port"), "{err:#}");
        let cluster = "coordinator: 127.0.0.1:9800\ncluster_secret: a long enough secret\n";
        let bus = format!("{cluster}metrics_port: 19814\n");
        assert!(Config::from_yaml_str(&bus).is_err());
        // Standalone, the bus port is not in use.
        assert!(Config::from_yaml_str("metrics_port: 19814\n").is_ok());
        let flags = Flags {
            metrics_port: Some(9915),
            ..Flags::default()
        };
        assert_eq!(flags.into_config().unwrap().metrics_port, Some(9915));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.yaml");
        std::fs::write(&path, "service_port: 9815\nrequirepass: secret\n").unwrap();
        let flags = Flags {
            config: Some(path),
            port: Some(7000),
            ..Flags::default()
        };
        let config = flags.into_config().unwrap();
        assert_eq!(config.service_port, 7000);
        assert_eq!(config.requirepass.as_deref(), Some("secret"));
    }
}
