//! The tracing subscriber every Keycafe process installs.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::ParseError;

use super::config::BoxError;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// `RUST_LOG` is unset or invalid, and so is the configured level.
    #[error("invalid log level {level:?}")]
    Level {
        level: String,
        #[source]
        source: ParseError,
    },
    /// A global subscriber was already installed.
    #[error("cannot install the log subscriber")]
    Install(#[source] BoxError),
}

/// Logs to stderr, filtered by `RUST_LOG` when it is set and valid, or else
/// by `default_level` (a filter such as `info` or `keycafe_server=debug`).
/// Colour only when stderr is a terminal and `NO_COLOR` is not set, so that
/// log files and pipes get plain text. Call once, at start-up.
pub fn init_tracing(default_level: &str) -> Result<(), TracingError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_level))
        .map_err(|source| TracingError::Level {
            level: default_level.to_string(),
            source,
        })?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .try_init()
        .map_err(TracingError::Install)
}
