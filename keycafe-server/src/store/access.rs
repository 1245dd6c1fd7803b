//! A key's access history: the 24 bits in its entry header that eviction
//! reads to rank keys, and `OBJECT IDLETIME` / `OBJECT FREQ` report.
//!
//! Which history a key keeps follows the eviction policy, as in Redis, since
//! both cannot fit in 24 bits:
//!
//! - **Recency** ([`Tracking::Lru`], every policy but the LFU ones): a clock
//!   of [`LRU_TICK_MS`] ticks, stamped on each access. Redis ticks once a
//!   second; a finer tick lets eviction tell apart keys touched within the
//!   same second, which is most of a busy cache's working set. The clock
//!   wraps after 2^24 ticks (19.4 days): a key idle for longer looks as idle
//!   as its age modulo that, which is still older than anything touched
//!   recently in all but the rarest cases.
//! - **Frequency** ([`Tracking::Lfu`]): Redis's scheme. The low 8 bits are a
//!   logarithmic counter: a key starts at [`LFU_INIT`], and an access
//!   increments it with probability `1 / ((counter - LFU_INIT) * 10 + 1)`,
//!   so 255 takes about a million accesses. The high 16 bits are the minute
//!   (mod 2^16) the counter was last decayed: on each access, and when the
//!   counter is read, it first loses one per minute since then, so keys
//!   that were hot once and are no longer cool down.
//!
//! Everything here is arithmetic on `(history, now)` with the clock passed
//! in, so it is tested without a store.

/// Milliseconds per tick of the recency clock.
pub const LRU_TICK_MS: u64 = 100;
/// The recency clock and the LFU minute wrap at these.
const LRU_MASK: u64 = (1 << 24) - 1;
const MINUTE_MASK: u64 = (1 << 16) - 1;
/// The counter of a new key: low enough to be evicted soon if never read
/// again, high enough not to be the first to go.
pub const LFU_INIT: u8 = 5;
/// How slowly the counter climbs: Redis's default `lfu-log-factor`.
const LFU_LOG_FACTOR: u64 = 10;
/// Minutes per point of decay: Redis's default `lfu-decay-time`.
const LFU_DECAY_MINUTES: u64 = 1;

/// Which history keys keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    Lru,
    Lfu,
}

impl Tracking {
    /// The history of a key written for the first time at `now`.
    pub fn fresh(self, now: u64) -> u32 {
        match self {
            Tracking::Lru => lru_clock(now),
            Tracking::Lfu => lfu_pack(now, LFU_INIT),
        }
    }

    /// The history after one more access at `now`. `random` is a uniformly
    /// random `u32`: the LFU counter climbs with a probability.
    pub fn touched(self, history: u32, now: u64, random: u32) -> u32 {
        match self {
            Tracking::Lru => lru_clock(now),
            Tracking::Lfu => {
                let counter = lfu_counter(history, now);
                let base = u64::from(counter.saturating_sub(LFU_INIT));
                // Climb with probability 1 / (base * factor + 1).
                let climbs = counter < u8::MAX
                    && u64::from(random) * (base * LFU_LOG_FACTOR + 1) < (1u64 << 32);
                lfu_pack(now, counter + u8::from(climbs))
            }
        }
    }

    /// How strongly eviction prefers this key: the higher, the sooner it
    /// goes. LRU: milliseconds idle. LFU: 255 minus the decayed counter,
    /// and among keys of equal counters, the one decayed longest ago.
    pub fn eviction_score(self, history: u32, now: u64) -> u64 {
        match self {
            Tracking::Lru => idle_ms(history, now),
            Tracking::Lfu => {
                let coldness = u64::from(u8::MAX - lfu_counter(history, now));
                (coldness << 16) | lfu_minutes_since(history, now)
            }
        }
    }
}

/// The recency clock at `now` (ms since the Unix epoch).
pub fn lru_clock(now: u64) -> u32 {
    ((now / LRU_TICK_MS) & LRU_MASK) as u32
}

/// How long ago (ms) a key with recency history `history` was last touched.
pub fn idle_ms(history: u32, now: u64) -> u64 {
    let ticks = u64::from(lru_clock(now)).wrapping_sub(u64::from(history)) & LRU_MASK;
    ticks * LRU_TICK_MS
}

/// The LFU counter of `history` at `now`, after decay.
pub fn lfu_counter(history: u32, now: u64) -> u8 {
    let counter = (history & 0xFF) as u8;
    let periods = lfu_minutes_since(history, now) / LFU_DECAY_MINUTES;
    counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
}

fn lfu_minutes_since(history: u32, now: u64) -> u64 {
    let then = u64::from(history >> 8);
    let minutes = (now / 60_000) & MINUTE_MASK;
    minutes.wrapping_sub(then) & MINUTE_MASK
}

fn lfu_pack(now: u64, counter: u8) -> u32 {
    let minutes = ((now / 60_000) & MINUTE_MASK) as u32;
    (minutes << 8) | u32::from(counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    /// A time well past the epoch, so that the clocks are not near zero.
    const T0: u64 = 1_800_000_000_000;

    #[test]
    fn recency_counts_idle_time_in_ticks_and_survives_a_wrap() {
        let history = Tracking::Lru.fresh(T0);
        assert_eq!(idle_ms(history, T0), 0);
        assert_eq!(idle_ms(history, T0 + 99), 0);
        assert_eq!(idle_ms(history, T0 + 5_000), 5_000);
        assert_eq!(Tracking::Lru.eviction_score(history, T0 + 5_000), 5_000);
        // Across the clock's wrap-around, idle time still counts up.
        let before_wrap = (LRU_MASK - 1) * LRU_TICK_MS;
        let history = lru_clock(before_wrap);
        assert_eq!(idle_ms(history, before_wrap + 3 * LRU_TICK_MS), 300);
        let touched = Tracking::Lru.touched(history, before_wrap + 10 * LRU_TICK_MS, 0);
        assert_eq!(idle_ms(touched, before_wrap + 10 * LRU_TICK_MS), 0);
    }

    #[test]
    fn frequency_climbs_logarithmically() {
        let mut history = Tracking::Lfu.fresh(T0);
        assert_eq!(lfu_counter(history, T0), LFU_INIT);
        // With the lowest random number every access climbs...
        for _ in 0..10 {
            history = Tracking::Lfu.touched(history, T0, 0);
        }
        assert_eq!(lfu_counter(history, T0), LFU_INIT + 10);
        // ...and with the highest, none beyond the first does: p = 1/(base*10+1).
        let stuck = Tracking::Lfu.touched(history, T0, u32::MAX);
        assert_eq!(lfu_counter(stuck, T0), LFU_INIT + 10);
        // At the initial value the climb is certain.
        let fresh = Tracking::Lfu.fresh(T0);
        assert_eq!(
            lfu_counter(Tracking::Lfu.touched(fresh, T0, u32::MAX), T0),
            LFU_INIT + 1
        );
        // A pseudo-random sequence: 1000 accesses land well below 255.
        let mut history = Tracking::Lfu.fresh(T0);
        let mut x: u32 = 0x9E37_79B9;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            history = Tracking::Lfu.touched(history, T0, x);
        }
        let counter = lfu_counter(history, T0);
        assert!((12..40).contains(&counter), "counter {counter}");
    }

    #[test]
    fn frequency_decays_one_point_a_minute_and_saturates() {
        let mut history = Tracking::Lfu.fresh(T0);
        for _ in 0..20 {
            history = Tracking::Lfu.touched(history, T0, 0);
        }
        assert_eq!(lfu_counter(history, T0 + 3 * MINUTE), LFU_INIT + 17);
        assert_eq!(lfu_counter(history, T0 + 1000 * MINUTE), 0);
        // Touching applies the decay before counting the access.
        let later = Tracking::Lfu.touched(history, T0 + 3 * MINUTE, u32::MAX);
        assert_eq!(lfu_counter(later, T0 + 3 * MINUTE), LFU_INIT + 17);
        let mut full = lfu_pack(T0, u8::MAX);
        full = Tracking::Lfu.touched(full, T0, 0);
        assert_eq!(lfu_counter(full, T0), u8::MAX);
    }

    #[test]
    fn colder_keys_score_higher() {
        let hot = (0..30).fold(Tracking::Lfu.fresh(T0), |h, _| {
            Tracking::Lfu.touched(h, T0, 0)
        });
        let cold = Tracking::Lfu.fresh(T0);
        let now = T0 + 10;
        assert!(Tracking::Lfu.eviction_score(cold, now) > Tracking::Lfu.eviction_score(hot, now));
        // Equal counters: the one decayed longer ago goes first.
        let old = lfu_pack(T0, 10);
        let recent = lfu_pack(T0 + MINUTE, 11);
        let now = T0 + MINUTE;
        assert_eq!(lfu_counter(old, now), lfu_counter(recent, now) - 2);
        let older = lfu_pack(T0 - MINUTE, 11);
        let newer = lfu_pack(T0, 10);
        let now = T0 + 2 * MINUTE;
        assert_eq!(lfu_counter(older, now), lfu_counter(newer, now));
        assert!(
            Tracking::Lfu.eviction_score(older, now) > Tracking::Lfu.eviction_score(newer, now)
        );
        // LRU: the longer idle goes first.
        let a = Tracking::Lru.fresh(T0);
        let b = Tracking::Lru.fresh(T0 + 1_000);
        assert!(
            Tracking::Lru.eviction_score(a, T0 + 2_000)
                > Tracking::Lru.eviction_score(b, T0 + 2_000)
        );
    }
}
