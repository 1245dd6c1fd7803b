//! A laboratory of network namespaces, for tests that drop a process's
//! packets.
//!
//! Killing a process closes its sockets, and its peers notice at once. The
//! faults that hurt in production are silent: a host that vanished, a cable
//! pulled, a partition that leaves a primary reachable by its clients but
//! not by the coordinator or its replicas. Only dropped packets reproduce
//! them honestly: TCP connections stay open and nothing answers, so whatever
//! notices must be the application's own liveness checks.
//!
//! A [`Lab`] gives each process a network namespace of its own, with one
//! address (`10.77.0.<i + 2>/24`) on a veth pair whose other end is on a
//! bridge in a *hub* namespace. The test body runs in the hub
//! (`10.77.0.1`), so it reaches every process directly, whatever is cut.
//! [`Lab::cut`] adds iptables DROP rules inside the victim's namespace (its
//! INPUT and OUTPUT chains) for the peers named, and [`Lab::heal`] removes
//! them: the victim is cut off from those peers and from nobody else.
//! [`Lab::unplug`] takes a host off the bridge altogether, test body
//! included, and [`Lab::plug`] puts it back.
//!
//! The machine's own network namespace is never touched: no interface,
//! route or rule is added there. Since a test process cannot move its
//! async runtime into another namespace, [`run`] re-executes the test
//! binary under `ip netns exec <hub>` (that execs, so the pid is the test's):
//! the outer run creates the namespaces, starts the inner run that does
//! the work, waits for it (bounded), prints its output and deletes the
//! namespaces, after killing whatever still runs in them, also when the
//! test fails or hangs. Namespace names carry the outer test process's pid
//! and a counter, so tests run in parallel; namespaces left by a test
//! process that no longer exists (it was killed) are deleted by the next
//! run.
//!
//! Needs root, `ip` (iproute2) and `iptables`; without them the test fails
//! with a message that says so, never skips.

use std::fs::File;
use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::{Host, binary, logs_dir};

/// Set for the inner run: `<prefix> <hosts> <test>`.
const INNER_ENV: &str = "KEYCAFE_NETNS_LAB";
/// Every namespace this module creates is named `kcnet-<pid>-...`.
const NAME_PREFIX: &str = "kcnet";
/// The first three octets of a lab's addresses. Labs do not collide: each
/// has its own namespaces, and none of them is the machine's.
const SUBNET: &str = "10.77.0";
/// The hub's address on the bridge: where the test body connects from.
pub const HUB_IP: &str = "10.77.0.1";
/// How long one `ip` or `iptables` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A hub namespace with a bridge, and `hosts` namespaces of one address
/// each plugged into it.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `kcnet-<pid>-<n>`: the start of every namespace name of this lab.
    prefix: String,
    hosts: usize,
}

impl Lab {
    /// A new lab's names (nothing is created yet).
    fn new(hosts: usize) -> Lab {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!((1..=200).contains(&hosts), "a lab has 1 to 200 hosts");
        Lab {
            prefix: format!("{NAME_PREFIX}-{}-{n}", std::process::id()),
            hosts,
        }
    }

    /// The name of the namespace the test body runs in.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// The name of the `i`-th host's namespace.
    pub fn namespace(&self, i: usize) -> String {
        assert!(i < self.hosts, "host {i} of a lab of {}", self.hosts);
        format!("{}-{i}", self.prefix)
    }

    /// The `i`-th host's address.
    pub fn ip(&self, i: usize) -> String {
        assert!(i < self.hosts, "host {i} of a lab of {}", self.hosts);
        format!("{SUBNET}.{}", i + 2)
    }

    /// Where to start a process on the `i`-th host: its address, and
    /// `ip netns exec <namespace>` before the binary.
    pub fn host(&self, i: usize) -> Host {
        let wrapper = ["ip", "netns", "exec", &self.namespace(i)].map(String::from);
        Host::dedicated(self.ip(i), wrapper.to_vec())
    }

    /// The host whose address `addr` (`ip` or `ip:port`) is.
    pub fn host_of(&self, addr: &str) -> anyhow::Result<usize> {
        let ip = addr.split(':').next().unwrap_or(addr);
        (0..self.hosts)
            .find(|&i| self.ip(i) == ip)
            .with_context(|| format!("{addr} is not a host of this lab"))
    }

    /// Drops every packet between `victim` and each of `peers` (addresses,
    /// `ip` or `ip:port`), with rules in the victim's own INPUT and OUTPUT
    /// chains: open connections stay open and go silent, new ones time out.
    /// Returns once the rules are in force.
    pub fn cut(&self, victim: &str, peers: &[String]) -> anyhow::Result<()> {
        let namespace = self.namespace(self.host_of(victim)?);
        let mut ips = Vec::new();
        for peer in peers {
            let ip = self.ip(self.host_of(peer)?);
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ensure!(!ips.is_empty(), "cutting {victim} off from nobody");
        let ips = ips.join(",");
        for (chain, direction) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
            iptables(&namespace, &["-A", chain, direction, &ips, "-j", "DROP"])?;
        }
        Ok(())
    }

    /// Takes the host of `victim` (an address, `ip` or `ip:port`) off the
    /// network, as a pulled cable does: its link on the hub's bridge goes
    /// down, so nothing reaches it, not even the test body, and its open
    /// connections go silent. [`Lab::plug`] puts it back.
    pub fn unplug(&self, victim: &str) -> anyhow::Result<()> {
        let port = format!("v{}", self.host_of(victim)?);
        ip(&["-n", &self.hub(), "link", "set", &port, "down"])
    }

    /// Undoes [`Lab::unplug`].
    pub fn plug(&self, victim: &str) -> anyhow::Result<()> {
        let port = format!("v{}", self.host_of(victim)?);
        ip(&["-n", &self.hub(), "link", "set", &port, "up"])
    }

    /// Removes every rule [`Lab::cut`] added for `victim`.
    pub fn heal(&self, victim: &str) -> anyhow::Result<()> {
        let namespace = self.namespace(self.host_of(victim)?);
        for chain in ["INPUT", "OUTPUT"] {
            iptables(&namespace, &["-F", chain])?;
        }
        Ok(())
    }

    /// Every namespace of the lab, the hub last.
    fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.hosts).map(|i| self.namespace(i)).collect();
        names.push(self.hub());
        names
    }

    /// Creates the hub with its bridge and the hosts plugged into it.
    fn create(&self) -> anyhow::Result<()> {
        let hub = self.hub();
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            &hub,
            "addr",
            "add",
            &format!("{HUB_IP}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..self.hosts {
            let (namespace, port) = (self.namespace(i), format!("v{i}"));
            ip(&["netns", "add", &namespace])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            // Created in the hub, the peer end moved into the host at once;
            // interface names are per namespace, so every host has `eth0`.
            ip(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ])?;
            ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", self.ip(i));
            ip(&["-n", &namespace, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The description the inner run rebuilds the lab from.
    fn spec(&self, test: &str) -> String {
        format!("{} {} {test}", self.prefix, self.hosts)
    }

    fn from_spec(spec: &str) -> anyhow::Result<(Lab, String)> {
        let mut parts = spec.split(' ');
        let (Some(prefix), Some(hosts), Some(test), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("{INNER_ENV} is {spec:?}, not `<prefix> <hosts> <test>`");
        };
        let lab = Lab {
            prefix: prefix.to_string(),
            hosts: hosts.parse().context("host count")?,
        };
        Ok((lab, test.to_string()))
    }
}

/// Deletes a lab's namespaces when dropped, after killing every process
/// still in them (those a failed or hung test left behind).
struct Teardown(Lab);

impl Drop for Teardown {
    fn drop(&mut self) {
        for namespace in self.0.namespaces() {
            remove_namespace(&namespace);
        }
    }
}

/// Runs `body` inside a new lab of `hosts` hosts, and removes the lab
/// afterwards. `test` must be the name of the calling `#[test]` function
/// (the inner run is `<test binary> <test> --exact`); the whole inner run
/// may take `timeout`.
///
/// Called from a plain `#[test]` function: in the outer run this sets the
/// lab up and re-executes the test inside it; in the inner run it runs
/// `body` on a multi-threaded tokio runtime.
pub fn run<F, Fut>(test: &str, hosts: usize, timeout: Duration, body: F)
where
    F: FnOnce(Lab) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Ok(spec) = std::env::var(INNER_ENV) {
        let (lab, inner_test) = Lab::from_spec(&spec).expect("the outer run's lab");
        assert_eq!(
            inner_test, test,
            "the inner run runs the test it was started for"
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(body(lab));
        return;
    }
    if let Err(problem) = preflight() {
        panic!(
            "{test} drops packets with iptables in network namespaces it creates, so it needs \
             root and the commands `ip` (Debian package iproute2) and `iptables` (package \
             iptables): {problem:#}"
        );
    }
    // Built here: the inner run must not start a build inside the lab.
    binary("keycafe-server");
    binary("coordinate-server");
    remove_leftovers();

    let lab = Lab::new(hosts);
    let teardown = Teardown(lab.clone());
    lab.create().expect("creating the network namespaces");
    let outcome = run_inner(&lab, test, timeout);
    drop(teardown);
    let (success, output) = outcome.expect("running the test inside the namespaces");
    print!("{output}");
    assert!(
        success,
        "{test} failed inside its network namespaces (full output above):\n{}",
        panic_lines(&output)
    );
    assert!(
        output.contains("test result: ok. 1 passed"),
        "the inner run did not run {test}: is it the name of the #[test] function? Output:\n{output}"
    );
}

/// Starts the inner run in the hub and waits for it; returns whether it
/// passed and what it printed.
fn run_inner(lab: &Lab, test: &str, timeout: Duration) -> anyhow::Result<(bool, String)> {
    let exe = std::env::current_exe().context("the test executable")?;
    let output_path = logs_dir().join(format!("{test}-{}.out", lab.prefix));
    let output = File::create(&output_path).context("the inner run's output file")?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.hub()])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER_ENV, lab.spec(test))
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .spawn()
        .context("starting the test under `ip netns exec`")?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = std::fs::read_to_string(&output_path).context("the inner run's output")?;
    match status {
        Some(status) => Ok((status.success(), text)),
        None => {
            text.push_str(&format!(
                "\n{test} did not finish within {timeout:?}; killed\n"
            ));
            Ok((false, text))
        }
    }
}

/// The panic messages in a test's output (the lines from `panicked at` to
/// the next `note:` or blank line), or a pointer to the output if none.
fn panic_lines(output: &str) -> String {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in output.lines() {
        if line.contains("panicked at") {
            inside = true;
        } else if inside && (line.is_empty() || line.starts_with("note:")) {
            inside = false;
        }
        if inside {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        output
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        lines.join("\n")
    }
}

/// Root, `ip` and `iptables`: what a lab needs.
fn preflight() -> anyhow::Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid in /proc/self/status")?;
    ensure!(
        effective_uid == "0",
        "running as uid {effective_uid}, not root"
    );
    for (program, flag) in [("ip", "-V"), ("iptables", "-V")] {
        let output = Command::new(program)
            .arg(flag)
            .output()
            .with_context(|| format!("cannot run `{program}`"))?;
        ensure!(
            output.status.success(),
            "`{program} {flag}` failed: {output:?}"
        );
    }
    Ok(())
}

/// Deletes the namespaces of labs whose test process is gone.
fn remove_leftovers() {
    let Ok(list) = run_command("ip", &["netns", "list"]) else {
        return;
    };
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(name);
        }
    }
}

/// Kills what runs in `namespace` (SIGKILL, by pid), then deletes it.
/// Best effort: used on the way out, where there is nobody to tell.
fn remove_namespace(namespace: &str) {
    if let Ok(pids) = run_command("ip", &["netns", "pids", namespace]) {
        for pid in pids.split_whitespace() {
            let _ = run_command("kill", &["-KILL", pid]);
        }
    }
    let _ = run_command("ip", &["netns", "del", namespace]);
}

/// `ip args...`, which must succeed.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    run_command("ip", args).map(drop)
}

/// `iptables args...` inside `namespace` (waiting for the xtables lock,
/// which every namespace shares).
fn iptables(namespace: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["netns", "exec", namespace, "iptables", "-w", "5"];
    all.extend_from_slice(args);
    run_command("ip", &all).map(drop)
}

/// Runs a command to completion (bounded by [`COMMAND_TIMEOUT`]) and
/// returns its stdout; fails with its stderr if it fails.
fn run_command(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let what = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{what}`"))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{what}` did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "`{what}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
