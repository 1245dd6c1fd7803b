//! Typed methods for the string and key commands, and `WAIT`.
//!
//! Each method builds its request with a `*_request` function (shared with
//! [`crate::Pipeline`], so that both encode a command the same way), runs it
//! through the cluster's routing and retry loop and converts the reply with
//! [`FromFrame`]. Keys and values are anything byte-like (`&str`, `String`,
//! `&[u8]`, `Vec<u8>`, [`Bytes`]); strings come back as [`Bytes`], with
//! `*_string` variants for UTF-8 text.

use std::time::Duration;

use bytes::Bytes;
use keycafe_core::{Frame, key_slot};

use crate::options::set_request;
use crate::routing::Request;
use crate::{Error, FromFrame, KeycafeCluster, Result, SetOptions, SetOutcome, Ttl};

pub(crate) fn key_request(command: &str, key: &[u8]) -> Request {
    Request::new(&[command.as_bytes(), key])
}

pub(crate) fn key_number_request(command: &str, key: &[u8], number: impl ToString) -> Request {
    Request::new(&[command.as_bytes(), key, number.to_string().as_bytes()])
}

/// `WAIT numreplicas timeout-ms`, sent to the node serving `key`.
pub(crate) fn wait_request(key: &[u8], numreplicas: u32, timeout: Duration) -> Request {
    // Rounded up: a timeout under a millisecond must not become 0, "forever".
    let millis = i64::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
    let (numreplicas, millis) = (numreplicas.to_string(), millis.to_string());
    Request::for_slot(
        &[&b"WAIT"[..], numreplicas.as_bytes(), millis.as_bytes()],
        Some(key_slot(key)),
    )
}

impl KeycafeCluster {
    async fn call<T: FromFrame>(&self, request: Request) -> Result<T> {
        T::from_frame(self.run(&request).await?)
    }

    /// The value of `key`, or `None` if it does not exist (`GET`).
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// let value: Option<bytes::Bytes> = kc.get("example_key").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.call(key_request("GET", key.as_ref())).await
    }

    /// Like [`KeycafeCluster::get`], for values that are UTF-8 text;
    /// [`Error::NotUtf8`] if one is not.
    pub async fn get_string(&self, key: impl AsRef<[u8]>) -> Result<Option<String>> {
        self.call(key_request("GET", key.as_ref())).await
    }

    /// Sets `key` to `value`, clearing any expiry (`SET`).
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// kc.set("example_key", "KEY").await?;
    /// kc.set(b"binary\x00key", vec![0u8, 159, 146, 150]).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.call(set_request(
            key.as_ref(),
            value.as_ref(),
            &SetOptions::new(),
        ))
        .await
    }

    /// Sets `key` to `value`, expiring after `ttl` (`SET ... PX`).
    pub async fn set_ex(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        ttl: Duration,
    ) -> Result<()> {
        self.call(set_request(
            key.as_ref(),
            value.as_ref(),
            &SetOptions::new().expire_in(ttl),
        ))
        .await
    }

    /// `SET` with options; reports whether it wrote and, with
    /// [`SetOptions::get`], the previous value.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use keycafe_client::SetOptions;
    ///
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// let lock = SetOptions::new().nx().expire_in(Duration::from_secs(10));
    /// if kc.set_with("lock:report", "worker-1", &lock).await?.written {
    ///     // We hold the lock for ten seconds.
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<SetOutcome> {
        let reply = self
            .run(&set_request(key.as_ref(), value.as_ref(), options))
            .await?;
        options.outcome(reply)
    }

    /// Deletes `key`; true if it existed (`DEL`).
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.call(key_request("DEL", key.as_ref())).await
    }

    /// Deletes every key given, whatever slots they live in; returns how many
    /// existed. Keys in different slots are deleted by separate `DEL`s sent
    /// concurrently, so the whole is not atomic.
    pub async fn delete_many<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64> {
        let keys: Vec<K> = keys.into_iter().collect();
        let replies = self.per_slot("DEL", &keys, 1).await?;
        replies.into_iter().try_fold(0u64, |sum, (_, reply)| {
            Ok(sum + i64::from_frame(reply)?.unsigned_abs())
        })
    }

    /// True if `key` exists (`EXISTS`).
    pub async fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.call(key_request("EXISTS", key.as_ref())).await
    }

    /// Makes `key` expire after `seconds`; false if it does not exist (`EXPIRE`).
    pub async fn expire(&self, key: impl AsRef<[u8]>, seconds: u64) -> Result<bool> {
        self.call(key_number_request("EXPIRE", key.as_ref(), seconds))
            .await
    }

    /// Makes `key` expire after `millis` milliseconds (`PEXPIRE`).
    pub async fn pexpire(&self, key: impl AsRef<[u8]>, millis: u64) -> Result<bool> {
        self.call(key_number_request("PEXPIRE", key.as_ref(), millis))
            .await
    }

    /// Time left before `key` expires, in whole seconds (`TTL`).
    ///
    /// ```no_run
    /// use keycafe_client::Ttl;
    ///
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// match kc.ttl("session:42").await? {
    ///     Ttl::ExpiresIn(left) => println!("{}s left", left.as_secs()),
    ///     Ttl::Persistent => println!("never expires"),
    ///     Ttl::Missing => println!("no such session"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        Ttl::from_reply(
            self.run(&key_request("TTL", key.as_ref())).await?,
            Duration::from_secs,
        )
    }

    /// Time left before `key` expires, to the millisecond (`PTTL`).
    pub async fn pttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        Ttl::from_reply(
            self.run(&key_request("PTTL", key.as_ref())).await?,
            Duration::from_millis,
        )
    }

    /// Removes `key`'s expiry; false if it had none or does not exist (`PERSIST`).
    pub async fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.call(key_request("PERSIST", key.as_ref())).await
    }

    /// Adds 1 to the integer at `key` (missing counts as 0); returns the new value.
    pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.call(key_request("INCR", key.as_ref())).await
    }

    /// Subtracts 1 from the integer at `key`; returns the new value.
    pub async fn decr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.call(key_request("DECR", key.as_ref())).await
    }

    /// Adds `delta` (which may be negative) to the integer at `key`.
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// let visits = kc.incr_by("visits", 10).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn incr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.call(key_number_request("INCRBY", key.as_ref(), delta))
            .await
    }

    /// Subtracts `delta` from the integer at `key`.
    pub async fn decr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.call(key_number_request("DECRBY", key.as_ref(), delta))
            .await
    }

    /// The values of all `keys`, in order, `None` for missing ones. Keys in
    /// different slots are fetched by one `MGET` per slot, concurrently.
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// let values = kc.mget(["user:1", "user:2", "user:3"]).await?;
    /// assert_eq!(values.len(), 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn mget<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>> {
        let keys: Vec<K> = keys.into_iter().collect();
        let mut values = vec![None; keys.len()];
        for (positions, reply) in self.per_slot("MGET", &keys, 1).await? {
            let found = Vec::<Option<Bytes>>::from_frame(reply)?;
            if found.len() != positions.len() {
                let reply = Frame::Integer(found.len() as i64);
                return Err(Error::UnexpectedReply {
                    expected: "one MGET value per key",
                    reply,
                });
            }
            for (position, value) in positions.into_iter().zip(found) {
                values[position] = value;
            }
        }
        Ok(values)
    }

    /// Sets every key to its value. Pairs in different slots are written by
    /// one `MSET` per slot, concurrently, so the whole is not atomic.
    pub async fn mset<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let flat: Vec<Bytes> = pairs
            .into_iter()
            .flat_map(|(k, v)| {
                [
                    Bytes::copy_from_slice(k.as_ref()),
                    Bytes::copy_from_slice(v.as_ref()),
                ]
            })
            .collect();
        for (_, reply) in self.per_slot("MSET", &flat, 2).await? {
            <()>::from_frame(reply)?;
        }
        Ok(())
    }

    /// Checks that a node answers (`PING`).
    pub async fn ping(&self) -> Result<()> {
        self.call(Request::new(&["PING"])).await
    }

    /// Waits until at least `numreplicas` replicas of the primary serving
    /// `key` have acknowledged every write that primary performed before
    /// this call, or until `timeout` passes, whichever comes first
    /// (`WAIT numreplicas timeout-ms`; a zero `timeout` waits for as long as
    /// it takes). Returns how many replicas had acknowledged them all.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) -> keycafe_client::Result<()> {
    /// kc.set("order:42", "paid").await?;
    /// let replicas = kc.wait("order:42", 1, Duration::from_millis(500)).await?;
    /// if replicas == 0 {
    ///     // Only the primary has the write: a failover now could lose it.
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// **Which writes.** `WAIT` is about one node, so it needs a key to find
    /// it: the node serving `key`'s slot, the one your writes to that key
    /// went to. It goes over the same connection as every earlier request
    /// to that node from any clone of this handle, so it comes after all of
    /// them, and it covers every write the node had performed when it
    /// arrived, yours and everyone else's. Call it after the writes it
    /// should cover have returned.
    ///
    /// **The count.** Running out of time is not an error: the count is then
    /// below `numreplicas`, possibly 0 (as from a node without replicas).
    /// It may also be above `numreplicas` when more replicas were already up
    /// to date. With a zero `timeout`, a node with fewer than `numreplicas`
    /// replicas never answers.
    ///
    /// **What it buys.** Replication is asynchronous: a write is
    /// acknowledged as soon as the primary has it, and if the primary dies
    /// before any replica has received it, the replica promoted in its
    /// place does not have it, and the write is lost. A write followed by a
    /// `wait` that returned 1 or more is on a replica, and failover
    /// promotes the most up-to-date one, so it survives the failover of its
    /// primary. (It does not make the write durable against every failure,
    /// e.g. the primary and those replicas all dying at once.)
    ///
    /// **Blocking.** While the node holds the `WAIT`, its connection, which
    /// every clone of this handle shares, is blocked as a Redis connection
    /// would be: requests from other tasks to that node queue behind the
    /// `WAIT` and are answered after it. They do not time out meanwhile;
    /// the `WAIT` itself is given [`ClientConfig::response_timeout`] plus
    /// `timeout` (no limit for a zero `timeout`). Keep timeouts short, or
    /// use a handle of its own (from [`KeycafeCluster::connect_with`]) for
    /// long waits.
    ///
    /// **Errors.** A node's refusal is [`Error::Server`], e.g. `ERR WAIT
    /// cannot be used with replica instances` from a node that was a
    /// primary when this client last learnt the map but has been demoted.
    ///
    /// [`ClientConfig::response_timeout`]: crate::ClientConfig::response_timeout
    pub async fn wait(
        &self,
        key: impl AsRef<[u8]>,
        numreplicas: u32,
        timeout: Duration,
    ) -> Result<u32> {
        let count: i64 = self
            .call(wait_request(key.as_ref(), numreplicas, timeout))
            .await?;
        u32::try_from(count).map_err(|_| Error::UnexpectedReply {
            expected: "a count of replicas",
            reply: Frame::Integer(count),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_in_milliseconds_never_round_to_forever() {
        let args = |timeout: Duration| {
            let request = wait_request(b"k", 2, timeout);
            assert_eq!(request.slot, Some(key_slot(b"k")));
            request.bytes
        };
        let expected = |millis: &str| Request::new(&["WAIT", "2", millis]).bytes;
        assert_eq!(args(Duration::from_millis(1500)), expected("1500"));
        assert_eq!(args(Duration::ZERO), expected("0"));
        assert_eq!(args(Duration::from_micros(1)), expected("1"));
        assert_eq!(args(Duration::from_micros(1001)), expected("2"));
        assert_eq!(args(Duration::MAX), expected(&i64::MAX.to_string()));
    }
}
