//! Throttling password guessing: failed-login counters in Keycafe.
//!
//! # The policy
//!
//! Three counters, each over a window that starts at its first failure
//! ([`Config::login_window`](crate::Config), 15 minutes by default):
//!
//! | counter | key | past its limit |
//! |---|---|---|
//! | one account from one address | `login-failures:pair:<ip>:<email>` | 429 for that account from that address ([`Config::login_max_failures`](crate::Config), 5) |
//! | one address, all accounts | `login-failures:addr:<ip>` | 429 for every account from that address ([`Config::login_max_address_failures`](crate::Config), 20) |
//! | one account, all addresses | `login-failures:account:<email>` | **no refusal**: each attempt waits [`Config::login_account_delay`](crate::Config) (1 s) first ([`Config::login_account_slow_after`](crate::Config), 20) |
//!
//! The first two stop a guesser at one address: a few tries at one account,
//! a few more spread over many. The third is about guessing spread over
//! many addresses, and it deliberately never locks anyone out: a per-account
//! lock would let anyone lock any account's owner out with a handful of
//! wrong passwords (the demo's earlier policy did exactly that, and since
//! every browser reaches auth-server through auth-web, one local script
//! could lock out everyone). Slowing the account down costs its owner a
//! second and a distributed guesser the same second on every guess.
//!
//! **A refused attempt is not a failure.** It checked no password, so it
//! gives its increments back: a flood from one address against one account
//! counts as 5 failures for that address and that account, however long it
//! goes on, and so it can neither push the address over its own limit for
//! other accounts nor put the account into slow mode for its owner
//! elsewhere.
//!
//! Unknown emails are counted exactly like real ones, so neither a 429 nor a
//! slow answer reveals whether an account exists.
//!
//! # Counting first
//!
//! The counters are incremented *before* the password is checked (an `INCR`,
//! an `EXPIRE key window NX` so that a counter never lives without its
//! expiry, and a `PTTL` for `Retry-After`, all three counters in one
//! pipeline), and the increments are given back if the attempt is refused or
//! the password was right. Checking first and counting after would let a
//! burst of concurrent guesses all pass the check before any of them is
//! counted; counting first makes the limits exact: only the attempts whose
//! own `INCR` stayed within a limit go on, even with the right password.
//!
//! A successful login deletes its (account, address) counter — the owner's
//! own typos are forgiven — and gives back its increment of the other two,
//! but leaves their earlier failures: knowing one password must not reset an
//! attacker's budget for other accounts.

use std::net::IpAddr;
use std::time::Duration;

use keycafe_client::{Frame, FromFrame, KeycafeCluster, Pipeline};

use crate::Config;

/// The limits [`LoginCounters::attempt`] applies (from [`Config`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed for one account from one address.
    pub pair: u32,
    /// Failures allowed from one address over all accounts.
    pub address: u32,
    /// Failures of one account over all addresses before it slows down.
    pub account_slow_after: u32,
    /// The window every counter covers.
    pub window: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            pair: config.login_max_failures,
            address: config.login_max_address_failures,
            account_slow_after: config.login_account_slow_after,
            window: config.login_window,
        }
    }
}

/// What [`LoginCounters::attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password. `slow`: the account has had many failures from
    /// many addresses, so wait before checking.
    Proceed { slow: bool },
    /// Refuse without checking; the counter that tripped expires after this.
    Refused { retry_after: Duration },
}

/// The counters of one login attempt.
pub struct LoginCounters {
    pair: String,
    address: String,
    account: String,
}

impl LoginCounters {
    /// Counters for `email` (normalised) tried from `client`.
    pub fn new(email: &str, client: IpAddr) -> LoginCounters {
        LoginCounters {
            pair: format!("login-failures:pair:{client}:{email}"),
            address: format!("login-failures:addr:{client}"),
            account: format!("login-failures:account:{email}"),
        }
    }

    /// The Keycafe keys, for tests and the documentation: (account from
    /// this address, this address, this account).
    pub fn keys(&self) -> [&str; 3] {
        [&self.pair, &self.address, &self.account]
    }

    /// Counts this attempt as a failure until [`LoginCounters::succeeded`]
    /// says otherwise, and decides whether it may go on (see the module
    /// docs). A refused attempt has already given its increments back.
    pub async fn attempt(
        &self,
        keycafe: &KeycafeCluster,
        limits: Limits,
    ) -> keycafe_client::Result<Verdict> {
        let window = window_secs(limits.window);
        let mut pipeline = Pipeline::new();
        for key in self.keys() {
            pipeline
                .incr(key)
                .cmd(["EXPIRE", key, window.as_str(), "NX"])
                .pttl(key);
        }
        let replies = keycafe.execute(&pipeline).await?;
        let mut counts = Vec::with_capacity(3);
        for counter in replies.chunks(3) {
            let [count, expire, ttl] = counter else {
                return Err(unexpected(counter.len()));
            };
            let count = i64::from_frame(count.clone())?;
            <()>::from_frame(expire.clone())?;
            let left = match i64::from_frame(ttl.clone())? {
                millis if millis > 0 => Duration::from_millis(millis.unsigned_abs()),
                // Expired in between: the next attempt starts a new window.
                _ => Duration::from_secs(1),
            };
            counts.push((count, left));
        }
        let [(pair, pair_left), (address, address_left), (account, _)] = counts[..] else {
            return Err(unexpected(replies.len()));
        };
        let tripped = [
            (pair > i64::from(limits.pair)).then_some(pair_left),
            (address > i64::from(limits.address)).then_some(address_left),
        ];
        if let Some(retry_after) = tripped.into_iter().flatten().max() {
            self.give_back(keycafe, limits.window, self.keys()).await?;
            return Ok(Verdict::Refused { retry_after });
        }
        Ok(Verdict::Proceed {
            slow: account > i64::from(limits.account_slow_after),
        })
    }

    /// The password was right: forget this account's failures from this
    /// address and give back this attempt's increment of the others.
    pub async fn succeeded(
        &self,
        keycafe: &KeycafeCluster,
        window: Duration,
    ) -> keycafe_client::Result<()> {
        keycafe.delete(&self.pair).await?;
        self.give_back(keycafe, window, [&self.address, &self.account])
            .await
    }

    /// Undoes this attempt's increment of `keys`.
    async fn give_back<const N: usize>(
        &self,
        keycafe: &KeycafeCluster,
        window: Duration,
        keys: [&str; N],
    ) -> keycafe_client::Result<()> {
        let window = window_secs(window);
        let mut pipeline = Pipeline::new();
        for key in keys {
            // If the counter expired meanwhile, DECR recreates it at -1:
            // the EXPIRE keeps even that from outliving a window.
            pipeline
                .cmd(["DECR", key])
                .cmd(["EXPIRE", key, window.as_str(), "NX"]);
        }
        for reply in keycafe.execute(&pipeline).await? {
            <()>::from_frame(reply)?;
        }
        Ok(())
    }
}

fn window_secs(window: Duration) -> String {
    window.as_secs().max(1).to_string()
}

fn unexpected(replies: usize) -> keycafe_client::Error {
    keycafe_client::Error::UnexpectedReply {
        expected: "three replies per counter",
        reply: Frame::Integer(i64::try_from(replies).unwrap_or(i64::MAX)),
    }
}
