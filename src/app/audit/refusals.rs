//! Refusals of clients that have not signed in (a missing CSRF token, a throttled sign-in)
//! are counted, not stored one by one. Anyone can cause them, and a row each would let an
//! anonymous client grow the append-only trail without limit and bury real events.
//!
//! Per minute, each client address (an IPv6 client by its /64) has its first
//! `PER_ADDRESS` refusals recorded in full, and all addresses together at most
//! `PER_MINUTE`. Everything past that is counted, and one `access.denied.summary` event per
//! minute says how many were left out, from how many addresses, which were the busiest and
//! why. The summary is written by the next refusal after the minute, or by the minute tick,
//! whichever comes first. Counts are per instance; each instance writes its own summary.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::json;

use super::{Actor, Event, Origin, Outcome};
use crate::infra::db::{Database, DbError};

pub const PER_ADDRESS: u32 = 3;
pub const PER_MINUTE: u32 = 20;
/// Addresses tracked within one minute; past that, the rest share one counter, so memory
/// stays bounded under a flood from many addresses.
const MAX_ADDRESSES: usize = 10_000;
const BUSIEST_LISTED: usize = 5;
const WINDOW_SECS: i64 = 60;
/// Paths and other attacker-chosen text are cut to this many bytes where they are stored.
pub const MAX_STORED_PATH: usize = 512;

/// `path` cut to at most `MAX_STORED_PATH` bytes, on a character boundary.
pub fn capped_path(path: &str) -> &str {
    if path.len() <= MAX_STORED_PATH {
        return path;
    }
    let mut end = MAX_STORED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

/// The address a refusal is counted under: IPv6 clients usually hold a whole /64.
fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

#[derive(Debug, Default)]
struct Window {
    start: i64,
    recorded: u32,
    per_address: HashMap<String, u64>,
    overflow_addresses: u64,
    left_out: u64,
    reasons: BTreeMap<&'static str, u64>,
}

impl Window {
    fn summary(&self) -> Option<Event> {
        if self.left_out == 0 {
            return None;
        }
        let mut busiest: Vec<(&String, &u64)> = self.per_address.iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let busiest: Vec<_> = busiest
            .into_iter()
            .take(BUSIEST_LISTED)
            .map(|(ip, n)| json!({ "address": ip, "refusals": n }))
            .collect();
        let start = chrono::DateTime::from_timestamp(self.start, 0)
            .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        Some(
            Event::new(Actor::anonymous(), "access.denied.summary", Outcome::Denied).details(
                json!({
                    "window_start": start,
                    "window_seconds": WINDOW_SECS,
                    "recorded": self.recorded,
                    "not_recorded": self.left_out,
                    "addresses": self.per_address.len() as u64 + self.overflow_addresses,
                    "busiest": busiest,
                    "reasons": self.reasons,
                }),
            ),
        )
    }
}

/// What to do with one refusal, and the previous minute's summary if it is due now.
#[derive(Debug)]
pub struct Verdict {
    pub record: bool,
    pub summary: Option<Event>,
}

#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one refusal from `ip` at `now` (unix seconds).
    pub fn admit(&self, ip: Option<IpAddr>, reason: &'static str, now: i64) -> Verdict {
        let mut w = self.lock();
        let summary = Self::roll(&mut w, now);
        let key = address_key(ip);
        let known = w.per_address.contains_key(&key);
        let seen = if known || w.per_address.len() < MAX_ADDRESSES {
            let n = w.per_address.entry(key).or_insert(0);
            *n += 1;
            *n
        } else {
            w.overflow_addresses += 1;
            u64::MAX
        };
        let record = seen <= u64::from(PER_ADDRESS) && w.recorded < PER_MINUTE;
        if record {
            w.recorded += 1;
        } else {
            w.left_out += 1;
            *w.reasons.entry(reason).or_insert(0) += 1;
        }
        Verdict { record, summary }
    }

    /// The summary of a minute that has ended, if it left anything out (the minute tick).
    pub fn due_summary(&self, now: i64) -> Option<Event> {
        Self::roll(&mut self.lock(), now)
    }

    fn roll(w: &mut Window, now: i64) -> Option<Event> {
        let start = now - now.rem_euclid(WINDOW_SECS);
        if w.start == start {
            return None;
        }
        let summary = w.summary();
        *w = Window {
            start,
            ..Window::default()
        };
        summary
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // A panic while counting cannot leave the counts unusable for the next request.
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Records one refusal's `event` if its address still has room this minute, and the
/// previous minute's summary when it is due.
pub async fn record(
    db: &Database,
    refusals: &Refusals,
    ip: Option<IpAddr>,
    reason: &'static str,
    now: i64,
    event: Event,
) -> Result<(), DbError> {
    let verdict = refusals.admit(ip, reason, now);
    let events: Vec<Event> = verdict
        .summary
        .into_iter()
        .chain(verdict.record.then_some(event))
        .collect();
    write(db, events).await
}

/// The minute tick: writes the summary of a minute that ended without a later refusal.
pub async fn flush(db: &Database, refusals: &Refusals, now: i64) -> Result<(), DbError> {
    write(db, refusals.due_summary(now).into_iter().collect()).await
}

async fn write(db: &Database, events: Vec<Event>) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    db.run(move |conn| {
        crate::infra::db::write_tx(conn, |conn| {
            for event in &events {
                super::record(conn, event)?;
            }
            Ok::<_, DbError>(())
        })
    })
    .await
}

/// Writes each minute's summary even when the flood has stopped.
pub fn spawn_ticker(
    db: Database,
    refusals: std::sync::Arc<Refusals>,
    clock: crate::domain::clock::Clock,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no async runtime: refusal summaries are written only by later refusals");
        return;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(WINDOW_SECS as u64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = flush(&db, &refusals, clock.unix()).await {
                tracing::warn!(error = %e, "could not write a refusal summary");
            }
        }
    });
}

/// Where a refusal came from, for the events recorded in full.
pub fn origin_of(ip: Option<IpAddr>) -> Origin {
    Origin {
        ip: ip.map(|ip| ip.to_string()),
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_address_has_its_first_refusals_recorded_and_the_rest_counted() {
        let r = Refusals::new();
        let t = 1_700_000_040;
        let recorded: Vec<bool> = (0..6)
            .map(|_| r.admit(ip("203.0.113.9"), "CSRF token missing", t).record)
            .collect();
        assert_eq!(recorded, [true, true, true, false, false, false]);
        assert!(r.admit(ip("198.51.100.7"), "CSRF token missing", t).record);
    }

    #[test]
    fn all_addresses_together_have_a_ceiling_per_minute() {
        let r = Refusals::new();
        let t = 1_700_000_040;
        let recorded = (0..100u32)
            .filter(|i| {
                let addr = format!("10.0.{}.{}", i / 250, i % 250);
                r.admit(ip(&addr), "foreign Origin", t).record
            })
            .count();
        assert_eq!(recorded, PER_MINUTE as usize);
    }

    #[test]
    fn an_ipv6_client_counts_as_its_slash_64() {
        let r = Refusals::new();
        let t = 1_700_000_040;
        let recorded = (0..10)
            .filter(|i| {
                let addr = format!("2001:db8:1:2::{i:x}");
                r.admit(ip(&addr), "CSRF token missing", t).record
            })
            .count();
        assert_eq!(recorded, PER_ADDRESS as usize);
    }

    #[test]
    fn the_next_minute_brings_a_summary_of_what_was_left_out() {
        let r = Refusals::new();
        let t = 1_700_000_040;
        for _ in 0..10 {
            r.admit(ip("203.0.113.9"), "CSRF token missing", t);
        }
        assert!(r.due_summary(t + 5).is_none(), "the minute is not over");
        let summary = r.due_summary(t + 60).expect("a summary");
        assert_eq!(summary.action, "access.denied.summary");
        assert_eq!(summary.details["recorded"], 3);
        assert_eq!(summary.details["not_recorded"], 7);
        assert_eq!(summary.details["addresses"], 1);
        assert_eq!(summary.details["busiest"][0]["address"], "203.0.113.9");
        assert_eq!(summary.details["busiest"][0]["refusals"], 10);
        assert_eq!(summary.details["reasons"]["CSRF token missing"], 7);
        assert!(r.due_summary(t + 61).is_none(), "one summary per minute");
    }

    #[test]
    fn a_quiet_minute_writes_no_summary() {
        let r = Refusals::new();
        let t = 1_700_000_040;
        r.admit(ip("203.0.113.9"), "CSRF token missing", t);
        assert!(r.due_summary(t + 60).is_none());
    }

    #[test]
    fn stored_paths_are_cut_on_a_character_boundary() {
        assert_eq!(capped_path("/short"), "/short");
        let long = format!("/{}", "é".repeat(400));
        let cut = capped_path(&long);
        assert!(cut.len() <= MAX_STORED_PATH && long.starts_with(cut));
        assert_eq!(capped_path(&"a".repeat(2000)).len(), MAX_STORED_PATH);
    }
}
