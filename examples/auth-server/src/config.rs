//! Settings: defaults that run the demo on one machine, each overridable by
//! an environment variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AUTH_SERVER_ADDR` | `127.0.0.1:8080` | where the API listens |
//! | `DATABASE_URL` | `sqlite://auth-example.db?mode=rwc` | the SQLite file (created and migrated at start-up) |
//! | `KEYCAFE_SEEDS` | `127.0.0.1:9814` | Keycafe node(s), comma-separated `host:port` |
//! | `KEYCAFE_PASSWORD` | none | sent with AUTH if the nodes require a password |
//! | `KEYCAFE_TIMEOUT_MS` | `1000` | connect and reply timeout for Keycafe |
//! | `AUTH_SESSION_IDLE_SECS` | `1800` | a session ends after this long unused (slides on each use) |
//! | `AUTH_SESSION_ABSOLUTE_SECS` | `43200` | and in any case this long after login |
//! | `AUTH_USER_CACHE_TTL_SECS` | `300` | how long a user row stays cached in Keycafe |
//! | `AUTH_LOGIN_MAX_FAILURES` | `5` | failed logins allowed for one account from one address ... |
//! | `AUTH_LOGIN_MAX_ADDRESS_FAILURES` | `20` | ... and from one address over all accounts ... |
//! | `AUTH_LOGIN_WINDOW_SECS` | `900` | ... within this window, then 429 |
//! | `AUTH_LOGIN_ACCOUNT_SLOW_AFTER` | `20` | failures of one account (all addresses) after which its logins slow down ... |
//! | `AUTH_LOGIN_ACCOUNT_DELAY_MS` | `1000` | ... by this much each (never a lockout) |
//! | `AUTH_INTERNAL_SECRET` | none | shared with auth-web: a request carrying it in `X-Internal-Auth` may name the client in `X-Forwarded-For` |
//! | `AUTH_TRUSTED_PROXIES` | none | if set, only these peer IPs may do so (with the secret too) |
//! | `RUST_LOG` | `info` | log filter (read by `main.rs`) |
//!
//! The throttling policy these numbers feed is described in [`crate::throttle`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::bail;
use keycafe_core::process::{
    BoxError, ConfigError, EnvConfig, EnvVars, KeycafeSettings, set_if_given,
};
use subtle::ConstantTimeEq;

/// Everything the server needs to know; see the module docs for the
/// environment variables behind each field.
/// `Debug` leaves the Keycafe password and the internal secret out, so that
/// logging a `Config` is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the binary listens (`run` itself takes a bound listener).
    pub listen_addr: SocketAddr,
    /// sqlx SQLite URL; the file is created if missing.
    pub database_url: String,
    /// The Keycafe nodes, their password, and the limit on connecting and on
    /// each reply. Short, so that a Keycafe outage turns into a prompt 503
    /// rather than a hung request.
    pub keycafe: KeycafeSettings,
    /// A session expires after this long without use; each use restarts it.
    pub session_idle: Duration,
    /// A session expires this long after login, however much it is used.
    pub session_absolute: Duration,
    /// Time to live of a cached user row.
    pub user_cache_ttl: Duration,
    /// Failed logins allowed for one account from one client address within
    /// [`Config::login_window`]; the next attempt from there gets 429.
    pub login_max_failures: u32,
    /// Failed logins allowed from one client address, whatever the
    /// accounts, within the window; the next attempt from there gets 429.
    pub login_max_address_failures: u32,
    /// The window the failure counters cover (it starts at the first failure).
    pub login_window: Duration,
    /// Failures of one account, from every address together, after which
    /// each attempt on it waits [`Config::login_account_delay`]: guessing
    /// from many addresses slows down, and the owner is never locked out.
    pub login_account_slow_after: u32,
    /// The wait of an attempt on a slowed-down account.
    pub login_account_delay: Duration,
    /// The secret auth-web proves in `X-Internal-Auth`. Only a request that
    /// carries it may name the real client in `X-Forwarded-For`; every
    /// other caller is throttled by its own TCP peer address.
    pub internal_secret: Option<InternalSecret>,
    /// When not empty, the internal secret is honoured only from these peer
    /// addresses too (auth-web's, a reverse proxy's).
    pub trusted_proxies: Vec<IpAddr>,
}

/// The secret shared by auth-web and auth-server. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct InternalSecret(String);

impl InternalSecret {
    /// Shortest secret accepted: a guessable one would let any caller choose
    /// the address it is throttled by.
    pub const MIN_LEN: usize = 16;

    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> InternalSecret {
        InternalSecret(secret.into())
    }

    /// True if `offered` is the secret, compared in constant time (a wrong
    /// length is refused at once: the length is no secret).
    pub fn matches(&self, offered: &[u8]) -> bool {
        bool::from(offered.ct_eq(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for InternalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalSecret(<set>)")
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://auth-example.db?mode=rwc".to_string(),
            keycafe: KeycafeSettings::default(),
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 60 * 60),
            user_cache_ttl: Duration::from_secs(5 * 60),
            login_max_failures: 5,
            login_max_address_failures: 20,
            login_window: Duration::from_secs(15 * 60),
            login_account_slow_after: 20,
            login_account_delay: Duration::from_secs(1),
            internal_secret: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Read with [`EnvConfig::from_env`].
impl EnvConfig for Config {
    fn apply_env<L>(&mut self, env: &EnvVars<L>) -> Result<(), ConfigError>
    where
        L: Fn(&str) -> Option<String>,
    {
        set_if_given(&mut self.listen_addr, env.parse("AUTH_SERVER_ADDR")?);
        set_if_given(&mut self.database_url, env.get("DATABASE_URL"));
        self.keycafe.apply_env(env)?;
        set_if_given(&mut self.session_idle, env.secs("AUTH_SESSION_IDLE_SECS")?);
        set_if_given(
            &mut self.session_absolute,
            env.secs("AUTH_SESSION_ABSOLUTE_SECS")?,
        );
        set_if_given(
            &mut self.user_cache_ttl,
            env.secs("AUTH_USER_CACHE_TTL_SECS")?,
        );
        set_if_given(
            &mut self.login_max_failures,
            env.parse("AUTH_LOGIN_MAX_FAILURES")?,
        );
        set_if_given(
            &mut self.login_max_address_failures,
            env.parse("AUTH_LOGIN_MAX_ADDRESS_FAILURES")?,
        );
        set_if_given(&mut self.login_window, env.secs("AUTH_LOGIN_WINDOW_SECS")?);
        set_if_given(
            &mut self.login_account_slow_after,
            env.parse("AUTH_LOGIN_ACCOUNT_SLOW_AFTER")?,
        );
        set_if_given(
            &mut self.login_account_delay,
            env.millis("AUTH_LOGIN_ACCOUNT_DELAY_MS")?,
        );
        if let Some(secret) = env.get("AUTH_INTERNAL_SECRET") {
            self.internal_secret = Some(InternalSecret::new(secret.trim()));
        }
        set_if_given(&mut self.trusted_proxies, env.list("AUTH_TRUSTED_PROXIES")?);
        Ok(())
    }

    fn check(&self) -> Result<(), BoxError> {
        Ok(self.validate()?)
    }
}

impl Config {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.database_url.starts_with("sqlite:") {
            bail!("DATABASE_URL must be a sqlite: URL, e.g. sqlite://auth-example.db?mode=rwc");
        }
        self.keycafe.check().map_err(anyhow::Error::from_boxed)?;
        if self.session_idle < Duration::from_secs(1) || self.session_absolute < self.session_idle {
            bail!("sessions need an idle expiry of at least 1 s and an absolute one no shorter");
        }
        if self.user_cache_ttl.is_zero() || self.login_window < Duration::from_secs(1) {
            bail!("AUTH_USER_CACHE_TTL_SECS and AUTH_LOGIN_WINDOW_SECS must be more than 0");
        }
        if self.login_max_failures == 0 || self.login_max_address_failures == 0 {
            bail!(
                "AUTH_LOGIN_MAX_FAILURES and AUTH_LOGIN_MAX_ADDRESS_FAILURES must be more than 0"
            );
        }
        if let Some(InternalSecret(secret)) = &self.internal_secret
            && secret.len() < InternalSecret::MIN_LEN
        {
            bail!(
                "AUTH_INTERNAL_SECRET must be at least {} characters",
                InternalSecret::MIN_LEN
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_variables() {
        assert_eq!(
            Config::from_pairs(&[]).expect("defaults are valid"),
            Config::default()
        );
    }

    #[test]
    fn variables_override_defaults() {
        let config = Config::from_pairs(&[
            ("AUTH_SERVER_ADDR", "0.0.0.0:9000"),
            ("KEYCAFE_SEEDS", " 10.0.0.1:9814, 10.0.0.2:9814 ,"),
            ("AUTH_SESSION_IDLE_SECS", "60"),
            ("AUTH_TRUSTED_PROXIES", "127.0.0.1, ::1"),
            ("KEYCAFE_PASSWORD", ""),
            ("AUTH_INTERNAL_SECRET", "0123456789abcdef0123"),
            ("AUTH_LOGIN_ACCOUNT_DELAY_MS", "250"),
        ])
        .expect("valid");
        let secret = config.internal_secret.as_ref().expect("a secret");
        assert!(secret.matches(b"0123456789abcdef0123"));
        assert!(!secret.matches(b"0123456789abcdef012"));
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        assert_eq!(config.login_account_delay, Duration::from_millis(250));
        assert_eq!(config.listen_addr.port(), 9000);
        assert_eq!(config.keycafe.seeds, ["10.0.0.1:9814", "10.0.0.2:9814"]);
        assert_eq!(config.session_idle, Duration::from_secs(60));
        assert_eq!(config.trusted_proxies.len(), 2);
        assert_eq!(config.keycafe.password, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error =
            Config::from_pairs(&[("AUTH_LOGIN_MAX_FAILURES", "five")]).expect_err("not a number");
        assert!(error.to_string().contains("AUTH_LOGIN_MAX_FAILURES"));
        assert!(Config::from_pairs(&[("AUTH_SESSION_IDLE_SECS", "0")]).is_err());
        assert!(Config::from_pairs(&[("AUTH_SESSION_ABSOLUTE_SECS", "10")]).is_err());
        assert!(Config::from_pairs(&[("KEYCAFE_SEEDS", " , ")]).is_err());
        assert!(Config::from_pairs(&[("DATABASE_URL", "postgres://db/users")]).is_err());
        assert!(Config::from_pairs(&[("AUTH_INTERNAL_SECRET", "short")]).is_err());
        assert!(Config::from_pairs(&[("AUTH_LOGIN_MAX_ADDRESS_FAILURES", "0")]).is_err());
    }
}
