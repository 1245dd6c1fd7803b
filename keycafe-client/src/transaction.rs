//! [`KeycafeCluster::transaction`]: a [`Pipeline`] run as one MULTI/EXEC
//! transaction on the node that serves its slot.
//!
//! The handle multiplexes every request over one connection per node, so a
//! transaction goes out as one batch (`MULTI`, the commands, `EXEC`) that no
//! other request can come between. All its keys must share a slot (use a
//! hash tag, e.g. `{user:42}:name`), as the node requires.
//!
//! Nothing of a transaction runs unless `EXEC` runs it, so a transaction
//! refused as a whole — redirected (`MOVED`), refused for now (`TRYAGAIN`,
//! `CLUSTERDOWN`, `ASK` during a migration of its slot) or aborted because a
//! queued command was redirected — is sent again, within the same redirect
//! and retry budgets as a single request. WATCH needs a connection of its
//! own and is not offered on the shared one.

use bytes::BytesMut;
use keycafe_core::{Frame, Protocol};

use crate::connection::{Batch, SendError};
use crate::routing::Outcome;
use crate::{Error, KeycafeCluster, Pipeline, Result, ServerError};

impl KeycafeCluster {
    /// Runs every command of `pipeline` as one transaction (MULTI/EXEC) and
    /// returns their replies in order, error replies in place as
    /// [`Frame::Error`] (a failed command does not undo the others, as in
    /// Redis). All keys must hash to one slot; otherwise
    /// [`Error::InvalidRequest`] and nothing is sent.
    ///
    /// ```no_run
    /// use keycafe_client::{Frame, KeycafeCluster, Pipeline};
    ///
    /// # async fn demo(kc: KeycafeCluster) -> keycafe_client::Result<()> {
    /// let mut transfer = Pipeline::new();
    /// transfer.incr_by("{account}:alice", -10).incr_by("{account}:bob", 10);
    /// let replies = kc.transaction(&transfer).await?;
    /// assert_eq!(replies.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction(&self, pipeline: &Pipeline) -> Result<Vec<Frame>> {
        if let Some(error) = pipeline.invalid() {
            return Err(error.clone());
        }
        let requests = pipeline.requests();
        let mut slots = requests.iter().filter_map(|request| request.slot);
        let slot = slots.next();
        if slots.any(|other| Some(other) != slot) {
            return Err(Error::InvalidRequest(
                "the keys of a transaction must all hash to one slot".into(),
            ));
        }
        let mut bytes = BytesMut::new();
        Protocol::Native.encode_request(&["MULTI"], &mut bytes);
        requests
            .iter()
            .for_each(|request| bytes.extend_from_slice(&request.bytes));
        Protocol::Native.encode_request(&["EXEC"], &mut bytes);
        let bytes = bytes.freeze();

        let config = self.config();
        let (mut redirects, mut retries) = (0u32, 0u32);
        loop {
            let node = self.route(slot).await?;
            let replies = match node
                .request(
                    bytes.clone(),
                    Batch(requests.len() + 2),
                    Default::default(),
                    config,
                )
                .await
            {
                Ok(replies) => replies,
                Err(SendError::NotSent(error))
                    if error.is_network() && retries < config.max_retries =>
                {
                    self.refresh_avoiding(node.addr()).await;
                    tokio::time::sleep(config.backoff_for(retries)).await;
                    retries += 1;
                    continue;
                }
                Err(error) => return Err(self.no_reply(node.addr(), error)),
            };
            let exec = replies.last().cloned().unwrap_or(Frame::Null);
            // Why the node refused the whole transaction: EXEC's own error,
            // or, after EXECABORT, the first command refused while queued.
            let refusal = match &exec {
                Frame::Array(replies) => return Ok(replies.clone()),
                Frame::Error(text) if text.starts_with(b"EXECABORT") => replies
                    .iter()
                    .find(|reply| matches!(reply, Frame::Error(_)))
                    .cloned()
                    .unwrap_or(exec),
                _ => exec,
            };
            match Outcome::of(&refusal, node.addr()) {
                Outcome::Done => {
                    return Err(match refusal {
                        Frame::Error(text) => Error::Server(ServerError::from_bytes(&text)),
                        reply => Error::UnexpectedReply {
                            expected: "EXEC's array of replies",
                            reply,
                        },
                    });
                }
                Outcome::Moved { slot, addr } => {
                    self.count_redirect(&mut redirects, &refusal)?;
                    self.record_owner(slot, &addr);
                }
                Outcome::Ask { .. } | Outcome::TryAgain | Outcome::ClusterDown
                    if retries < config.max_retries =>
                {
                    tokio::time::sleep(config.backoff_for(retries)).await;
                    retries += 1;
                }
                Outcome::Ask { .. } | Outcome::TryAgain | Outcome::ClusterDown => {
                    let Frame::Error(text) = refusal else {
                        unreachable!("only an error reply is a refusal")
                    };
                    return Err(Error::Server(ServerError::from_bytes(&text)));
                }
            }
        }
    }
}
