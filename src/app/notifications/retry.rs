//! When a notice that could not be delivered is tried again, and when attempts stop.
//!
//! The waits double from `first_retry` up to `max_retry`; attempts stop once the waits
//! add up to more than `give_up_after` (by default: 30 s, 1 min, 2, ... 1 h, for 24 h,
//! 30 attempts in all). Counting attempts rather than reading the clock keeps the rule the
//! same for a notice that sat queued while no server was configured, and lets an admin's
//! "retry now" start a fresh series.

use std::time::Duration;

use crate::config::NotificationSettings;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: Duration,
    max: Duration,
    give_up_after: Duration,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAfter(Duration),
    GiveUp,
}

impl Schedule {
    pub fn new(settings: &NotificationSettings) -> Self {
        Self {
            first: settings.first_retry,
            max: settings.max_retry.max(settings.first_retry),
            give_up_after: settings.give_up_after,
        }
    }

    /// The wait after failed attempt number `attempt` (1 for the first).
    pub fn wait_after(&self, attempt: i32) -> Duration {
        let doublings = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.first
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// After failed attempt number `attempts`: wait and try again, or stop.
    pub fn after_failure(&self, attempts: i32) -> Next {
        let mut waited = Duration::ZERO;
        for attempt in 1..=attempts.max(1) {
            waited = waited.saturating_add(self.wait_after(attempt));
            if waited > self.give_up_after {
                return Next::GiveUp;
            }
        }
        Next::RetryAfter(self.wait_after(attempts.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_thirty_seconds_up_to_an_hour() {
        let s = Schedule::new(&NotificationSettings::default());
        let waits: Vec<u64> = (1..=9).map(|n| s.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(s.wait_after(0).as_secs(), 30);
        assert_eq!(s.wait_after(i32::MAX).as_secs(), 3600);
    }

    #[test]
    fn attempts_stop_once_the_waits_pass_a_day() {
        let s = Schedule::new(&NotificationSettings::default());
        // 30 s .. 32 min add up to 3810 s; then 22 waits of an hour stay within 86 400 s.
        assert_eq!(
            s.after_failure(29),
            Next::RetryAfter(Duration::from_secs(3600))
        );
        assert_eq!(s.after_failure(30), Next::GiveUp);
        let last_retry: u64 = (1..=29).map(|n| s.wait_after(n).as_secs()).sum();
        assert_eq!(
            last_retry, 83_010,
            "the last attempt is about 23 h after the first"
        );
        assert_eq!(
            s.after_failure(1),
            Next::RetryAfter(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_short_test_schedule_gives_up_after_a_few_attempts() {
        let s = Schedule::new(&NotificationSettings {
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_millis(200),
            give_up_after: Duration::from_millis(700),
            ..NotificationSettings::default()
        });
        // 100 + 200 + 200 + 200 = 700 ms: four retries, then the fifth failure stops.
        assert_eq!(
            s.after_failure(4),
            Next::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(s.after_failure(5), Next::GiveUp);
    }
}
