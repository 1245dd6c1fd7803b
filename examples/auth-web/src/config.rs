//! Settings: defaults that run the demo on one machine, each overridable by
//! an environment variable.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AUTH_WEB_ADDR` | `127.0.0.1:3000` | where the site listens |
//! | `AUTH_SERVER_URL` | `http://127.0.0.1:8080` | the auth-server API (plain HTTP: keep it on loopback or a private network) |
//! | `KEYCAFE_SEEDS` | `127.0.0.1:9814` | Keycafe node(s) for browser sessions, comma-separated `host:port` |
//! | `KEYCAFE_PASSWORD` | none | sent with AUTH if the nodes require a password |
//! | `KEYCAFE_TIMEOUT_MS` | `1000` | connect and reply timeout for Keycafe (one retry: a page fails within about two of these) |
//! | `AUTH_WEB_API_TIMEOUT_MS` | `10000` | limit on each call to auth-server |
//! | `AUTH_WEB_SECURE_COOKIES` | `false` | mark the session cookie `Secure` (set it behind HTTPS) |
//! | `AUTH_WEB_SESSION_IDLE_SECS` | `1800` | a browser session ends after this long unused |
//! | `AUTH_WEB_SESSION_PREFIX` | `web:session:` | Keycafe key prefix of browser sessions |
//! | `AUTH_INTERNAL_SECRET` | none | shared with auth-server, sent as `X-Internal-Auth` so that it believes the browser address in `X-Forwarded-For` |
//! | `RUST_LOG` | `info` | log filter (read by `main.rs`) |

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;
use keycafe_core::process::{
    BoxError, ConfigError, EnvConfig, EnvVars, KeycafeSettings, set_if_given,
};

/// Everything the site needs to know; see the module docs for the
/// environment variable behind each field. `Debug` leaves the Keycafe
/// password and the internal secret out, so that logging a `Config` is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the binary listens (`run` itself takes a bound listener).
    pub listen_addr: SocketAddr,
    /// Base URL of auth-server, without a trailing slash.
    pub auth_server_url: String,
    /// The Keycafe nodes of browser sessions, their password, and the limit
    /// on connecting to one and on each reply.
    pub keycafe: KeycafeSettings,
    /// Limit on each request to auth-server (a login includes an argon2 hash).
    pub api_timeout: Duration,
    /// Whether the session cookie carries `Secure` (and the `__Host-` name
    /// prefix). Off by default because the demo runs on plain
    /// `http://127.0.0.1`; turn it on whenever the site is served over HTTPS.
    pub secure_cookies: bool,
    /// A browser session expires after this long without a request; each
    /// request restarts the clock (cookie and Keycafe TTL alike).
    pub session_idle: Duration,
    /// Keycafe key prefix of browser sessions, distinct from auth-server's
    /// `session:` keys so that the two kinds are easy to tell apart.
    pub session_prefix: String,
    /// The secret auth-server shares with this site: sent with each login,
    /// it makes auth-server throttle by the browser's address (which this
    /// site names in `X-Forwarded-For`) instead of this server's.
    pub internal_secret: Option<InternalSecret>,
}

/// The secret shared with auth-server. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct InternalSecret(String);

impl InternalSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> InternalSecret {
        InternalSecret(secret.into())
    }

    /// The secret itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
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
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            auth_server_url: "http://127.0.0.1:8080".to_string(),
            keycafe: KeycafeSettings::default(),
            api_timeout: Duration::from_secs(10),
            secure_cookies: false,
            session_idle: Duration::from_secs(30 * 60),
            session_prefix: "web:session:".to_string(),
            internal_secret: None,
        }
    }
}

/// Read with [`EnvConfig::from_env`].
impl EnvConfig for Config {
    fn apply_env<L>(&mut self, env: &EnvVars<L>) -> Result<(), ConfigError>
    where
        L: Fn(&str) -> Option<String>,
    {
        set_if_given(&mut self.listen_addr, env.parse("AUTH_WEB_ADDR")?);
        set_if_given(
            &mut self.auth_server_url,
            env.get("AUTH_SERVER_URL")
                .map(|url| url.trim().trim_end_matches('/').to_string()),
        );
        self.keycafe.apply_env(env)?;
        set_if_given(
            &mut self.api_timeout,
            env.millis("AUTH_WEB_API_TIMEOUT_MS")?,
        );
        set_if_given(
            &mut self.secure_cookies,
            env.flag("AUTH_WEB_SECURE_COOKIES")?,
        );
        set_if_given(
            &mut self.session_idle,
            env.secs("AUTH_WEB_SESSION_IDLE_SECS")?,
        );
        set_if_given(
            &mut self.session_prefix,
            env.get("AUTH_WEB_SESSION_PREFIX")
                .map(|prefix| prefix.trim().to_string()),
        );
        if let Some(secret) = env.get("AUTH_INTERNAL_SECRET") {
            self.internal_secret = Some(InternalSecret::new(secret.trim()));
        }
        Ok(())
    }

    fn check(&self) -> Result<(), BoxError> {
        Ok(self.validate()?)
    }
}

impl Config {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.keycafe.check().map_err(anyhow::Error::from_boxed)?;
        let url = &self.auth_server_url;
        if !url.starts_with("http://") || url.len() <= "http://".len() {
            bail!("AUTH_SERVER_URL must be an http:// URL, got {url:?}");
        }
        if self.api_timeout.is_zero() {
            bail!("AUTH_WEB_API_TIMEOUT_MS must be more than 0");
        }
        if self.session_idle < Duration::from_secs(1) {
            bail!("AUTH_WEB_SESSION_IDLE_SECS must be at least 1");
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
            ("AUTH_WEB_ADDR", "0.0.0.0:4000"),
            ("AUTH_SERVER_URL", "http://10.0.0.5:8080/"),
            ("KEYCAFE_SEEDS", " 10.0.0.1:9814, 10.0.0.2:9814 ,"),
            ("AUTH_WEB_SECURE_COOKIES", "TRUE"),
            ("AUTH_WEB_SESSION_IDLE_SECS", "60"),
            ("KEYCAFE_PASSWORD", ""),
            ("AUTH_INTERNAL_SECRET", " shared-secret-0123456789 "),
        ])
        .expect("valid");
        let secret = config.internal_secret.as_ref().expect("a secret");
        assert_eq!(secret.expose(), "shared-secret-0123456789");
        assert!(!format!("{config:?}").contains("shared-secret"));
        assert_eq!(config.listen_addr.port(), 4000);
        assert_eq!(config.auth_server_url, "http://10.0.0.5:8080");
        assert_eq!(config.keycafe.seeds, ["10.0.0.1:9814", "10.0.0.2:9814"]);
        assert!(config.secure_cookies);
        assert_eq!(config.session_idle, Duration::from_secs(60));
        assert_eq!(config.keycafe.password, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("AUTH_WEB_SECURE_COOKIES", "maybe"),
            ("AUTH_WEB_SESSION_IDLE_SECS", "soon"),
            ("AUTH_WEB_ADDR", "localhost"),
        ] {
            let error = Config::from_pairs(&[(name, value)]).expect_err("invalid");
            assert!(error.to_string().contains(name), "{error}");
        }
        assert!(Config::from_pairs(&[("AUTH_SERVER_URL", "ftp://x")]).is_err());
        assert!(Config::from_pairs(&[("AUTH_WEB_SESSION_IDLE_SECS", "0")]).is_err());
        assert!(Config::from_pairs(&[("KEYCAFE_SEEDS", " , ")]).is_err());
    }
}
