//! `keycafe-benchmark`: load a node (or a cluster) and measure it, in the
//! manner of redis-benchmark.
//!
//! ```text
//! keycafe-benchmark [-h host] [-p port] [-c clients] [-n requests] [-P pipeline]
//!                   [-d size] [-r keyspace] [-t set,get,...] [--cluster]
//!                   [--protocol native|resp] [-a password] [--threads N]
//!                   [--tls --cacert ca.crt [--cert c.crt --key c.key] [--sni name]]
//!                   [-q | --json] [command args...]
//! ```
//!
//! Every client is a task with its own connection that keeps `-P` requests
//! in flight; all clients draw from one budget of `-n` requests per test.
//! Each request's latency goes into an HDR histogram, and a test reports
//! throughput and p50/p95/p99/p99.9/max. A progress bar shows on a terminal
//! (not with `-q` or `--json`); `--json` prints one document for scripts.
//!
//! `--protocol resp` speaks RESP2, so the same tool loads redis-server and a
//! Keycafe node side by side. `--cluster` reads CLUSTER SLOTS from the seed,
//! opens one connection per node in every client and sends each key to its
//! owner. Trailing arguments benchmark any command, with `__rand_int__`
//! replaced by a random number when `-r` is given.
//!
//! The tool is built on keycafe-core's codecs over plain tokio sockets, not on
//! the client library, so nothing stands between the hot loop and the wire:
//! requests are encoded once before the clock starts and patched in place
//! ([`workload`]), replies are decoded without copying ([`client`]).

#[path = "common/server_args.rs"]
mod server_args;
#[path = "common/wire.rs"]
#[allow(dead_code, reason = "shared with keycafe-cli, which uses all of it")]
mod wire;

#[path = "keycafe-benchmark/client.rs"]
mod client;
#[path = "keycafe-benchmark/cluster.rs"]
mod cluster;
#[path = "keycafe-benchmark/report.rs"]
mod report;
#[path = "keycafe-benchmark/workload.rs"]
mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keycafe_core::Protocol;

use client::{Budget, NodeConn, Outcome, Plan};
use cluster::SlotTable;
use keycafe_core::tls::Connector;
use report::{Document, Setup, TestResult};
use server_args::ServerArgs;
use wire::Wire;
use workload::{Template, Workload};

/// Load a Keycafe node or cluster (or redis-server, over RESP) and measure it.
#[derive(Parser, Debug)]
#[command(name = "keycafe-benchmark", version, disable_help_flag = true)]
struct Options {
    #[command(flatten)]
    server: ServerArgs,
    /// Number of parallel clients (connections, or connection sets with --cluster).
    #[arg(short = 'c', long = "clients", default_value_t = 50)]
    clients: usize,
    /// Total number of requests per test.
    #[arg(short = 'n', long = "requests", default_value_t = 100_000)]
    requests: u64,
    /// Requests each client keeps in flight (pipelining).
    #[arg(short = 'P', long = "pipeline", default_value_t = 1)]
    pipeline: usize,
    /// Value size in bytes for SET and MSET.
    #[arg(short = 'd', long = "data-size", default_value_t = 3)]
    data_size: usize,
    /// Use random keys in 0..KEYSPACE (`key:000000012345`) instead of one fixed key.
    #[arg(short = 'r', long = "keyspace")]
    keyspace: Option<u64>,
    /// Comma-separated tests: ping, set, get, incr, decr, mset, mget, exists, del.
    #[arg(short = 't', long = "tests", default_value = "ping,set,get,incr,mset")]
    tests: String,
    /// Route keys to their owners using the seed's CLUSTER SLOTS.
    #[arg(long)]
    cluster: bool,
    /// Wire protocol: Keycafe's native protocol, or RESP2 (works with redis-server).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Native)]
    protocol: ProtocolArg,
    /// Runtime worker threads; 1 runs every client on one thread, as redis-benchmark does.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Fail when no reply arrives for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Quiet: one line per test.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print one JSON document with every test's results.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// A command to benchmark instead of the -t tests.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtocolArg {
    Native,
    Resp,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(options)));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("keycafe-benchmark: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A client's connections: one, or one per node with `--cluster`.
enum Client {
    Single(Wire),
    Cluster(Vec<NodeConn>),
}

/// Runs every test; `Ok(false)` when some request got an error reply.
async fn run(options: Options) -> anyhow::Result<bool> {
    ensure!(options.clients > 0, "-c must be at least 1");
    ensure!(options.pipeline > 0, "-P must be at least 1");
    ensure!(options.keyspace != Some(0), "-r must be at least 1");
    ensure!(
        options.timeout > 0.0 && options.timeout.is_finite(),
        "--timeout must be a positive number of seconds"
    );
    let protocol = match options.protocol {
        ProtocolArg::Native => Protocol::Native,
        ProtocolArg::Resp => Protocol::Resp2,
    };
    let value = vec![b'x'; options.data_size];
    let workloads = if options.command.is_empty() {
        let names = options
            .tests
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty());
        names
            .map(|name| {
                Workload::builtin(name, &value).with_context(|| {
                    format!(
                        "unknown test {name:?}; known tests: {}",
                        workload::BUILTIN.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        vec![Workload::custom(options.command.clone())]
    };

    let seed = options.server.addr();
    let tls = options.server.tls_connector().context("TLS")?;
    let slots = if options.cluster {
        let password = options.server.password.as_deref();
        let mut wire = connect(&seed, protocol, password, tls.as_ref()).await?;
        let reply = wire
            .call(&["CLUSTER", "SLOTS"])
            .await
            .context("asking the seed for CLUSTER SLOTS")?;
        Some(Arc::new(SlotTable::from_cluster_slots(
            &reply,
            &options.server.host,
        )?))
    } else {
        None
    };
    let nodes = slots
        .as_ref()
        .map_or_else(|| vec![seed.clone()], |s| s.nodes.clone());
    let mut clients = connect_clients(&options, &nodes, protocol, tls).await?;

    let setup = Setup {
        host: options.server.host.clone(),
        port: options.server.port,
        protocol: if protocol == Protocol::Native {
            "native"
        } else {
            "resp"
        },
        tls: options.server.tls,
        clients: options.clients,
        pipeline: options.pipeline,
        data_size: options.data_size,
        keyspace: options.keyspace,
        cluster: options.cluster,
        nodes: nodes.len(),
        threads: options.threads.max(1),
    };
    let mut results = Vec::new();
    for workload in &workloads {
        let plan = Arc::new(Plan {
            template: Template::new(workload, protocol),
            pipeline: options.pipeline,
            keyspace: options.keyspace,
        });
        let (returned, result) =
            run_test(clients, &workload.name, plan, slots.clone(), &options).await?;
        clients = returned;
        if options.quiet {
            wire::outln!("{}", result.quiet_line());
        } else if !options.json {
            wire::outln!("{}", result.text(&setup));
        }
        if result.errors > 0 && !options.json {
            eprintln!(
                "{}: {} error replies, the first: {}",
                result.name,
                result.errors,
                result.first_error.as_deref().unwrap_or("")
            );
        }
        results.push(result);
    }
    if options.json {
        wire::outln!(
            "{}",
            serde_json::to_string_pretty(&Document {
                setup: &setup,
                tests: &results
            })?
        );
    }
    Ok(results.iter().all(|r| r.errors == 0))
}

/// Connects (over TLS when `tls` is given) and authenticates one connection.
async fn connect(
    addr: &str,
    protocol: Protocol,
    password: Option<&str>,
    tls: Option<&Connector>,
) -> anyhow::Result<Wire> {
    let mut wire = Wire::connect(addr, protocol, tls)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    if let Some(password) = password {
        wire.auth(password)
            .await
            .with_context(|| format!("AUTH on {addr}"))?;
    }
    Ok(wire)
}

/// Opens every client's connections, concurrently, before any clock starts.
async fn connect_clients(
    options: &Options,
    nodes: &[String],
    protocol: Protocol,
    tls: Option<Connector>,
) -> anyhow::Result<Vec<Client>> {
    let nodes = Arc::new(nodes.to_vec());
    let handles: Vec<_> = (0..options.clients)
        .map(|_| {
            let (nodes, password, cluster, tls) = (
                nodes.clone(),
                options.server.password.clone(),
                options.cluster,
                tls.clone(),
            );
            tokio::spawn(async move {
                let (password, tls) = (password.as_deref(), tls.as_ref());
                if !cluster {
                    return Ok(Client::Single(
                        connect(&nodes[0], protocol, password, tls).await?,
                    ));
                }
                let mut conns = Vec::with_capacity(nodes.len());
                for node in nodes.iter() {
                    conns.push(NodeConn::new(connect(node, protocol, password, tls).await?));
                }
                anyhow::Ok(Client::Cluster(conns))
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(handles.len());
    for handle in handles {
        clients.push(handle.await.context("connecting task panicked")??);
    }
    Ok(clients)
}

/// Runs one test on every client and hands the clients back for the next.
async fn run_test(
    clients: Vec<Client>,
    name: &str,
    plan: Arc<Plan>,
    slots: Option<Arc<SlotTable>>,
    options: &Options,
) -> anyhow::Result<(Vec<Client>, TestResult)> {
    let budget = Arc::new(Budget::new(options.requests));
    let progress = progress_bar(name, options);
    let time_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let started = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, mut client)| {
            let (plan, budget, slots) = (plan.clone(), budget.clone(), slots.clone());
            let seed = time_seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            tokio::spawn(async move {
                let outcome = match (&mut client, &slots) {
                    (Client::Single(wire), _) => {
                        client::run_single(wire, &plan, &budget, seed).await
                    }
                    (Client::Cluster(conns), Some(slots)) => {
                        client::run_cluster(conns, slots, &plan, &budget, seed).await
                    }
                    (Client::Cluster(_), None) => {
                        Err(anyhow::anyhow!("cluster client without a slot table"))
                    }
                };
                (client, outcome)
            })
        })
        .collect();
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    let collect = async {
        let mut clients = Vec::with_capacity(handles.len());
        let mut total = Outcome::new();
        let mut failure = None;
        for (index, handle) in handles.into_iter().enumerate() {
            let (client, outcome) = handle.await.context("client task panicked")?;
            clients.push(client);
            match outcome {
                Ok(outcome) => total.merge(outcome),
                Err(err) => failure = failure.or(Some(err.context(format!("client {index}")))),
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok((clients, total)),
        }
    };
    let stall = Duration::from_secs_f64(options.timeout);
    let result = tokio::select! {
        result = collect => result,
        stalled = watch(&progress, &budget, stall) => {
            aborts.iter().for_each(|abort| abort.abort());
            Err(stalled)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let (clients, total) = result.with_context(|| format!("test {name}"))?;
    Ok((clients, TestResult::new(name.to_string(), &total, seconds)))
}

/// Updates the progress bar every 100 ms; returns (an error) only if no
/// reply has arrived for `stall`, so that a server that stops answering
/// fails the run instead of hanging it.
async fn watch(progress: &ProgressBar, budget: &Budget, stall: Duration) -> anyhow::Error {
    let started = Instant::now();
    let mut last = (0, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let done = budget.completed.load(std::sync::atomic::Ordering::Relaxed);
        progress.set_position(done);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        progress.set_message(format!("{rate:.0} req/s"));
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() >= stall {
            return anyhow::anyhow!("no reply for {stall:?} (see --timeout)");
        }
    }
}

/// A progress bar on stderr; hidden with `-q`, `--json`, or when stderr is
/// not a terminal (indicatif does not draw to pipes).
fn progress_bar(name: &str, options: &Options) -> ProgressBar {
    if options.quiet || options.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(options.requests), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{wide_bar}] {pos}/{len} {msg}")
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar
}
