//! Commands per second, from the counts nodes report.
//!
//! A heartbeat carries the node's running count of commands processed, not
//! a rate: the node does not know when the coordinator will read it, and a
//! rate the node averaged over its own window would be stale or lost when a
//! heartbeat is. The coordinator divides the difference between two counts
//! by the time between the heartbeats that carried them, on its own clock.
//!
//! Heartbeats come every second, or several times a second when leases are
//! short; the rate is measured over at least [`MIN_INTERVAL`], so that the
//! jitter of one heartbeat's delivery does not swing it. A count that goes
//! down means the node restarted and counts from zero again: the rate is
//! unknown until the next interval.

use std::time::{Duration, Instant};

/// The shortest interval a rate is measured over.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One node's command rate.
#[derive(Debug, Clone, Default)]
pub(super) struct CommandRate {
    /// The count the current interval started from, and when it was seen.
    start: Option<(Instant, u64)>,
    /// Commands per second over the last complete interval.
    per_sec: Option<f64>,
}

impl CommandRate {
    /// Takes in a heartbeat's count (`None` from a node that does not send
    /// one), received at `now`.
    pub(super) fn observe(&mut self, now: Instant, count: Option<u64>) {
        let Some(count) = count else {
            *self = CommandRate::default();
            return;
        };
        match self.start {
            Some((_, before)) if count < before => self.per_sec = None,
            Some((then, before)) => {
                let elapsed = now.saturating_duration_since(then);
                if elapsed < MIN_INTERVAL {
                    return;
                }
                self.per_sec = Some((count - before) as f64 / elapsed.as_secs_f64());
            }
            None => {}
        }
        self.start = Some((now, count));
    }

    /// Commands per second, once two counts at least [`MIN_INTERVAL`] apart
    /// have been seen.
    pub(super) fn per_sec(&self) -> Option<f64> {
        self.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_two_counts_a_second_apart() {
        let t0 = Instant::now();
        let mut rate = CommandRate::default();
        rate.observe(t0, Some(1_000));
        assert_eq!(rate.per_sec(), None);
        // Too soon: the interval goes on from the first count.
        rate.observe(t0 + Duration::from_millis(300), Some(1_300));
        assert_eq!(rate.per_sec(), None);
        rate.observe(t0 + Duration::from_secs(2), Some(1_500));
        assert_eq!(rate.per_sec(), Some(250.0));
        rate.observe(t0 + Duration::from_millis(2_500), Some(9_999));
        assert_eq!(rate.per_sec(), Some(250.0), "kept until the next interval");
        rate.observe(t0 + Duration::from_secs(3), Some(1_500));
        assert_eq!(rate.per_sec(), Some(0.0), "an idle node");
    }

    #[test]
    fn a_restart_or_a_missing_count_forgets_the_rate() {
        let t0 = Instant::now();
        let mut rate = CommandRate::default();
        rate.observe(t0, Some(100));
        rate.observe(t0 + Duration::from_secs(1), Some(200));
        assert_eq!(rate.per_sec(), Some(100.0));
        // Restarted: counting from zero.
        rate.observe(t0 + Duration::from_secs(2), Some(5));
        assert_eq!(rate.per_sec(), None);
        rate.observe(t0 + Duration::from_secs(4), Some(45));
        assert_eq!(rate.per_sec(), Some(20.0));
        rate.observe(t0 + Duration::from_secs(5), None);
        assert_eq!(rate.per_sec(), None);
        rate.observe(t0 + Duration::from_secs(6), Some(100));
        assert_eq!(rate.per_sec(), None);
    }
}
