//! `keycafe-server`: parse the configuration, bind, and run the node.

use anyhow::Context;
use clap::Parser;
use keycafe_core::process::{init_tracing, shutdown_signal};
use keycafe_server::Config;
use keycafe_server::config::Flags;
use tracing::info;

fn main() -> anyhow::Result<()> {
    one_malloc_arena();
    let config = Flags::parse().into_config()?;
    init_tracing(&config.log_level)?;
    runtime(&config)?.block_on(serve(config))
}

/// glibc gives each thread its own malloc arena, and memory freed into an
/// arena is reused only by allocations from that arena: a key written on one
/// worker and evicted on another leaves its bytes where nobody else takes
/// them, so a node at `maxmemory` could hold up to the limit again per
/// arena. One arena lets every thread reuse what eviction frees; the
/// benchmarks show no cost (docs/memory.md). `MALLOC_ARENA_MAX` in the
/// environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs first in
        // main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

/// One thread runs a single-threaded runtime (no cross-thread wake-ups, like
/// Redis's event loop); more run tokio's work-stealing scheduler.
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match config.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Installed before anything else runs (see `shutdown_signal`).
    let signal = shutdown_signal();
    let addr = config.client_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let in_cluster = config.coordinator.is_some();
    let shutdown = async move {
        signal.await;
        if in_cluster {
            // SIGTERM stops a member without leaving, as in Redis Cluster:
            // a restart or a whole cluster being stopped must not move
            // every slot around first. `docs/protocol.md`, "Stopping and
            // leaving".
            info!(
                "stopping without leaving the cluster: this node keeps its slots \
                 (its replica takes them over, or a node restarted at this address); \
                 CLUSTER LEAVE moves them away first"
            );
        }
    };
    keycafe_server::run(config, listener, shutdown).await
}
