//! Signing everyone out: every row of the `sessions` table goes, signed in or part-way
//! through signing in (a password accepted, the second factor still to come), so a stolen
//! cookie or a half-finished sign-in is worthless afterwards. The caller's own session may
//! be kept, so the administrator who pressed the button can carry on.

use chrono::NaiveDateTime;
use serde_json::json;

use super::ChangedBy;
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::infra::db::{DbConnection, repo, write_tx};

pub const AUDIT_ACTION: &str = "incident.sessions_revoked";

/// The hash to spare; keeping none compares with "", which no stored hash equals.
fn kept(keep: Option<&str>) -> &str {
    keep.unwrap_or_default()
}

/// Sessions still alive at `now`, except `keep`: what signing everyone out would end.
pub fn count_live(
    conn: &mut DbConnection,
    keep: Option<&str>,
    now: NaiveDateTime,
) -> Result<i64, AppError> {
    Ok(repo::sessions::count_live_except(conn, kept(keep), now)?)
}

/// Ends every session but `keep` (the stored hash of the caller's own) and records
/// `incident.sessions_revoked` with the number of live sessions ended, in one transaction.
/// Rows already past their expiry go too, uncounted: they were dead already.
pub fn end_all(
    conn: &mut DbConnection,
    keep: Option<&str>,
    by: &ChangedBy,
    now: NaiveDateTime,
) -> Result<usize, AppError> {
    write_tx(conn, |conn| {
        let ended = repo::sessions::delete_all_except(conn, kept(keep), now)?;
        let event = Event::new(by.actor.clone(), AUDIT_ACTION, Outcome::Success)
            .origin(by.origin.clone())
            .details(json!({
                "count": ended,
                "kept_own_session": keep.is_some(),
                "via": by.via,
            }));
        audit::record(conn, &event)?;
        Ok(ended)
    })
}
