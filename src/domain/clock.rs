//! Time, behind a handle the whole application shares. Production reads the system clock;
//! tests move it forward to check session expiry and TOTP windows without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// UTC, truncated to microseconds: what both databases store exactly.
    pub fn now_naive(&self) -> NaiveDateTime {
        let now = self.now().naive_utc();
        now.duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(now)
    }

    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }

    /// Moves this clock (and every copy of it) forward. Only tests call it.
    pub fn advance(&self, by: std::time::Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}
