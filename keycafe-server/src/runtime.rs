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

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::config::Config;
use crate::state::Shared;
use crate::store::{Policy, now_ms};

/// The settings that may change at run time and have no other home.
#[derive(Debug, Default)]
pub struct Runtime {
    /// Redis's `maxmemory`: most bytes the node may hold, 0 for no limit.
    maxmemory: AtomicUsize,
}

impl Runtime {
    /// The settings as the configuration starts them.
    pub fn new(config: &Config) -> Runtime {
        Runtime {
            maxmemory: AtomicUsize::new(config.maxmemory),
        }
    }

    /// Most bytes the node may hold; 0 for no limit.
    pub fn maxmemory(&self) -> usize {
        self.maxmemory.load(Ordering::Relaxed)
    }

    pub fn set_maxmemory(&self, bytes: usize) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
    }
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
type Setter = fn(&Shared, &str, Mode) -> Result<(), String>;

/// One setting as CONFIG sees it.
pub struct Setting {
    /// Redis's name (`maxmemory-policy`).
    pub name: &'static str,
    get: fn(&Shared) -> String,
    /// `None`: fixed until the node restarts.
    set: Option<Setter>,
}

impl Setting {
    const fn live(name: &'static str, get: fn(&Shared) -> String, set: Setter) -> Setting {
        Setting {
            name,
            get,
            set: Some(set),
        }
    }

    const fn fixed(name: &'static str, get: fn(&Shared) -> String) -> Setting {
        Setting {
            name,
            get,
            set: None,
        }
    }

    /// The current value, as CONFIG GET shows it.
    pub fn value(&self, shared: &Shared) -> String {
        (self.get)(shared)
    }

    /// True if CONFIG SET may change it.
    pub fn is_live(&self) -> bool {
        self.set.is_some()
    }
}

/// Every setting CONFIG knows, in the order CONFIG GET lists them.
pub static SETTINGS: &[Setting] = &[
    Setting::live(
        "maxmemory",
        |s| s.runtime.maxmemory().to_string(),
        set_maxmemory,
    ),
    Setting::live(
        "maxmemory-policy",
        |s| s.store.policy().name().to_string(),
        set_policy,
    ),
    Setting::live(
        "maxmemory-samples",
        |s| s.store.samples().to_string(),
        set_samples,
    ),
    Setting::fixed("bind", |s| s.config.bind.clone()),
    Setting::fixed("port", |s| s.config.service_port.to_string()),
    Setting::fixed("cluster-port", |s| s.config.bus_port().to_string()),
    Setting::fixed("maxclients", |s| s.config.maxclients.to_string()),
    Setting::fixed("proto-max-bulk-len", |s| s.config.max_bulk_len.to_string()),
    Setting::fixed("repl-backlog-size", |s| {
        s.config.repl_backlog_size.to_string()
    }),
    Setting::fixed("databases", |_| "1".into()),
    Setting::fixed("cluster-enabled", |_| "yes".into()),
    // Keycafe keeps data in memory only.
    Setting::fixed("save", |_| String::new()),
    Setting::fixed("appendonly", |_| "no".into()),
];

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
pub fn set_all(shared: &Shared, pairs: &[(&str, &str)]) -> Result<(), SetError> {
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
        set(shared, value, Mode::Check).map_err(invalid)?;
        setters.push((set, value));
    }
    for (set, value) in setters {
        set(shared, value, Mode::Apply).expect("checked before applying");
    }
    Ok(())
}

/// Keys `CONFIG SET maxmemory` evicts at once when the new limit is below
/// what the node holds (64 rounds of the store's per-write bound); writes
/// evict the rest as they come.
const EVICTION_ROUNDS_ON_SET: usize = 64;

fn set_maxmemory(shared: &Shared, value: &str, mode: Mode) -> Result<(), String> {
    let bytes = parse_memory(value).ok_or("argument must be a memory value")?;
    if mode == Mode::Apply {
        shared.runtime.set_maxmemory(bytes);
        for _ in 0..EVICTION_ROUNDS_ON_SET {
            match shared.store.make_room(bytes, now_ms()) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    Ok(())
}

fn set_policy(shared: &Shared, value: &str, mode: Mode) -> Result<(), String> {
    let policy = Policy::from_name(value.as_bytes()).ok_or_else(|| {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        format!(
            "argument(s) must be one of the following: {}",
            names.join(", ")
        )
    })?;
    if mode == Mode::Apply {
        shared.store.set_policy(policy);
    }
    Ok(())
}

fn set_samples(shared: &Shared, value: &str, mode: Mode) -> Result<(), String> {
    let samples = value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or("argument must be between 1 and 64 inclusive")?;
    if mode == Mode::Apply {
        shared.store.set_samples(samples);
    }
    Ok(())
}

/// Parses a memory size as Redis does: bytes, or a number with a unit
/// (`k`, `m`, `g`: powers of 1000; `kb`, `mb`, `gb`: powers of 1024; `b`),
/// in any letter case. `None` if it is not one, or overflows.
pub fn parse_memory(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let multiplier: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(multiplier)
}

/// `maxmemory` in YAML: a number of bytes, or a string such as `64mb`.
pub(crate) fn memory_size<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(bytes) => Ok(bytes),
        Size::Text(text) => parse_memory(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a memory size (bytes, or a number with k, kb, m, mb, g or gb)"
            ))
        }),
    }
}

/// `maxmemory_policy` in YAML, by Redis's name.
pub(crate) fn eviction_policy<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Policy, D::Error> {
    let name = String::deserialize(deserializer)?;
    parse_policy_flag(&name).map_err(serde::de::Error::custom)
}

pub(crate) fn parse_memory_flag(text: &str) -> Result<usize, String> {
    parse_memory(text)
        .ok_or_else(|| format!("{text:?} is not a memory size (e.g. 1048576, 64mb, 1gb)"))
}

pub(crate) fn parse_policy_flag(name: &str) -> Result<Policy, String> {
    Policy::from_name(name.as_bytes()).ok_or_else(|| {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        format!(
            "{name:?} is not an eviction policy; one of {}",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flags;
    use clap::Parser;
    use keycafe_core::process::LayeredConfig;

    #[test]
    fn memory_settings_take_redis_units_and_names() {
        assert_eq!(parse_memory("1048576"), Some(1 << 20));
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("64MB"), Some(64 << 20));
        assert_eq!(parse_memory("2k"), Some(2000));
        assert_eq!(parse_memory("2kb"), Some(2048));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("12b"), Some(12));
        for bad in ["", "mb", "-1", "1.5gb", "10 tb", "99999999999999999999gb"] {
            assert_eq!(parse_memory(bad), None, "{bad:?}");
        }
        let yaml = "maxmemory: 16mb\nmaxmemory_policy: allkeys-lfu\nmaxmemory_samples: 10\n";
        let config = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(config.maxmemory, 16 << 20);
        assert_eq!(config.maxmemory_policy, Policy::AllKeysLfu);
        assert_eq!(config.maxmemory_samples, 10);
        assert_eq!(
            Config::from_yaml_str("maxmemory: 1000\n")
                .unwrap()
                .maxmemory,
            1000
        );
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
    }

    fn shared() -> Shared {
        Shared::new(Config::default())
    }

    #[test]
    fn live_settings_change_and_fixed_ones_say_so() {
        let shared = shared();
        assert_eq!(find("MAXMEMORY").unwrap().value(&shared), "0");
        set_all(
            &shared,
            &[("maxmemory", "2mb"), ("maxmemory-policy", "allkeys-lru")],
        )
        .unwrap();
        assert_eq!(shared.runtime.maxmemory(), 2 << 20);
        assert_eq!(
            find("maxmemory-policy").unwrap().value(&shared),
            "allkeys-lru"
        );
        set_all(&shared, &[("maxmemory-samples", "10")]).unwrap();
        assert_eq!(shared.store.samples(), 10);
        let err = set_all(&shared, &[("port", "7000")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR CONFIG SET of 'port' is not supported at run time; \
             change it in the configuration file and restart"
        );
        let err = set_all(&shared, &[("no-such-thing", "1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'no-such-thing'"
        );
        // One bad value and nothing changes.
        let err =
            set_all(&shared, &[("maxmemory", "1gb"), ("maxmemory-samples", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-samples') - \
             argument must be between 1 and 64 inclusive"
        );
        assert_eq!(shared.runtime.maxmemory(), 2 << 20);
        let err = set_all(&shared, &[("maxmemory", "1gb"), ("MAXMEMORY", "2gb")]).unwrap_err();
        assert!(err.to_string().ends_with("duplicate parameter"), "{err}");
        assert!(set_all(&shared, &[("maxmemory-policy", "lru")]).is_err());
        assert!(set_all(&shared, &[("maxmemory", "lots")]).is_err());
    }

    #[test]
    fn lowering_maxmemory_evicts_at_once() {
        let shared = shared();
        shared.store.set_policy(Policy::AllKeysRandom);
        for i in 0..10_000 {
            let key = format!("key:{i}");
            shared
                .store
                .set(
                    key.as_bytes(),
                    &[b'v'; 200],
                    now_ms(),
                    crate::store::Expiry::Persist,
                )
                .unwrap();
        }
        let used = shared.memory().used();
        set_all(&shared, &[("maxmemory", &(used * 3 / 4).to_string())]).unwrap();
        assert!(shared.memory().used() <= used * 3 / 4);
        assert!(shared.store.stats().evicted_keys > 1000);
    }
}
