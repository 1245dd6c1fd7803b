//! How a service that keeps its state in Keycafe finds the cluster: the
//! settings every such service reads from the same three variables.

use std::time::Duration;

use super::config::{BoxError, ConfigError, set_if_given};
use super::env::{EnvConfig, EnvVars};

/// Where a service's Keycafe is and how long to wait for it, from
/// `KEYCAFE_SEEDS` (comma-separated `host:port`), `KEYCAFE_PASSWORD` and
/// `KEYCAFE_TIMEOUT_MS`. A service's own [`EnvConfig`] holds one and hands
/// it the variables and the check.
///
/// `Debug` leaves the password out, so that logging a configuration that
/// holds one is safe.
#[derive(Clone, PartialEq, Eq)]
pub struct KeycafeSettings {
    /// Keycafe nodes to learn the cluster from; any reachable one will do.
    pub seeds: Vec<String>,
    /// Password for Keycafe's AUTH, if the nodes require one.
    pub password: Option<String>,
    /// Limit on connecting to a node and on each reply. Short, so that a
    /// Keycafe outage turns into a prompt error rather than a hung request.
    pub timeout: Duration,
}

impl Default for KeycafeSettings {
    /// One local node on the default port, no password, a 1 s timeout.
    fn default() -> KeycafeSettings {
        KeycafeSettings {
            seeds: vec!["127.0.0.1:9814".to_string()],
            password: None,
            timeout: Duration::from_secs(1),
        }
    }
}

impl EnvConfig for KeycafeSettings {
    fn apply_env<L>(&mut self, env: &EnvVars<L>) -> Result<(), ConfigError>
    where
        L: Fn(&str) -> Option<String>,
    {
        set_if_given(&mut self.seeds, env.list("KEYCAFE_SEEDS")?);
        self.password = env.get("KEYCAFE_PASSWORD");
        set_if_given(&mut self.timeout, env.millis("KEYCAFE_TIMEOUT_MS")?);
        Ok(())
    }

    /// Refuses no seed at all, or a zero timeout.
    fn check(&self) -> Result<(), BoxError> {
        if self.seeds.is_empty() {
            return Err("KEYCAFE_SEEDS: at least one Keycafe address is needed".into());
        }
        if self.timeout.is_zero() {
            return Err("KEYCAFE_TIMEOUT_MS must be more than 0".into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for KeycafeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeycafeSettings")
            .field("seeds", &self.seeds)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_variables() {
        assert_eq!(
            KeycafeSettings::from_pairs(&[]).unwrap(),
            KeycafeSettings::default()
        );
    }

    #[test]
    fn variables_override_defaults() {
        let settings = KeycafeSettings::from_pairs(&[
            ("KEYCAFE_SEEDS", " 10.0.0.1:9814, 10.0.0.2:9814 ,"),
            ("KEYCAFE_PASSWORD", "s3cret"),
            ("KEYCAFE_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(settings.seeds, ["10.0.0.1:9814", "10.0.0.2:9814"]);
        assert_eq!(settings.password.as_deref(), Some("s3cret"));
        assert_eq!(settings.timeout, Duration::from_millis(250));
        // A blank password is no password.
        assert_eq!(
            KeycafeSettings::from_pairs(&[("KEYCAFE_PASSWORD", "")])
                .unwrap()
                .password,
            None
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let error = KeycafeSettings::from_pairs(&[("KEYCAFE_SEEDS", " , ")]).unwrap_err();
        assert!(error.to_string().contains("KEYCAFE_SEEDS"), "{error}");
        let error = KeycafeSettings::from_pairs(&[("KEYCAFE_TIMEOUT_MS", "0")]).unwrap_err();
        assert!(error.to_string().contains("KEYCAFE_TIMEOUT_MS"), "{error}");
        let error = KeycafeSettings::from_pairs(&[("KEYCAFE_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(error.to_string().contains("KEYCAFE_TIMEOUT_MS"), "{error}");
    }

    #[test]
    fn debug_leaves_the_password_out() {
        let settings = KeycafeSettings {
            password: Some("s3cret".to_string()),
            ..KeycafeSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<set>"),
            "{shown}"
        );
    }
}
