//! [`KeycafeSessionStore`]: web sessions in Keycafe, for
//! [tower-sessions](https://docs.rs/tower-sessions/0.15) 0.15 (and so for
//! axum). Enabled by this crate's `tower-sessions` feature.
//!
//! Each session is one string key, `<prefix><SHA-256 of the session id,
//! hex>` (by default `session:<64 hex digits>`), whose value is the session
//! record as JSON and whose Keycafe TTL is the record's expiry date. Keycafe
//! deletes an expired session by itself, so the store needs no clean-up
//! task, and a session is routed like any other key: in a cluster, sessions
//! spread over the nodes by the slot of their key.
//!
//! **Why a hash of the id.** The session id is the secret the browser's
//! cookie carries: whoever presents it *is* the signed-in user. Had the key
//! held the id itself, anyone able to list keys (`SCAN`, `KEYS`, `CLUSTER
//! GETKEYSINSLOT`, a log line, a teaching panel) could hijack every session.
//! The hash is one-way, and the id is 128 random bits, so it cannot be
//! found from the key by guessing either: a plain SHA-256 is enough, no
//! slow or salted hash is needed. The record stored under the key still
//! holds the id (tower-sessions keeps it in the record), so reading a
//! *value* is as good as the cookie; keep the nodes behind `requirepass`.
//!
//! | `SessionStore` call | Keycafe command |
//! |---|---|
//! | `create` | `SET key json PXAT expiry NX`; on a collision, a fresh id and again |
//! | `save`   | `SET key json PXAT expiry` (or `DEL` when the expiry has passed) |
//! | `load`   | `GET key` |
//! | `delete` | `DEL key` |
//!
//! **Why JSON.** A record's data is a map of `serde_json::Value`s, which only
//! self-describing formats can read back (bincode-style formats cannot);
//! MessagePack would save a few bytes per session at the price of another
//! dependency. JSON also keeps a session readable with
//! `keycafe-cli` or `redis-cli`, which helps when learning and debugging
//! (`GET` the key [`KeycafeSessionStore::key`] names). Session
//! ids are random 128-bit numbers (tower-sessions
//! draws them), so a collision on `create` is astronomically unlikely; it is
//! handled anyway, because `NX` makes it cheap to be sure.
//!
//! ```no_run
//! use keycafe_client::{KeycafeCluster, KeycafeSessionStore};
//! use tower_sessions::{Expiry, Session, SessionManagerLayer, cookie::time::Duration};
//!
//! // An axum handler: `Session` is an extractor.
//! async fn visits(session: Session) -> String {
//!     let n: u64 = session.get("visits").await.ok().flatten().unwrap_or(0) + 1;
//!     let _ = session.insert("visits", n).await;
//!     format!("visit number {n}")
//! }
//!
//! # async fn demo() -> keycafe_client::Result<()> {
//! let kc = KeycafeCluster::connect("localhost:9814").await?;
//! let store = KeycafeSessionStore::new(kc).with_prefix("myapp:session:");
//! let sessions = SessionManagerLayer::new(store)
//!     .with_expiry(Expiry::OnInactivity(Duration::hours(1)))
//!     .with_secure(false); // true behind HTTPS
//! // Router::new().route("/", get(visits)).layer(sessions)
//! # let _ = sessions;
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::{KeycafeCluster, SetOptions};

/// How many ids `create` tries before giving up. With random 128-bit ids a
/// second attempt already means something is wrong with the generator.
const MAX_CREATE_ATTEMPTS: usize = 8;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A tower-sessions [`SessionStore`] keeping each session as one Keycafe key
/// that expires with the session. See the [module docs](crate::session_store) for the
/// mapping and an axum example.
///
/// Cloning is cheap: clones share the [`KeycafeCluster`] connections.
#[derive(Debug, Clone)]
pub struct KeycafeSessionStore {
    client: KeycafeCluster,
    prefix: String,
}

impl KeycafeSessionStore {
    /// The key prefix used unless [`with_prefix`](Self::with_prefix) says otherwise.
    pub const DEFAULT_PREFIX: &'static str = "session:";

    /// A store writing through `client`, with keys `session:<hash of the id>`.
    pub fn new(client: KeycafeCluster) -> KeycafeSessionStore {
        KeycafeSessionStore {
            client,
            prefix: KeycafeSessionStore::DEFAULT_PREFIX.to_string(),
        }
    }

    /// Uses `prefix` in front of every hashed session id, e.g. to keep two
    /// applications' sessions apart in one cluster. A prefix of the form
    /// `{app}:` (a hash tag) would put every session in one slot, i.e. on one
    /// node, so avoid braces unless that is what you want.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> KeycafeSessionStore {
        self.prefix = prefix.into();
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Keycafe key holding the session `id`: the prefix and the SHA-256
    /// of the id as the cookie carries it, in hex. Showing it reveals
    /// nothing usable (see the [module docs](crate::session_store)), so it
    /// can be printed whole, e.g. to show where a session lives with
    /// [`key_slot`](crate::key_slot) and [`KeycafeCluster::node_for_key`].
    ///
    /// ```no_run
    /// # async fn demo(kc: keycafe_client::KeycafeCluster) {
    /// use keycafe_client::KeycafeSessionStore;
    /// use tower_sessions::session::Id;
    ///
    /// let store = KeycafeSessionStore::new(kc);
    /// let key = store.key(&Id(42)); // the cookie says "KgAAAAAAAAAAAAAAAAAAAA"
    /// assert_eq!(
    ///     key,
    ///     "session:a52c6927c0e7765f9ee8509fc36cd44921191b17d1ba8b3e73fca457e1581a1a"
    /// );
    /// println!("slot {}", keycafe_client::key_slot(key.as_bytes()));
    /// # }
    /// ```
    pub fn key(&self, id: &Id) -> String {
        hashed_key(&self.prefix, id)
    }

    /// The client this store writes through.
    pub fn client(&self) -> &KeycafeCluster {
        &self.client
    }

    /// Writes `record` under its id; with `only_if_new`, only when no session
    /// has that id yet. Returns whether it wrote.
    async fn write(&self, record: &Record, only_if_new: bool) -> session_store::Result<bool> {
        let key = self.key(&record.id);
        let Some(expires_at) = expiry_time(record) else {
            // Already expired: nothing may outlive it. For `create` there is
            // nothing to store, and the id is as good as any.
            if !only_if_new {
                self.client.delete(&key).await.map_err(backend)?;
            }
            return Ok(true);
        };
        let value =
            serde_json::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let mut options = SetOptions::new().expire_at(expires_at);
        if only_if_new {
            options = options.nx();
        }
        let outcome = self
            .client
            .set_with(&key, value, &options)
            .await
            .map_err(backend)?;
        Ok(outcome.written)
    }
}

#[async_trait]
impl SessionStore for KeycafeSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..MAX_CREATE_ATTEMPTS {
            if self.write(record, true).await? {
                return Ok(());
            }
            tracing::warn!("session id collision; drawing a new id");
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(format!(
            "no free session id after {MAX_CREATE_ATTEMPTS} attempts"
        )))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(value) = self.client.get(self.key(id)).await.map_err(backend)? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&value)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.client.delete(self.key(id)).await.map_err(backend)?;
        Ok(())
    }
}

/// `prefix` and the SHA-256, in hex, of `id` as its cookie carries it.
fn hashed_key(prefix: &str, id: &Id) -> String {
    let digest = Sha256::digest(id.to_string().as_bytes());
    let mut key = String::with_capacity(prefix.len() + 2 * digest.len());
    key.push_str(prefix);
    for byte in digest {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key
}

/// The record's expiry as wall-clock time, to the millisecond (what `PXAT`
/// carries), or `None` if that moment has already passed.
fn expiry_time(record: &Record) -> Option<SystemTime> {
    let millis = record.expiry_date.unix_timestamp_nanos() / 1_000_000;
    let millis = u64::try_from(millis).ok()?;
    let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))?;
    (at > SystemTime::now()).then_some(at)
}

fn backend(e: crate::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};

    fn record(expiry_date: OffsetDateTime) -> Record {
        Record {
            id: Id(7),
            data: Default::default(),
            expiry_date,
        }
    }

    #[test]
    fn expiry_in_the_future_is_kept_to_the_millisecond() {
        let date = OffsetDateTime::now_utc() + TimeDuration::minutes(5);
        let at = expiry_time(&record(date)).expect("a future expiry");
        let millis = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis() as i128;
        assert_eq!(millis, date.unix_timestamp_nanos() / 1_000_000);
    }

    #[test]
    fn ids_print_as_22_url_safe_characters() {
        // The value shown in `KeycafeSessionStore::key`'s example.
        assert_eq!(Id(42).to_string(), "KgAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn keys_hold_a_hash_of_the_cookie_value_not_the_value() {
        // sha256("KgAAAAAAAAAAAAAAAAAAAA"), computed independently.
        assert_eq!(
            hashed_key("p:", &Id(42)),
            "p:a52c6927c0e7765f9ee8509fc36cd44921191b17d1ba8b3e73fca457e1581a1a"
        );
        for id in [Id(42), Id(i128::MIN), Id::default()] {
            let key = hashed_key("session:", &id);
            assert!(!key.contains(&id.to_string()), "{key}");
            assert_eq!(key.len(), "session:".len() + 64);
        }
        assert_ne!(hashed_key("", &Id(1)), hashed_key("", &Id(2)));
    }

    #[test]
    fn passed_or_pre_epoch_expiry_is_none() {
        let past = OffsetDateTime::now_utc() - TimeDuration::seconds(1);
        assert_eq!(expiry_time(&record(past)), None);
        assert_eq!(expiry_time(&record(OffsetDateTime::UNIX_EPOCH)), None);
        let before_epoch = OffsetDateTime::UNIX_EPOCH - TimeDuration::days(1);
        assert_eq!(expiry_time(&record(before_epoch)), None);
    }

    #[test]
    fn records_round_trip_through_json_with_extreme_ids() {
        for id in [i128::MIN, -1, 0, i128::MAX] {
            let mut r = record(OffsetDateTime::UNIX_EPOCH + TimeDuration::days(20_000));
            r.id = Id(id);
            r.data.insert("token".into(), serde_json::json!("abc"));
            r.data
                .insert("n".into(), serde_json::json!({"nested": [1, 2.5, null]}));
            let bytes = serde_json::to_vec(&r).expect("encodes");
            let back: Record = serde_json::from_slice(&bytes).expect("decodes");
            assert_eq!(back, r);
        }
    }
}
