//! Pipelines: many commands, one round trip per node.
//!
//! A [`Pipeline`] is plain data, a list of encoded requests. Executing it
//! groups the requests by the node that serves each one's slot, sends every
//! group back to back on that node's connection (all groups concurrently),
//! and puts the replies back in the caller's order. A reply that is a
//! redirect, a `TRYAGAIN`, or a request that never reached a dead node, is
//! then resent on its own through the normal retry path, so a pipeline
//! survives a resharding just like a single command does.
//!
//! The multi-key methods (`mget`, `mset`, `delete_many`) use the same
//! machinery: `KeycafeCluster::per_slot` splits their keys by slot into
//! one request per slot.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use keycafe_core::{Frame, Slot, key_slot};
use tokio::task::JoinSet;

use crate::commands::{key_number_request, key_request};
use crate::connection::{Batch, Hold, SendError};
use crate::node::Node;
use crate::options::set_request;
use crate::routing::{Outcome, Request};
use crate::{Error, KeycafeCluster, Result, SetOptions};

/// A batch of commands sent together with [`KeycafeCluster::execute`].
///
/// Replies come back in the order the commands were added, as [`Frame`]s
/// (convert them with [`FromFrame`](crate::FromFrame)). An error reply to
/// one command is a [`Frame::Error`] in its place and does not affect the
/// others. Commands for the same node run in the order given; commands for
/// different nodes run concurrently.
///
/// ```no_run
/// use keycafe_client::{FromFrame, KeycafeCluster, Pipeline};
///
/// # async fn demo(kc: KeycafeCluster) -> keycafe_client::Result<()> {
/// let mut pipeline = Pipeline::new();
/// pipeline.set("a", "1").incr("a").get("a").cmd(["STRLEN", "a"]);
/// let replies = kc.execute(&pipeline).await?;
/// assert_eq!(i64::from_frame(replies[1].clone())?, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    requests: Vec<Request>,
    /// Why the pipeline cannot be sent, found while queueing.
    invalid: Option<Error>,
}

impl Pipeline {
    /// The requests queued so far.
    pub(crate) fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Why the pipeline cannot be sent, if it cannot.
    pub(crate) fn invalid(&self) -> Option<&Error> {
        self.invalid.as_ref()
    }

    /// An empty pipeline.
    pub fn new() -> Pipeline {
        Pipeline::default()
    }

    /// The number of commands queued.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True if no command is queued.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Queues any command, name first. As with
    /// [`KeycafeCluster::command`], an empty command or one that changes
    /// connection state makes [`KeycafeCluster::execute`] fail.
    pub fn cmd<I, A>(&mut self, args: I) -> &mut Pipeline
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let args: Vec<A> = args.into_iter().collect();
        match crate::routing::check_command(&args) {
            Ok(()) => self.requests.push(Request::new(&args)),
            Err(error) => {
                self.invalid.get_or_insert(error);
            }
        }
        self
    }

    /// Queues `GET key`.
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.requests.push(key_request("GET", key.as_ref()));
        self
    }

    /// Queues `SET key value`.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Pipeline {
        self.set_with(key, value, &SetOptions::new())
    }

    /// Queues `SET key value` with options.
    pub fn set_with(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> &mut Pipeline {
        self.requests
            .push(set_request(key.as_ref(), value.as_ref(), options));
        self
    }

    /// Queues `DEL key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.requests.push(key_request("DEL", key.as_ref()));
        self
    }

    /// Queues `EXISTS key`.
    pub fn exists(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.requests.push(key_request("EXISTS", key.as_ref()));
        self
    }

    /// Queues `INCR key`.
    pub fn incr(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.requests.push(key_request("INCR", key.as_ref()));
        self
    }

    /// Queues `INCRBY key delta`.
    pub fn incr_by(&mut self, key: impl AsRef<[u8]>, delta: i64) -> &mut Pipeline {
        self.requests
            .push(key_number_request("INCRBY", key.as_ref(), delta));
        self
    }

    /// Queues `EXPIRE key seconds`.
    pub fn expire(&mut self, key: impl AsRef<[u8]>, seconds: u64) -> &mut Pipeline {
        self.requests
            .push(key_number_request("EXPIRE", key.as_ref(), seconds));
        self
    }

    /// Queues `PTTL key`.
    pub fn pttl(&mut self, key: impl AsRef<[u8]>) -> &mut Pipeline {
        self.requests.push(key_request("PTTL", key.as_ref()));
        self
    }
}

impl KeycafeCluster {
    /// Sends every command of `pipeline` and returns the replies in order.
    ///
    /// Fails as a whole only when the network fails for a command that was
    /// sent (it may have been applied) or the retry budget runs out; error
    /// replies are returned in place as [`Frame::Error`].
    pub async fn execute(&self, pipeline: &Pipeline) -> Result<Vec<Frame>> {
        if let Some(error) = &pipeline.invalid {
            return Err(error.clone());
        }
        self.execute_all(&pipeline.requests).await
    }

    /// Sends `requests` grouped by node, concurrently; replies in order.
    pub(crate) async fn execute_all(&self, requests: &[Request]) -> Result<Vec<Frame>> {
        if let [request] = requests {
            return Ok(vec![self.dispatch(request).await?]);
        }
        // A cluster has few nodes: a short list beats a map here.
        let mut groups: Vec<(Arc<Node>, Vec<usize>)> = Vec::new();
        for (index, request) in requests.iter().enumerate() {
            let node = self.route(request.slot).await?;
            match groups
                .iter_mut()
                .find(|(known, _)| Arc::ptr_eq(known, &node))
            {
                Some((_, indexes)) => indexes.push(index),
                None => groups.push((node, vec![index])),
            }
        }

        let mut sends = JoinSet::new();
        for (node, indexes) in groups {
            let mut bytes =
                BytesMut::with_capacity(indexes.iter().map(|&i| requests[i].bytes.len()).sum());
            indexes
                .iter()
                .for_each(|&i| bytes.extend_from_slice(&requests[i].bytes));
            let hold = indexes
                .iter()
                .fold(Hold::None, |hold, &i| hold.then(requests[i].hold));
            let cluster = self.clone();
            sends.spawn(async move {
                let sent = node
                    .request(bytes.freeze(), Batch(indexes.len()), hold, cluster.config())
                    .await;
                (node, indexes, sent)
            });
        }

        let mut replies: Vec<Option<Frame>> = vec![None; requests.len()];
        let mut resend = Vec::new();
        while let Some(joined) = sends.join_next().await {
            let (node, indexes, sent) = match joined {
                Ok(done) => done,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            match sent {
                Ok(frames) => {
                    for (index, frame) in indexes.into_iter().zip(frames) {
                        match Outcome::of(&frame, node.addr()) {
                            Outcome::Done => replies[index] = Some(frame),
                            _ => resend.push(index),
                        }
                    }
                }
                Err(SendError::NotSent(error)) if error.is_network() => resend.extend(indexes),
                Err(error) => return Err(self.no_reply(node.addr(), error)),
            }
        }
        // Redirected, refused-for-now and unsent requests: one by one, with
        // the full redirect and retry handling.
        resend.sort_unstable();
        for index in resend {
            replies[index] = Some(self.dispatch(&requests[index]).await?);
        }
        Ok(replies
            .into_iter()
            .map(|reply| reply.expect("every request got a reply or an error"))
            .collect())
    }

    /// Runs `command` once per slot over `items`, where every `step`-th item
    /// (from the first) is a key and the items after it belong to it (MSET's
    /// key/value pairs). Returns, per request, the key positions it covered
    /// (counted in keys, not items) and its reply.
    pub(crate) async fn per_slot<A: AsRef<[u8]>>(
        &self,
        command: &str,
        items: &[A],
        step: usize,
    ) -> Result<Vec<(Vec<usize>, Frame)>> {
        // Slots in order of first appearance, each with its key positions.
        let mut by_slot: Vec<Vec<usize>> = Vec::new();
        let mut slot_index: HashMap<Slot, usize> = HashMap::new();
        for (position, chunk) in items.chunks(step).enumerate() {
            let next = by_slot.len();
            let index = *slot_index
                .entry(key_slot(chunk[0].as_ref()))
                .or_insert(next);
            if index == next {
                by_slot.push(Vec::new());
            }
            by_slot[index].push(position);
        }
        let requests: Vec<Request> = by_slot
            .iter()
            .map(|positions| {
                let mut args: Vec<&[u8]> = vec![command.as_bytes()];
                for &position in positions {
                    args.extend(items[position * step..][..step].iter().map(AsRef::as_ref));
                }
                Request::new(&args)
            })
            .collect();
        let replies = if requests.is_empty() {
            Vec::new()
        } else {
            self.execute_all(&requests).await?
        };
        Ok(by_slot.into_iter().zip(replies).collect())
    }
}
