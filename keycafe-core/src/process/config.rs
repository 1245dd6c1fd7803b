//! Defaults < YAML file < flags, for any configuration type.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// An error from a configuration's own checks, whatever type its crate uses.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read, but its contents are not a valid configuration.
    #[error("parsing config file {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
    /// Not YAML, or not the keys and types the configuration has.
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Settings that cannot work together, as [`LayeredConfig::check`] said.
    #[error(transparent)]
    Invalid(BoxError),
    /// The file's settings with the flags applied cannot work together.
    #[error("checking config file {} with the flags given", path.display())]
    Checked {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    /// An environment variable whose value does not parse (see
    /// [`EnvVars`](super::EnvVars)).
    #[error("{name}: cannot parse {value:?}")]
    Var {
        name: String,
        value: String,
        #[source]
        source: BoxError,
    },
}

/// A configuration built from defaults, then a YAML file, then flags.
///
/// `Default` is the first layer. `Deserialize` reads the second: derive it
/// with `#[serde(default, deny_unknown_fields)]` so that keys the file leaves
/// out keep their defaults and misspelt keys are errors.
pub trait LayeredConfig: Default + DeserializeOwned {
    /// Rejects settings that cannot work, with a message that says why. Run
    /// once every layer is applied: a file may leave to a flag or the
    /// environment what another of its settings needs (a `bind` of 0.0.0.0
    /// in the file, the `announce_host` on the command line).
    fn check(&self) -> Result<(), BoxError>;

    /// [`from_yaml_str`] for this configuration: `Config::from_yaml_str(text)`.
    fn from_yaml_str(text: &str) -> Result<Self, ConfigError> {
        from_yaml_str(text)
    }

    /// [`from_yaml_file`] for this configuration: `Config::from_yaml_file(path)`.
    fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        from_yaml_file(path)
    }
}

/// Parses YAML text and checks it. An empty document means all defaults
/// (unchecked: they are the starting point, not a configuration).
pub fn from_yaml_str<C: LayeredConfig>(text: &str) -> Result<C, ConfigError> {
    if text.trim().is_empty() {
        return Ok(C::default());
    }
    let config: C = parse_yaml(text)?;
    config.check().map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Reads a YAML file and checks it; keys it leaves out keep their defaults.
/// Errors name the file.
pub fn from_yaml_file<C: LayeredConfig>(path: &Path) -> Result<C, ConfigError> {
    let config: C = read_yaml_file(path)?;
    config.check().map_err(|source| ConfigError::File {
        path: path.to_path_buf(),
        source: Box::new(ConfigError::Invalid(source)),
    })?;
    Ok(config)
}

/// The keys and types of YAML text, unchecked.
fn parse_yaml<C: LayeredConfig>(text: &str) -> Result<C, ConfigError> {
    if text.trim().is_empty() {
        return Ok(C::default());
    }
    Ok(serde_yaml_ng::from_str(text)?)
}

/// [`parse_yaml`] of a file; errors name it.
fn read_yaml_file<C: LayeredConfig>(path: &Path) -> Result<C, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_yaml(&text).map_err(|source| ConfigError::File {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// The defaults, overlaid by `file` when one is named, overlaid by the
/// command-line flags that `apply_flags` writes (one [`set_if_given`] per
/// flag), then checked as a whole.
pub fn load<C: LayeredConfig>(
    file: Option<&Path>,
    apply_flags: impl FnOnce(&mut C),
) -> Result<C, ConfigError> {
    let mut config = match file {
        Some(path) => read_yaml_file(path)?,
        None => C::default(),
    };
    apply_flags(&mut config);
    config.check().map_err(|source| match file {
        Some(path) => ConfigError::Checked {
            path: path.to_path_buf(),
            source,
        },
        None => ConfigError::Invalid(source),
    })?;
    Ok(config)
}

/// Overrides a setting with a flag, if the flag was given. For a setting
/// that is itself optional, pass `flag.map(Some)`.
pub fn set_if_given<T>(setting: &mut T, flag: Option<T>) {
    if let Some(value) = flag {
        *setting = value;
    }
}

/// `yes`/`no` flag values, as in Redis's configuration (`true`/`false`
/// too, as in YAML).
pub fn yes_no(value: &str) -> Result<bool, String> {
    match value {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{value:?} is not yes or no")),
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use serde::Deserialize;

    use super::*;

    /// A configuration shaped like the servers' own.
    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        port: u16,
        level: String,
        secret: Option<String>,
    }

    impl Default for Settings {
        fn default() -> Self {
            Settings {
                port: 9000,
                level: "info".to_string(),
                secret: None,
            }
        }
    }

    impl LayeredConfig for Settings {
        fn check(&self) -> Result<(), BoxError> {
            if self.port == 0 {
                return Err("port must not be 0".into());
            }
            if self.secret.as_deref() == Some("") {
                return Err("secret must not be empty".into());
            }
            Ok(())
        }
    }

    /// Flags as clap would hand them over: `None` when not given.
    #[derive(Default)]
    struct Flags {
        port: Option<u16>,
        level: Option<String>,
        secret: Option<String>,
    }

    fn load_with(file: Option<&Path>, flags: Flags) -> Result<Settings, ConfigError> {
        load(file, |settings: &mut Settings| {
            set_if_given(&mut settings.port, flags.port);
            set_if_given(&mut settings.level, flags.level);
            set_if_given(&mut settings.secret, flags.secret.map(Some));
        })
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("settings.yaml");
        std::fs::write(&path, text).expect("write the file");
        (dir, path)
    }

    /// Every message in an error's chain, outermost first.
    fn chain(error: &dyn std::error::Error) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(inner) = source {
            messages.push(inner.to_string());
            source = inner.source();
        }
        messages
    }

    #[test]
    fn no_file_and_no_flags_is_the_defaults() {
        assert_eq!(
            load_with(None, Flags::default()).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn the_file_overrides_defaults_and_flags_override_the_file() {
        let (_dir, path) = file("port: 9100\nlevel: debug\nsecret: s\n");
        let from_file = load_with(Some(&path), Flags::default()).unwrap();
        assert_eq!(
            from_file,
            Settings {
                port: 9100,
                level: "debug".into(),
                secret: Some("s".into()),
            }
        );

        let flags = Flags {
            port: Some(7000),
            secret: Some("t".into()),
            ..Flags::default()
        };
        let layered = load_with(Some(&path), flags).unwrap();
        assert_eq!(layered.port, 7000, "a flag wins over the file");
        assert_eq!(layered.secret.as_deref(), Some("t"), "an optional one too");
        assert_eq!(
            layered.level, "debug",
            "the file wins where no flag was given"
        );
    }

    #[test]
    fn keys_the_file_leaves_out_keep_their_defaults() {
        let (_dir, path) = file("level: warn\n");
        let settings = load_with(Some(&path), Flags::default()).unwrap();
        assert_eq!(settings.port, 9000);
        assert_eq!(settings.secret, None);
        assert_eq!(settings.level, "warn");
    }

    #[test]
    fn an_empty_document_is_all_defaults() {
        assert_eq!(from_yaml_str::<Settings>("").unwrap(), Settings::default());
        assert_eq!(
            from_yaml_str::<Settings>(" \n\n").unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn a_configuration_type_reads_its_own_files() {
        let (_dir, path) = file("port: 9100\n");
        assert_eq!(Settings::from_yaml_file(&path).unwrap().port, 9100);
        assert_eq!(
            Settings::from_yaml_str("level: warn\n").unwrap().level,
            "warn"
        );
        assert!(Settings::from_yaml_str("port: 0\n").is_err(), "checked too");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        assert!(matches!(
            from_yaml_str::<Settings>("prot: 1\n"),
            Err(ConfigError::Yaml(_))
        ));
        assert!(matches!(
            from_yaml_str::<Settings>("port: 70000\n"),
            Err(ConfigError::Yaml(_))
        ));
    }

    #[test]
    fn the_settings_are_checked_once_every_layer_is_applied() {
        // A flag may complete what the file leaves wrong by itself.
        let (_dir, path) = file("port: 0\n");
        let flags = Flags {
            port: Some(1),
            ..Flags::default()
        };
        assert_eq!(load_with(Some(&path), flags).unwrap().port, 1);

        // And make a valid file's settings wrong.
        let (_dir, path) = file("port: 1\n");
        let flags = Flags {
            secret: Some(String::new()),
            ..Flags::default()
        };
        let error = load_with(Some(&path), flags).unwrap_err();
        assert!(matches!(error, ConfigError::Checked { .. }), "{error:?}");
        assert_eq!(chain(&error)[1], "secret must not be empty");
        let error = load_with(
            None,
            Flags {
                port: Some(0),
                ..Flags::default()
            },
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "port must not be 0");
        // A file loaded on its own is checked on its own.
        assert!(Settings::from_yaml_file(&file("port: 0\n").1).is_err());
    }

    #[test]
    fn errors_name_the_file_and_the_cause() {
        let (_dir, path) = file("port: 9000\nsecrte: x\n");
        let error = load_with(Some(&path), Flags::default()).unwrap_err();
        let messages = chain(&error);
        assert_eq!(
            messages[0],
            format!("parsing config file {}", path.display())
        );
        assert!(messages[1].contains("secrte"), "{messages:?}");

        let (_dir, path) = file("port: 0\n");
        let messages = chain(&load_with(Some(&path), Flags::default()).unwrap_err());
        assert_eq!(
            messages[0],
            format!(
                "checking config file {} with the flags given",
                path.display()
            )
        );
        assert_eq!(messages[1], "port must not be 0");

        let missing = Path::new("/nonexistent/settings.yaml");
        let error = load_with(Some(missing), Flags::default()).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        assert!(error.to_string().contains("/nonexistent/settings.yaml"));
        assert!(
            error.source().is_some(),
            "the io::Error is kept as the cause"
        );
    }
}
