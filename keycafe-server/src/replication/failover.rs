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
//!
//! The decisions — what comes next, what the deadline allows — are
//! [`super::handover::Handover`]'s; this module is its shell: the bus
//! connection to the primary, the waiting on the replication log, on new
//! configurations and on the clock.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::Context;
use keycafe_core::Frame;
use keycafe_core::cluster::NodeInfo;
use tracing::{info, warn};

use super::handover::{Effect, Event, Handover, Outcome, Stage};
use super::{Parts, Replication};
use crate::cluster::ClusterState;
use crate::cluster::bus::BusClient;

pub use super::handover::PAUSE;

/// Carries out a manual failover of this replica's primary (see the module
/// documentation).
pub async fn run(node: Parts, force: bool) {
    if let Err(err) = take_over(&node, force).await {
        warn!(%err, "manual failover abandoned");
    }
}

async fn take_over(node: &Parts, force: bool) -> anyhow::Result<()> {
    let cluster = &node.cluster;
    let primary = cluster
        .view()
        .my_primary()
        .cloned()
        .context("this node is not a replica")?;
    let log = &node.replication.log;
    let mut changed = cluster.subscribe();
    // The bus connection to the primary, once made.
    let mut link: Option<BusClient> = None;
    let (mut handover, mut effects) = Handover::start(primary.id.clone(), force, Instant::now());
    let mut events = VecDeque::new();
    loop {
        for effect in effects {
            match effect {
                Effect::SendPause(pause) => {
                    let deadline = tokio::time::Instant::from_std(handover.deadline());
                    let answer = tokio::time::timeout_at(
                        deadline,
                        pause_primary(cluster, &primary, pause, &mut link),
                    )
                    .await;
                    match answer {
                        Ok(Ok(target)) => {
                            info!(primary = %primary.client_addr, offset = target, "primary paused; catching up");
                            events.push_back(Event::PauseAnswered(target));
                            events.push_back(Event::Applied(log.offset()));
                        }
                        Ok(Err(err)) => events.push_back(Event::PauseFailed(err.to_string())),
                        Err(_) => events.push_back(Event::Tick),
                    }
                }
                Effect::SendResume => {
                    // Best effort: the pause runs out anyway. The primary
                    // answers requests in order, so this undoes even a
                    // pause whose answer has not arrived.
                    if let Some(link) = link.as_mut() {
                        let _ = link.call(&[b"KC.FAILOVER.RESUME"]).await;
                    }
                }
                Effect::TellCoordinator(message) => {
                    info!(primary = %primary.client_addr, force, "asking the coordinator to promote this node");
                    cluster.tell_coordinator(message);
                    events.push_back(adopted(cluster));
                }
                Effect::Finish(Outcome::Done) => {
                    info!(epoch = cluster.epoch(), "manual failover complete");
                    return Ok(());
                }
                Effect::Finish(Outcome::Abandoned(reason)) => anyhow::bail!(reason),
            }
        }
        let event = match events.pop_front() {
            Some(event) => event,
            None => {
                let deadline = tokio::time::Instant::from_std(handover.deadline());
                let catching_up = matches!(handover.stage(), Stage::CatchingUp { .. });
                let applied = log.offset();
                tokio::select! {
                    _ = log.grown(applied), if catching_up => Event::Applied(log.offset()),
                    Ok(()) = changed.changed() => adopted(cluster),
                    _ = tokio::time::sleep_until(deadline) => Event::Tick,
                }
            }
        };
        effects = handover.step(event, Instant::now());
    }
}

/// `KC.FAILOVER.PAUSE ms` to the primary (connecting first); the offset it
/// answers.
async fn pause_primary(
    cluster: &ClusterState,
    primary: &NodeInfo,
    pause: std::time::Duration,
    link: &mut Option<BusClient>,
) -> anyhow::Result<u64> {
    let link = match link {
        Some(link) => link,
        None => link.insert(BusClient::connect(&primary.bus_addr, cluster).await?),
    };
    let ms = pause.as_millis().to_string();
    let answer = link
        .call(&[b"KC.FAILOVER.PAUSE".as_slice(), ms.as_bytes()])
        .await?;
    let Frame::Integer(target) = answer else {
        anyhow::bail!("unexpected KC.FAILOVER.PAUSE answer {answer:?}");
    };
    Ok(u64::try_from(target)?)
}

/// The adopted configuration, as the handover sees it.
fn adopted(cluster: &ClusterState) -> Event {
    let view = cluster.view();
    Event::ConfigAdopted {
        primary: view.me.is_some() && !view.is_replica(),
    }
}

/// How the primary's pause ends early (the replica gave up).
pub fn resume(replication: &Replication) {
    replication.gate.resume();
}
