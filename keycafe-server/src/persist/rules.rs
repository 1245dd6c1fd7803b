//! When to take a snapshot: Redis's `save` rules, as a state machine with
//! the clock passed in.
//!
//! A rule `seconds changes` asks for a snapshot once at least `changes`
//! keys have changed and at least `seconds` have passed since the last
//! snapshot (Redis's default, `3600 1 300 100 60 10000`: after an hour if
//! anything changed, five minutes if 100 keys did, a minute if 10,000 did).
//! A snapshot that failed is retried no sooner than [`RETRY_AFTER_MS`]
//! later, so a full disk is not hammered.

use std::fmt;

/// How long after a failed snapshot the rules may ask for another.
pub const RETRY_AFTER_MS: u64 = 5_000;

/// One `seconds changes` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveRule {
    pub seconds: u64,
    pub changes: u64,
}

/// The `save` setting: rules, any of which asks for a snapshot. None means
/// snapshots only on request (`SAVE`, `BGSAVE`, shutdown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveRules(pub Vec<SaveRule>);

impl SaveRules {
    /// Redis's default.
    pub fn redis_default() -> SaveRules {
        SaveRules(vec![
            SaveRule {
                seconds: 3600,
                changes: 1,
            },
            SaveRule {
                seconds: 300,
                changes: 100,
            },
            SaveRule {
                seconds: 60,
                changes: 10_000,
            },
        ])
    }

    /// Parses Redis's form: pairs of numbers separated by spaces, or an
    /// empty string for none.
    pub fn parse(text: &str) -> Result<SaveRules, String> {
        let numbers = text
            .split_whitespace()
            .map(|word| {
                word.parse::<u64>()
                    .map_err(|_| format!("invalid save rule number '{word}'"))
            })
            .collect::<Result<Vec<u64>, String>>()?;
        if numbers.len() % 2 != 0 {
            return Err("save rules are pairs: seconds and changes".to_string());
        }
        let rules = numbers
            .chunks(2)
            .map(|pair| SaveRule {
                seconds: pair[0],
                changes: pair[1],
            })
            .collect();
        Ok(SaveRules(rules))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// As CONFIG GET shows it: `3600 1 300 100`.
impl fmt::Display for SaveRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .0
            .iter()
            .map(|rule| format!("{} {}", rule.seconds, rule.changes))
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// What the rules know of past snapshots.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// When the last snapshot finished well (or the node started).
    pub last_save_ms: u64,
    /// The store's change count the last good snapshot covered.
    pub changes_saved: u64,
    /// When the last snapshot failed, if the one after it has not succeeded.
    pub failed_at_ms: Option<u64>,
}

impl Schedule {
    /// A node that started at `now` holding what `changes` counts.
    pub fn new(now_ms: u64, changes: u64) -> Schedule {
        Schedule {
            last_save_ms: now_ms,
            changes_saved: changes,
            failed_at_ms: None,
        }
    }

    /// Whether `rules` ask for a snapshot now, with the store's change
    /// count at `changes`.
    pub fn due(&self, rules: &SaveRules, now_ms: u64, changes: u64) -> bool {
        if self
            .failed_at_ms
            .is_some_and(|at| now_ms.saturating_sub(at) < RETRY_AFTER_MS)
        {
            return false;
        }
        let changed = changes.saturating_sub(self.changes_saved);
        let elapsed_s = now_ms.saturating_sub(self.last_save_ms) / 1000;
        rules
            .0
            .iter()
            .any(|rule| changed >= rule.changes.max(1) && elapsed_s >= rule.seconds)
    }

    /// A snapshot that started when the change count was `changes` has
    /// been written.
    pub fn saved(&mut self, now_ms: u64, changes: u64) {
        self.last_save_ms = now_ms;
        self.changes_saved = changes;
        self.failed_at_ms = None;
    }

    /// A snapshot failed.
    pub fn failed(&mut self, now_ms: u64) {
        self.failed_at_ms = Some(now_ms);
    }

    /// Changes not yet in a snapshot (INFO's `rdb_changes_since_last_save`).
    pub fn unsaved(&self, changes: u64) -> u64 {
        changes.saturating_sub(self.changes_saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_redis_form() {
        let rules = SaveRules::parse("3600 1  300 100").unwrap();
        assert_eq!(rules.0.len(), 2);
        assert_eq!(rules.to_string(), "3600 1 300 100");
        assert!(SaveRules::parse("").unwrap().is_empty());
        assert_eq!(
            SaveRules::redis_default().to_string(),
            "3600 1 300 100 60 10000"
        );
        assert!(SaveRules::parse("60").is_err());
        assert!(SaveRules::parse("60 x").is_err());
    }

    #[test]
    fn a_rule_needs_both_its_time_and_its_changes() {
        let rules = SaveRules::parse("60 100").unwrap();
        let schedule = Schedule::new(0, 0);
        assert!(!schedule.due(&rules, 59_999, 1_000), "not a minute yet");
        assert!(!schedule.due(&rules, 600_000, 99), "not enough changes");
        assert!(schedule.due(&rules, 60_000, 100));
    }

    #[test]
    fn nothing_changed_never_saves_even_with_a_zero_rule() {
        let rules = SaveRules::parse("0 0").unwrap();
        let schedule = Schedule::new(0, 5);
        assert!(!schedule.due(&rules, 1_000_000, 5));
        assert!(schedule.due(&rules, 1, 6));
    }

    #[test]
    fn a_save_resets_the_count_and_a_failure_waits_before_retrying() {
        let rules = SaveRules::parse("1 1").unwrap();
        let mut schedule = Schedule::new(0, 0);
        assert!(schedule.due(&rules, 1_000, 10));
        schedule.saved(1_000, 10);
        assert!(!schedule.due(&rules, 5_000, 10));
        assert_eq!(schedule.unsaved(12), 2);
        assert!(schedule.due(&rules, 5_000, 12));
        schedule.failed(5_000);
        assert!(!schedule.due(&rules, 9_999, 12));
        assert!(schedule.due(&rules, 10_000, 12));
    }

    #[test]
    fn no_rules_never_ask() {
        let schedule = Schedule::new(0, 0);
        assert!(!schedule.due(&SaveRules(Vec::new()), u64::MAX, u64::MAX));
    }
}
