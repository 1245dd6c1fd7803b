//! The deployment files, checked against the workspace they deploy:
//! `compose.yaml`, `deploy/Containerfile.*`, `deploy/build-images.sh`,
//! `deploy/http-probe.rs`, `deploy/systemd/*` and `docs/deploy.md`.
//!
//! No container engine is needed, and none is used: the files are parsed
//! and compared with what the workspace really has — its binaries (`cargo
//! metadata`), their `--help`, the node's and the coordinator's own
//! configuration loaders — and the two programs among them, the build
//! script and the HTTP probe, are run (the script against stand-in engines).
//!
//! # Layout
//!
//! - `workspace`: the workspace's version and binaries, a binary's flags;
//! - `containerfile`: a Containerfile as stages of instructions;
//! - `compose`: compose.yaml as YAML, its services and `${VARIABLES}`;
//! - `unit`: a systemd unit as sections of settings;
//! - the tests, one concern each, in the order of docs/deploy.md.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use cluster_tests::TempDir;
use serde_yaml_ng::Value;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the repository, as text.
fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

mod workspace {
    use std::collections::BTreeSet;
    use std::process::Command;
    use std::sync::OnceLock;

    /// What `cargo metadata` says of the workspace.
    pub struct Workspace {
        /// The version every package shares (`[workspace.package]`).
        pub version: String,
        /// Every binary target of every member.
        pub bins: BTreeSet<String>,
    }

    /// The workspace, asked of cargo once.
    pub fn get() -> &'static Workspace {
        static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
        WORKSPACE.get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let output = Command::new(cargo)
                .args(["metadata", "--no-deps", "--format-version", "1"])
                .arg("--manifest-path")
                .arg(super::root().join("Cargo.toml"))
                .output()
                .expect("cargo metadata runs");
            assert!(output.status.success(), "cargo metadata failed");
            let metadata: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
            let packages = metadata["packages"].as_array().expect("a package list");
            let mut bins = BTreeSet::new();
            for target in packages
                .iter()
                .flat_map(|p| p["targets"].as_array().unwrap())
            {
                let kinds = target["kind"].as_array().unwrap();
                if kinds.iter().any(|k| k == "bin") {
                    bins.insert(target["name"].as_str().unwrap().to_string());
                }
            }
            let server = packages
                .iter()
                .find(|p| p["name"] == "keycafe-server")
                .expect("keycafe-server is a member");
            Workspace {
                version: server["version"].as_str().unwrap().to_string(),
                bins,
            }
        })
    }

    /// The `--flags` a workspace binary's `--help` lists.
    pub fn flags_of(bin: &str) -> BTreeSet<String> {
        let output = Command::new(cluster_tests::binary(bin))
            .arg("--help")
            .output()
            .unwrap_or_else(|err| panic!("running {bin} --help: {err}"));
        assert!(output.status.success(), "{bin} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        help.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|word| word.starts_with("--") && word.len() > 2)
            .map(|word| {
                word.trim_end_matches(|c: char| !c.is_alphanumeric())
                    .to_string()
            })
            .collect()
    }

    /// The `--flags` among `args` (`--flag value` or `--flag=value`).
    pub fn flags_in(args: &[String]) -> Vec<String> {
        args.iter()
            .filter(|arg| arg.starts_with("--"))
            .map(|arg| arg.split('=').next().unwrap_or_default().to_string())
            .collect()
    }

    /// The value given to `flag` in `args`.
    pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        let with_equals = format!("{flag}=");
        args.iter().enumerate().find_map(|(i, arg)| {
            if arg == flag {
                args.get(i + 1).map(String::as_str)
            } else {
                arg.strip_prefix(&with_equals)
            }
        })
    }
}

mod containerfile {
    /// One instruction: `COPY --from=builder a b` is keyword `COPY` with the
    /// rest as `args`; continued lines are joined, comments dropped.
    #[derive(Debug, Clone)]
    pub struct Instruction {
        pub keyword: String,
        pub args: String,
    }

    /// A build stage: its `FROM` image, its `AS` name, its instructions.
    #[derive(Debug)]
    pub struct Stage {
        pub image: String,
        pub name: Option<String>,
        pub instructions: Vec<Instruction>,
    }

    /// A parsed Containerfile.
    pub struct Containerfile {
        pub stages: Vec<Stage>,
    }

    /// A `COPY` with its flags, sources and destination.
    #[derive(Debug)]
    pub struct Copy {
        pub from: Option<String>,
        pub chown: Option<String>,
        pub sources: Vec<String>,
        pub dest: String,
    }

    impl Containerfile {
        /// `deploy/Containerfile.<name>`.
        pub fn load(name: &str) -> Containerfile {
            let text = super::read(&format!("deploy/Containerfile.{name}"));
            let mut stages: Vec<Stage> = Vec::new();
            for instruction in instructions(&text) {
                if instruction.keyword == "FROM" {
                    let words: Vec<&str> = instruction.args.split_whitespace().collect();
                    let name = match words.as_slice() {
                        [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => {
                            Some(name.to_string())
                        }
                        _ => None,
                    };
                    stages.push(Stage {
                        image: words.first().unwrap_or(&"").to_string(),
                        name,
                        instructions: Vec::new(),
                    });
                } else if let Some(stage) = stages.last_mut() {
                    stage.instructions.push(instruction);
                } else {
                    assert_eq!(
                        instruction.keyword, "ARG",
                        "{name}: only ARG comes before FROM"
                    );
                }
            }
            Containerfile { stages }
        }

        /// The stage that becomes the image.
        pub fn last(&self) -> &Stage {
            self.stages.last().expect("at least one stage")
        }

        /// The stage named `name`.
        pub fn stage(&self, name: &str) -> Option<&Stage> {
            self.stages.iter().find(|s| s.name.as_deref() == Some(name))
        }
    }

    impl Stage {
        /// The instructions with this keyword.
        pub fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Instruction> {
            self.instructions
                .iter()
                .filter(move |i| i.keyword == keyword)
        }

        /// The one instruction with this keyword.
        pub fn one<'a>(&'a self, keyword: &'a str) -> &'a Instruction {
            let found: Vec<_> = self.all(keyword).collect();
            assert_eq!(
                found.len(),
                1,
                "one {keyword} in the stage, found {found:?}"
            );
            found[0]
        }

        /// Every `COPY` of the stage.
        pub fn copies(&self) -> Vec<Copy> {
            self.all("COPY").map(|i| parse_copy(&i.args)).collect()
        }

        /// The paths the stage's `COPY`s put files at: `dest/name` for each
        /// source, since every destination here is a directory.
        pub fn copied_files(&self) -> Vec<String> {
            let mut files = Vec::new();
            for copy in self.copies() {
                for source in &copy.sources {
                    let name = source.trim_end_matches('/').rsplit('/').next().unwrap();
                    files.push(format!("{}/{name}", copy.dest.trim_end_matches('/')));
                }
            }
            files
        }
    }

    /// Logical lines: comments dropped, `\`-continued lines joined.
    pub fn instructions(text: &str) -> Vec<Instruction> {
        let mut out = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                    out.push(Instruction {
                        keyword: keyword.to_ascii_uppercase(),
                        args: args.trim().to_string(),
                    });
                    current.clear();
                }
            }
        }
        assert!(current.is_empty(), "a continued line runs off the end");
        out
    }

    fn parse_copy(args: &str) -> Copy {
        assert!(!args.starts_with('['), "COPY in JSON form: {args}");
        let mut from = None;
        let mut chown = None;
        let mut paths = Vec::new();
        for word in args.split_whitespace() {
            if let Some(value) = word.strip_prefix("--from=") {
                from = Some(value.to_string());
            } else if let Some(value) = word.strip_prefix("--chown=") {
                chown = Some(value.to_string());
            } else {
                assert!(!word.starts_with("--"), "unexpected COPY flag {word}");
                paths.push(word.to_string());
            }
        }
        let dest = paths.pop().expect("COPY has a destination");
        assert!(!paths.is_empty(), "COPY has a source: {args}");
        Copy {
            from,
            chown,
            sources: paths,
            dest,
        }
    }

    /// `CMD ["a", "b"]` (after any `--option=value`s) as its words; `None`
    /// for the shell form, which an image without a shell cannot run.
    pub fn exec_form(args: &str) -> Option<Vec<String>> {
        let json = args
            .split_whitespace()
            .skip_while(|word| word.starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ");
        let json = json.strip_prefix("CMD ").unwrap_or(&json);
        serde_json::from_str(json).ok()
    }

    /// `uid[:gid]` as numbers; panics on a name, which a scratch image has
    /// no /etc/passwd to look up.
    pub fn numeric_user(user: &str) -> (u32, Option<u32>) {
        let (uid, gid) = match user.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (user, None),
        };
        let number = |s: &str| {
            s.parse::<u32>()
                .unwrap_or_else(|_| panic!("USER {user} is not numeric"))
        };
        (number(uid), gid.map(number))
    }
}

mod compose {
    use std::collections::BTreeSet;

    use serde_yaml_ng::{Mapping, Value};

    /// compose.yaml, with its `<<: *anchor` merges applied as Compose does.
    pub fn load() -> Value {
        let text = super::read("compose.yaml");
        let mut value: Value = serde_yaml_ng::from_str(&text).expect("compose.yaml is YAML");
        value.apply_merge().expect("compose.yaml's merges apply");
        value
    }

    /// The `services` map.
    pub fn services(compose: &Value) -> &Mapping {
        compose["services"].as_mapping().expect("services is a map")
    }

    /// A list of strings (a command, a healthcheck's test, networks).
    pub fn strings(value: &Value) -> Vec<String> {
        value
            .as_sequence()
            .unwrap_or_else(|| panic!("a list, not {value:?}"))
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }

    /// A service's `environment` map.
    pub fn environment(service: &Value) -> Vec<(String, String)> {
        let Some(map) = service["environment"].as_mapping() else {
            return Vec::new();
        };
        map.iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => panic!("environment values are strings here: {other:?}"),
                };
                (k.as_str().expect("a name").to_string(), value)
            })
            .collect()
    }

    /// The `${NAME}` / `${NAME:?message}` variables `text` uses. Any other
    /// `$` (unbraced `$NAME`) fails, so that none goes unnoticed; `$$` is a
    /// literal dollar.
    pub fn variables(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        interpolate(text, |name| {
            names.insert(name.to_string());
            String::new()
        });
        names
    }

    /// `text` with each `${NAME...}` replaced by `value(NAME)`, as Compose
    /// does before it reads the file.
    pub fn interpolate(text: &str, mut value: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                out.push('$');
                rest = after;
                continue;
            }
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .unwrap_or_else(|| panic!("a $ that is neither ${{...}} nor $$: ${rest:.20}"));
            let name_end = inner.0.find([':', '-', '?']).unwrap_or(inner.0.len());
            let name = &inner.0[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "variable name {name:?}"
            );
            out.push_str(&value(name));
            rest = inner.1;
        }
        out.push_str(rest);
        out
    }
}

mod unit {
    use std::collections::BTreeMap;

    /// A systemd unit: section → key → every value given (in order).
    pub type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

    /// `deploy/systemd/<name>`.
    pub fn load(name: &str) -> Unit {
        let text = super::read(&format!("deploy/systemd/{name}"));
        let mut unit = Unit::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{name}: not key=value: {line}"));
            assert!(!section.is_empty(), "{name}: {key} outside a section");
            unit.entry(section.clone())
                .or_default()
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        unit
    }

    /// The last value of `key` in `[Service]` (systemd's rule for most keys).
    pub fn service<'a>(unit: &'a Unit, key: &str) -> &'a str {
        unit.get("Service")
            .and_then(|s| s.get(key))
            .and_then(|values| values.last())
            .map(String::as_str)
            .unwrap_or_else(|| panic!("[Service] has no {key}"))
    }

    /// Seconds of a time span such as `300`, `90s` or `5min`.
    pub fn seconds(span: &str) -> u64 {
        let (digits, unit) = span.split_at(
            span.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(span.len()),
        );
        let n: u64 = digits
            .parse()
            .unwrap_or_else(|_| panic!("time span {span:?}"));
        match unit.trim() {
            "" | "s" | "sec" => n,
            "min" | "m" => n * 60,
            other => panic!("time unit {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The images.

/// The four images and the binary each runs.
const IMAGES: [(&str, &str); 4] = [
    ("keycafe-server", "keycafe-server"),
    ("coordinate-server", "coordinate-server"),
    ("auth-server", "auth-server"),
    ("auth-web", "auth-web"),
];

/// The health probe for HTTP services, built from deploy/http-probe.rs
/// beside the workspace's own binaries.
const HTTP_PROBE: &str = "http-probe";

#[test]
fn each_containerfile_builds_static_binaries_into_an_empty_image() {
    for (image, _) in IMAGES {
        let file = containerfile::Containerfile::load(image);
        assert!(
            file.stages.len() >= 2,
            "{image}: a builder stage and the image"
        );
        let builder = file
            .stage("builder")
            .unwrap_or_else(|| panic!("{image}: no FROM ... AS builder"));
        assert!(
            builder.image.contains("rust"),
            "{image}: the builder is a Rust image"
        );
        let build = builder
            .all("RUN")
            .find(|run| run.args.contains("cargo build"))
            .unwrap_or_else(|| panic!("{image}: the builder runs cargo build"));
        for needed in ["--release", "--locked", "unknown-linux-musl"] {
            assert!(
                build.args.contains(needed),
                "{image}: cargo build without {needed}"
            );
        }
        assert!(
            build.args.contains("readelf -d") && build.args.contains("NEEDED"),
            "{image}: the builder checks that no binary needs a shared library"
        );
        let last = file.last();
        assert_eq!(last.image, "scratch", "{image}: the image is FROM scratch");
        assert!(
            last.all("RUN").next().is_none(),
            "{image}: nothing can RUN in an image without a shell"
        );
    }
}

#[test]
fn each_image_copies_only_workspace_binaries_from_the_builder() {
    let bins = &workspace::get().bins;
    assert!(bins.contains("keycafe-server") && bins.contains("keycafe-cli"));
    for (image, _) in IMAGES {
        let file = containerfile::Containerfile::load(image);
        let builder_runs: String = file
            .stage("builder")
            .expect("a builder stage")
            .all("RUN")
            .map(|run| format!("{}\n", run.args))
            .collect();
        let (uid, _) = containerfile::numeric_user(&file.last().one("USER").args);
        for copy in file.last().copies() {
            assert_eq!(copy.from.as_deref(), Some("builder"), "{image}: {copy:?}");
            for source in &copy.sources {
                if let Some(name) = source.strip_prefix("/out/bin/") {
                    if name == HTTP_PROBE {
                        assert!(root().join("deploy/http-probe.rs").is_file());
                        assert!(
                            builder_runs.contains("deploy/http-probe.rs"),
                            "{image}: copies http-probe without building it"
                        );
                    } else {
                        assert!(
                            bins.contains(name),
                            "{image}: {name} is no workspace binary"
                        );
                        assert!(
                            builder_runs.contains(&format!("--bin {name} "))
                                || builder_runs.contains(&format!("--bin {name}\n")),
                            "{image}: copies {name} without building it (--bin {name})"
                        );
                    }
                } else {
                    // The only other thing copied: the empty data directory,
                    // owned by the user the image runs as.
                    assert_eq!(source, "/out/data/", "{image}: unexpected source {source}");
                    let owner = copy.chown.as_deref().map(containerfile::numeric_user);
                    assert_eq!(owner.map(|o| o.0), Some(uid), "{image}: /data's owner");
                }
            }
        }
    }
}

#[test]
fn each_image_runs_as_a_non_root_user_with_an_exec_form_health_check() {
    for (image, binary) in IMAGES {
        let file = containerfile::Containerfile::load(image);
        let last = file.last();
        let (uid, gid) = containerfile::numeric_user(&last.one("USER").args);
        assert!(
            uid > 0 && gid.is_none_or(|g| g > 0),
            "{image}: runs as root"
        );
        let files = last.copied_files();

        let entrypoint = containerfile::exec_form(&last.one("ENTRYPOINT").args)
            .unwrap_or_else(|| panic!("{image}: ENTRYPOINT in exec form"));
        assert_eq!(entrypoint, [format!("/usr/local/bin/{binary}")], "{image}");
        assert!(
            files.contains(&entrypoint[0]),
            "{image}: {} not copied",
            entrypoint[0]
        );

        let check = &last.one("HEALTHCHECK").args;
        assert!(
            check.contains("--timeout="),
            "{image}: a health check needs a timeout"
        );
        let probe = containerfile::exec_form(check)
            .unwrap_or_else(|| panic!("{image}: HEALTHCHECK in exec form, not {check}"));
        assert!(
            files.contains(&probe[0]),
            "{image}: the health check runs {}, which the image lacks",
            probe[0]
        );
    }
}

// ---------------------------------------------------------------------------
// compose.yaml.

/// The coordinator group's members, each with the port its dashboard is
/// published on.
const COORDINATORS: [(&str, u16); 3] = [
    ("coordinator-1", 9880),
    ("coordinator-2", 9881),
    ("coordinator-3", 9882),
];
const PRIMARIES: [&str; 3] = ["keycafe-1", "keycafe-2", "keycafe-3"];
/// Each replica and the primary it starts as a replica of.
const REPLICAS: [(&str, &str); 3] = [
    ("keycafe-4", "keycafe-1"),
    ("keycafe-5", "keycafe-2"),
    ("keycafe-6", "keycafe-3"),
];
const APPS: [&str; 2] = ["auth-server", "auth-web"];

/// Every node service.
fn node_names() -> Vec<&'static str> {
    PRIMARIES
        .into_iter()
        .chain(REPLICAS.iter().map(|(replica, _)| *replica))
        .collect()
}

/// The ports compose.yaml publishes, by service: docs/deploy.md lists them.
const PUBLISHED: [(&str, &str); 4] = [
    ("coordinator-1", "127.0.0.1:9880:9880"),
    ("coordinator-2", "127.0.0.1:9881:9880"),
    ("coordinator-3", "127.0.0.1:9882:9880"),
    ("auth-web", "127.0.0.1:3000:3000"),
];

/// A stand-in for the value of a `.env` variable: long enough for every
/// secret's minimum, no spaces, and the same on every call.
fn stand_in(name: &str) -> String {
    format!(
        "{}-0123456789abcdef0123456789abcdef",
        name.to_ascii_lowercase()
    )
}

/// A service's `command`, which must be a list (no shell to split it).
fn command(service: &Value) -> Vec<String> {
    compose::strings(&service["command"])
}

/// The settings file Compose writes for a node, with the stand-in secrets
/// filled in: the content of the config mounted where its command's first
/// argument points.
fn node_settings(compose: &Value, name: &str) -> String {
    let service = &compose::services(compose)[name];
    let path = command(service)[0].clone();
    let mount = service["configs"]
        .as_sequence()
        .and_then(|list| list.iter().find(|c| c["target"].as_str() == Some(&path)))
        .unwrap_or_else(|| panic!("{name}: no config mounted at {path}"));
    let source = mount["source"].as_str().expect("a config source");
    let content = compose["configs"][source]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("config {source} has no content"));
    compose::interpolate(content, stand_in)
}

#[test]
fn compose_runs_the_demo_topology() {
    let compose = compose::load();
    let names: BTreeSet<&str> = compose::services(&compose)
        .keys()
        .map(|k| k.as_str().expect("a service name"))
        .collect();
    let mut expected: BTreeSet<&str> = node_names().into_iter().collect();
    expected.extend(COORDINATORS.map(|(name, _)| name));
    expected.extend(APPS);
    assert_eq!(names.len(), 11);
    assert_eq!(names, expected);

    let services = compose::services(&compose);
    for (replica, primary) in REPLICAS {
        let args = command(&services[replica]);
        let expected = format!("{primary}:9814");
        assert_eq!(
            workspace::flag_value(&args, "--replica-of"),
            Some(expected.as_str())
        );
        assert!(
            services[replica]["depends_on"][primary].is_mapping(),
            "{replica} waits for {primary}"
        );
    }
    for primary in PRIMARIES {
        let args = command(&services[primary]);
        assert_eq!(
            workspace::flag_value(&args, "--replica-of"),
            None,
            "{primary}"
        );
    }
    // The apps find the cluster through the primaries, at their client port.
    let seeds: Vec<String> = PRIMARIES.iter().map(|p| format!("{p}:9814")).collect();
    for app in APPS {
        let env: BTreeMap<_, _> = compose::environment(&services[app]).into_iter().collect();
        assert_eq!(env["KEYCAFE_SEEDS"], seeds.join(","), "{app}");
    }
    let web: BTreeMap<_, _> = compose::environment(&services["auth-web"])
        .into_iter()
        .collect();
    assert_eq!(web["AUTH_SERVER_URL"], "http://auth-server:8080");
}

#[test]
fn every_node_binds_everywhere_and_announces_its_service_name() {
    let compose = compose::load();
    let services = compose::services(&compose);
    for name in node_names() {
        let args = command(&services[name]);
        assert_eq!(
            workspace::flag_value(&args, "--announce-host"),
            Some(name),
            "{name} must announce its own service name"
        );
        // Flags win over the file, as in keycafe-server.
        let settings: Value = serde_yaml_ng::from_str(&node_settings(&compose, name)).unwrap();
        let bind = workspace::flag_value(&args, "--bind").or(settings["bind"].as_str());
        assert_eq!(bind, Some("0.0.0.0"), "{name}");
        assert_eq!(
            settings["coordinator"].as_str(),
            Some("coordinator-1:9800,coordinator-2:9800,coordinator-3:9800"),
            "{name}"
        );
        assert_eq!(settings["service_port"].as_u64(), Some(9814), "{name}");
        assert!(
            settings["requirepass"].is_string(),
            "{name}: no requirepass"
        );
    }
    for (name, _) in COORDINATORS {
        let args = command(&services[name]);
        assert_eq!(workspace::flag_value(&args, "--announce-host"), Some(name));
        assert_eq!(workspace::flag_value(&args, "--bind"), Some("0.0.0.0"));
    }
}

#[test]
fn the_nodes_settings_load_as_keycafe_server_reads_them() {
    let compose = compose::load();
    let services = compose::services(&compose);
    for name in node_names() {
        let dir = TempDir::new();
        let file = dir.path.join("keycafe.yaml");
        // The cluster secret comes from the environment in compose.yaml.
        let secret = stand_in("KEYCAFE_CLUSTER_SECRET");
        let settings = format!(
            "{}\ncluster_secret: \"{secret}\"\n",
            node_settings(&compose, name)
        );
        std::fs::write(&file, settings).unwrap();
        let mut args = command(&services[name]);
        args[0] = file.display().to_string();
        let flags = keycafe_server::config::Flags::try_parse_from(
            std::iter::once("keycafe-server".to_string()).chain(args),
        )
        .unwrap_or_else(|err| panic!("{name}: keycafe-server refuses its flags: {err}"));
        let config = flags
            .into_config()
            .unwrap_or_else(|err| panic!("{name}: keycafe-server refuses its settings: {err:#}"));
        assert_eq!(config.bind, "0.0.0.0");
        assert_eq!(config.service_port, 9814);
        assert_eq!(config.bus_port(), 19814);
        assert_eq!(config.dir.as_deref(), Some(Path::new("/data")));
        assert_eq!(config.requirepass, Some(stand_in("KEYCAFE_PASSWORD")));
    }
}

#[test]
fn the_coordinators_settings_load_as_coordinate_server_reads_them() {
    use coordinate_server::config::{ADMIN_TOKEN_VAR, Flags, SECRET_VAR};
    let compose = compose::load();
    let services = compose::services(&compose);
    for (id, (name, published)) in (1..).zip(COORDINATORS) {
        let service = &services[name];
        let env: BTreeMap<_, _> = compose::environment(service).into_iter().collect();
        assert!(env.contains_key(SECRET_VAR) && env.contains_key(ADMIN_TOKEN_VAR));
        // The group's file, as Compose mounts it.
        let dir = TempDir::new();
        let file = dir.path.join("coordinator.yaml");
        std::fs::write(&file, node_settings(&compose, name)).unwrap();
        let mut args = command(service);
        args[0] = file.display().to_string();
        let flags =
            Flags::try_parse_from(std::iter::once("coordinate-server".to_string()).chain(args))
                .unwrap_or_else(|err| panic!("{name}: coordinate-server refuses its flags: {err}"));
        let config = flags
            .into_config_with_env(|var| env.get(var).map(|_| stand_in(var)))
            .unwrap_or_else(|err| {
                panic!("{name}: coordinate-server refuses its settings: {err:#}")
            });
        assert_eq!(config.id, id, "{name}");
        assert_eq!(config.bind, "0.0.0.0");
        assert_eq!(config.port, 9800, "the nodes' `coordinator-N:9800`");
        assert_eq!(config.http_port, 9880, "the health check's port");
        assert_eq!(config.data_dir, Path::new("/data"));
        // Every member is listed, under the name the others reach it by.
        let members: Vec<(u64, &str)> = config
            .members
            .iter()
            .map(|m| (m.id, m.node_addr.as_str()))
            .collect();
        assert_eq!(
            members,
            [
                (1, "coordinator-1:9800"),
                (2, "coordinator-2:9800"),
                (3, "coordinator-3:9800")
            ]
        );
        let me = config.members.iter().find(|m| m.id == id).unwrap();
        assert_eq!(me.group_addr, format!("{name}:9900"));
        // The health probe names 127.0.0.1:9880; a browser, the published
        // port; a scraper on the network, the service name.
        for host in [
            "127.0.0.1:9880".to_string(),
            format!("127.0.0.1:{published}"),
            format!("{name}:9880"),
        ] {
            assert!(
                config.http_hosts.contains(&host),
                "{name}: http_hosts lacks {host}"
            );
        }
    }
}

#[test]
fn every_flag_compose_and_the_units_pass_is_in_the_binarys_help() {
    let compose = compose::load();
    let services = compose::services(&compose);
    let mut uses: Vec<(String, String, Vec<String>)> = Vec::new();
    for name in node_names() {
        uses.push((
            name.into(),
            "keycafe-server".into(),
            command(&services[name]),
        ));
    }
    for (name, _) in COORDINATORS {
        uses.push((
            name.into(),
            "coordinate-server".into(),
            command(&services[name]),
        ));
    }
    for unit_name in ["keycafe-server@.service", "coordinate-server.service"] {
        let unit = unit::load(unit_name);
        let words: Vec<String> = unit::service(&unit, "ExecStart")
            .split_whitespace()
            .map(String::from)
            .collect();
        let binary = words[0].rsplit('/').next().unwrap().to_string();
        uses.push((unit_name.into(), binary, words[1..].to_vec()));
    }
    let mut missing = Vec::new();
    for (user, binary, args) in uses {
        let known = workspace::flags_of(&binary);
        for flag in workspace::flags_in(&args) {
            if !known.contains(&flag) {
                missing.push(format!("{user}: {binary} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags the binaries do not have: {missing:#?}"
    );
}

#[test]
fn every_service_runs_the_workspace_version_built_here() {
    let version = &workspace::get().version;
    let compose = compose::load();
    for (name, service) in compose::services(&compose) {
        let name = name.as_str().unwrap();
        let image = service["image"].as_str().expect("an image");
        let (repo, tag) = image.split_once(':').expect("a tagged image");
        assert_eq!(tag, version, "{name}: the workspace is at {version}");
        let short = repo.strip_prefix("keycafe/").expect("a keycafe/ image");
        assert!(
            IMAGES.iter().any(|(i, _)| *i == short),
            "{name}: no Containerfile for {image}"
        );
        // Never pulled: a keycafe/ image from a registry is not this one.
        assert_eq!(service["pull_policy"].as_str(), Some("never"), "{name}");
    }
}

#[test]
fn every_volume_network_config_and_dependency_is_declared() {
    let compose = compose::load();
    let services = compose::services(&compose);
    let declared = |kind: &str| -> BTreeSet<String> {
        compose[kind]
            .as_mapping()
            .map(|m| m.keys().map(|k| k.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let (volumes, networks, configs) = (
        declared("volumes"),
        declared("networks"),
        declared("configs"),
    );
    let mut used_volumes = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        for mount in service["volumes"].as_sequence().into_iter().flatten() {
            let mount = mount.as_str().expect("short volume syntax");
            let source = mount.split(':').next().unwrap();
            assert!(
                !source.starts_with(['.', '/']),
                "{name}: {mount} is a host path"
            );
            assert!(
                volumes.contains(source),
                "{name}: volume {source} is not declared"
            );
            used_volumes.insert(source.to_string());
        }
        for network in compose::strings(&service["networks"]) {
            assert!(
                networks.contains(&network),
                "{name}: network {network} is not declared"
            );
        }
        for config in service["configs"].as_sequence().into_iter().flatten() {
            let source = config["source"].as_str().unwrap();
            assert!(
                configs.contains(source),
                "{name}: config {source} is not declared"
            );
        }
        for (target, condition) in service["depends_on"].as_mapping().into_iter().flatten() {
            let target = target.as_str().unwrap();
            assert!(
                services.contains_key(target),
                "{name} depends on unknown {target}"
            );
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {target} to be healthy"
            );
            assert!(
                services[target]["healthcheck"].is_mapping(),
                "{target} has no health check"
            );
        }
    }
    assert_eq!(used_volumes, volumes, "declared volumes nothing uses");
    // Every node keeps its data in a volume of its own.
    for name in node_names() {
        let mounts = compose::strings(&services[name]["volumes"]);
        assert_eq!(mounts, [format!("{name}-data:/data")], "{name}");
    }
}

#[test]
fn only_the_documented_ports_are_published_and_only_on_loopback() {
    let compose = compose::load();
    let mut published = BTreeSet::new();
    for (name, service) in compose::services(&compose) {
        if service["ports"].is_null() {
            continue;
        }
        for port in compose::strings(&service["ports"]) {
            published.insert((name.as_str().unwrap().to_string(), port));
        }
    }
    let expected: BTreeSet<(String, String)> = PUBLISHED
        .iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect();
    assert_eq!(published, expected);
    let guide = read("docs/deploy.md");
    for (service, port) in PUBLISHED {
        let host_side = port.rsplit_once(':').unwrap().0;
        assert!(
            guide.contains(host_side),
            "docs/deploy.md does not mention {host_side} ({service})"
        );
        // A published port must be on a network that is not internal.
        let services = compose::services(&compose);
        let networks = compose::strings(&services[service]["networks"]);
        assert!(
            networks
                .iter()
                .any(|n| compose["networks"][n.as_str()]["internal"].as_bool() != Some(true)),
            "{service}: a published port needs a network that is not internal"
        );
    }
}

#[test]
fn every_health_check_runs_a_binary_its_image_has() {
    let compose = compose::load();
    for (name, service) in compose::services(&compose) {
        let name = name.as_str().unwrap();
        let test = compose::strings(&service["healthcheck"]["test"]);
        assert_eq!(test[0], "CMD", "{name}: exec form, the image has no shell");
        let image = service["image"].as_str().unwrap();
        let short = image
            .trim_start_matches("keycafe/")
            .split(':')
            .next()
            .unwrap();
        let files = containerfile::Containerfile::load(short)
            .last()
            .copied_files();
        assert!(
            files.contains(&test[1]),
            "{name}: {} is not in {image}",
            test[1]
        );
        assert!(
            service["healthcheck"]["timeout"].is_string(),
            "{name}: a timeout"
        );
    }
}

#[test]
fn secrets_come_only_from_the_env_file_the_user_writes() {
    let text = read("compose.yaml");
    let used = compose::variables(&text);
    let example = read("deploy/env.example");
    let mut listed = BTreeSet::new();
    for line in example
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.split_once('=').expect("NAME=value");
        assert_eq!(
            value, "",
            "deploy/env.example must hold no value for {name}"
        );
        listed.insert(name.to_string());
    }
    assert_eq!(
        used, listed,
        "compose.yaml's variables and deploy/env.example's"
    );
    // Each one is required: Compose stops if it is unset or empty.
    for name in &used {
        assert!(
            text.contains(&format!("${{{name}:?")),
            "{name} must be required (:?)"
        );
    }
    // The apps' variables are ones they document.
    let compose = compose::load();
    for app in APPS {
        let readme = read(&format!("examples/{app}/README.md"));
        for (name, _) in compose::environment(&compose::services(&compose)[app]) {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "{app} has no setting {name}"
            );
        }
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == ".env"),
        ".env must stay out of the build context"
    );
}

// ---------------------------------------------------------------------------
// systemd.

#[test]
fn the_systemd_units_run_workspace_binaries_hardened() {
    let bins = &workspace::get().bins;
    let users = read("deploy/systemd/keycafe.sysusers");
    for (name, data_flag) in [
        ("keycafe-server@.service", "--dir"),
        ("coordinate-server.service", "--data-dir"),
    ] {
        let unit = unit::load(name);
        let exec: Vec<String> = unit::service(&unit, "ExecStart")
            .split_whitespace()
            .map(String::from)
            .collect();
        assert!(
            exec[0].starts_with('/'),
            "{name}: ExecStart needs an absolute path"
        );
        let binary = exec[0].rsplit('/').next().unwrap();
        assert!(
            bins.contains(binary),
            "{name}: {binary} is no workspace binary"
        );

        let user = unit::service(&unit, "User");
        assert_ne!(user, "root");
        assert!(
            users.contains(&format!("u {user} ")),
            "{name}: {user} is not in keycafe.sysusers"
        );
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
            ("KillSignal", "SIGTERM"),
        ] {
            assert_eq!(unit::service(&unit, key), value, "{name}: {key}");
        }
        assert!(
            unit::seconds(unit::service(&unit, "TimeoutStopSec")) >= 60,
            "{name}"
        );
        let secrets = unit::service(&unit, "EnvironmentFile");
        assert!(
            secrets.starts_with("/etc/keycafe/"),
            "{name}: EnvironmentFile {secrets}"
        );

        // The data directory is where the service may write.
        let data = workspace::flag_value(&exec, data_flag)
            .unwrap_or_else(|| panic!("{name}: ExecStart without {data_flag}"));
        assert_eq!(unit::service(&unit, "ReadWritePaths"), data, "{name}");
        let state = format!("/var/lib/{}", unit::service(&unit, "StateDirectory"));
        assert_eq!(state, data, "{name}: StateDirectory");
    }
    let node = unit::load("keycafe-server@.service");
    let exec = unit::service(&node, "ExecStart");
    assert!(
        exec.contains(" /etc/keycafe/%i.yaml"),
        "the instance picks its YAML: {exec}"
    );
    let defaults = keycafe_server::Config::default();
    let files: u64 = unit::service(&node, "LimitNOFILE").parse().unwrap();
    assert!(
        files >= (defaults.maxclients + defaults.bus_maxclients) as u64 + 64,
        "LimitNOFILE {files} leaves no room for maxclients {} and bus_maxclients {}",
        defaults.maxclients,
        defaults.bus_maxclients
    );
}

// ---------------------------------------------------------------------------
// deploy/build-images.sh, run against stand-ins for docker and podman.

/// bash, by absolute path: the script runs with a PATH that has no bash.
fn bash() -> &'static str {
    ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bash is installed")
}

/// Runs the build script with nothing on PATH but `dir`.
fn build_images(dir: &Path, args: &[&str]) -> Output {
    Command::new(bash())
        .arg(root().join("deploy/build-images.sh"))
        .args(args)
        .env_clear()
        .env("PATH", dir)
        .env("STUB_LOG", dir.join("calls"))
        .output()
        .expect("bash runs")
}

/// A stand-in engine named `name` in `dir`: it logs its arguments, and its
/// `info` exits with `info_status`.
fn stub_engine(dir: &Path, name: &str, info_status: u8) {
    let path = dir.join(name);
    let script = format!(
        "#!{bash}\nprintf '%s\\n' \"{name} $*\" >>\"$STUB_LOG\"\n\
         [[ $1 == info ]] && exit {info_status}\nexit 0\n",
        bash = bash()
    );
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
}

/// The engine calls the stand-ins logged.
fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn build_images_is_valid_bash() {
    let status = Command::new(bash())
        .arg("-n")
        .arg(root().join("deploy/build-images.sh"))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn build_images_refuses_clearly_without_docker_or_podman() {
    let dir = TempDir::new();
    let output = build_images(&dir.path, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("neither docker nor podman"), "{said}");
}

#[test]
fn build_images_tags_each_image_with_the_workspace_version() {
    let version = &workspace::get().version;
    let dir = TempDir::new();
    stub_engine(&dir.path, "docker", 0);
    let output = build_images(&dir.path, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls = calls(&dir.path);
    assert_eq!(calls[0], "docker info");
    assert_eq!(calls.len(), 1 + IMAGES.len(), "{calls:#?}");
    for ((image, _), call) in IMAGES.iter().zip(&calls[1..]) {
        let words: Vec<String> = call.split_whitespace().map(String::from).collect();
        assert_eq!(words[1], "build");
        let tag = format!("keycafe/{image}:{version}");
        assert_eq!(workspace::flag_value(&words, "--tag"), Some(tag.as_str()));
        let file = workspace::flag_value(&words, "--file").unwrap();
        let expected = root().join(format!("deploy/Containerfile.{image}"));
        assert_eq!(
            Path::new(file).canonicalize().unwrap(),
            expected.canonicalize().unwrap()
        );
        let context = words.last().unwrap();
        assert_eq!(
            Path::new(context).canonicalize().unwrap(),
            root().canonicalize().unwrap()
        );
        let arg = format!("VERSION={version}");
        assert_eq!(
            workspace::flag_value(&words, "--build-arg"),
            Some(arg.as_str())
        );
    }
}

#[test]
fn build_images_uses_podman_when_there_is_no_docker() {
    let dir = TempDir::new();
    stub_engine(&dir.path, "podman", 0);
    let output = build_images(&dir.path, &["auth-web"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls = calls(&dir.path);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls.iter().all(|c| c.starts_with("podman ")), "{calls:#?}");
    assert!(calls[1].contains("--tag keycafe/auth-web:"), "{calls:#?}");
}

#[test]
fn build_images_stops_when_the_engine_cannot_be_reached() {
    let dir = TempDir::new();
    stub_engine(&dir.path, "docker", 1);
    let output = build_images(&dir.path, &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(calls(&dir.path), ["docker info"], "nothing is built");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("cannot reach its engine"), "{said}");
}

// ---------------------------------------------------------------------------
// deploy/http-probe.rs, built with rustc and run against small servers.

/// The probe, compiled into `dir`.
fn build_probe(dir: &Path) -> PathBuf {
    let out = dir.join(HTTP_PROBE);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "-o"])
        .arg(&out)
        .arg(root().join("deploy/http-probe.rs"))
        .status()
        .expect("rustc runs");
    assert!(status.success(), "deploy/http-probe.rs does not compile");
    out
}

/// A server for one connection: reads the request head, answers `reply`
/// (or nothing, holding the connection, if `None`), and returns what it read.
fn serve_once(reply: Option<&'static str>) -> (u16, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.ends_with(b"\r\n\r\n") && request.len() < 8192 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        match reply {
            Some(reply) => stream.write_all(reply.as_bytes()).unwrap(),
            // Hold the connection open, silent, until the probe gives up.
            None => {
                let _ = stream.read(&mut buf);
            }
        }
        String::from_utf8_lossy(&request).into_owned()
    });
    (port, server)
}

/// Runs the probe on `url`: its exit code and how long it took, killing it
/// (and failing) if it runs past 15 s.
fn probe(binary: &Path, url: &str) -> (Option<i32>, Duration) {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("http-probe {url} ran for 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn http_probe_passes_a_2xx_and_fails_anything_else() {
    let dir = TempDir::new();
    let binary = build_probe(&dir.path);

    let (port, server) = serve_once(Some("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
    let (code, _) = probe(&binary, &format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!(code, Some(0));
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /healthz HTTP/1.0\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{request}"
    );

    for reply in [
        "HTTP/1.1 503 Service Unavailable\r\n\r\n",
        "HTTP/1.1 421 Misdirected Request\r\n\r\n",
        "SSH-2.0-not-http\r\n",
        "",
    ] {
        let (port, server) = serve_once(Some(reply));
        let (code, _) = probe(&binary, &format!("http://127.0.0.1:{port}/"));
        assert_eq!(code, Some(1), "reply {reply:?}");
        server.join().unwrap();
    }

    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _) = probe(&binary, &format!("http://127.0.0.1:{port}/"));
    assert_eq!(code, Some(1));

    // URLs it cannot use: a usage error, not a verdict on the service.
    for url in [
        "https://127.0.0.1:1/",
        "http://127.0.0.1/",
        "http://:80/",
        "127.0.0.1:80",
    ] {
        assert_eq!(probe(&binary, url).0, Some(2), "{url}");
    }
}

#[test]
fn http_probe_gives_up_on_a_silent_server_within_its_time_limit() {
    let dir = TempDir::new();
    let binary = build_probe(&dir.path);
    let (port, server) = serve_once(None);
    let (code, took) = probe(&binary, &format!("http://127.0.0.1:{port}/healthz"));
    assert_eq!(code, Some(1));
    // Its limit is 5 s; the images' HEALTHCHECK allows 6.
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(6),
        "{took:?}"
    );
    server.join().unwrap();
}

// ---------------------------------------------------------------------------
// docs/deploy.md.

#[test]
fn the_deployment_guide_covers_each_topic_and_names_real_files() {
    let guide = read("docs/deploy.md");
    let headings: Vec<&str> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .collect();
    for topic in [
        "Sizing",
        "Ports and firewall",
        "Secrets",
        "TLS",
        "Announced addresses and protected mode",
        "Rolling restart and upgrade",
        "Adding and removing nodes",
        "Backups",
        "Monitoring",
        "What was run here",
    ] {
        assert!(
            headings.iter().any(|h| h.starts_with(topic)),
            "no section {topic}"
        );
    }
    assert_eq!(
        headings.last().copied(),
        Some("What was run here"),
        "the guide ends with it"
    );
    // Every repository path it names in `code` exists.
    let mut named = 0;
    for span in guide.split('`').skip(1).step_by(2) {
        let path = span
            .split(|c: char| c.is_whitespace() || c == '#' || c == ',')
            .next()
            .unwrap_or_default();
        let repo_path = [
            "docs/",
            "deploy/",
            "scripts/",
            "examples/",
            "bench/",
            "cluster-tests/",
        ]
        .iter()
        .any(|dir| path.starts_with(dir))
            || [
                "compose.yaml",
                "config.yaml",
                ".dockerignore",
                "run-demo.sh",
            ]
            .contains(&path);
        if repo_path && !path.contains(['<', '*', '%', '$']) {
            assert!(
                root().join(path).exists(),
                "docs/deploy.md names {path}, which is not there"
            );
            named += 1;
        }
    }
    assert!(
        named >= 10,
        "the guide points at the repository's files ({named})"
    );
    // Each secret the user writes is explained.
    for line in read("deploy/env.example").lines() {
        if let Some((name, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            assert!(
                guide.contains(name),
                "docs/deploy.md does not explain {name}"
            );
        }
    }
    assert!(
        read("README.md").contains("docs/deploy.md"),
        "README.md links the guide"
    );
}
