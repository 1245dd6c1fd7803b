//! One benchmark client: a task with its own connection(s), keeping a
//! pipeline of requests in flight until the shared request budget is spent.
//!
//! The loop is redis-benchmark's: claim up to `-P` requests from the shared
//! budget, write them in one `write`, read their replies, repeat. Everything
//! a batch needs is prepared before the clock starts ([`Batch`]); per request
//! the loop only decodes the reply (keycafe-core's decoder, which slices the
//! read buffer rather than copying) and records a latency. A request's
//! latency runs from the write of its batch to the read that completed its
//! reply; replies that arrive in one read share one clock reading.
//!
//! With `--cluster` a client holds one connection per node, routes each
//! request to the owner of its key's slot, writes each node its share of the
//! batch and reads all nodes' replies concurrently.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use keycafe_core::{Frame, key_slot};
use tokio::io::AsyncWriteExt;

use crate::cluster::SlotTable;
use crate::wire::Wire;
use crate::workload::{Batch, Rng, Template};

/// Latencies are recorded in microseconds, up to a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

/// The request budget all clients of one test draw from.
pub struct Budget {
    total: u64,
    issued: AtomicU64,
    /// Replies received so far, for the progress bar.
    pub completed: AtomicU64,
}

impl Budget {
    pub fn new(total: u64) -> Budget {
        Budget {
            total,
            issued: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        }
    }

    /// Claims up to `want` requests; 0 when the budget is spent.
    fn claim(&self, want: usize) -> usize {
        let start = self.issued.fetch_add(want as u64, Ordering::Relaxed);
        self.total.saturating_sub(start).min(want as u64) as usize
    }
}

/// What a client measured in one test.
pub struct Outcome {
    pub latency_us: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn new() -> Outcome {
        let latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
            .expect("constant histogram bounds are valid");
        Outcome {
            latency_us,
            errors: 0,
            first_error: None,
        }
    }

    /// Folds another client's measurements into this one.
    pub fn merge(&mut self, other: Outcome) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// The parameters every client of a test shares.
pub struct Plan {
    pub template: Template,
    pub pipeline: usize,
    pub keyspace: Option<u64>,
}

/// A client's connection to one node, with its share of a cluster batch.
pub struct NodeConn {
    pub wire: Wire,
    batch: Vec<u8>,
    pending: usize,
    outcome: Outcome,
}

impl NodeConn {
    pub fn new(wire: Wire) -> NodeConn {
        NodeConn {
            wire,
            batch: Vec::new(),
            pending: 0,
            outcome: Outcome::new(),
        }
    }
}

/// Runs one test on a single connection until the budget is spent.
pub async fn run_single(
    wire: &mut Wire,
    plan: &Plan,
    budget: &Budget,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::new();
    let mut batch = Batch::new(&plan.template, plan.pipeline);
    let mut rng = Rng::new(seed);
    loop {
        let count = budget.claim(plan.pipeline);
        if count == 0 {
            return Ok(outcome);
        }
        if let Some(keyspace) = plan.keyspace {
            batch.randomize(&plan.template, count, &mut rng, keyspace);
        }
        let sent_at = Instant::now();
        wire.stream
            .write_all(batch.requests(count))
            .await
            .context("sending requests")?;
        // Over TLS the tail of a write can wait in the session until flushed.
        wire.stream.flush().await.context("sending requests")?;
        read_replies(wire, count, sent_at, &mut outcome).await?;
        budget.completed.fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// Runs one test on one connection per node, routing by slot.
pub async fn run_cluster(
    conns: &mut [NodeConn],
    slots: &SlotTable,
    plan: &Plan,
    budget: &Budget,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let template = &plan.template;
    let mut rng = Rng::new(seed);
    let mut round_robin = 0;
    let mut request = Vec::with_capacity(template.bytes.len());
    loop {
        let count = budget.claim(plan.pipeline);
        if count == 0 {
            break;
        }
        for _ in 0..count {
            request.clear();
            request.extend_from_slice(&template.bytes);
            if let Some(keyspace) = plan.keyspace {
                template.randomize(&mut request, rng.below(keyspace));
            }
            let node = match &template.key {
                Some(key) => slots.owner(key_slot(&request[key.clone()])),
                None => {
                    round_robin = (round_robin + 1) % conns.len();
                    round_robin
                }
            };
            conns[node].batch.extend_from_slice(&request);
            conns[node].pending += 1;
        }
        let sent_at = Instant::now();
        for conn in conns.iter_mut().filter(|c| c.pending > 0) {
            conn.wire
                .stream
                .write_all(&conn.batch)
                .await
                .context("sending requests")?;
            conn.wire.stream.flush().await.context("sending requests")?;
            conn.batch.clear();
        }
        let mut reads: Vec<Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>> = conns
            .iter_mut()
            .filter(|c| c.pending > 0)
            .map(|c| {
                let pending = std::mem::take(&mut c.pending);
                Box::pin(read_replies(&mut c.wire, pending, sent_at, &mut c.outcome)) as Pin<Box<_>>
            })
            .collect();
        join_all(&mut reads).await?;
        budget.completed.fetch_add(count as u64, Ordering::Relaxed);
    }
    let mut outcome = Outcome::new();
    for conn in conns.iter_mut() {
        outcome.merge(std::mem::replace(&mut conn.outcome, Outcome::new()));
    }
    Ok(outcome)
}

/// Polls every future until all are done or one fails.
async fn join_all<F: Future<Output = anyhow::Result<()>> + Unpin>(
    futures: &mut Vec<F>,
) -> anyhow::Result<()> {
    std::future::poll_fn(|cx| {
        let mut index = 0;
        while index < futures.len() {
            match Pin::new(&mut futures[index]).poll(cx) {
                Poll::Ready(Ok(())) => drop(futures.swap_remove(index)),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => index += 1,
            }
        }
        if futures.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reads `count` replies, recording each one's latency since `sent_at`.
async fn read_replies(
    wire: &mut Wire,
    mut count: usize,
    sent_at: Instant,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    // The buffer is empty when a batch starts, so `now` is set by a read
    // before any reply is timed. Replies completed by the same read share
    // one latency and are recorded together.
    let mut now = sent_at;
    loop {
        let mut decoded = 0;
        while decoded < count {
            let Some(frame) = wire
                .protocol
                .decode_frame(&mut wire.read_buf, &wire.limits)?
            else {
                break;
            };
            if let Frame::Error(text) = frame {
                outcome.errors += 1;
                if outcome.first_error.is_none() {
                    outcome.first_error = Some(String::from_utf8_lossy(&text).into_owned());
                }
            }
            decoded += 1;
        }
        if decoded > 0 {
            let micros = now.saturating_duration_since(sent_at).as_micros();
            let micros = u64::try_from(micros).unwrap_or(u64::MAX).max(1);
            outcome
                .latency_us
                .saturating_record_n(micros, decoded as u64);
            count -= decoded;
        }
        if count == 0 {
            return Ok(());
        }
        wire.fill().await.context("reading replies")?;
        now = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_hands_out_exactly_the_total() {
        let budget = Budget::new(10);
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 2);
        assert_eq!(budget.claim(4), 0);
        assert_eq!(budget.claim(1), 0);
    }

    #[test]
    fn outcomes_merge() {
        let mut a = Outcome::new();
        let mut b = Outcome::new();
        a.latency_us.saturating_record(100);
        b.latency_us.saturating_record(300);
        b.errors = 2;
        b.first_error = Some("ERR x".into());
        a.merge(b);
        assert_eq!(a.latency_us.len(), 2);
        assert_eq!(a.latency_us.max(), 300);
        assert_eq!((a.errors, a.first_error.as_deref()), (2, Some("ERR x")));
    }
}
