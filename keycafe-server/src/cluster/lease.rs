//! The primary's lease: how a node that may have been replaced stops
//! acknowledging writes before its replacement starts.
//!
//! The coordinator answers every heartbeat of a primary with a lease of
//! `ms` milliseconds (half its node timeout). The node counts the lease from
//! when it *sent* that heartbeat, which is before the coordinator granted
//! it, so the node's lease always ends before the coordinator's record of
//! it. The coordinator promotes a replica of a silent primary only after
//! that record, plus an allowance for clocks that run at different rates,
//! has passed. So whatever cut the primary off (a partition, a pause, a
//! stalled coordinator link), by the time another node owns its slots it
//! has stopped saying OK to writes for them.
//!
//! Three rules make that hold on the node:
//!
//! - **A write is checked when it runs**, with a fresh reading of the clock,
//!   not when it arrived: requests queued while the process was paused meet
//!   an expired lease when it resumes.
//! - **Replies that acknowledge writes are checked again before they are
//!   sent**: if the lease ran out while the batch was being served (a pause
//!   between running a write and writing its reply), the connection is
//!   closed instead, and the client sees an unknown outcome, not an OK.
//! - **The clock keeps counting while the machine sleeps**: [`now_ms`] reads
//!   the boot-time clock, which, unlike the monotonic clock, includes time
//!   the host or VM spent suspended.
//!
//! Matching a grant to the heartbeat it answers is the sans-I/O part,
//! [`Renewals`]; [`Lease`] is the shared deadline every connection reads
//! with one atomic load.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds on the boot-time clock: monotonic, and counting through a
/// suspended host. Only differences between readings mean anything.
pub fn now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        use nix::time::{ClockId, clock_gettime};
        if let Ok(now) = clock_gettime(ClockId::CLOCK_BOOTTIME) {
            let (secs, nanos) = (now.tv_sec(), now.tv_nsec());
            return (secs as u64) * 1000 + (nanos as u64) / 1_000_000;
        }
    }
    // Elsewhere (or if the call failed, which Linux documents only for an
    // unknown clock): the process's monotonic clock.
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// Until when this node may acknowledge writes, on the [`now_ms`] clock.
/// Zero means never (no lease yet, or revoked).
#[derive(Debug, Default)]
pub struct Lease {
    until_ms: AtomicU64,
}

impl Lease {
    /// True while the lease runs at `now_ms`.
    #[inline]
    pub fn holds(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms.load(Ordering::Acquire)
    }

    /// Moves the end of the lease to `until_ms` if that is later; a grant
    /// that arrives late never shortens a newer one.
    pub fn extend(&self, until_ms: u64) {
        self.until_ms.fetch_max(until_ms, Ordering::AcqRel);
    }

    /// Ends the lease now (the node is no longer a primary).
    pub fn revoke(&self) {
        self.until_ms.store(0, Ordering::Release);
    }

    /// Milliseconds left at `now_ms` (zero when it does not hold).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.until_ms.load(Ordering::Acquire).saturating_sub(now_ms)
    }
}

/// Heartbeats awaiting their lease, so that a grant can be dated from the
/// heartbeat it answers.
#[derive(Debug, Default)]
pub struct Renewals {
    next_seq: u64,
    /// `(seq, sent at)` of heartbeats not yet answered, oldest first.
    pending: VecDeque<(u64, u64)>,
    /// Length of the last lease granted, in milliseconds.
    granted_ms: Option<u64>,
}

/// Heartbeats remembered while unanswered; older ones are forgotten (their
/// grants, if they ever come, would end before newer ones anyway).
const PENDING: usize = 16;

impl Renewals {
    /// A heartbeat is being sent at `now_ms`: its sequence number.
    pub fn sent(&mut self, now_ms: u64) -> u64 {
        self.next_seq += 1;
        if self.pending.len() == PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((self.next_seq, now_ms));
        self.next_seq
    }

    /// The coordinator granted `ms` for heartbeat `seq`: the end of the
    /// lease, or `None` for a grant this node did not ask for (or has
    /// forgotten), which is ignored.
    pub fn granted(&mut self, seq: u64, ms: u64) -> Option<u64> {
        let index = self.pending.iter().position(|&(s, _)| s == seq)?;
        let (_, sent_ms) = self.pending[index];
        // Older heartbeats are answered in order before this one, so any
        // still pending lost their answer; drop them with it.
        self.pending.drain(..=index);
        // An empty lease (a replica's) says the coordinator heard us; it
        // does not set the pace of heartbeats.
        if ms > 0 {
            self.granted_ms = Some(ms);
        }
        Some(sent_ms.saturating_add(ms))
    }

    /// A new connection to the coordinator: answers to heartbeats sent on
    /// the old one will not come.
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// How often to send heartbeats: every `base_ms`, or three times per
    /// lease if leases are shorter, so that two renewals can go missing
    /// before one runs out.
    pub fn interval_ms(&self, base_ms: u64) -> u64 {
        match self.granted_ms {
            Some(ms) => base_ms.min(ms / 3).max(10),
            None => base_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_when_the_heartbeat_was_sent() {
        let (mut renewals, lease) = (Renewals::default(), Lease::default());
        assert!(!lease.holds(1_000), "no lease before the first grant");
        let seq = renewals.sent(1_000);
        // The grant arrives 300 ms later: it still ends 2.5 s after sending.
        let until = renewals.granted(seq, 2_500).unwrap();
        assert_eq!(until, 3_500);
        lease.extend(until);
        assert!(lease.holds(1_300) && lease.holds(3_499));
        assert!(!lease.holds(3_500), "the lease ends exactly at its end");
        assert_eq!(lease.remaining_ms(3_000), 500);
    }

    #[test]
    fn a_late_grant_never_shortens_a_newer_one() {
        let (mut renewals, lease) = (Renewals::default(), Lease::default());
        let first = renewals.sent(0);
        let second = renewals.sent(1_000);
        lease.extend(renewals.granted(second, 2_500).unwrap());
        // The first heartbeat's answer was dropped with it.
        assert_eq!(renewals.granted(first, 2_500), None);
        lease.extend(2_500);
        assert!(lease.holds(3_000));
    }

    #[test]
    fn unknown_and_repeated_grants_are_ignored() {
        let mut renewals = Renewals::default();
        assert_eq!(renewals.granted(1, 2_500), None, "nothing asked");
        let seq = renewals.sent(10);
        assert_eq!(renewals.granted(seq + 1, 2_500), None, "never sent");
        assert_eq!(renewals.granted(seq, 2_500), Some(2_510));
        assert_eq!(renewals.granted(seq, 2_500), None, "answered already");
    }

    #[test]
    fn grants_from_a_previous_connection_are_ignored() {
        let mut renewals = Renewals::default();
        let old = renewals.sent(0);
        renewals.reset();
        assert_eq!(renewals.granted(old, 2_500), None);
        let new = renewals.sent(100);
        assert!(new > old, "sequence numbers keep increasing");
        assert_eq!(renewals.granted(new, 2_500), Some(2_600));
    }

    #[test]
    fn only_the_newest_heartbeats_are_remembered() {
        let mut renewals = Renewals::default();
        let first = renewals.sent(0);
        for at in 1..PENDING as u64 * 2 {
            renewals.sent(at);
        }
        assert_eq!(renewals.granted(first, 2_500), None);
    }

    #[test]
    fn a_revoked_lease_does_not_hold() {
        let lease = Lease::default();
        lease.extend(5_000);
        lease.revoke();
        assert!(!lease.holds(1));
    }

    #[test]
    fn heartbeats_come_three_times_per_lease() {
        let mut renewals = Renewals::default();
        assert_eq!(renewals.interval_ms(1_000), 1_000, "before any grant");
        let seq = renewals.sent(0);
        renewals.granted(seq, 1_000);
        assert_eq!(renewals.interval_ms(1_000), 333);
        let seq = renewals.sent(0);
        renewals.granted(seq, 6_000);
        assert_eq!(renewals.interval_ms(1_000), 1_000);
        let seq = renewals.sent(0);
        renewals.granted(seq, 0);
        assert_eq!(renewals.interval_ms(1_000), 1_000, "an empty lease");
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(now_ms() >= a + 4);
    }
}
