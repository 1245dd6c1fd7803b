//! Settings that may change while the node runs, and the table through which
//! `CONFIG GET` and `CONFIG SET` see every setting.
//!
//! A node's [`Config`] is fixed when it starts. The settings Redis lets
//! `CONFIG SET` change live on here instead: as atomics in [`Runtime`], which
//! the per-command path reads without a lock (a write checks `maxmemory`
//! with one load when it is unset), or where the part that uses them keeps
//! them (the eviction policy and sample count live in the store, which reads
//! the policy on every key access).
//!
//! [`SETTINGS`] lists what CONFIG knows, by Redis's names. Each row says how
//! to read a setting and, for one that may change at run time, how to check
//! and apply a new value; a row without a setter is fixed until restart, and
//! `CONFIG SET` says so. Making another setting changeable at run time
//! (`timeout`, `maxclients`, ...) is an atomic field in [`Runtime`], read
//! where it is used, and a row with a setter.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use crate::config::{Config, OutputLimit, OutputLimits};
use crate::persist::Persistence;
use crate::persist::aof::Fsync;
use crate::persist::rules::SaveRules;
use crate::store::{Policy, Store, now_ms, parse_memory};

/// The settings that may change at run time and have no other home.
#[derive(Debug, Default)]
pub struct Runtime {
    /// Redis's `maxmemory`: most bytes the node may hold, 0 for no limit.
    maxmemory: AtomicUsize,
    /// Most client connections (`maxclients`).
    maxclients: AtomicUsize,
    /// Seconds a client may be idle (`timeout`), 0 for ever.
    timeout: AtomicU64,
    /// Milliseconds a request may take to arrive whole, 0 for ever.
    request_timeout_ms: AtomicU64,
    /// Most bytes all client buffers together may hold
    /// (`maxmemory-clients`), 0 for no limit.
    maxmemory_clients: AtomicUsize,
    /// `client-output-buffer-limit`, normal class then replica class.
    output_limits: [AtomicOutputLimit; 2],
    /// Microseconds a command must take to enter the slow log
    /// (`slowlog-log-slower-than`): 0 logs every command, -1 none.
    slowlog_slower_than_us: AtomicI64,
    /// Most entries the slow log keeps (`slowlog-max-len`).
    slowlog_max_len: AtomicUsize,
    /// Milliseconds a command must take to be a latency event
    /// (`latency-monitor-threshold`); 0: the monitor is off.
    latency_threshold_ms: AtomicU64,
}

/// Redis's default `slowlog-log-slower-than`: 10 ms.
pub const DEFAULT_SLOWLOG_SLOWER_THAN_US: i64 = 10_000;
/// Redis's default `slowlog-max-len`.
pub const DEFAULT_SLOWLOG_MAX_LEN: usize = 128;

/// An [`OutputLimit`] in atomics: read whole on every write that finds a
/// client's socket full, which does not need the three to agree exactly.
#[derive(Debug, Default)]
struct AtomicOutputLimit([AtomicU64; 3]);

impl AtomicOutputLimit {
    fn new(limit: OutputLimit) -> AtomicOutputLimit {
        let this = AtomicOutputLimit::default();
        this.store(limit);
        this
    }

    fn load(&self) -> OutputLimit {
        let [hard, soft, seconds] = self.0.each_ref().map(|n| n.load(Ordering::Relaxed));
        OutputLimit {
            hard: hard as usize,
            soft: soft as usize,
            soft_seconds: seconds,
        }
    }

    fn store(&self, limit: OutputLimit) {
        let values = [limit.hard as u64, limit.soft as u64, limit.soft_seconds];
        for (atomic, value) in self.0.iter().zip(values) {
            atomic.store(value, Ordering::Relaxed);
        }
    }
}

impl Runtime {
    /// The settings as the configuration starts them.
    pub fn new(config: &Config) -> Runtime {
        let limits = config.client_output_buffer_limit;
        Runtime {
            maxmemory: AtomicUsize::new(config.maxmemory),
            maxclients: AtomicUsize::new(config.maxclients),
            timeout: AtomicU64::new(config.timeout),
            request_timeout_ms: AtomicU64::new(config.request_timeout_ms),
            maxmemory_clients: AtomicUsize::new(config.maxmemory_clients),
            output_limits: [limits.normal, limits.replica].map(AtomicOutputLimit::new),
            slowlog_slower_than_us: AtomicI64::new(DEFAULT_SLOWLOG_SLOWER_THAN_US),
            slowlog_max_len: AtomicUsize::new(DEFAULT_SLOWLOG_MAX_LEN),
            latency_threshold_ms: AtomicU64::new(0),
        }
    }

    /// Microseconds a command must take to enter the slow log; `None`:
    /// the slow log is off. Read once per command.
    pub fn slowlog_slower_than_us(&self) -> Option<u64> {
        u64::try_from(self.slowlog_slower_than_us.load(Ordering::Relaxed)).ok()
    }

    /// Most entries the slow log keeps.
    pub fn slowlog_max_len(&self) -> usize {
        self.slowlog_max_len.load(Ordering::Relaxed)
    }

    /// Milliseconds a command must take to be a latency event; `None`: the
    /// latency monitor is off. Read once per command.
    pub fn latency_threshold_ms(&self) -> Option<u64> {
        let ms = self.latency_threshold_ms.load(Ordering::Relaxed);
        (ms > 0).then_some(ms)
    }

    /// Most client connections.
    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// How long a client may be idle between requests; `None`: for ever.
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        let seconds = self.timeout.load(Ordering::Relaxed);
        (seconds > 0).then(|| std::time::Duration::from_secs(seconds))
    }

    /// How long a request may take to arrive whole; `None`: for ever.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        let ms = self.request_timeout_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// Most bytes all client buffers together may hold; 0: no limit.
    pub fn maxmemory_clients(&self) -> usize {
        self.maxmemory_clients.load(Ordering::Relaxed)
    }

    /// The output buffer limit of normal clients (read on every write).
    pub fn normal_output_limit(&self) -> OutputLimit {
        self.output_limits[0].load()
    }

    /// The output buffer limits of both classes of client.
    pub fn output_limits(&self) -> OutputLimits {
        let [normal, replica] = self.output_limits.each_ref().map(AtomicOutputLimit::load);
        OutputLimits { normal, replica }
    }

    /// Most bytes the node may hold; 0 for no limit.
    pub fn maxmemory(&self) -> usize {
        self.maxmemory.load(Ordering::Relaxed)
    }

    pub fn set_maxmemory(&self, bytes: usize) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }
}

/// The parts of a node CONFIG reads settings from and writes them to.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub config: &'a Config,
    pub runtime: &'a Runtime,
    pub store: &'a Arc<Store>,
    /// The data directory's snapshots and append-only file, if any.
    pub persistence: Option<&'a Arc<Persistence>>,
}

/// Whether a setter only checks a value or also applies it: `CONFIG SET`
/// with several settings checks them all before it changes any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Check,
    Apply,
}

/// Checks (and in [`Mode::Apply`], applies) a new value; the error is the
/// reason, as Redis words it after "argument".
type Setter = fn(Node<'_>, &str, Mode) -> Result<(), String>;

/// One setting as CONFIG sees it.
pub struct Setting {
    /// Redis's name (`maxmemory-policy`).
    pub name: &'static str,
    get: fn(Node<'_>) -> String,
    /// `None`: fixed until the node restarts.
    set: Option<Setter>,
}

impl Setting {
    const fn live(name: &'static str, get: fn(Node<'_>) -> String, set: Setter) -> Setting {
        Setting {
            name,
            get,
            set: Some(set),
        }
    }

    const fn fixed(name: &'static str, get: fn(Node<'_>) -> String) -> Setting {
        Setting {
            name,
            get,
            set: None,
        }
    }

    /// The current value, as CONFIG GET shows it.
    pub fn value(&self, node: Node<'_>) -> String {
        (self.get)(node)
    }

    /// True if CONFIG SET may change it.
    pub fn is_live(&self) -> bool {
        self.set.is_some()
    }
}

/// Every setting CONFIG knows, in the order CONFIG GET lists them: every
/// setting of the node's configuration (by Redis's name where Redis has the
/// setting, else by the configuration file's with dashes), and the ones
/// Keycafe has fixed (`databases`, `cluster-enabled`). Only
/// `cluster-secret` is left out: it lets a process join the cluster, which
/// is more than a client that may run CONFIG should learn.
pub static SETTINGS: &[Setting] = &[
    Setting::live(
        "maxmemory",
        |n| n.runtime.maxmemory().to_string(),
        set_maxmemory,
    ),
    Setting::live(
        "maxmemory-policy",
        |n| n.store.policy().name().to_string(),
        set_policy,
    ),
    Setting::live(
        "maxmemory-samples",
        |n| n.store.samples().to_string(),
        set_samples,
    ),
    Setting::fixed("bind", |n| n.config.bind.clone()),
    Setting::fixed("port", |n| n.config.service_port.to_string()),
    Setting::fixed("cluster-port", |n| n.config.bus_port().to_string()),
    // Redis's names for what a node announces (0: the port bound).
    Setting::fixed("cluster-announce-hostname", |n| {
        n.config.announce_host.clone().unwrap_or_default()
    }),
    Setting::fixed("cluster-announce-port", |n| {
        n.config.announce_port.unwrap_or(0).to_string()
    }),
    Setting::fixed("cluster-announce-bus-port", |n| {
        n.config.announce_bus_port.unwrap_or(0).to_string()
    }),
    Setting::fixed("protected-mode", |n| {
        if n.config.protected_mode { "yes" } else { "no" }.to_string()
    }),
    // The port bound (0 asks the system for one), or 0 when off.
    Setting::fixed("metrics-port", |n| {
        n.config
            .metrics_port
            .map_or("0".into(), |port| port.to_string())
    }),
    // As Redis shows it to a client that may run CONFIG: one that knows it.
    Setting::fixed("requirepass", |n| {
        n.config.requirepass.clone().unwrap_or_default()
    }),
    Setting::live(
        "maxclients",
        |n| n.runtime.maxclients().to_string(),
        set_maxclients,
    ),
    Setting::live(
        "timeout",
        |n| n.runtime.timeout.load(Ordering::Relaxed).to_string(),
        set_timeout,
    ),
    Setting::live(
        "request-timeout-ms",
        |n| {
            n.runtime
                .request_timeout_ms
                .load(Ordering::Relaxed)
                .to_string()
        },
        set_request_timeout,
    ),
    Setting::live(
        "maxmemory-clients",
        |n| n.runtime.maxmemory_clients().to_string(),
        set_maxmemory_clients,
    ),
    Setting::live(
        "client-output-buffer-limit",
        |n| n.runtime.output_limits().to_string(),
        set_output_limits,
    ),
    Setting::fixed("proto-max-bulk-len", |n| n.config.max_bulk_len.to_string()),
    Setting::fixed("max-args", |n| n.config.max_args.to_string()),
    Setting::fixed("max-inline-len", |n| n.config.max_inline_len.to_string()),
    Setting::fixed("log-level", |n| n.config.log_level.clone()),
    Setting::fixed("expiry-interval-ms", |n| {
        n.config.expiry_interval_ms.to_string()
    }),
    Setting::fixed("threads", |n| n.config.threads.to_string()),
    Setting::live(
        "slowlog-log-slower-than",
        |n| {
            let us = n.runtime.slowlog_slower_than_us.load(Ordering::Relaxed);
            us.to_string()
        },
        set_slowlog_slower_than,
    ),
    Setting::live(
        "slowlog-max-len",
        |n| n.runtime.slowlog_max_len().to_string(),
        set_slowlog_max_len,
    ),
    Setting::live(
        "latency-monitor-threshold",
        |n| {
            let ms = n.runtime.latency_threshold_ms.load(Ordering::Relaxed);
            ms.to_string()
        },
        set_latency_threshold,
    ),
    Setting::fixed("coordinator", |n| {
        n.config.coordinator.clone().unwrap_or_default()
    }),
    Setting::fixed("bus-maxclients", |n| n.config.bus_maxclients.to_string()),
    Setting::fixed("cluster-node-timeout", |n| {
        n.config.node_timeout_ms.to_string()
    }),
    Setting::fixed("replica-of", |n| {
        n.config.replica_of.clone().unwrap_or_default()
    }),
    Setting::fixed("repl-backlog-size", |s| {
        s.config.repl_backlog_size.to_string()
    }),
    Setting::fixed("tls-port", |n| {
        n.config
            .tls_port
            .map_or("0".into(), |port| port.to_string())
    }),
    Setting::fixed("tls-cert-file", |n| path(n.config.tls_cert_file.as_deref())),
    Setting::fixed("tls-key-file", |n| path(n.config.tls_key_file.as_deref())),
    Setting::fixed("tls-ca-cert-file", |n| {
        path(n.config.tls_ca_cert_file.as_deref())
    }),
    Setting::fixed("tls-auth-clients", |n| yes_no(n.config.tls_auth_clients)),
    Setting::fixed("tls-cluster", |n| yes_no(n.config.tls_cluster)),
    Setting::fixed("databases", |_| "1".into()),
    Setting::fixed("cluster-enabled", |_| "yes".into()),
    // Persistence (see `persist`): the rules and the append-only file's
    // settings change at run time, the directory does not.
    Setting::fixed("dir", |n| path(n.config.dir.as_deref())),
    Setting::live(
        "save",
        // Without a data directory nothing is saved, whatever the rules.
        |n| {
            n.persistence
                .map_or_else(String::new, |p| p.snapshots().rules.to_string())
        },
        set_save,
    ),
    Setting::live(
        "appendonly",
        |n| yes_no(n.persistence.is_some_and(|p| p.appendonly())),
        set_appendonly,
    ),
    Setting::live(
        "appendfsync",
        |n| match n.persistence {
            Some(p) => p.appendfsync().to_string(),
            None => n.config.appendfsync.to_string(),
        },
        set_appendfsync,
    ),
    Setting::live(
        "auto-aof-rewrite-percentage",
        |n| match n.persistence {
            Some(p) => p.auto_rewrite().percentage.to_string(),
            None => n.config.auto_aof_rewrite_percentage.to_string(),
        },
        set_auto_rewrite_percentage,
    ),
    Setting::live(
        "auto-aof-rewrite-min-size",
        |n| match n.persistence {
            Some(p) => p.auto_rewrite().min_size.to_string(),
            None => n.config.auto_aof_rewrite_min_size.to_string(),
        },
        set_auto_rewrite_min_size,
    ),
    Setting::fixed("aof-load-truncated", |n| {
        yes_no(n.config.aof_load_truncated)
    }),
    Setting::fixed("aof-load-damaged", |n| yes_no(n.config.aof_load_damaged)),
];

/// The persistence of a node, for a setting that needs one.
fn persistence<'a>(node: Node<'a>) -> Result<&'a Arc<Persistence>, String> {
    node.persistence.ok_or_else(|| {
        "needs a data directory: start the node with `dir:` in its YAML (or --dir)".to_string()
    })
}

fn set_save(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let persistence = persistence(node)?;
    let rules = SaveRules::parse(value)?;
    if mode == Mode::Apply {
        persistence.snapshots().rules = rules;
    }
    Ok(())
}

fn set_appendonly(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let persistence = persistence(node)?;
    let on = parse_yes_no(value)?;
    match mode {
        Mode::Check => Ok(()),
        Mode::Apply => persistence.set_appendonly(on, node.store),
    }
}

fn set_appendfsync(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let persistence = persistence(node)?;
    let fsync = Fsync::parse(value).ok_or("argument must be 'always', 'everysec' or 'no'")?;
    if mode == Mode::Apply {
        persistence.set_appendfsync(fsync);
    }
    Ok(())
}

fn set_auto_rewrite_percentage(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let persistence = persistence(node)?;
    let percentage = value
        .parse::<u64>()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if mode == Mode::Apply {
        let auto = persistence.auto_rewrite();
        persistence.set_auto_rewrite(crate::persist::AutoRewrite { percentage, ..auto });
    }
    Ok(())
}

fn set_auto_rewrite_min_size(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let persistence = persistence(node)?;
    let min_size = parse_memory(value)? as u64;
    if mode == Mode::Apply {
        let auto = persistence.auto_rewrite();
        persistence.set_auto_rewrite(crate::persist::AutoRewrite { min_size, ..auto });
    }
    Ok(())
}

fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".to_string()),
    }
}

/// A file setting as CONFIG shows it: empty when unset, as Redis shows one.
fn path(path: Option<&Path>) -> String {
    path.map(|path| path.display().to_string())
        .unwrap_or_default()
}

fn yes_no(on: bool) -> String {
    match on {
        true => "yes".into(),
        false => "no".into(),
    }
}

/// Why `CONFIG SET` refused; the `Display` text is the reply line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    #[error(
        "ERR CONFIG SET of '{0}' is not supported at run time; \
         change it in the configuration file and restart"
    )]
    Fixed(String),
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    Invalid { name: String, reason: String },
}

/// The setting called `name` (any letter case).
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// `CONFIG SET name value [name value ...]`: every pair is checked before
/// any is applied, so a refused request changes nothing.
pub fn set_all(node: Node<'_>, pairs: &[(&str, &str)]) -> Result<(), SetError> {
    let mut setters = Vec::with_capacity(pairs.len());
    for (i, &(name, value)) in pairs.iter().enumerate() {
        let setting = find(name).ok_or_else(|| SetError::Unknown(name.to_string()))?;
        let set = setting
            .set
            .ok_or_else(|| SetError::Fixed(setting.name.to_string()))?;
        let invalid = |reason: String| SetError::Invalid {
            name: setting.name.to_string(),
            reason,
        };
        if pairs[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(invalid("duplicate parameter".into()));
        }
        set(node, value, Mode::Check).map_err(invalid)?;
        setters.push((set, value));
    }
    for (set, value) in setters {
        set(node, value, Mode::Apply).expect("checked before applying");
    }
    Ok(())
}

/// Keys `CONFIG SET maxmemory` evicts at once when the new limit is below
/// what the node holds (64 rounds of the store's per-write bound); writes
/// evict the rest as they come.
const EVICTION_ROUNDS_ON_SET: usize = 64;

fn set_maxmemory(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let bytes = parse_memory(value).map_err(|_| "argument must be a memory value")?;
    if mode == Mode::Apply {
        node.runtime.set_maxmemory(bytes);
        for _ in 0..EVICTION_ROUNDS_ON_SET {
            match node.store.make_room(bytes, now_ms()) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

fn set_maxclients(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let clients = value
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or("argument must be a number of clients, at least 1")?;
    if mode == Mode::Apply {
        node.runtime.maxclients.store(clients, Ordering::Relaxed);
    }
    Ok(())
}

fn set_timeout(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let seconds = value
        .parse::<u64>()
        .map_err(|_| "argument must be a number of seconds (0: never)")?;
    if mode == Mode::Apply {
        node.runtime.timeout.store(seconds, Ordering::Relaxed);
    }
    Ok(())
}

fn set_request_timeout(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let ms = value
        .parse::<u64>()
        .map_err(|_| "argument must be a number of milliseconds (0: no limit)")?;
    if mode == Mode::Apply {
        node.runtime.request_timeout_ms.store(ms, Ordering::Relaxed);
    }
    Ok(())
}

fn set_maxmemory_clients(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let bytes = parse_memory(value).map_err(|_| "argument must be a memory value")?;
    if mode == Mode::Apply {
        node.runtime
            .maxmemory_clients
            .store(bytes, Ordering::Relaxed);
    }
    Ok(())
}

/// Redis's form: `class hard soft seconds` for one class or more; classes
/// not named keep their limits.
fn set_output_limits(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let limits = node.runtime.output_limits().updated(value)?;
    if mode == Mode::Apply {
        node.runtime.output_limits[0].store(limits.normal);
        node.runtime.output_limits[1].store(limits.replica);
    }
    Ok(())
}

/// An integer setting's value between `min` and `max`, checked with
/// Redis's words.
fn integer_between(value: &str, min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = value
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    match (min..=max).contains(&n) {
        true => Ok(n),
        false => Err(format!(
            "argument must be between {min} and {max} inclusive"
        )),
    }
}

fn set_slowlog_slower_than(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let us = integer_between(value, -1, i64::MAX)?;
    if mode == Mode::Apply {
        node.runtime
            .slowlog_slower_than_us
            .store(us, Ordering::Relaxed);
    }
    Ok(())
}

fn set_slowlog_max_len(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let len = integer_between(value, 0, i64::MAX)?;
    if mode == Mode::Apply {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        node.runtime.slowlog_max_len.store(len, Ordering::Relaxed);
    }
    Ok(())
}

fn set_latency_threshold(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let ms = integer_between(value, 0, i64::MAX)?;
    if mode == Mode::Apply {
        node.runtime
            .latency_threshold_ms
            .store(ms.unsigned_abs(), Ordering::Relaxed);
    }
    Ok(())
}

fn set_policy(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let policy: Policy = value.parse()?;
    if mode == Mode::Apply {
        node.store.set_policy(policy);
    }
    Ok(())
}

fn set_samples(node: Node<'_>, value: &str, mode: Mode) -> Result<(), String> {
    let samples = value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or("argument must be between 1 and 64 inclusive")?;
    if mode == Mode::Apply {
        node.store.set_samples(samples);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flags;
    use crate::store::Expiry;
    use clap::Parser;
    use keycafe_core::process::LayeredConfig;

    /// A node's parts, as CONFIG sees them.
    struct Parts {
        config: Config,
        runtime: Runtime,
        store: Arc<Store>,
    }

    impl Parts {
        fn new() -> Parts {
            let config = Config::default();
            Parts {
                runtime: Runtime::new(&config),
                store: Arc::new(Store::new()),
                config,
            }
        }

        fn node(&self) -> Node<'_> {
            Node {
                config: &self.config,
                runtime: &self.runtime,
                store: &self.store,
                persistence: None,
            }
        }
    }

    #[test]
    fn the_configuration_takes_redis_units_and_names() {
        let yaml = "maxmemory: 16mb\nmaxmemory_policy: allkeys-lfu\nmaxmemory_samples: 10\n";
        let config = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(config.maxmemory, 16 << 20);
        assert_eq!(config.maxmemory_policy, Policy::AllKeysLfu);
        assert_eq!(config.maxmemory_samples, 10);
        assert_eq!(Runtime::new(&config).maxmemory(), 16 << 20);
        let bytes = Config::from_yaml_str("maxmemory: 1000\n").unwrap();
        assert_eq!(bytes.maxmemory, 1000);
        assert_eq!(Config::default().maxmemory_policy, Policy::NoEviction);
        assert!(Config::from_yaml_str("maxmemory: lots\n").is_err());
        assert!(Config::from_yaml_str("maxmemory_policy: lru\n").is_err());
        assert!(Config::from_yaml_str("maxmemory_samples: 0\n").is_err());
        let flags = Flags::try_parse_from([
            "keycafe-server",
            "--maxmemory",
            "1gb",
            "--maxmemory-policy",
            "volatile-ttl",
        ])
        .unwrap();
        let config = flags.into_config().unwrap();
        assert_eq!(config.maxmemory, 1 << 30);
        assert_eq!(config.maxmemory_policy, Policy::VolatileTtl);
        assert!(Flags::try_parse_from(["keycafe-server", "--maxmemory", "1tb"]).is_err());
        assert!(Flags::try_parse_from(["keycafe-server", "--maxmemory-policy", "lru"]).is_err());
    }

    #[test]
    fn live_settings_change_and_fixed_ones_say_so() {
        let parts = Parts::new();
        let node = parts.node();
        assert_eq!(find("MAXMEMORY").unwrap().value(node), "0");
        let pairs = [("maxmemory", "2mb"), ("maxmemory-policy", "allkeys-lru")];
        set_all(node, &pairs).unwrap();
        assert_eq!(parts.runtime.maxmemory(), 2 << 20);
        assert_eq!(find("maxmemory-policy").unwrap().value(node), "allkeys-lru");
        set_all(node, &[("maxmemory-samples", "10")]).unwrap();
        assert_eq!(parts.store.samples(), 10);
        assert!(find("maxmemory").unwrap().is_live() && !find("port").unwrap().is_live());
        let err = set_all(node, &[("port", "7000")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR CONFIG SET of 'port' is not supported at run time; \
             change it in the configuration file and restart"
        );
        let err = set_all(node, &[("no-such-thing", "1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-thing'"
        );
        // One bad value and nothing changes.
        let pairs = [("maxmemory", "1gb"), ("maxmemory-samples", "0")];
        let err = set_all(node, &pairs).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - \
             argument must be between 1 and 64 inclusive"
        );
        assert_eq!(parts.runtime.maxmemory(), 2 << 20);
        let err = set_all(node, &[("maxmemory", "1gb"), ("MAXMEMORY", "2gb")]).unwrap_err();
        assert!(err.to_string().ends_with("duplicate parameter"), "{err}");
        assert!(set_all(node, &[("maxmemory-policy", "lru")]).is_err());
        assert!(set_all(node, &[("maxmemory", "lots")]).is_err());
    }

    #[test]
    fn lowering_maxmemory_evicts_at_once() {
        let parts = Parts::new();
        parts.store.set_policy(Policy::AllKeysRandom);
        for i in 0..10_000 {
            let key = format!("key:{i}");
            parts
                .store
                .set(key.as_bytes(), &[b'v'; 200], now_ms(), Expiry::Persist)
                .unwrap();
        }
        let used = parts.store.memory().used();
        let lowered = (used * 3 / 4).to_string();
        set_all(parts.node(), &[("maxmemory", &lowered)]).unwrap();
        assert!(parts.store.memory().used() <= used * 3 / 4);
        assert!(parts.store.stats().evicted_keys > 1000);
    }
}
