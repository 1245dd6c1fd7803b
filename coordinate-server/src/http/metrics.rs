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
//! One snapshot per scrape needs no metrics registry, only correct
//! encoding, which [`keycafe_core::prometheus`] does for this page and for
//! each node's own `/metrics` alike.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
pub use keycafe_core::prometheus::{CONTENT_TYPE_TEXT, Family, Kind};
use keycafe_core::prometheus::{Exposition, Labels, Number};

use super::HttpError;
use crate::driver::Handle;
use crate::state::view::{ClusterView, NodeView, Role};

const CLUSTER_EPOCH: Family = Family::gauge(
    "keycafe_cluster_epoch",
    "Epoch of the newest cluster configuration.",
);
const CLUSTER_NODES: Family = Family::gauge("keycafe_cluster_nodes", "Member nodes, by role.");
const CLUSTER_SLOTS_ASSIGNED: Family = Family::gauge(
    "keycafe_cluster_slots_assigned",
    "Slots with an owner (16384 once a node has joined).",
);
const CLUSTER_MIGRATIONS_IN_FLIGHT: Family = Family::gauge(
    "keycafe_cluster_migrations_in_flight",
    "Slots being migrated between nodes now.",
);
const CLUSTER_MIGRATIONS_QUEUED: Family = Family::gauge(
    "keycafe_cluster_migrations_queued",
    "Slot moves planned for after the migrations in flight.",
);
const CLUSTER_FAILOVERS: Family = Family::counter(
    "keycafe_cluster_failovers_total",
    "Replicas promoted in place of their primary since the coordinator started, by reason.",
);
const NODE_INFO: Family = Family::gauge(
    "keycafe_node_info",
    "Always 1; labels name the node's bus address and, for a replica, its primary.",
);
const NODE_UP: Family = Family::gauge(
    "keycafe_node_up",
    "1 if the node was heard from within the node timeout, else 0.",
);
const NODE_CONNECTED: Family = Family::gauge(
    "keycafe_node_connected",
    "1 if the node has a registered connection to the coordinator, else 0.",
);
const NODE_LEAVING: Family = Family::gauge(
    "keycafe_node_leaving",
    "1 if the node was asked to leave and its slots are moving away, else 0.",
);
const NODE_LAST_SEEN: Family = Family::gauge(
    "keycafe_node_last_seen_seconds",
    "Seconds since the node's last heartbeat or registration.",
);
const NODE_CONFIG_EPOCH: Family = Family::gauge(
    "keycafe_node_config_epoch",
    "Epoch of the configuration the node last reported holding.",
);
const NODE_SLOTS: Family = Family::gauge("keycafe_node_slots", "Slots the node owns.");
const NODE_KEYS: Family = Family::gauge("keycafe_node_keys", "Keys the node holds.");
const NODE_REPLICATION_OFFSET: Family = Family::gauge(
    "keycafe_node_replication_offset_bytes",
    "Replication stream produced (a primary) or applied (a replica).",
);
const NODE_REPLICATION_LAG: Family = Family::gauge(
    "keycafe_node_replication_lag_bytes",
    "For a replica: bytes behind its primary.",
);
const NODE_REPLICA_LINK_UP: Family = Family::gauge(
    "keycafe_node_replica_link_up",
    "For a replica: 1 if its link to its primary is up, else 0.",
);
const NODE_COMMANDS: Family = Family::counter(
    "keycafe_node_commands_processed_total",
    "Commands the node has processed since it started.",
);
const NODE_OPS: Family = Family::gauge(
    "keycafe_node_ops_per_second",
    "Commands per second, measured between heartbeats at least a second apart.",
);
const NODE_MEMORY: Family = Family::gauge(
    "keycafe_node_used_memory_bytes",
    "Memory the node accounts for (INFO used_memory, what maxmemory limits).",
);

const GROUP_LEADER: Family = Family::gauge(
    "keycafe_coordinator_group_leader",
    "1 if this coordinator leads its group (and decides), 0 if not.",
);
const GROUP_TERM: Family = Family::gauge(
    "keycafe_coordinator_group_term",
    "The group's Raft term as this coordinator knows it.",
);
const GROUP_COMMIT: Family = Family::gauge(
    "keycafe_coordinator_group_commit_index",
    "The last entry of the group's log this coordinator knows committed.",
);
const GROUP_APPLIED: Family = Family::gauge(
    "keycafe_coordinator_group_applied_index",
    "The last entry of the group's log this coordinator has applied.",
);
const GROUP_MEMBERS: Family = Family::gauge(
    "keycafe_coordinator_group_members",
    "Coordinators in the group.",
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
    GROUP_LEADER,
    GROUP_TERM,
    GROUP_COMMIT,
    GROUP_APPLIED,
    GROUP_MEMBERS,
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

    let flag = Number::flag;
    out.family(
        &NODE_INFO,
        view.nodes.iter().map(|n| {
            let mut labels = node_labels(n);
            labels.push(("bus_addr", n.bus_addr.as_str()));
            labels.push(("primary", n.replica_of.as_deref().unwrap_or("")));
            (labels, Number::Int(1))
        }),
    );
    per_node(&mut out, &NODE_UP, view, |n| Some(flag(!n.failing)));
    per_node(&mut out, &NODE_CONNECTED, view, |n| Some(flag(n.connected)));
    per_node(&mut out, &NODE_LEAVING, view, |n| Some(flag(n.leaving)));
    per_node(&mut out, &NODE_LAST_SEEN, view, |n| {
        Some(Number::Float(n.last_seen_ms as f64 / 1000.0))
    });
    per_node(&mut out, &NODE_CONFIG_EPOCH, view, |n| {
        n.reported_epoch.map(Number::Int)
    });
    per_node(&mut out, &NODE_SLOTS, view, |n| Some(count(n.slots)));
    per_node(&mut out, &NODE_KEYS, view, |n| n.keys.map(Number::Int));
    per_node(&mut out, &NODE_REPLICATION_OFFSET, view, |n| {
        n.offset.map(Number::Int)
    });
    per_node(&mut out, &NODE_REPLICATION_LAG, view, |n| {
        n.lag.map(Number::Int)
    });
    per_node(&mut out, &NODE_REPLICA_LINK_UP, view, |n| {
        n.link_up.map(flag)
    });
    per_node(&mut out, &NODE_COMMANDS, view, |n| {
        n.commands_processed.map(Number::Int)
    });
    per_node(&mut out, &NODE_OPS, view, |n| {
        n.ops_per_sec.map(Number::Float)
    });
    per_node(&mut out, &NODE_MEMORY, view, |n| {
        n.used_memory.map(Number::Int)
    });
    group(&mut out, view);
    out.into_text()
}

/// The coordinator group as this member sees it (every family, with no
/// sample when the view has no group).
fn group(out: &mut Exposition, view: &ClusterView) {
    let group = view.group.as_ref();
    let one = |value: Option<u64>| value.map(|v| (vec![], Number::Int(v)));
    let leads = group.map(|g| u64::from(g.role == "leader"));
    out.family(&GROUP_LEADER, one(leads));
    out.family(&GROUP_TERM, one(group.map(|g| g.term)));
    out.family(&GROUP_COMMIT, one(group.map(|g| g.commit)));
    out.family(&GROUP_APPLIED, one(group.map(|g| g.applied)));
    out.family(&GROUP_MEMBERS, one(group.map(|g| g.members.len() as u64)));
}

/// The labels every per-node sample carries.
fn node_labels(node: &NodeView) -> Labels<'_> {
    vec![
        ("node", node.id.as_str()),
        ("addr", node.client_addr.as_str()),
        ("role", node.role.as_str()),
    ]
}

/// A family with one sample per node whose `value` is known.
fn per_node(
    out: &mut Exposition,
    family: &Family,
    view: &ClusterView,
    value: impl Fn(&NodeView) -> Option<Number>,
) {
    let samples = view
        .nodes
        .iter()
        .filter_map(|node| value(node).map(|v| (node_labels(node), v)));
    out.family(family, samples);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        assert_eq!(
            keycafe_core::prometheus::check_names(FAMILIES, "keycafe_"),
            Ok(())
        );
    }
}
