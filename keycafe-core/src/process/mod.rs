//! What every Keycafe process does the same way around its real work:
//! read its configuration, set up logging, and notice when it is asked to
//! stop.
//!
//! The node, the coordinator and the two example services each start and
//! stop alike, and each used to carry its own copy of that code; the copies
//! had begun to drift (one logged in colour to a pipe, one to stdout). This
//! module is the one copy. It sits behind the `process` cargo feature so that
//! the default build of `keycafe-core`, which the client and its users
//! depend on, stays free of signals, logging back-ends and YAML.
//!
//! # Configuration in layers
//!
//! The two servers read their settings as *defaults < YAML file <
//! command-line flags*: a key the file leaves out keeps its default, and a
//! flag given on the command line wins over both. A configuration type says
//! what it is by implementing [`LayeredConfig`] (its `Default`, its
//! `Deserialize`, and a [`check`](LayeredConfig::check) of combinations that
//! cannot work); [`load`] then does the layering, and [`set_if_given`] is the
//! one line per flag. The files are strict on purpose: derive `Deserialize`
//! with `#[serde(default, deny_unknown_fields)]`, so that a misspelt
//! `requirepass` is an error rather than a node silently left open.
//!
//! The example services take their settings from environment variables
//! instead, over the same defaults: a type implements [`EnvConfig`] (which
//! variables it reads, and its check), and [`EnvConfig::from_env`] does the
//! rest. [`EnvVars`] reads the variables (or any lookup, in tests) with
//! errors that name the variable, and [`KeycafeSettings`] is the part every
//! such service has: where the Keycafe nodes are, their password, and how
//! long to wait for them.
//!
//! # Logging and shutdown
//!
//! [`init_tracing`] installs the same subscriber everywhere: `RUST_LOG` when
//! it is set and valid, otherwise the configured level, written to stderr
//! (stdout is left to the program), in colour only on a terminal.
//! [`shutdown_signal`] completes on SIGINT or SIGTERM; every server's `run`
//! takes a shutdown future, and the binaries pass this one, so that tests can
//! pass their own.

mod config;
mod env;
mod keycafe;
mod logging;
mod signal;

pub use config::{
    BoxError, ConfigError, LayeredConfig, from_yaml_file, from_yaml_str, load, set_if_given, yes_no,
};
pub use env::{EnvConfig, EnvVars};
pub use keycafe::KeycafeSettings;
pub use logging::{TracingError, init_tracing};
pub use signal::shutdown_signal;
