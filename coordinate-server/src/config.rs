//! Coordinator configuration: defaults, the optional YAML file, and flags on
//! top (flags > file > defaults). Unknown keys in the file are errors, so a
//! misspelt `secret` cannot silently leave the cluster open. The dashboard's
//! admin token can also come from `KEYCAFE_ADMIN_TOKEN` (between the file and
//! the flag), so that it need not appear in a file or on a command line.
//!
//! This file says only what the settings are; the layering itself, and
//! `Config::from_yaml_file` / `from_yaml_str`, come from
//! [`keycafe_core::process`] through [`LayeredConfig`], shared with the node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use keycafe_core::addr;
use keycafe_core::process::{self, BoxError, LayeredConfig, set_if_given};
use keycafe_core::tls::{self, TlsAcceptor};
use serde::Deserialize;

use crate::group::{Member, MemberId};
use crate::state::Settings;

/// Everything the coordinator needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address both listeners bind to. 127.0.0.1 unless you mean to expose
    /// them; `0.0.0.0` or `::` for every address.
    pub bind: String,
    /// The name or address other machines reach this coordinator at; the
    /// dashboard answers to it (with `http_port`) besides the loopback
    /// names. Never `0.0.0.0` or `::`.
    pub announce_host: Option<String>,
    /// Redis's protected mode: bound beyond loopback, the coordinator
    /// refuses to start without an `admin_token` of its own choosing (the
    /// cluster secret is always required), so that nothing it serves is
    /// open to the network by accident.
    pub protected_mode: bool,
    /// Port nodes connect to.
    pub port: u16,
    /// Port of the HTTP dashboard and API.
    pub http_port: u16,
    /// Where the cluster state is persisted.
    pub data_dir: PathBuf,
    /// A node silent for this long is failing, in milliseconds; a failing
    /// primary whose replicas have lost it too is failed over.
    pub node_timeout_ms: u64,
    /// Replicas wanted per primary: a node that registers without a
    /// configured primary becomes a replica while a primary has fewer.
    pub replicas: usize,
    /// The cluster secret: nodes must prove they hold it to register
    /// (required). Also spelt `cluster_secret`, as in the nodes' files.
    #[serde(alias = "cluster_secret")]
    pub secret: Option<String>,
    /// Token that the dashboard's write actions (asking a node to leave)
    /// require. Without one, a random token is generated at start and
    /// logged once (see [`crate::http::access`]).
    pub admin_token: Option<String>,
    /// `Host` values (`name:port`) the dashboard answers to (a request may
    /// also leave the port out); others get 421, which defeats DNS
    /// rebinding. Empty means `127.0.0.1:<http_port>`,
    /// `localhost:<http_port>`, `[::1]:<http_port>` and the bound address.
    pub http_hosts: Vec<String>,
    /// Most slot migrations announced at once; a larger rebalance runs in
    /// several windows.
    pub max_migrations: usize,
    /// Default log filter when RUST_LOG is not set.
    pub log_level: String,
    /// The coordinator's certificate chain (PEM). With `tls_key_file` and
    /// `tls_ca_cert_file`, the port nodes connect to speaks mutual TLS: for
    /// a cluster whose nodes run with `tls_cluster`.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signed every member's certificate: nodes must
    /// present one it signed.
    pub tls_ca_cert_file: Option<PathBuf>,
    /// This coordinator's id in its group (`docs/coordinator-group.md`).
    pub id: MemberId,
    /// Port the other coordinators of the group connect to.
    pub group_port: u16,
    /// Every member of the group, this one included, with its addresses.
    /// Empty: a group of one, this coordinator alone.
    pub members: Vec<Member>,
    /// Start empty and wait to be added to an existing group (by the
    /// leader's `POST /api/group/members`), instead of starting one.
    pub join: bool,
    /// A follower that hears nothing from the leader for this long (one to
    /// two times it, at random) calls an election.
    pub election_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".to_string(),
            announce_host: None,
            protected_mode: true,
            port: 9800,
            http_port: 9880,
            data_dir: PathBuf::from("coordinator-data"),
            node_timeout_ms: 5000,
            replicas: 0,
            secret: None,
            admin_token: None,
            http_hosts: Vec::new(),
            max_migrations: 1024,
            log_level: "info".to_string(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            id: 1,
            group_port: 9900,
            members: Vec::new(),
            join: false,
            election_timeout_ms: 1000,
        }
    }
}

impl LayeredConfig for Config {
    fn check(&self) -> Result<(), BoxError> {
        Ok(self.validate()?)
    }
}

impl Config {
    /// Rejects settings that cannot work, saying why.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.node_timeout_ms > 0,
            "node_timeout_ms must be at least 1"
        );
        anyhow::ensure!(self.max_migrations > 0, "max_migrations must be at least 1");
        // Without a secret anyone who can reach the port could join the
        // cluster and be handed slots, so there is no such mode.
        let Some(secret) = self.secret.as_deref() else {
            anyhow::bail!(
                "the coordinator needs the cluster secret (`secret:` in the YAML, \
                 --secret, or KEYCAFE_CLUSTER_SECRET), shared with every node; \
                 generate one with: openssl rand -hex 32"
            );
        };
        keycafe_core::auth::check_secret(secret).map_err(anyhow::Error::msg)?;
        if let Some(token) = &self.admin_token {
            anyhow::ensure!(
                token.len() >= MIN_ADMIN_TOKEN_LEN && !token.contains(char::is_whitespace),
                "admin_token must be at least {MIN_ADMIN_TOKEN_LEN} characters without spaces \
                 (leave it out to have one generated at start)"
            );
        }
        anyhow::ensure!(
            self.http_hosts.iter().all(|host| host.contains(':')),
            "http_hosts are name:port pairs, e.g. localhost:9880"
        );
        anyhow::ensure!(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir must not be empty"
        );
        let tls_files = [
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_ca_cert_file,
        ];
        anyhow::ensure!(
            tls_files.iter().all(|f| f.is_some()) || tls_files.iter().all(|f| f.is_none()),
            "tls_cert_file, tls_key_file and tls_ca_cert_file go together \
             (the node port speaks mutual TLS with all three)"
        );
        self.node_addr()?;
        self.http_addr()?;
        if let Some(host) = &self.announce_host {
            anyhow::ensure!(
                addr::is_announceable(host),
                "announce_host {host:?} cannot be announced: give the name or address other \
                 machines reach this coordinator at (not 0.0.0.0 or ::)"
            );
        }
        self.validate_group()?;
        if self.protected_mode && !addr::is_loopback(&self.bind) {
            anyhow::ensure!(
                self.admin_token.is_some(),
                "protected mode: bind {} accepts connections from other machines, so the \
                 dashboard's admin token must be one you chose and keep, not one generated \
                 into a log: set admin_token (`admin_token:` in the YAML or {ADMIN_TOKEN_VAR}), \
                 or bind 127.0.0.1, or set protected_mode: false (--protected-mode no) if a \
                 firewall already keeps strangers out",
                self.bind
            );
        }
        Ok(())
    }

    /// The node port's TLS settings, read now so that a bad file stops the
    /// coordinator at start-up; `None` when the node port is plain TCP.
    pub fn tls_acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        let (Some(cert), Some(key), Some(ca)) = (
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_ca_cert_file,
        ) else {
            return Ok(None);
        };
        let config = tls::server_config(cert, key, Some(ca)).context("loading the TLS settings")?;
        Ok(Some(TlsAcceptor::from(config)))
    }

    /// Where nodes connect.
    pub fn node_addr(&self) -> anyhow::Result<SocketAddr> {
        socket_addr(&self.bind, self.port)
    }

    /// Where the dashboard listens.
    pub fn http_addr(&self) -> anyhow::Result<SocketAddr> {
        socket_addr(&self.bind, self.http_port)
    }

    /// The state machine's part of the configuration.
    pub fn settings(&self) -> Settings {
        Settings {
            node_timeout: Duration::from_millis(self.node_timeout_ms),
            max_migrations: self.max_migrations,
            replicas: self.replicas,
        }
    }

    /// More than one coordinator, now or to come.
    pub fn is_group(&self) -> bool {
        self.members.len() > 1 || self.join
    }

    pub fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.election_timeout_ms)
    }

    /// This coordinator as a member: its entry in `members`, or, alone,
    /// its own addresses.
    pub fn me(&self) -> anyhow::Result<Member> {
        if let Some(me) = self.members.iter().find(|m| m.id == self.id) {
            return Ok(me.clone());
        }
        let host =
            self.announce_host
                .clone()
                .unwrap_or_else(|| match addr::is_unspecified(&self.bind) {
                    true => "127.0.0.1".to_string(),
                    false => addr::unbracket(&self.bind).to_string(),
                });
        Ok(Member {
            id: self.id,
            group_addr: addr::join(&host, self.group_port),
            node_addr: addr::join(&host, self.port),
            http_addr: Some(addr::join(&host, self.http_port)),
        })
    }

    /// Where the other coordinators connect.
    pub fn group_listen_addr(&self) -> anyhow::Result<SocketAddr> {
        socket_addr(&self.bind, self.group_port)
    }

    /// The group settings make sense together.
    fn validate_group(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.id >= 1, "id must be 1 or more");
        anyhow::ensure!(
            self.election_timeout_ms >= 200,
            "election_timeout_ms must be at least 200"
        );
        if self.members.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            !self.join,
            "join starts a coordinator empty, to be added by the group's leader: \
             leave members out"
        );
        let mut ids = std::collections::BTreeSet::new();
        for member in &self.members {
            anyhow::ensure!(member.id >= 1, "member ids are 1 or more");
            anyhow::ensure!(
                ids.insert(member.id),
                "member {} is listed twice",
                member.id
            );
            for (what, address) in [
                ("group_addr", &member.group_addr),
                ("node_addr", &member.node_addr),
            ] {
                anyhow::ensure!(
                    addr::split(address).is_some_and(|(host, _)| addr::is_announceable(host)),
                    "member {}: {what} {address:?} is not host:port that others can reach",
                    member.id
                );
            }
        }
        anyhow::ensure!(
            ids.contains(&self.id),
            "members must list this coordinator (id {}) too",
            self.id
        );
        Ok(())
    }
}

fn socket_addr(bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let ip = addr::parse_ip(bind).with_context(|| {
        format!(
            "invalid bind address {bind:?}: expected an IP address such as 127.0.0.1, 0.0.0.0 or ::"
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Shortest admin token accepted from the configuration: a guessable token
/// would protect nothing.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The environment variable the admin token may come from.
pub const ADMIN_TOKEN_VAR: &str = "KEYCAFE_ADMIN_TOKEN";

/// Command-line flags; each one given overrides the file.
#[derive(Debug, Default, clap::Parser)]
#[command(
    name = "coordinate-server",
    version,
    about = "Keycafe's cluster coordinator"
)]
pub struct Flags {
    /// YAML configuration file (optional).
    pub config: Option<PathBuf>,
    /// Address both listeners bind to (0.0.0.0 or :: for every address).
    #[arg(long)]
    pub bind: Option<String>,
    /// The name or address other machines reach this coordinator at.
    #[arg(long)]
    pub announce_host: Option<String>,
    /// This coordinator's id in its group [default: 1].
    #[arg(long)]
    pub id: Option<MemberId>,
    /// Port the other coordinators of the group connect to [default: 9900].
    #[arg(long)]
    pub group_port: Option<u16>,
    /// Start empty, to be added to an existing group by its leader.
    #[arg(long)]
    pub join: bool,
    /// Milliseconds without the leader before a follower calls an election
    /// [default: 1000].
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Refuse to start bound beyond loopback without an admin token (`yes`/`no`).
    #[arg(long, value_parser = process::yes_no)]
    pub protected_mode: Option<bool>,
    /// Port nodes connect to.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Port of the HTTP dashboard.
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Directory holding the persisted cluster state.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Milliseconds without a heartbeat before a node is failing and, if
    /// it is a primary whose replicas have lost it too, failed over
    /// [default: 5000].
    #[arg(long)]
    pub node_timeout_ms: Option<u64>,
    /// Replicas wanted per primary: nodes that register without a
    /// configured primary become replicas of the primary with the fewest
    /// until each has this many [default: 0].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// The cluster secret, shared with every node (visible to `ps`; prefer
    /// the KEYCAFE_CLUSTER_SECRET environment variable or `secret:` in the
    /// YAML file).
    #[arg(long, alias = "cluster-secret")]
    pub secret: Option<String>,
    /// Token the dashboard's write actions require (visible to `ps`; prefer
    /// `admin_token:` in the YAML file or KEYCAFE_ADMIN_TOKEN) [default: a
    /// random one, logged at start].
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Host names (`name:port`, comma-separated) the dashboard answers to
    /// [default: 127.0.0.1, localhost and `[::1]` with the HTTP port].
    #[arg(long, value_delimiter = ',')]
    pub http_hosts: Option<Vec<String>>,
    /// Default log filter (RUST_LOG wins when set).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Certificate chain (PEM) for mutual TLS on the node port.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `--tls-cert-file` (PEM).
    #[arg(long)]
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signed the nodes' certificates.
    #[arg(long)]
    pub tls_ca_cert_file: Option<PathBuf>,
}

/// The environment variable that may hold the cluster secret (below a
/// flag, above the YAML file).
pub const SECRET_VAR: &str = "KEYCAFE_CLUSTER_SECRET";

impl Flags {
    /// The file (if any), then `KEYCAFE_ADMIN_TOKEN`, then these flags.
    pub fn into_config(self) -> anyhow::Result<Config> {
        self.into_config_with_env(|name| std::env::var(name).ok())
    }

    /// [`Flags::into_config`], reading environment variables through `env`.
    pub fn into_config_with_env(
        mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let file = self.config.take();
        let admin_token = self
            .admin_token
            .or_else(|| env(ADMIN_TOKEN_VAR).filter(|token| !token.trim().is_empty()));
        let config = process::load(file.as_deref(), |config: &mut Config| {
            set_if_given(&mut config.bind, self.bind);
            set_if_given(&mut config.announce_host, self.announce_host.map(Some));
            set_if_given(&mut config.protected_mode, self.protected_mode);
            set_if_given(&mut config.id, self.id);
            set_if_given(&mut config.group_port, self.group_port);
            set_if_given(&mut config.join, self.join.then_some(true));
            set_if_given(&mut config.election_timeout_ms, self.election_timeout_ms);
            set_if_given(&mut config.port, self.port);
            set_if_given(&mut config.http_port, self.http_port);
            set_if_given(&mut config.data_dir, self.data_dir);
            set_if_given(&mut config.node_timeout_ms, self.node_timeout_ms);
            set_if_given(&mut config.replicas, self.replicas);
            let secret = self.secret.or_else(|| env(SECRET_VAR));
            set_if_given(&mut config.secret, secret.map(Some));
            set_if_given(&mut config.admin_token, admin_token.map(Some));
            set_if_given(&mut config.http_hosts, self.http_hosts);
            set_if_given(&mut config.log_level, self.log_level);
            set_if_given(&mut config.tls_cert_file, self.tls_cert_file.map(Some));
            set_if_given(&mut config.tls_key_file, self.tls_key_file.map(Some));
            set_if_given(
                &mut config.tls_ca_cert_file,
                self.tls_ca_cert_file.map(Some),
            );
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let config = Config::default();
        assert_eq!(config.node_addr().unwrap().to_string(), "127.0.0.1:9800");
        assert_eq!(config.http_addr().unwrap().to_string(), "127.0.0.1:9880");
        assert_eq!(config.settings().node_timeout, Duration::from_secs(5));
        assert_eq!(config.settings().replicas, 0);
        assert_eq!(Config::from_yaml_str("").unwrap(), config);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::from_yaml_str("secrets: x\n").is_err());
        assert!(Config::from_yaml_str("secret: ''\n").is_err());
        assert!(Config::from_yaml_str("node_timeout_ms: 0\n").is_err());
        assert!(Config::from_yaml_str("port: 70000\n").is_err());
        assert!(Config::from_yaml_str("bind: somewhere\n").is_err());
        assert!(Config::from_yaml_str("admin_token: short\n").is_err());
        assert!(Config::from_yaml_str("http_hosts: [localhost]\n").is_err());
    }

    #[test]
    fn beyond_loopback_the_admin_token_must_be_chosen() {
        let secret = "secret: a long enough secret\n";
        let token = "admin_token: a-token-of-our-own\n";
        for bind in ["0.0.0.0", "10.0.0.5", "'::'", "'[fd00::5]'"] {
            let open = format!("{secret}bind: {bind}\n");
            let err = Config::from_yaml_str(&open).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("protected mode") && text.contains("admin_token"),
                "{text}"
            );
            assert!(
                Config::from_yaml_str(&format!("{open}{token}")).is_ok(),
                "{bind}"
            );
            let unprotected = format!("{open}protected_mode: false\n");
            assert!(Config::from_yaml_str(&unprotected).is_ok(), "{bind}");
        }
        for bind in ["127.0.0.1", "'::1'", "'[::1]'"] {
            assert!(
                Config::from_yaml_str(&format!("{secret}bind: {bind}\n")).is_ok(),
                "{bind}"
            );
        }
    }

    #[test]
    fn every_address_is_never_announced() {
        let base = "secret: a long enough secret\n";
        for host in ["0.0.0.0", "'::'", "''"] {
            let yaml = format!("{base}announce_host: {host}\n");
            assert!(Config::from_yaml_str(&yaml).is_err(), "{host}");
        }
        for host in ["coord-1", "10.0.0.5", "'fd00::5'"] {
            let yaml = format!("{base}announce_host: {host}\n");
            assert!(Config::from_yaml_str(&yaml).is_ok(), "{host}");
        }
    }

    #[test]
    fn tls_files_go_together_and_are_read_at_start() {
        let secret = "secret: a long enough secret\n";
        let two = "tls_cert_file: c.crt\ntls_key_file: c.key\n";
        let three = format!("{two}tls_ca_cert_file: ca.crt\n");
        let err = Config::from_yaml_str(&format!("{secret}{two}")).unwrap_err();
        assert!(format!("{err:#}").contains("go together"), "{err:#}");
        let config = Config::from_yaml_str(&format!("{secret}{three}")).unwrap();
        let Err(err) = config.tls_acceptor() else {
            panic!("c.crt does not exist");
        };
        assert!(format!("{err:#}").contains("c.crt"), "{err:#}");
        let plain = Config::from_yaml_str(secret).unwrap();
        assert!(plain.tls_acceptor().unwrap().is_none());
    }

    #[test]
    fn the_admin_token_comes_from_file_env_or_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.yaml");
        std::fs::write(
            &path,
            "cluster_secret: the file's secret\nadmin_token: from-the-file-0123\nhttp_hosts: [dash:80]\n",
        )
        .unwrap();
        let flags = || Flags {
            config: Some(path.clone()),
            ..Flags::default()
        };
        let no_env = |_: &str| None;
        let config = flags().into_config_with_env(no_env).unwrap();
        assert_eq!(config.secret.as_deref(), Some("the file's secret"));
        assert_eq!(config.admin_token.as_deref(), Some("from-the-file-0123"));
        assert_eq!(config.http_hosts, ["dash:80"]);

        let env = |name: &str| (name == ADMIN_TOKEN_VAR).then(|| "from-the-env-01234".to_string());
        let config = flags().into_config_with_env(env).unwrap();
        assert_eq!(config.admin_token.as_deref(), Some("from-the-env-01234"));

        let flags = Flags::try_parse_from([
            "coordinate-server",
            "--admin-token",
            "from-the-flag-0123",
            "--http-hosts",
            "a:1,b:2",
            "--cluster-secret",
            "the flag's secret",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let config = flags.into_config_with_env(env).unwrap();
        assert_eq!(config.admin_token.as_deref(), Some("from-the-flag-0123"));
        assert_eq!(config.http_hosts, ["a:1", "b:2"]);
        assert_eq!(config.secret.as_deref(), Some("the flag's secret"));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.yaml");
        std::fs::write(
            &path,
            "port: 9900\nsecret: a long enough secret\nnode_timeout_ms: 100\nreplicas: 1\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            port: Some(7000),
            data_dir: Some("elsewhere".into()),
            ..Flags::default()
        };
        let config = flags.into_config().unwrap();
        assert_eq!(config.port, 7000);
        assert_eq!(config.secret.as_deref(), Some("a long enough secret"));
        assert_eq!(config.node_timeout_ms, 100);
        assert_eq!(config.settings().replicas, 1);
        assert_eq!(config.data_dir, PathBuf::from("elsewhere"));

        let flags = Flags::try_parse_from([
            "coordinate-server",
            "--replicas",
            "2",
            "--node-timeout-ms",
            "900",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let settings = flags.into_config().unwrap().settings();
        assert_eq!(settings.replicas, 2);
        assert_eq!(settings.node_timeout, Duration::from_millis(900));
    }
}
