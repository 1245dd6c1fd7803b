//! The dashboard: the cluster at a glance.
//!
//! One page (`templates/dashboard.html`) shows the epoch, a bar of all 16384
//! slots coloured by owner (inline SVG; migrating slots are paled in the bar
//! and marked underneath in their destination's colour), the nodes with
//! their state, role, slots, keys, load (commands per second and memory,
//! from their heartbeats) and replication (offset, a replica's lag behind
//! its primary, its link), the migrations in flight with their progress,
//! and the recent events, failovers highlighted.
//! It refreshes itself every two seconds with a `<meta>` tag: no
//! JavaScript, nothing loaded from elsewhere.
//!
//! Asking a node to leave takes two steps, as it moves data: the link opens a
//! confirmation page (which does not refresh), whose button POSTs along with
//! the admin token typed into its password field (see [`super::access`]).
//! A wrong token shows the page again, with 401.
//!
//! askama 0.16 has no axum integration: pages are rendered to a `String` and
//! wrapped in [`Html`], and a render failure becomes an [`HttpError`].

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use keycafe_core::SLOT_COUNT;
use serde::Deserialize;

use super::{Access, HttpError, same_origin};
use crate::driver::Handle;
use crate::error::Refusal;
use crate::group::view::GroupView;
use crate::state::events::ClusterEvent;
use crate::state::view::{ClusterView, EventView, NodeView, Role};

/// Owner colours (Tableau 10 and two more), by position in the node list.
const PALETTE: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#17becf",
];
/// Characters of a node id shown, at least.
const SHORT_ID: usize = 8;
/// Slot ranges listed per node before the rest are summarised.
const RANGES_SHOWN: usize = 4;

/// A run of slots in the SVG bar.
pub struct Segment {
    pub x: u16,
    pub width: u32,
    pub colour: &'static str,
    pub title: String,
}

pub struct NodeRow {
    pub colour: &'static str,
    pub id: String,
    pub short_id: String,
    pub client_addr: String,
    pub bus_addr: String,
    pub state: &'static str,
    pub connected: bool,
    pub slots: usize,
    pub ranges: String,
    pub keys: String,
    /// Commands per second; "—" until the coordinator has measured it
    /// (two heartbeats a second apart), from a node too old to report its
    /// count, and while the node is failing.
    pub ops: String,
    /// Memory the node accounts for, e.g. "1.2 MiB"; "—" before a
    /// heartbeat that says.
    pub memory: String,
    pub last_seen: String,
    pub epoch: String,
    pub can_leave: bool,
    pub replica: bool,
    /// "primary", or "replica of <short id>".
    pub role: String,
    pub offset: String,
    /// Bytes behind the primary; "—" for a primary.
    pub lag: String,
    /// A replica's link to its primary: "up", "down" or "unknown"; "—" for
    /// a primary.
    pub link: &'static str,
    /// "synced", "not synced" or "" (unknown, or a primary).
    pub synced: &'static str,
}

pub struct EventRow {
    pub ago: String,
    pub text: String,
    pub failover: bool,
}

pub struct MigrationRow {
    pub from: String,
    pub from_colour: &'static str,
    pub to: String,
    pub to_colour: &'static str,
    pub slots: usize,
    pub keys_left: String,
    pub stalled: bool,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub epoch: u64,
    pub slot_count: u16,
    pub slots_assigned: usize,
    pub migrating: usize,
    pub queued: usize,
    pub node_timeout: String,
    pub bar: Vec<Segment>,
    pub moving: Vec<Segment>,
    pub nodes: Vec<NodeRow>,
    pub migrations: Vec<MigrationRow>,
    pub events: Vec<EventRow>,
    /// The coordinator group, when there is more than one coordinator.
    pub group: Option<GroupSection>,
}

/// The coordinator group on the dashboard.
pub struct GroupSection {
    /// This member's id and role.
    pub me: u64,
    pub role: String,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    /// The leader's dashboard, when this member is not the leader.
    pub leader_link: Option<String>,
    pub members: Vec<MemberRow>,
}

pub struct MemberRow {
    pub id: u64,
    pub role: &'static str,
    pub group_addr: String,
    pub http_addr: String,
    pub me: bool,
    /// Its log index as the leader knows it, or "—".
    pub matched: String,
    /// "up", "down", or "—" for this member itself.
    pub link: &'static str,
    /// Since a message from it arrived, or "—".
    pub heard: String,
}

#[derive(Template)]
#[template(path = "leave.html")]
pub struct LeavePage {
    pub node: NodeRow,
    /// Already asked to leave.
    pub leaving: bool,
    /// Why the last attempt was refused.
    pub error: Option<&'static str>,
}

/// The confirmation form's fields.
#[derive(Deserialize)]
pub(super) struct LeaveForm {
    admin_token: String,
}

/// `GET /`
pub(super) async fn page(State(handle): State<Handle>) -> Result<Response, HttpError> {
    let view = handle.view().await?;
    render(&DashboardPage::from_view(&view))
}

/// `GET /nodes/{id}/leave`: the confirmation page.
pub(super) async fn confirm_leave(
    State(handle): State<Handle>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    render(&leave_page(&handle, id, None).await?)
}

async fn leave_page(
    handle: &Handle,
    id: String,
    error: Option<&'static str>,
) -> Result<LeavePage, HttpError> {
    let view = handle.view().await?;
    let (index, node) = view
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.id == id)
        .ok_or(Refusal::UnknownNode(id))?;
    Ok(LeavePage {
        node: node_row(&view, index, &short_id),
        leaving: node.leaving,
        error,
    })
}

/// `POST /nodes/{id}/leave`: with the right admin token in the form, asks
/// the node to leave and goes back to the dashboard; without it, shows the
/// confirmation page again (401) and changes nothing.
pub(super) async fn leave(
    State(handle): State<Handle>,
    State(access): State<Arc<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<LeaveForm>, FormRejection>,
) -> Result<Response, HttpError> {
    if !same_origin(&headers) {
        return Err(HttpError::CrossSite);
    }
    let authorised = match &form {
        Ok(Form(form)) => access.token_matches(form.admin_token.trim()),
        Err(_) => false,
    } || access.bearer_matches(&headers);
    if !authorised {
        tracing::warn!(node = %id, "dashboard leave refused: no valid admin token");
        let page = leave_page(&handle, id, Some("That is not the admin token.")).await?;
        let mut response = render(&page)?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    handle.leave(id).await??;
    Ok(Redirect::to("/").into_response())
}

/// The page as HTML; [`super::access::guard`] adds the security headers.
fn render<T: Template>(page: &T) -> Result<Response, HttpError> {
    Ok(Html(page.render()?).into_response())
}

impl DashboardPage {
    pub fn from_view(view: &ClusterView) -> DashboardPage {
        let config = &view.config;
        let colour_of = |id: &str| colour(view.nodes.iter().position(|n| n.id == id).unwrap_or(0));
        let width = short_width(view.nodes.iter().map(|n| n.id.as_str()));
        let short = |id: &str| id.get(..width).unwrap_or(id).to_string();
        let short = &short;

        let bar = config
            .slots
            .iter()
            .map(|range| Segment {
                x: range.start,
                width: u32::from(range.end - range.start) + 1,
                colour: colour_of(&range.owner),
                title: format!(
                    "slots {}–{}: {}",
                    range.start,
                    range.end,
                    short(&range.owner)
                ),
            })
            .collect();

        // Runs of consecutive migrating slots with the same source and target.
        let mut migrations = config.migrations.clone();
        migrations.sort_by_key(|m| m.slot);
        let mut moving: Vec<Segment> = Vec::new();
        let mut run_key: Option<(u16, &str, &str)> = None; // (next slot, from, to)
        for m in &migrations {
            let continues = run_key
                .is_some_and(|(next, from, to)| next == m.slot && from == m.from && to == m.to);
            match moving.last_mut() {
                Some(last) if continues => last.width += 1,
                _ => moving.push(Segment {
                    x: m.slot,
                    width: 1,
                    colour: colour_of(&m.to),
                    title: String::new(),
                }),
            }
            run_key = Some((m.slot.saturating_add(1), &m.from, &m.to));
            if let Some(last) = moving.last_mut() {
                let end = u32::from(last.x) + last.width - 1;
                last.title = format!(
                    "slots {}–{end} moving {} → {}",
                    last.x,
                    short(&m.from),
                    short(&m.to)
                );
            }
        }

        let migration_rows = view
            .migrations
            .iter()
            .map(|group| MigrationRow {
                from: short(&group.from),
                from_colour: colour_of(&group.from),
                to: short(&group.to),
                to_colour: colour_of(&group.to),
                slots: group.slots,
                keys_left: known(group.keys_left),
                stalled: group.stalled,
            })
            .collect();

        DashboardPage {
            epoch: view.epoch,
            slot_count: SLOT_COUNT,
            slots_assigned: view.slots_assigned,
            migrating: config.migrations.len(),
            queued: view.queued_moves,
            node_timeout: seconds(view.node_timeout_ms),
            bar,
            moving,
            nodes: (0..view.nodes.len())
                .map(|i| node_row(view, i, short))
                .collect(),
            migrations: migration_rows,
            events: view.events.iter().map(|e| event_row(e, short)).collect(),
            group: view
                .group
                .as_ref()
                .filter(|g| g.members.len() > 1)
                .map(group_section),
        }
    }
}

/// The group's members, their roles and how far each has come.
fn group_section(group: &GroupView) -> GroupSection {
    let leader_link = group
        .members
        .iter()
        .find(|m| m.is_leader && !m.is_me)
        .and_then(|m| m.http_addr.clone());
    let members = group
        .members
        .iter()
        .map(|m| MemberRow {
            id: m.id,
            role: group.role_of(m),
            group_addr: m.group_addr.clone(),
            http_addr: m.http_addr.clone().unwrap_or_default(),
            me: m.is_me,
            matched: m.matched.map_or_else(|| "—".to_string(), |i| i.to_string()),
            link: match (m.is_me, m.linked) {
                (true, _) | (false, None) => "—",
                (false, Some(true)) => "up",
                (false, Some(false)) => "down",
            },
            heard: m.heard_ms.map_or_else(
                || "—".to_string(),
                |ms| format!("{:.1} s ago", ms as f64 / 1000.0),
            ),
        })
        .collect();
    GroupSection {
        me: group.id,
        role: group.role.clone(),
        term: group.term,
        commit: group.commit,
        applied: group.applied,
        leader_link,
        members,
    }
}

/// A replica can always leave (it owns nothing); a primary unless it is the
/// last one staying (its slots would have nowhere to go).
fn can_leave(view: &ClusterView, node: &NodeView) -> bool {
    let other_primaries = view
        .nodes
        .iter()
        .filter(|n| n.id != node.id && n.role == Role::Primary && !n.leaving);
    !node.leaving && (node.role == Role::Replica || other_primaries.count() > 0)
}

/// The first [`SHORT_ID`] characters of an id.
fn short_id(id: &str) -> String {
    id.get(..SHORT_ID).unwrap_or(id).to_string()
}

/// The row of `view.nodes[index]`.
fn node_row(view: &ClusterView, index: usize, short: &dyn Fn(&str) -> String) -> NodeRow {
    let node = &view.nodes[index];
    let mut ranges: Vec<String> = node
        .ranges
        .iter()
        .take(RANGES_SHOWN)
        .map(|&(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}–{e}")
            }
        })
        .collect();
    if node.ranges.len() > RANGES_SHOWN {
        ranges.push(format!(
            "and {} more ranges",
            node.ranges.len() - RANGES_SHOWN
        ));
    }
    let replica = node.role == Role::Replica;
    NodeRow {
        colour: colour(index),
        id: node.id.clone(),
        short_id: short(&node.id),
        client_addr: node.client_addr.clone(),
        bus_addr: node.bus_addr.clone(),
        state: node.state.as_str(),
        connected: node.connected,
        slots: node.slots,
        ranges: if ranges.is_empty() {
            "—".to_string()
        } else {
            ranges.join(", ")
        },
        keys: known(node.keys),
        ops: node
            .ops_per_sec
            .map_or_else(|| "—".to_string(), ops_per_sec),
        memory: node
            .used_memory
            .map_or_else(|| "—".to_string(), human_bytes),
        last_seen: match node.keys {
            Some(_) => format!("{} ago", seconds(node.last_seen_ms)),
            None => format!(
                "none yet ({} since it registered)",
                seconds(node.last_seen_ms)
            ),
        },
        epoch: known(node.reported_epoch),
        can_leave: can_leave(view, node),
        replica,
        role: match &node.replica_of {
            Some(primary) => format!("replica of {}", short(primary)),
            None => Role::Primary.as_str().to_string(),
        },
        offset: known(node.offset),
        lag: match (replica, node.lag) {
            (false, _) => "—".to_string(),
            (true, Some(lag)) => format!("{lag} B"),
            (true, None) => "?".to_string(),
        },
        link: match (replica, node.link_up) {
            (false, _) => "—",
            (true, Some(true)) => "up",
            (true, Some(false)) => "down",
            (true, None) => "unknown",
        },
        synced: match node.synced {
            Some(true) => "synced",
            Some(false) => "not synced",
            None => "",
        },
    }
}

fn event_row(event: &EventView, short: &dyn Fn(&str) -> String) -> EventRow {
    let text = match &event.event {
        ClusterEvent::Joined {
            node,
            replica_of: None,
        } => format!("{} joined as a primary", short(node)),
        ClusterEvent::Joined {
            node,
            replica_of: Some(primary),
        } => format!("{} joined as a replica of {}", short(node), short(primary)),
        ClusterEvent::Replaced { old, new } => format!(
            "{} took the place of {} (a restart with a new id)",
            short(new),
            short(old)
        ),
        ClusterEvent::Left { node } => format!("{} left the cluster", short(node)),
        ClusterEvent::Reassigned {
            node,
            replica_of: None,
        } => format!("{} became a primary: its primary left", short(node)),
        ClusterEvent::Reassigned {
            node,
            replica_of: Some(primary),
        } => format!(
            "{} now replicates {}: its primary left",
            short(node),
            short(primary)
        ),
        ClusterEvent::Failing { node } => format!("{} is failing: no heartbeat", short(node)),
        ClusterEvent::Healthy { node } => format!("{} is healthy again", short(node)),
        ClusterEvent::Failover {
            reason,
            old_primary,
            new_primary,
            old_offset,
            new_offset,
        } => format!(
            "failover ({}): {} replaces {} as primary; offsets {} (new) and {} (old, last reported)",
            reason.as_str(),
            short(new_primary),
            short(old_primary),
            known(*new_offset),
            known(*old_offset)
        ),
    };
    EventRow {
        ago: format!("{} ago", seconds(event.ago_ms)),
        text,
        failover: matches!(event.event, ClusterEvent::Failover { .. }),
    }
}

/// A reported number, or "?" before the first report.
fn known(value: Option<u64>) -> String {
    value.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// A rate as people read it: one decimal below 10, whole numbers above.
fn ops_per_sec(rate: f64) -> String {
    if rate < 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// Bytes in binary units with one decimal: "512 B", "1.2 MiB".
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Rounded as shown, so that 1023.96 KiB reads 1.0 MiB, not 1024.0 KiB.
    while value >= 1023.95 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// How many leading characters of the ids tell every node apart: 8, as in
/// Redis's tools, or more if two ids share their first 8.
fn short_width<'a>(ids: impl Iterator<Item = &'a str> + Clone) -> usize {
    let longest = ids.clone().map(str::len).max().unwrap_or(0);
    (SHORT_ID..longest)
        .find(|&width| {
            let mut prefixes: Vec<&str> = ids
                .clone()
                .map(|id| id.get(..width).unwrap_or(id))
                .collect();
            let count = prefixes.len();
            prefixes.sort_unstable();
            prefixes.dedup();
            prefixes.len() == count
        })
        .unwrap_or(longest)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use keycafe_core::cluster::NodeInfo;
    use keycafe_core::coord::{NodeMessage, NodeReport, ReplicationReport};

    use super::*;
    use crate::state::{ConnId, Coordinator, Event, Settings};

    /// Node `n` ('a', 'b', ...) on connection `conn`, replicating the node
    /// at `primary` (a client address) if given.
    fn register(coordinator: &mut Coordinator, conn: ConnId, n: char, primary: Option<String>) {
        let node = NodeInfo {
            id: n.to_string().repeat(40),
            client_addr: format!("127.0.0.1:70{conn:02}"),
            bus_addr: format!("127.0.0.1:170{conn:02}"),
            replica_of: None,
        };
        let message = NodeMessage::Register {
            node,
            epoch: 0,
            proof: String::new(),
            primary,
        };
        let now = Instant::now();
        coordinator.step(Event::Received { conn, message }, now);
        coordinator.step(Event::Tick, now);
    }

    #[test]
    fn the_page_shows_nodes_the_bar_and_migrations() {
        let now = Instant::now();
        let (mut coordinator, _) = Coordinator::new(Settings::default(), None, now);
        register(&mut coordinator, 1, 'a', None);
        register(&mut coordinator, 2, 'b', None);
        let page = DashboardPage::from_view(&coordinator.view(now));
        assert_eq!(page.bar.len(), 1);
        assert_eq!(page.bar[0].width, 16384);
        // Node b takes the top half in one run of moves.
        assert_eq!(page.moving.len(), 1);
        assert_eq!((page.moving[0].x, page.moving[0].width), (8192, 1024));
        let html = page.render().unwrap();
        assert!(html.contains("<svg"));
        assert!(html.contains("aaaaaaaa") && html.contains("bbbbbbbb"));
        assert!(html.contains("127.0.0.1:7001"));
        assert!(html.contains(r#"http-equiv="refresh""#));
    }

    #[test]
    fn the_page_shows_roles_lag_and_failovers() {
        let now = Instant::now();
        let (mut coordinator, _) = Coordinator::new(Settings::default(), None, now);
        register(&mut coordinator, 1, 'a', None);
        register(&mut coordinator, 2, 'b', Some("127.0.0.1:7001".into()));
        let primary = "a".repeat(40);
        for (conn, replication) in [
            (
                1,
                ReplicationReport {
                    offset: 1000,
                    replicas_connected: 1,
                    ..ReplicationReport::default()
                },
            ),
            (
                2,
                ReplicationReport {
                    offset: 900,
                    following: Some(primary.clone()),
                    link_up: true,
                    synced: true,
                    ..ReplicationReport::default()
                },
            ),
        ] {
            let message = NodeMessage::Heartbeat(NodeReport {
                replication,
                ..NodeReport::default()
            });
            coordinator.step(Event::Received { conn, message }, now);
        }
        let page = DashboardPage::from_view(&coordinator.view(now));
        let (a, b) = (&page.nodes[0], &page.nodes[1]);
        assert_eq!(
            (a.role.as_str(), a.lag.as_str(), a.link),
            ("primary", "—", "—")
        );
        assert_eq!(b.role, "replica of aaaaaaaa");
        assert_eq!((b.offset.as_str(), b.lag.as_str()), ("900", "100 B"));
        assert_eq!((b.link, b.synced), ("up", "synced"));
        assert!(b.can_leave, "a replica can always leave");
        assert!(!a.can_leave, "a is the only primary");

        let message = NodeMessage::Failover { primary };
        coordinator.step(Event::Received { conn: 2, message }, now);
        // The promotion waits for a's lease to run out.
        let later = now + Duration::from_secs(4);
        coordinator.step(Event::Tick, later);
        let page = DashboardPage::from_view(&coordinator.view(later));
        assert_eq!(page.nodes[0].role, "replica of bbbbbbbb");
        let failover = &page.events[0];
        assert!(failover.failover);
        assert_eq!(
            failover.text,
            "failover (manual): bbbbbbbb replaces aaaaaaaa as primary; \
             offsets 900 (new) and 1000 (old, last reported)"
        );
        assert_eq!(failover.ago, "0.0 s ago");
        let html = page.render().unwrap();
        assert!(html.contains("Recent events") && html.contains(r#"class="failover""#));
        assert!(html.contains("joined as a replica of aaaaaaaa"), "{html}");
    }

    #[test]
    fn the_page_shows_each_nodes_load() {
        let t0 = Instant::now();
        let (mut coordinator, _) = Coordinator::new(Settings::default(), None, t0);
        register(&mut coordinator, 1, 'a', None);
        register(&mut coordinator, 2, 'b', None);
        let beat = |commands: u64, memory: u64| {
            NodeMessage::Heartbeat(NodeReport {
                commands_processed: Some(commands),
                used_memory: Some(memory),
                ..NodeReport::default()
            })
        };
        coordinator.step(
            Event::Received {
                conn: 1,
                message: beat(1_000, 1_300_000),
            },
            t0,
        );
        let page = DashboardPage::from_view(&coordinator.view(t0));
        let (a, b) = (&page.nodes[0], &page.nodes[1]);
        assert_eq!((a.ops.as_str(), a.memory.as_str()), ("—", "1.2 MiB"));
        assert_eq!(
            (b.ops.as_str(), b.memory.as_str()),
            ("—", "—"),
            "no heartbeat yet"
        );

        let t2 = t0 + Duration::from_secs(2);
        coordinator.step(
            Event::Received {
                conn: 1,
                message: beat(3_500, 1_300_000),
            },
            t2,
        );
        let page = DashboardPage::from_view(&coordinator.view(t2));
        assert_eq!(page.nodes[0].ops, "1250");
        let html = page.render().unwrap();
        assert!(
            html.contains("<th class=\"num\">ops/s</th>") && html.contains(">1250<"),
            "{html}"
        );
        assert!(html.contains(">1.2 MiB<"), "{html}");
    }

    #[test]
    fn a_followers_page_shows_the_group_and_links_to_the_leader() {
        use crate::group::view::{GroupView, MemberView};
        let now = Instant::now();
        let (coordinator, _) = Coordinator::new(Settings::default(), None, now);
        let member = |id: u64, me: bool, leader: bool| MemberView {
            id,
            group_addr: format!("10.0.0.{id}:9900"),
            node_addr: format!("10.0.0.{id}:9800"),
            http_addr: Some(format!("10.0.0.{id}:9880")),
            is_me: me,
            is_leader: leader,
            matched: None,
            linked: (!me).then_some(id != 3),
            heard_ms: (!me).then_some(250),
        };
        let mut view = coordinator.view(now);
        view.group = Some(GroupView {
            id: 1,
            role: "follower".into(),
            leader: Some(2),
            term: 7,
            commit: 40,
            applied: 40,
            last_index: 41,
            members: vec![
                member(1, true, false),
                member(2, false, true),
                member(3, false, false),
            ],
        });
        let html = DashboardPage::from_view(&view).render().unwrap();
        assert!(html.contains("Coordinator group"), "{html}");
        assert!(
            html.contains("the group's <b>follower</b> (term 7"),
            "{html}"
        );
        assert!(html.contains(r#"<a href="http://10.0.0.2:9880/">10.0.0.2:9880</a>; node health"#));
        assert!(html.contains("<td>down</td>") && html.contains("<td>up</td>"));
        // Alone, a coordinator shows no group.
        view.group.as_mut().unwrap().members.truncate(1);
        let html = DashboardPage::from_view(&view).render().unwrap();
        assert!(!html.contains("Coordinator group"));
    }

    #[test]
    fn rates_and_sizes_read_as_people_write_them() {
        assert_eq!(ops_per_sec(0.0), "0.0");
        assert_eq!(ops_per_sec(2.46), "2.5");
        assert_eq!(ops_per_sec(12_345.6), "12346");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1_258_291), "1.2 MiB");
        assert_eq!(human_bytes((1 << 20) - 1), "1.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn short_ids_grow_until_they_differ() {
        let ids = ["0000000000000001", "0000000000000002", "ab"];
        assert_eq!(short_width(ids.iter().copied()), 16);
        let ids = ["abcdefgh11", "abcdefgh22"];
        assert_eq!(short_width(ids.iter().copied()), 9);
        let ids = ["abcdefghij", "bcdefghijk"];
        assert_eq!(short_width(ids.iter().copied()), 8);
        assert_eq!(short_width(std::iter::empty()), 0);
    }
}
