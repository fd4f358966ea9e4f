//! A user's own sessions: listing the live ones and signing them out, each sign-out audited
//! in the same transaction.

use chrono::NaiveDateTime;

use crate::app::accounts::users;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::UserId;
use crate::infra::db::repo::sessions::{self, Listed};
use crate::infra::db::{Database, write_tx};

/// Who is signing out their sessions, for the audit trail.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: UserId,
    pub actor: Actor,
    pub origin: Origin,
}

/// The owner's live sessions, most recently used first.
pub async fn live(
    db: &Database,
    owner: &UserId,
    now: NaiveDateTime,
) -> Result<Vec<Listed>, AppError> {
    let id = owner.clone();
    Ok(db
        .run(move |conn| sessions::live_of(conn, id.as_str(), now))
        .await?)
}

/// Signs out one of the owner's sessions; `false` when it is not theirs (or gone).
pub async fn sign_out_one(
    db: &Database,
    owner: Owner,
    id_hash: String,
    this_device: bool,
) -> Result<bool, AppError> {
    let event = Event::new(owner.actor, "session.revoke", Outcome::Success)
        .origin(owner.origin)
        .target("user", owner.id.as_str())
        .details(serde_json::json!({ "count": 1, "this_device": this_device }));
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let gone = sessions::delete_own(conn, owner.id.as_str(), &id_hash)?;
            if gone {
                audit::record(conn, &event)?;
            }
            Ok::<_, AppError>(gone)
        })
    })
    .await
}

/// Signs out every session of the owner but `keep` (this device's); returns how many.
pub async fn sign_out_others(db: &Database, owner: Owner, keep: String) -> Result<usize, AppError> {
    let event = Event::new(owner.actor, "session.revoke", Outcome::Success)
        .origin(owner.origin)
        .target("user", owner.id.as_str());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ended = users::end_sessions(conn, &owner.id, Some(&keep))?;
            audit::record(
                conn,
                &event.details(serde_json::json!({ "count": ended, "this_device": false })),
            )?;
            Ok::<_, AppError>(ended)
        })
    })
    .await
}
