//! How a client connects: seed addresses, credentials, timeouts and the retry
//! budget.
//!
//! Every limit here is finite, so that no call can wait forever: a request
//! takes at most about `(max_retries + 1) × (connect_timeout +
//! response_timeout)` plus the backoff between attempts. (The one exception
//! is the caller's own choice: [`KeycafeCluster::wait`] with a zero timeout.)
//!
//! The retry budget is sized for failovers. While a dead primary's replica
//! is being promoted (the node timeout, 5 s by default, and a moment for
//! the election), its port refuses connections; each refused request waits
//! and retries, and the default 16 retries with backoff doubling from 20 ms
//! to 1 s keep trying for about 11 s before giving up. Raise `max_retries`
//! if your cluster's node timeout is longer.
//!
//! With [`TlsOptions`], every connection the client opens is TLS: to the
//! seeds and to every node it learns of (`CLUSTER SLOTS`, `MOVED`, `ASK`).
//! Nodes announce their `service_port`, so the nodes of a cluster reached
//! over TLS serve TLS on that port (`tls_port` equal to `service_port` in
//! their configuration).

use std::path::PathBuf;
use std::time::Duration;

use keycafe_core::Limits;
use keycafe_core::tls::{self, Connector};

use crate::{Error, KeycafeCluster, Result};

/// Settings for a [`KeycafeCluster`]; build one with [`ClientConfig::new`]
/// and the chainable setters.
///
/// ```no_run
/// use std::time::Duration;
/// use keycafe_client::ClientConfig;
///
/// # async fn demo() -> keycafe_client::Result<()> {
/// let kc = ClientConfig::new(["127.0.0.1:9814", "127.0.0.1:9815"])
///     .password("s3cret")
///     .response_timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// kc.ping().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Addresses (`host:port`) to learn the cluster's topology from. Any one
    /// reachable node is enough; the others are fallbacks.
    pub seeds: Vec<String>,
    /// User name for `AUTH user password`; `None` sends `AUTH password`.
    pub username: Option<String>,
    /// Password sent with AUTH on every new connection.
    pub password: Option<String>,
    /// Limit on opening one connection (TCP connect, hello and AUTH).
    pub connect_timeout: Duration,
    /// Limit on waiting for one reply. On expiry the connection is closed,
    /// because every later reply on it is queued behind the missing one.
    pub response_timeout: Duration,
    /// Most MOVED/ASK redirects followed for one request.
    pub max_redirects: u32,
    /// Most retries of one request after TRYAGAIN, CLUSTERDOWN or an
    /// unreachable node. With the default backoff, the default 16 span about
    /// 11 s: long enough to ride out a failover.
    pub max_retries: u32,
    /// Wait before the first retry; it doubles on each further retry.
    pub min_backoff: Duration,
    /// Upper bound on the wait between retries.
    pub max_backoff: Duration,
    /// Limits on what a node's replies may make the decoder accept.
    pub limits: Limits,
    /// Connect over TLS with these settings; `None` for plain TCP.
    pub tls: Option<TlsOptions>,
    /// `tls` with its files read, by [`KeycafeCluster::connect_with`].
    loaded_tls: LoadedTls,
}

/// How a client connects over TLS: the CA that signed the nodes'
/// certificates, optionally its own certificate and key (for nodes that
/// require one, `tls_ca_cert_file`), and the name to check the nodes'
/// certificates against when it is not the host connected to.
///
/// The files are read once, when the client connects; an unreadable or
/// invalid one is an [`Error::Config`] that names it.
///
/// ```no_run
/// use keycafe_client::{ClientConfig, TlsOptions};
///
/// # async fn demo() -> keycafe_client::Result<()> {
/// let tls = TlsOptions::new("tls/ca.crt").identity("tls/client.crt", "tls/client.key");
/// let kc = ClientConfig::new(["127.0.0.1:9814"]).tls(tls).connect().await?;
/// kc.ping().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust.
    pub ca_file: PathBuf,
    /// PEM file of this client's certificate chain, for nodes that require one.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Check every node's certificate against this name (and send it as
    /// SNI) instead of the host in its address.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Trust the CA certificate(s) in this PEM file.
    pub fn new(ca_file: impl Into<PathBuf>) -> TlsOptions {
        TlsOptions {
            ca_file: ca_file.into(),
            cert_file: None,
            key_file: None,
            server_name: None,
        }
    }

    /// Present this certificate (PEM, leaf first) and key to every node.
    pub fn identity(mut self, cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(cert_file.into());
        self.key_file = Some(key_file.into());
        self
    }

    /// Sets [`TlsOptions::server_name`].
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Reads the files into a connector.
    fn load(&self) -> Result<Connector> {
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "a TLS client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        let config = tls::client_config(&self.ca_file, identity)
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let connector = Connector::new(config);
        match &self.server_name {
            Some(name) => connector
                .with_server_name(name)
                .map_err(|e| Error::Config(format!("TLS: {e}"))),
            None => Ok(connector),
        }
    }
}

/// The connector loaded from [`ClientConfig::tls`]. It is derived from
/// `tls`, so two configurations are equal whatever it holds.
#[derive(Debug, Clone, Default)]
struct LoadedTls(Option<Connector>);

impl PartialEq for LoadedTls {
    fn eq(&self, _: &LoadedTls) -> bool {
        true
    }
}

impl Eq for LoadedTls {}

impl ClientConfig {
    /// Defaults for connecting to these seed addresses.
    pub fn new<I, S>(seeds: I) -> ClientConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            seeds: seeds.into_iter().map(Into::into).collect(),
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(5),
            max_redirects: 16,
            max_retries: 16,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            limits: Limits::DEFAULT,
            tls: None,
            loaded_tls: LoadedTls::default(),
        }
    }

    /// Adds another seed address.
    pub fn seed(mut self, addr: impl Into<String>) -> Self {
        self.seeds.push(addr.into());
        self
    }

    /// Sets the password sent with AUTH on every connection.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Sets the user name sent with AUTH (needs a password too).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets [`ClientConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::response_timeout`].
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::max_redirects`].
    pub fn max_redirects(mut self, redirects: u32) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// Sets [`ClientConfig::max_retries`].
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the backoff between retries: `min` first, doubling up to `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Connects over TLS with these settings (see [`TlsOptions`]).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects with these settings; see [`KeycafeCluster::connect_with`].
    pub async fn connect(self) -> Result<KeycafeCluster> {
        KeycafeCluster::connect_with(self).await
    }

    /// The wait before retry number `attempt` (0-based).
    pub(crate) fn backoff_for(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.min_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Reads the TLS files, if TLS is configured: once, before the first
    /// connection, so that a bad file is reported at once.
    pub(crate) fn load_tls(&mut self) -> Result<()> {
        self.loaded_tls = LoadedTls(self.tls.as_ref().map(TlsOptions::load).transpose()?);
        Ok(())
    }

    /// The TLS connector every connection uses, once loaded.
    pub(crate) fn tls_connector(&self) -> Option<&Connector> {
        self.loaded_tls.0.as_ref()
    }

    /// Checks that the settings can work.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.seeds.is_empty() {
            return Err(Error::Config("at least one seed address is needed".into()));
        }
        if let Some(bad) = self
            .seeds
            .iter()
            .find(|seed| split_host_port(seed).is_none())
        {
            return Err(Error::Config(format!("{bad:?} is not a host:port address")));
        }
        if self.username.is_some() && self.password.is_none() {
            return Err(Error::Config("a username needs a password".into()));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config("timeouts must be longer than zero".into()));
        }
        Ok(())
    }
}

/// Splits `host:port` (or `[v6]:port`) into its parts.
pub(crate) fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = ClientConfig::new(["a:1"])
            .backoff(Duration::from_millis(10), Duration::from_millis(50));
        let waits: Vec<_> = (0..5).map(|n| config.backoff_for(n).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 50, 50]);
        assert_eq!(config.backoff_for(u32::MAX), Duration::from_millis(50));
    }

    #[test]
    fn the_default_budget_outlasts_a_failover() {
        let config = ClientConfig::new(["a:1"]);
        let waited: Duration = (0..config.max_retries).map(|n| config.backoff_for(n)).sum();
        assert!(
            waited >= Duration::from_secs(10),
            "a dead primary's replica takes the node timeout (5 s) and more to take over; \
             the retries give up after {waited:?}"
        );
    }

    #[test]
    fn validation() {
        assert!(
            ClientConfig::new(["localhost:9814", "[::1]:9815"])
                .validate()
                .is_ok()
        );
        assert!(ClientConfig::new(Vec::<String>::new()).validate().is_err());
        assert!(ClientConfig::new(["localhost"]).validate().is_err());
        assert!(ClientConfig::new([":9814"]).validate().is_err());
        assert!(ClientConfig::new(["h:99999"]).validate().is_err());
        assert!(ClientConfig::new(["h:1"]).username("u").validate().is_err());
        assert!(
            ClientConfig::new(["h:1"])
                .connect_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
    }
}
