//! `GET /metrics`: the cluster in Prometheus's text exposition format.
//!
//! The coordinator already holds what an operator wants to graph and alert
//! on: the configuration (epoch, slots, migrations), the failovers it made,
//! and each node's latest heartbeat (keys, replication offset, commands
//! processed, memory). A scrape turns one [`ClusterView`] into text, so
//! Prometheus sees the same snapshot as `/api/cluster` and the dashboard,
//! and the coordinator keeps no registry of its own that could drift from
//! its state.
//!
//! The format is version 0.0.4 (`# HELP`, `# TYPE`, one sample per line);
//! [`FAMILIES`] lists every metric with its type and help text, and
//! `docs/metrics.md` documents them (a test keeps the two equal). Per-node
//! metrics carry `node` (the id), `addr` (the client address) and `role`
//! (`primary` or `replica`). A figure the coordinator does not know (a node
//! that has not sent a heartbeat yet, or is too old to report its load) is
//! left out rather than reported as 0.
//!
//! The route is read-only and as open as the dashboard's pages: no admin
//! token, but the same `Host` check (see [`super::access`]), so a scraper
//! on another machine must use a name listed in `http_hosts`.
//!
//! The encoding is a few lines by hand: one snapshot per scrape needs no
//! metrics registry, only correct escaping.

use std::fmt::{self, Write as _};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::HttpError;
use crate::driver::Handle;
use crate::state::view::{ClusterView, NodeView, Role};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How Prometheus treats a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (and restarts at zero with the process that counts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One metric: its name, type and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const CLUSTER_EPOCH: Family = gauge(
    "keycafe_cluster_epoch",
    "Epoch of the newest cluster configuration.",
);
const CLUSTER_NODES: Family = gauge("keycafe_cluster_nodes", "Member nodes, by role.");
const CLUSTER_SLOTS_ASSIGNED: Family = gauge(
    "keycafe_cluster_slots_assigned",
    "Slots with an owner (16384 once a node has joined).",
);
const CLUSTER_MIGRATIONS_IN_FLIGHT: Family = gauge(
    "keycafe_cluster_migrations_in_flight",
    "Slots being migrated between nodes now.",
);
const CLUSTER_MIGRATIONS_QUEUED: Family = gauge(
    "keycafe_cluster_migrations_queued",
    "Slot moves planned for after the migrations in flight.",
);
const CLUSTER_FAILOVERS: Family = Family {
    name: "keycafe_cluster_failovers_total",
    kind: Kind::Counter,
    help: "Replicas promoted in place of their primary since the coordinator started, by reason.",
};
const NODE_INFO: Family = gauge(
    "keycafe_node_info",
    "Always 1; labels name the node's bus address and, for a replica, its primary.",
);
const NODE_UP: Family = gauge(
    "keycafe_node_up",
    "1 if the node was heard from within the node timeout, else 0.",
);
const NODE_CONNECTED: Family = gauge(
    "keycafe_node_connected",
    "1 if the node has a registered connection to the coordinator, else 0.",
);
const NODE_LEAVING: Family = gauge(
    "keycafe_node_leaving",
    "1 if the node was asked to leave and its slots are moving away, else 0.",
);
const NODE_LAST_SEEN: Family = gauge(
    "keycafe_node_last_seen_seconds",
    "Seconds since the node's last heartbeat or registration.",
);
const NODE_CONFIG_EPOCH: Family = gauge(
    "keycafe_node_config_epoch",
    "Epoch of the configuration the node last reported holding.",
);
const NODE_SLOTS: Family = gauge("keycafe_node_slots", "Slots the node owns.");
const NODE_KEYS: Family = gauge("keycafe_node_keys", "Keys the node holds.");
const NODE_REPLICATION_OFFSET: Family = gauge(
    "keycafe_node_replication_offset_bytes",
    "Replication stream produced (a primary) or applied (a replica).",
);
const NODE_REPLICATION_LAG: Family = gauge(
    "keycafe_node_replication_lag_bytes",
    "For a replica: bytes behind its primary.",
);
const NODE_REPLICA_LINK_UP: Family = gauge(
    "keycafe_node_replica_link_up",
    "For a replica: 1 if its link to its primary is up, else 0.",
);
const NODE_COMMANDS: Family = Family {
    name: "keycafe_node_commands_processed_total",
    kind: Kind::Counter,
    help: "Commands the node has processed since it started.",
};
const NODE_OPS: Family = gauge(
    "keycafe_node_ops_per_second",
    "Commands per second, measured between heartbeats at least a second apart.",
);
const NODE_MEMORY: Family = gauge(
    "keycafe_node_used_memory_bytes",
    "Memory the node accounts for (INFO used_memory, what maxmemory limits).",
);

/// Every metric `/metrics` exposes, in the order it writes them.
pub const FAMILIES: &[Family] = &[
    CLUSTER_EPOCH,
    CLUSTER_NODES,
    CLUSTER_SLOTS_ASSIGNED,
    CLUSTER_MIGRATIONS_IN_FLIGHT,
    CLUSTER_MIGRATIONS_QUEUED,
    CLUSTER_FAILOVERS,
    NODE_INFO,
    NODE_UP,
    NODE_CONNECTED,
    NODE_LEAVING,
    NODE_LAST_SEEN,
    NODE_CONFIG_EPOCH,
    NODE_SLOTS,
    NODE_KEYS,
    NODE_REPLICATION_OFFSET,
    NODE_REPLICATION_LAG,
    NODE_REPLICA_LINK_UP,
    NODE_COMMANDS,
    NODE_OPS,
    NODE_MEMORY,
];

/// `GET /metrics`.
pub(super) async fn metrics(State(handle): State<Handle>) -> Result<impl IntoResponse, HttpError> {
    let view = handle.view().await?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], encode(&view)))
}

/// The text exposition of `view`: every family in [`FAMILIES`], each with
/// its `# HELP` and `# TYPE` lines, and a sample per figure known.
pub fn encode(view: &ClusterView) -> String {
    let mut out = Exposition::default();
    let count = |n: usize| Number::Int(n as u64);

    out.family(&CLUSTER_EPOCH, [(vec![], Number::Int(view.epoch))]);
    out.family(
        &CLUSTER_NODES,
        [Role::Primary, Role::Replica].map(|role| {
            let members = view.nodes.iter().filter(|n| n.role == role).count();
            (vec![("role", role.as_str())], count(members))
        }),
    );
    out.family(
        &CLUSTER_SLOTS_ASSIGNED,
        [(vec![], count(view.slots_assigned))],
    );
    let in_flight = view.migrations.iter().map(|g| g.slots).sum();
    out.family(&CLUSTER_MIGRATIONS_IN_FLIGHT, [(vec![], count(in_flight))]);
    out.family(
        &CLUSTER_MIGRATIONS_QUEUED,
        [(vec![], count(view.queued_moves))],
    );
    out.family(
        &CLUSTER_FAILOVERS,
        view.failovers
            .by_reason()
            .map(|(reason, n)| (vec![("reason", reason.as_str())], Number::Int(n))),
    );

    let flag = |on: bool| Number::Int(u64::from(on));
    out.family(
        &NODE_INFO,
        view.nodes.iter().map(|n| {
            let mut labels = node_labels(n);
            labels.push(("bus_addr", n.bus_addr.as_str()));
            labels.push(("primary", n.replica_of.as_deref().unwrap_or("")));
            (labels, Number::Int(1))
        }),
    );
    out.per_node(&NODE_UP, view, |n| Some(flag(!n.failing)));
    out.per_node(&NODE_CONNECTED, view, |n| Some(flag(n.connected)));
    out.per_node(&NODE_LEAVING, view, |n| Some(flag(n.leaving)));
    out.per_node(&NODE_LAST_SEEN, view, |n| {
        Some(Number::Float(n.last_seen_ms as f64 / 1000.0))
    });
    out.per_node(&NODE_CONFIG_EPOCH, view, |n| {
        n.reported_epoch.map(Number::Int)
    });
    out.per_node(&NODE_SLOTS, view, |n| Some(count(n.slots)));
    out.per_node(&NODE_KEYS, view, |n| n.keys.map(Number::Int));
    out.per_node(&NODE_REPLICATION_OFFSET, view, |n| {
        n.offset.map(Number::Int)
    });
    out.per_node(&NODE_REPLICATION_LAG, view, |n| n.lag.map(Number::Int));
    out.per_node(&NODE_REPLICA_LINK_UP, view, |n| n.link_up.map(flag));
    out.per_node(&NODE_COMMANDS, view, |n| {
        n.commands_processed.map(Number::Int)
    });
    out.per_node(&NODE_OPS, view, |n| n.ops_per_sec.map(Number::Float));
    out.per_node(&NODE_MEMORY, view, |n| n.used_memory.map(Number::Int));
    out.text
}

/// The labels every per-node sample carries.
fn node_labels(node: &NodeView) -> Vec<(&'static str, &str)> {
    vec![
        ("node", node.id.as_str()),
        ("addr", node.client_addr.as_str()),
        ("role", node.role.as_str()),
    ]
}

/// A sample's value: integers are written exactly, not through `f64`.
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(u64),
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Number::Int(n) => write!(f, "{n}"),
            Number::Float(x) if x.is_nan() => f.write_str("NaN"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" })
            }
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// The text being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP`, `# TYPE`, then one line per sample.
    fn family<'a>(
        &mut self,
        family: &Family,
        samples: impl IntoIterator<Item = (Vec<(&'static str, &'a str)>, Number)>,
    ) {
        let Family { name, kind, help } = family;
        let help = escape_help(help);
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        for (labels, value) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                self.text.push('{');
                for (i, (label, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.text.push(',');
                    }
                    let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
                }
                self.text.push('}');
            }
            let _ = writeln!(self.text, " {value}");
        }
    }

    /// A family with one sample per node whose `value` is known.
    fn per_node(
        &mut self,
        family: &Family,
        view: &ClusterView,
        value: impl Fn(&NodeView) -> Option<Number>,
    ) {
        let samples = view
            .nodes
            .iter()
            .filter_map(|node| value(node).map(|v| (node_labels(node), v)));
        self.family(family, samples);
    }
}

/// A label value as the format quotes it: `\`, `"` and line feeds escaped.
fn escape_label(value: &str) -> String {
    escape(value, true)
}

/// Help text as the format wants it: `\` and line feeds escaped.
fn escape_help(value: &str) -> String {
    escape(value, false)
}

fn escape(value: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("two\nlines"), r"two\nlines");
        assert_eq!(escape_label("[::1]:7000"), "[::1]:7000");
        assert_eq!(escape_help("say \"\\\"\n"), "say \"\\\\\"\\n");

        let mut out = Exposition::default();
        out.family(&NODE_KEYS, [(vec![("node", "x\"}\ny")], Number::Int(3))]);
        assert!(
            out.text
                .ends_with("\nkeycafe_node_keys{node=\"x\\\"}\\ny\"} 3\n"),
            "{}",
            out.text
        );
    }

    #[test]
    fn numbers_are_written_as_the_format_reads_them() {
        let text = |n: Number| n.to_string();
        assert_eq!(text(Number::Int(u64::MAX)), "18446744073709551615");
        assert_eq!(text(Number::Float(2.5)), "2.5");
        assert_eq!(text(Number::Float(1e21)), "1000000000000000000000");
        assert_eq!(text(Number::Float(f64::NAN)), "NaN");
        assert_eq!(text(Number::Float(f64::INFINITY)), "+Inf");
    }

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name).collect();
        for name in &names {
            assert!(name.starts_with("keycafe_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            let counter = FAMILIES
                .iter()
                .any(|f| f.name == *name && f.kind == Kind::Counter);
            assert_eq!(counter, name.ends_with("_total"), "{name}");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }
}
