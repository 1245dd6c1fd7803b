//! Throttling password guessing: failed-login counters in Keycafe.
//!
//! Two counters per failed login, both with `INCR` and a window set by the
//! first failure (`EXPIRE key window NX`, sent in the same pipeline, so a
//! counter never lives without its expiry):
//!
//! - `login-failures:account:<email>` stops a slow guesser spreading one
//!   account's guesses over many addresses. It counts unknown emails too, so
//!   a 429 does not reveal whether an account exists.
//! - `login-failures:addr:<ip>` stops one address trying a common password
//!   against many accounts.
//!
//! Once either reaches [`Config::login_max_failures`](crate::Config), logins
//! are refused with 429 and `Retry-After` (the counter's remaining TTL)
//! *before* any password is checked — even a correct one — until the window
//! ends. A successful login clears the account's counter, but not the
//! address's: one known password must not reset an attacker's budget.

use std::net::IpAddr;
use std::time::Duration;

use keycafe_client::{FromFrame, KeycafeCluster, Pipeline};

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

    /// The two keys, account first.
    pub fn keys(&self) -> [&str; 2] {
        [&self.account, &self.address]
    }

    /// `Some(wait)` if either counter has reached `max_failures`: how long
    /// until the fuller one expires.
    pub async fn blocked_for(
        &self,
        keycafe: &KeycafeCluster,
        max_failures: u32,
    ) -> keycafe_client::Result<Option<Duration>> {
        let mut pipeline = Pipeline::new();
        for key in self.keys() {
            pipeline.get(key).pttl(key);
        }
        let mut replies = keycafe.execute(&pipeline).await?.into_iter();
        let mut wait: Option<Duration> = None;
        while let (Some(count), Some(ttl)) = (replies.next(), replies.next()) {
            let count = Option::<i64>::from_frame(count)?.unwrap_or(0);
            if count < i64::from(max_failures) {
                continue;
            }
            let left = match i64::from_frame(ttl)? {
                // Gone since the GET: not blocked by this one after all.
                -2 => continue,
                // No expiry cannot happen (EXPIRE NX rides with every INCR);
                // refuse for a minute rather than forever.
                millis if millis < 0 => Duration::from_secs(60),
                millis => Duration::from_millis(millis.unsigned_abs()),
            };
            wait = Some(wait.map_or(left, |w| w.max(left)));
        }
        Ok(wait)
    }

    /// Counts one failed login against both counters.
    pub async fn record_failure(
        &self,
        keycafe: &KeycafeCluster,
        window: Duration,
    ) -> keycafe_client::Result<()> {
        let window = window.as_secs().max(1).to_string();
        let mut pipeline = Pipeline::new();
        for key in self.keys() {
            pipeline
                .incr(key)
                .cmd(["EXPIRE", key, window.as_str(), "NX"]);
        }
        // An error reply (a counter that is not a number, say) surfaces.
        for reply in keycafe.execute(&pipeline).await? {
            <()>::from_frame(reply)?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful login.
    pub async fn clear_account(&self, keycafe: &KeycafeCluster) -> keycafe_client::Result<()> {
        keycafe.delete(&self.account).await.map(|_| ())
    }
}
