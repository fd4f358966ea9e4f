//! Revoking API keys in bulk: every key not yet revoked, or every such key of one user.
//! Revoked keys are refused at once (`api_keys::authenticate` reads `revoked_at` on every
//! request) and stay listed for their owners as revoked.

use chrono::NaiveDateTime;
use serde_json::json;

use super::ChangedBy;
use crate::app::accounts::users;
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::domain::ids::UserId;
pub use crate::infra::db::repo::api_keys::KeyHolder;
use crate::infra::db::{DbConnection, repo, write_tx};

pub const AUDIT_ACTION: &str = "incident.api_keys_revoked";

/// Whose keys are revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    All,
    Owner(UserId),
}

impl KeyScope {
    /// From the page's select: `all`, or a user id.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw.trim() {
            "all" => Ok(Self::All),
            other => UserId::parse(other).map(Self::Owner).ok_or_else(|| {
                FieldError::new("scope", "Choose all users or one user from the list.")
            }),
        }
    }
}

/// Users with keys not yet revoked, by email (for the page's select).
pub fn holders(conn: &mut DbConnection) -> Result<Vec<KeyHolder>, AppError> {
    Ok(repo::api_keys::holders(conn)?)
}

/// Keys not yet revoked, of every user.
pub fn count_unrevoked(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(repo::api_keys::count_unrevoked(conn)?)
}

/// What a bulk revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub count: usize,
    /// The owner's email, when one user's keys were revoked.
    pub owner: Option<String>,
}

/// Revokes every key of `scope` not yet revoked and records `incident.api_keys_revoked`
/// with the count and the scope, in one transaction. An owner that does not exist is
/// `NotFound`.
pub fn revoke_all(
    conn: &mut DbConnection,
    scope: &KeyScope,
    by: &ChangedBy,
    now: NaiveDateTime,
) -> Result<Revoked, AppError> {
    write_tx(conn, |conn| {
        let mut event =
            Event::new(by.actor.clone(), AUDIT_ACTION, Outcome::Success).origin(by.origin.clone());
        let (count, owner, mut details) = match scope {
            KeyScope::All => {
                let count = repo::api_keys::revoke_all(conn, now)?;
                (count, None, json!({ "scope": "all" }))
            }
            KeyScope::Owner(id) => {
                let owner = users::find_by_id(conn, id)?.ok_or(AppError::NotFound)?;
                let count = crate::app::accounts::api_keys::revoke_all_of(conn, id, now)?;
                event = event.target("user", id.as_str());
                let details = json!({ "scope": "user", "user_id": id, "email": owner.email });
                (count, Some(owner.email), details)
            }
        };
        details["count"] = json!(count);
        details["via"] = json!(by.via);
        audit::record(conn, &event.details(details))?;
        Ok(Revoked { count, owner })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_all_or_a_canonical_user_id() {
        assert_eq!(KeyScope::parse("all").unwrap(), KeyScope::All);
        let id = UserId::new();
        assert_eq!(
            KeyScope::parse(id.as_str()).unwrap(),
            KeyScope::Owner(id.clone())
        );
        for bad in ["", "ALL", "everyone", "not-an-id", "'; DROP TABLE api_keys"] {
            assert_eq!(KeyScope::parse(bad).unwrap_err().field, "scope", "{bad}");
        }
    }
}
