//! A user changing their own password: the new hash stored, every other session ended, the
//! sign-in throttle cleared and the change audited, in one transaction.

use chrono::NaiveDateTime;

use crate::app::accounts::{throttle, users};
use crate::app::audit::{self, Event};
use crate::app::error::AppError;
use crate::domain::ids::UserId;
use crate::infra::db::{Database, write_tx};

/// Stores `hash` for `id`, keeping only the session `keep_session`; records `event` with
/// how many other sessions ended added to its details.
pub async fn apply(
    db: &Database,
    id: UserId,
    email: &str,
    hash: String,
    keep_session: Option<String>,
    now: NaiveDateTime,
    event: Event,
) -> Result<(), AppError> {
    let key = throttle::key_for_input(email);
    db.run(move |conn| {
        write_tx(conn, |conn| {
            users::set_password(conn, &id, &hash, false, now)?;
            let ended = users::end_sessions(conn, &id, keep_session.as_deref())?;
            throttle::clear(conn, &key)?;
            let mut details = event.details.clone();
            details["other_sessions_ended"] = serde_json::json!(ended);
            audit::record(conn, &event.details(details))?;
            Ok::<_, AppError>(())
        })
    })
    .await
}
