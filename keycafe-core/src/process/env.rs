//! Settings from environment variables, with errors that name the variable.

use std::str::FromStr;
use std::time::Duration;

use super::config::{BoxError, ConfigError};

/// A configuration read from environment variables over its defaults: the
/// example services' counterpart of [`LayeredConfig`](super::LayeredConfig).
///
/// A type says which variables it reads ([`apply_env`](Self::apply_env))
/// and which settings cannot work ([`check`](Self::check)); the provided
/// constructors do the rest, the same way for every service.
pub trait EnvConfig: Default {
    /// Overrides each setting whose variable `env` has set.
    fn apply_env<L>(&mut self, env: &EnvVars<L>) -> Result<(), ConfigError>
    where
        L: Fn(&str) -> Option<String>;

    /// Rejects settings that cannot work, with a message that says why.
    fn check(&self) -> Result<(), BoxError>;

    /// The defaults, overridden by whichever environment variables are set,
    /// then checked.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`EnvConfig::from_env`], reading variables through `lookup`.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.apply_env(&EnvVars::new(lookup))?;
        config.check().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Like [`EnvConfig::from_env`], with the variables given as
    /// `(name, value)` pairs: for tests.
    fn from_pairs(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            let (_, value) = vars.iter().find(|(set, _)| *set == name)?;
            Some(value.to_string())
        })
    }
}

/// Reads settings from environment variables, or from any lookup (a map in
/// tests). A variable that is unset or blank counts as not given, so that
/// `VAR= program` keeps the default; each reader returns `None` then.
pub struct EnvVars<L> {
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> EnvVars<L> {
    /// Variables looked up through `lookup`.
    pub fn new(lookup: L) -> Self {
        EnvVars { lookup }
    }

    /// The value as set, surrounding spaces included.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value, trimmed, parsed as a `T`.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Into<BoxError>,
    {
        self.get(name)
            .map(|value| parse_value(name, &value))
            .transpose()
    }

    /// A whole number of milliseconds.
    pub fn millis(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        Ok(self.parse(name)?.map(Duration::from_millis))
    }

    /// A whole number of seconds.
    pub fn secs(&self, name: &str) -> Result<Option<Duration>, ConfigError> {
        Ok(self.parse(name)?.map(Duration::from_secs))
    }

    /// `true`/`false`, also `1`/`0`, `yes`/`no` and `on`/`off`, in any case.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        Ok(self.parse::<Flag>(name)?.map(|Flag(on)| on))
    }

    /// A comma-separated list; items are trimmed and empty ones skipped, so
    /// a value of only commas is an empty list (for the caller to refuse).
    pub fn list<T>(&self, name: &str) -> Result<Option<Vec<T>>, ConfigError>
    where
        T: FromStr,
        T::Err: Into<BoxError>,
    {
        self.get(name)
            .map(|value| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| parse_value(name, item))
                    .collect()
            })
            .transpose()
    }
}

fn parse_value<T>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Into<BoxError>,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Var {
            name: name.to_string(),
            value: value.to_string(),
            source: err.into(),
        })
}

/// A boolean spelt the ways people write one in an environment variable.
struct Flag(bool);

impl FromStr for Flag {
    type Err = &'static str;

    fn from_str(value: &str) -> Result<Flag, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Flag(true)),
            "0" | "false" | "no" | "off" => Ok(Flag(false)),
            _ => Err("expected true or false"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::error::Error as _;
    use std::net::SocketAddr;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> EnvVars<impl Fn(&str) -> Option<String>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        EnvVars::new(move |name| vars.get(name).cloned())
    }

    #[test]
    fn unset_and_blank_are_not_given() {
        let env = env(&[("BLANK", "  "), ("SET", " x ")]);
        assert_eq!(env.get("UNSET"), None);
        assert_eq!(env.get("BLANK"), None);
        assert_eq!(env.get("SET").as_deref(), Some(" x "));
        assert_eq!(env.parse::<u16>("BLANK").unwrap(), None);
        assert_eq!(env.list::<String>("UNSET").unwrap(), None);
    }

    #[test]
    fn values_are_trimmed_and_parsed() {
        let env = env(&[
            ("ADDR", " 127.0.0.1:80 "),
            ("MS", "250"),
            ("SECS", "3"),
            ("ON", "Yes"),
            ("OFF", "0"),
            ("LIST", " a:1, b:2 ,,"),
            ("COMMAS", " , "),
        ]);
        let addr: SocketAddr = env.parse("ADDR").unwrap().unwrap();
        assert_eq!(addr.port(), 80);
        assert_eq!(env.millis("MS").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(env.secs("SECS").unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(env.flag("ON").unwrap(), Some(true));
        assert_eq!(env.flag("OFF").unwrap(), Some(false));
        assert_eq!(
            env.list::<String>("LIST").unwrap(),
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert_eq!(env.list::<String>("COMMAS").unwrap(), Some(vec![]));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_value() {
        let env = env(&[("N", "five"), ("B", "maybe"), ("IPS", "::1, nope")]);
        let error = env.parse::<u32>("N").unwrap_err();
        assert_eq!(error.to_string(), "N: cannot parse \"five\"");
        assert!(error.source().is_some());
        let error = env.flag("B").unwrap_err();
        assert_eq!(
            error.source().unwrap().to_string(),
            "expected true or false"
        );
        let error = env.list::<std::net::IpAddr>("IPS").unwrap_err();
        assert_eq!(error.to_string(), "IPS: cannot parse \"nope\"");
    }
}
