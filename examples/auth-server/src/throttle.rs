//! Throttling password guessing: failed-login counters in Keycafe.
//!
//! Two counters per login attempt, each an `INCR` sent with
//! `EXPIRE key window NX` in the same pipeline, so that a counter never
//! lives without its expiry and the window starts at the first failure:
//!
//! - `login-failures:account:<email>` stops a slow guesser spreading one
//!   account's guesses over many addresses. It counts unknown emails too, so
//!   a 429 does not reveal whether an account exists.
//! - `login-failures:addr:<ip>` stops one address trying a common password
//!   against many accounts.
//!
//! The counters are incremented *before* the password is checked, and the
//! increment is given back if the password was right. Checking first and
//! counting after would let a burst of concurrent guesses all pass the check
//! before any of them is counted; counting first makes the limit exact:
//! the attempt that takes a counter past
//! [`Config::login_max_failures`](crate::Config) is refused with 429 and
//! `Retry-After` (the counter's remaining TTL), without any argon2 work, and
//! so is every attempt until the window ends — even with the right password.
//!
//! A successful login deletes the account's counter and gives back the
//! address's increment, but leaves the address's earlier failures: knowing
//! one password must not reset an attacker's budget for other accounts.

use std::net::IpAddr;
use std::time::Duration;

use keycafe_client::{Frame, FromFrame, KeycafeCluster, Pipeline};

/// Counters for one login attempt: the account and the client address.
pub struct LoginCounters {
    account: String,
    address: String,
}

impl LoginCounters {
    /// Counters for `email` (normalised) tried from `client`.
    pub fn new(email: &str, client: IpAddr) -> LoginCounters {
        LoginCounters {
            account: format!("login-failures:account:{email}"),
            address: format!("login-failures:addr:{client}"),
        }
    }

    /// Counts this attempt as a failure until [`LoginCounters::succeeded`]
    /// says otherwise. `Some(wait)` if that takes either counter past
    /// `max_failures`: the attempt is refused, and `wait` is how long until
    /// the counter that tripped expires.
    pub async fn attempt(
        &self,
        keycafe: &KeycafeCluster,
        max_failures: u32,
        window: Duration,
    ) -> keycafe_client::Result<Option<Duration>> {
        let window = window.as_secs().max(1).to_string();
        let mut pipeline = Pipeline::new();
        for key in [&self.account, &self.address] {
            pipeline
                .incr(key)
                .cmd(["EXPIRE", key, window.as_str(), "NX"])
                .pttl(key);
        }
        let replies = keycafe.execute(&pipeline).await?;
        let mut wait: Option<Duration> = None;
        for counter in replies.chunks(3) {
            let [count, expire, ttl] = counter else {
                return Err(unexpected(counter.len()));
            };
            let count = i64::from_frame(count.clone())?;
            <()>::from_frame(expire.clone())?;
            if count <= i64::from(max_failures) {
                continue;
            }
            let left = match i64::from_frame(ttl.clone())? {
                millis if millis > 0 => Duration::from_millis(millis.unsigned_abs()),
                // Expired in between: the next attempt starts a new window.
                _ => Duration::from_secs(1),
            };
            wait = Some(wait.map_or(left, |w| w.max(left)));
        }
        Ok(wait)
    }

    /// The password was right: forget the account's failures and give back
    /// this attempt's increment of the address counter.
    pub async fn succeeded(
        &self,
        keycafe: &KeycafeCluster,
        window: Duration,
    ) -> keycafe_client::Result<()> {
        let window = window.as_secs().max(1).to_string();
        let mut pipeline = Pipeline::new();
        pipeline
            .delete(&self.account)
            // If the counter expired meanwhile, DECR recreates it at -1:
            // the EXPIRE keeps even that from outliving a window.
            .cmd(["DECR", self.address.as_str()])
            .cmd(["EXPIRE", self.address.as_str(), window.as_str(), "NX"]);
        for reply in keycafe.execute(&pipeline).await? {
            <()>::from_frame(reply)?;
        }
        Ok(())
    }
}

fn unexpected(replies: usize) -> keycafe_client::Error {
    keycafe_client::Error::UnexpectedReply {
        expected: "three replies per counter",
        reply: Frame::Integer(i64::try_from(replies).unwrap_or(i64::MAX)),
    }
}
