//! Per-account sign-in throttling, stored in the database so it holds across instances.
//! Keyed by a hash of the case-folded email, for known and unknown addresses alike, so it
//! reveals nothing about which accounts exist. After 5 failures each further attempt waits
//! 15 s, 30 s, 1 min, ... up to 15 min: slow for a guesser, never a permanent lockout that
//! an attacker could impose on a clinician.

use chrono::{NaiveDateTime, TimeDelta};
use sha2::{Digest, Sha256};

use crate::app::audit::{self, Event};
use crate::domain::email::Email;
use crate::infra::db::{Database, DbConnection, DbError, repo, write_tx};

pub const FREE_ATTEMPTS: i32 = 5;
const BASE_DELAY_SECS: i64 = 15;
const MAX_DELAY_SECS: i64 = 15 * 60;

fn key(email: &str) -> String {
    hex::encode(Sha256::digest(format!("medport-login\0{email}").as_bytes()))
}

/// The key for a raw, possibly invalid, email field (so invalid input is throttled too).
pub fn key_for_input(raw: &str) -> String {
    match Email::parse(raw) {
        Ok(email) => key(email.as_str()),
        Err(_) => key(&raw.trim().to_lowercase()),
    }
}

pub fn delay_after(failures: i32) -> TimeDelta {
    if failures < FREE_ATTEMPTS {
        return TimeDelta::zero();
    }
    let doublings = u32::try_from(failures - FREE_ATTEMPTS).unwrap_or(0).min(16);
    TimeDelta::seconds((BASE_DELAY_SECS << doublings).min(MAX_DELAY_SECS))
}

/// `Some(until)` while the address must wait.
pub fn blocked_until(
    conn: &mut DbConnection,
    key: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, DbError> {
    let until = repo::login_throttles::throttled_until(conn, key)?;
    Ok(until.flatten().filter(|t| *t > now))
}

/// Counts a failure; returns the failure count and when the next attempt is allowed.
pub fn record_failure(
    conn: &mut DbConnection,
    key: &str,
    now: NaiveDateTime,
) -> Result<(i32, Option<NaiveDateTime>), DbError> {
    let current = repo::login_throttles::failures(conn, key)?;
    let failures = current.unwrap_or(0).saturating_add(1);
    let delay = delay_after(failures);
    let until = (delay > TimeDelta::zero()).then(|| now + delay);
    if current.is_some() {
        repo::login_throttles::update(conn, key, failures, until, now)?;
    } else {
        repo::login_throttles::insert(conn, key, failures, until, now)?;
    }
    Ok((failures, until))
}

/// What a throttled user reads: how long to wait, in plain words.
pub fn wait_message(until: NaiveDateTime, now: NaiveDateTime) -> String {
    format!(
        "Too many failed sign-in attempts for this account. Please wait {} and try again.",
        wait_for(until, now)
    )
}

/// The wait until `until`, in words: "40 seconds", "3 minutes" (rounded up).
pub fn wait_for(until: NaiveDateTime, now: NaiveDateTime) -> String {
    let secs = (until - now).num_seconds().max(1);
    if secs < 90 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", (secs + 59) / 60)
    }
}

pub fn clear(conn: &mut DbConnection, key: &str) -> Result<(), DbError> {
    repo::login_throttles::delete(conn, key)
}

/// A wrong password or code: counted against `key` and audited as `failure`, together;
/// when this failure starts the throttle, `throttled` is recorded too, with the failure
/// count added to its details. Returns when the next attempt is allowed, if throttled.
pub async fn record_audited_failure(
    db: &Database,
    key: String,
    now: NaiveDateTime,
    failure: Event,
    throttled: Event,
) -> Result<Option<NaiveDateTime>, DbError> {
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let (failures, until) = record_failure(conn, &key, now)?;
            audit::record(conn, &failure)?;
            if failures == FREE_ATTEMPTS {
                let mut details = throttled.details.clone();
                details["failures"] = serde_json::json!(failures);
                audit::record(conn, &throttled.details(details))?;
            }
            Ok::<_, DbError>(until)
        })
    })
    .await
}

/// A step that passed: `key`'s failures are forgotten and `event` recorded, together.
pub async fn record_audited_success(
    db: &Database,
    key: String,
    event: Event,
) -> Result<(), DbError> {
    db.run(move |conn| {
        write_tx(conn, |conn| {
            clear(conn, &key)?;
            audit::record(conn, &event)?;
            Ok::<_, DbError>(())
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_capped() {
        assert_eq!(delay_after(4), TimeDelta::zero());
        assert_eq!(delay_after(5), TimeDelta::seconds(15));
        assert_eq!(delay_after(6), TimeDelta::seconds(30));
        assert_eq!(delay_after(9), TimeDelta::seconds(240));
        assert_eq!(delay_after(11), TimeDelta::seconds(900));
        assert_eq!(delay_after(1000), TimeDelta::seconds(900));
    }
}
