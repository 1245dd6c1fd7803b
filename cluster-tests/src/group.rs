//! A coordinator group: several coordinate-server processes replicating
//! one control plane with Raft (`docs/coordinator-group.md`), each with its
//! own data directory, killed, paused and restarted one at a time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use keycafe_core::cluster::ClusterConfig;
use serde_json::Value;

use crate::{Coordinator, CoordinatorOptions, Host, free_ports};

/// What makes a coordinator a member of a group: its id, its group port,
/// and the YAML file that lists every member.
#[derive(Debug, Clone)]
pub struct Membership {
    pub id: u64,
    pub group_port: u16,
    pub members_file: PathBuf,
}

impl Membership {
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            self.members_file.display().to_string(),
            "--id".into(),
            self.id.to_string(),
            "--group-port".into(),
            self.group_port.to_string(),
        ]
    }
}

/// The ports of one member: nodes, dashboard, group.
#[derive(Debug, Clone, Copy)]
struct Ports {
    node: u16,
    http: u16,
    group: u16,
}

/// A running group of coordinators on loopback. Member `i` (0-based) has id
/// `i + 1`; a member that was killed is `None` until restarted.
pub struct CoordinatorGroup {
    members: Vec<Option<Coordinator>>,
    hosts: Vec<Host>,
    ports: Vec<Ports>,
    /// Each member's YAML: the group's, or a joiner's own.
    member_files: Vec<PathBuf>,
    dir: PathBuf,
    options: CoordinatorOptions,
    election_timeout: Duration,
}

impl CoordinatorGroup {
    /// Starts `size` coordinators that form one group, their data under
    /// `dir`, each with `options` (node timeout, replicas...) and the
    /// election timeout given.
    pub async fn start(
        size: usize,
        dir: &Path,
        options: CoordinatorOptions,
        election_timeout: Duration,
    ) -> anyhow::Result<CoordinatorGroup> {
        let hosts = vec![Host::loopback(); size];
        CoordinatorGroup::start_on(&hosts, dir, options, election_timeout).await
    }

    /// [`CoordinatorGroup::start`] with member `i` on `hosts[i]` (the
    /// addresses of a network lab, or loopback).
    pub async fn start_on(
        hosts: &[Host],
        dir: &Path,
        options: CoordinatorOptions,
        election_timeout: Duration,
    ) -> anyhow::Result<CoordinatorGroup> {
        let size = hosts.len();
        // Loopback ports all drawn at once, so that no two are the same; a
        // host of its own has every port free.
        let mut free = free_port_list(3 * size).into_iter();
        let mut next = || free.next().unwrap_or_default();
        let ports: Vec<Ports> = hosts
            .iter()
            .map(|host| match host.is_dedicated() {
                true => Ports {
                    node: 7000,
                    http: 7080,
                    group: 7100,
                },
                false => Ports {
                    node: next(),
                    http: next(),
                    group: next(),
                },
            })
            .collect();
        let members: Vec<String> = ports
            .iter()
            .zip(hosts)
            .enumerate()
            .map(|(i, (p, host))| {
                let ip = host.ip();
                format!(
                    "  - {{id: {}, group_addr: \"{ip}:{}\", node_addr: \"{ip}:{}\", \
                     http_addr: \"{ip}:{}\"}}",
                    i + 1,
                    p.group,
                    p.node,
                    p.http
                )
            })
            .collect();
        let yaml = format!(
            "election_timeout_ms: {}\nmembers:\n{}\n",
            election_timeout.as_millis(),
            members.join("\n")
        );
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("group.yaml"), yaml)?;
        let mut group = CoordinatorGroup {
            members: (0..size).map(|_| None).collect(),
            hosts: hosts.to_vec(),
            ports,
            member_files: vec![dir.join("group.yaml"); size],
            dir: dir.to_path_buf(),
            options,
            election_timeout,
        };
        for i in 0..size {
            group.restart(i).await?;
        }
        Ok(group)
    }

    /// Starts member `i` again (or the first time), on its ports, with its
    /// data directory.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let ports = self.ports[i];
        let options = CoordinatorOptions {
            host: self.hosts[i].clone(),
            group: Some(Membership {
                id: i as u64 + 1,
                group_port: ports.group,
                members_file: self.member_files[i].clone(),
            }),
            ..self.options.clone()
        };
        let data_dir = self.dir.join(format!("coordinator-{}", i + 1));
        let coordinator =
            Coordinator::start_on_with(ports.node, ports.http, data_dir, &options).await?;
        self.members[i] = Some(coordinator);
        Ok(())
    }

    /// Starts a new coordinator that waits, empty, to be added to the group
    /// (`join: true`); returns its index. Add it with [`Self::add_member`].
    pub async fn start_joiner(&mut self) -> anyhow::Result<usize> {
        let [node, http, group] = free_ports();
        let i = self.members.len();
        self.hosts.push(Host::loopback());
        self.ports.push(Ports { node, http, group });
        self.members.push(None);
        let file = self.dir.join(format!("join-{}.yaml", i + 1));
        let timeout = self.election_timeout.as_millis();
        std::fs::write(
            &file,
            format!("join: true\nelection_timeout_ms: {timeout}\n"),
        )?;
        self.member_files.push(file);
        self.restart(i).await?;
        Ok(i)
    }

    /// Asks the leader (member `leader`) to add member `i` to the group,
    /// as an operator does: `POST /api/group/members` with the admin token.
    pub async fn add_member(&self, leader: usize, i: usize) -> anyhow::Result<()> {
        let p = self.ports[i];
        let body = format!(
            "{{\"id\": {}, \"group_addr\": \"127.0.0.1:{}\", \"node_addr\": \"127.0.0.1:{}\", \
             \"http_addr\": \"127.0.0.1:{}\"}}",
            i + 1,
            p.group,
            p.node,
            p.http
        );
        self.admin(leader, "POST", "/api/group/members", &body)
            .await
    }

    /// Asks the leader to remove member `i` from the group:
    /// `DELETE /api/group/members/{id}` with the admin token.
    pub async fn remove_member(&self, leader: usize, i: usize) -> anyhow::Result<()> {
        let path = format!("/api/group/members/{}", i + 1);
        self.admin(leader, "DELETE", &path, "").await
    }

    async fn admin(&self, at: usize, method: &str, path: &str, body: &str) -> anyhow::Result<()> {
        let bearer = format!("Bearer {}", crate::admin_token());
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ];
        let port = self.ports[at].http;
        let ip = self.hosts[at].ip();
        let (status, answer) = crate::http_request(ip, port, method, path, &headers, body).await?;
        anyhow::ensure!(status == 202, "{method} {path}: {status} {answer}");
        Ok(())
    }

    /// SIGKILL to member `i`, and waits until it is gone.
    pub async fn kill(&mut self, i: usize) {
        if let Some(coordinator) = self.members[i].take() {
            coordinator.kill().await;
        }
    }

    /// The running member `i`.
    pub fn member(&self, i: usize) -> &Coordinator {
        self.members[i].as_ref().expect("the member runs")
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Every member's address for nodes, as a node's `coordinator` lists
    /// them.
    pub fn node_addrs(&self) -> String {
        let addrs: Vec<String> = self
            .ports
            .iter()
            .zip(&self.hosts)
            .map(|(p, host)| host.addr(p.node))
            .collect();
        addrs.join(",")
    }

    /// The group as member `i` sees it (`group` in its `/api/cluster`).
    pub async fn group_of(&self, i: usize) -> anyhow::Result<Value> {
        let api = self.member(i).api().await?;
        Ok(api["group"].clone())
    }

    /// The running member that says it leads, if one does (a paused member
    /// does not answer, so it is not it).
    pub async fn find_leader(&self) -> Option<usize> {
        for (i, member) in self.members.iter().enumerate() {
            let Some(member) = member else { continue };
            let Ok(Ok(api)) = tokio::time::timeout(Duration::from_millis(500), member.api()).await
            else {
                continue;
            };
            if api["group"]["role"] == "leader" {
                return Some(i);
            }
        }
        None
    }

    /// Waits (bounded) until a running member other than those in `not`
    /// leads and has started deciding (its configuration has an epoch, or
    /// the cluster is still empty); returns it and how long it took.
    pub async fn wait_for_leader(
        &self,
        not: &[usize],
        timeout: Duration,
    ) -> anyhow::Result<(usize, Duration)> {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.find_leader().await
                && !not.contains(&leader)
            {
                return Ok((leader, started.elapsed()));
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "no leader (other than {not:?}) within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The configuration as the leader has it.
    pub async fn config(&self) -> anyhow::Result<ClusterConfig> {
        let leader = self.find_leader().await.context("no member leads")?;
        self.member(leader).config().await
    }

    /// Polls the leader (whichever member it is) until `ready` holds;
    /// fails after `timeout` with the last configuration seen.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&ClusterConfig) -> bool,
    ) -> anyhow::Result<ClusterConfig> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(config) = self.config().await {
                if ready(&config) {
                    return Ok(config);
                }
                last = Some(config);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what}: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `n` free loopback ports, all bound at once so that they differ.
fn free_port_list(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}
