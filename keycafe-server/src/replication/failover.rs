//! `CLUSTER FAILOVER`: a replica takes over its primary's slots without
//! losing a write.
//!
//! Run on a replica, the command answers `OK` at once (as in Redis) and a
//! task carries out the hand-over:
//!
//! 1. it asks the primary, over the bus, to stop accepting writes
//!    (`KC.FAILOVER.PAUSE ms`). The primary closes its [`super::WriteGate`],
//!    waits for the writes already running to finish, and answers the offset
//!    its stream has reached;
//! 2. it waits until it has applied the stream up to that offset: it now
//!    holds every write the primary ever acknowledged;
//! 3. it asks the coordinator to make it the primary (`failover`), which
//!    swaps the two roles in one new configuration.
//!
//! Writes the primary refuses meanwhile get `TRYAGAIN`, which cluster
//! clients retry; once the new configuration arrives they get `MOVED` to the
//! new primary. If anything fails on the way the pause simply runs out and
//! the old primary carries on. `CLUSTER FAILOVER FORCE` skips steps 1 and 2,
//! for a primary that is unreachable (it may lose what the replica had not
//! received).

use std::sync::Arc;
use std::time::Duration;

use keycafe_core::Frame;
use keycafe_core::coord::NodeMessage;
use tracing::{info, warn};

use crate::cluster::bus::BusClient;
use crate::state::Shared;

/// How long the primary stops writes for, at most.
pub const PAUSE: Duration = Duration::from_secs(5);

/// Carries out a manual failover of this replica's primary (see the module
/// documentation).
pub async fn run(shared: Arc<Shared>, force: bool) {
    if let Err(err) = take_over(&shared, force).await {
        warn!(%err, "manual failover abandoned");
    }
}

async fn take_over(shared: &Shared, force: bool) -> anyhow::Result<()> {
    let cluster = shared
        .cluster
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("not in cluster mode"))?;
    let primary = cluster
        .view()
        .my_primary()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("this node is not a replica"))?;
    let deadline = tokio::time::Instant::now() + PAUSE;

    if !force {
        let mut link = BusClient::connect(&primary.bus_addr, cluster.secret.as_deref()).await?;
        let pause = PAUSE.as_millis().to_string();
        let answer = link
            .call(&[b"KC.FAILOVER.PAUSE".as_slice(), pause.as_bytes()])
            .await?;
        let Frame::Integer(target) = answer else {
            anyhow::bail!("unexpected KC.FAILOVER.PAUSE answer {answer:?}");
        };
        let target = u64::try_from(target)?;
        info!(primary = %primary.client_addr, offset = target, "primary paused; catching up");
        let log = &shared.replication.log;
        while log.offset() < target {
            if tokio::time::Instant::now() >= deadline {
                let _ = link.call(&[b"KC.FAILOVER.RESUME"]).await;
                anyhow::bail!("could not catch up with the primary in {PAUSE:?}");
            }
            tokio::time::timeout_at(deadline, log.grown(log.offset()))
                .await
                .ok();
        }
    }

    info!(primary = %primary.client_addr, force, "asking the coordinator to promote this node");
    cluster.tell_coordinator(NodeMessage::Failover {
        primary: primary.id.clone(),
    });
    let mut changed = cluster.subscribe();
    loop {
        let view = cluster.view();
        if view.me.is_some() && !view.is_replica() {
            info!(epoch = view.epoch(), "manual failover complete");
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, changed.changed())
            .await
            .is_err()
        {
            anyhow::bail!("the coordinator did not promote this node within {PAUSE:?}");
        }
    }
}

/// How the primary's pause ends early (the replica gave up).
pub fn resume(shared: &Shared) {
    shared.replication.gate.resume();
}
