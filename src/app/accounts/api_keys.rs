//! API keys for scripts: issuing, listing, revoking and rotating a user's keys, and turning
//! an `Authorization: Bearer mp_...` header into an `ApiPrincipal`.
//!
//! The database keeps only the SHA-256 of a key and its non-secret prefix; the whole key is
//! returned once, by `create` or `rotate`, for the caller to show and forget. Every change is
//! audited in the transaction that makes it, with the key's id and prefix, never the key.

use chrono::{NaiveDateTime, TimeDelta};

use crate::app::audit::refusals::{Refusals, Verdict};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::FieldError;
use crate::domain::api_key::{ApiKeySecret, Scope, Scopes, hashes_match};
use crate::domain::ids::{ApiKeyId, UserId};
use crate::domain::role::Role;
pub use crate::infra::db::repo::api_keys::ApiKeyRow;
use crate::infra::db::{DbConnection, DbError, repo, write_tx};

/// `last_used_at` is written at most this often per key, so a busy script does not turn
/// every request into a write.
const LAST_USED_GRANULARITY_SECS: i64 = 60;
/// How many fresh prefixes to try if one is already taken (about 1 in 10^12 per try).
const PREFIX_ATTEMPTS: usize = 3;

/// What a person calls a key, so they can tell their keys apart: 1–64 characters, no
/// control characters, surrounding spaces removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("name", "is required"));
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "name",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How long a new key lives: 1 to 365 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryDays(u16);

impl ExpiryDays {
    pub const MAX: u16 = 365;

    /// From a form field: empty means the key does not expire.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        trimmed
            .parse::<u16>()
            .ok()
            .and_then(Self::from_days)
            .map(Some)
            .ok_or_else(|| {
                FieldError::new(
                    "expires_days",
                    format!("must be a whole number of days from 1 to {}", Self::MAX),
                )
            })
    }

    pub fn from_days(days: u16) -> Option<Self> {
        (1..=Self::MAX).contains(&days).then_some(Self(days))
    }

    pub fn days(self) -> u16 {
        self.0
    }
}

/// A validated request for a new key.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub name: KeyName,
    pub scopes: Scopes,
    pub expires_in: Option<ExpiryDays>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl ApiKeyRow {
    pub fn key_id(&self) -> ApiKeyId {
        ApiKeyId::from_db(self.id.clone())
    }

    pub fn scope_set(&self) -> Scopes {
        Scopes::from_db(&self.scopes)
    }

    pub fn status(&self, now: NaiveDateTime) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// A key just made: the only moment the whole key exists outside the caller's hands.
#[derive(Debug)]
pub struct IssuedKey {
    pub id: ApiKeyId,
    pub secret: ApiKeySecret,
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<NaiveDateTime>,
}

/// Who asked for a change and from where, for its audit event.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    pub actor: Actor,
    pub origin: Origin,
    /// `web` or `command line`.
    pub via: &'static str,
}

impl ChangedBy {
    /// A signed-in user, on a page.
    pub fn web(actor: Actor, origin: Origin) -> Self {
        Self {
            actor,
            origin,
            via: "web",
        }
    }

    /// An operator at the server, running `medport ...`: the audit trail names `system`.
    pub fn command_line() -> Self {
        Self {
            actor: Actor::system(),
            origin: Origin::default(),
            via: "command line",
        }
    }
}

/// Inserts a key with a fresh secret. A taken prefix (vanishingly rare) is retried inside a
/// savepoint, so the surrounding transaction stays usable on PostgreSQL.
fn insert_key(
    conn: &mut DbConnection,
    owner: &UserId,
    name: &str,
    scopes: Scopes,
    expires_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<IssuedKey, AppError> {
    let stored_scopes = scopes.to_db_string();
    for _ in 0..PREFIX_ATTEMPTS {
        let secret = ApiKeySecret::generate().map_err(AppError::internal)?;
        let id = ApiKeyId::new();
        let inserted = repo::api_keys::insert(
            conn,
            &repo::api_keys::NewKeyRow {
                id: id.as_str(),
                user_id: owner.as_str(),
                name,
                prefix: secret.prefix(),
                key_hash: &secret.sha256_hex(),
                scopes: &stored_scopes,
                expires_at,
                created_at: now,
            },
        )?;
        if inserted {
            return Ok(IssuedKey {
                id,
                secret,
                name: name.to_string(),
                scopes,
                expires_at,
            });
        }
    }
    Err(AppError::internal(
        "could not find a free API key prefix after several attempts",
    ))
}

fn expiry_details(at: Option<NaiveDateTime>) -> serde_json::Value {
    at.map_or(serde_json::Value::Null, |t| {
        serde_json::Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    })
}

/// Issues a key for `owner` and audits `api_key.create`, in one transaction.
pub fn create(
    conn: &mut DbConnection,
    owner: &UserId,
    request: &KeyRequest,
    now: NaiveDateTime,
    by: &ChangedBy,
) -> Result<IssuedKey, AppError> {
    let expires_at = request
        .expires_in
        .map(|d| now + TimeDelta::days(i64::from(d.days())));
    write_tx(conn, |conn| {
        let key = insert_key(
            conn,
            owner,
            request.name.as_str(),
            request.scopes,
            expires_at,
            now,
        )?;
        audit::record(
            conn,
            &Event::new(by.actor.clone(), "api_key.create", Outcome::Success)
                .origin(by.origin.clone())
                .target("api_key", key.id.as_str())
                .details(serde_json::json!({
                    "owner": owner.as_str(),
                    "prefix": key.secret.prefix(),
                    "name": key.name,
                    "scopes": key.scopes.to_db_string(),
                    "expires_at": expiry_details(key.expires_at),
                    "via": by.via,
                })),
        )?;
        Ok(key)
    })
}

/// The user's keys, newest first.
pub fn list_for_user(conn: &mut DbConnection, owner: &UserId) -> Result<Vec<ApiKeyRow>, AppError> {
    Ok(repo::api_keys::of_owner(conn, owner.as_str())?)
}

/// One of the user's keys; another user's key is `None`, exactly like a missing one.
fn find_owned(
    conn: &mut DbConnection,
    owner: &UserId,
    id: &ApiKeyId,
) -> Result<Option<ApiKeyRow>, AppError> {
    Ok(repo::api_keys::owned(conn, owner.as_str(), id.as_str())?)
}

#[derive(Debug)]
pub enum Revoked {
    Now(ApiKeyRow),
    Already(ApiKeyRow),
}

/// Revokes one of the owner's keys. Another user's key id is `NotFound`.
pub fn revoke(
    conn: &mut DbConnection,
    owner: &UserId,
    id: &ApiKeyId,
    now: NaiveDateTime,
    by: &ChangedBy,
) -> Result<Revoked, AppError> {
    write_tx(conn, |conn| {
        let Some(row) = find_owned(conn, owner, id)? else {
            return Err(AppError::NotFound);
        };
        if row.revoked_at.is_some() {
            return Ok(Revoked::Already(row));
        }
        mark_revoked(conn, owner, id, now)?;
        audit::record(
            conn,
            &Event::new(by.actor.clone(), "api_key.revoke", Outcome::Success)
                .origin(by.origin.clone())
                .target("api_key", row.id.as_str())
                .details(serde_json::json!({
                    "owner": owner.as_str(),
                    "prefix": row.prefix,
                    "name": row.name,
                    "via": by.via,
                })),
        )?;
        Ok(Revoked::Now(row))
    })
}

fn mark_revoked(
    conn: &mut DbConnection,
    owner: &UserId,
    id: &ApiKeyId,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let changed = repo::api_keys::revoke_owned(conn, owner.as_str(), id.as_str(), now)?;
    if changed {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// Revokes every key of `owner` not yet revoked, in the caller's transaction; returns how
/// many. Disabling an account does this, so enabling it again does not bring old keys back.
pub fn revoke_all_of(
    conn: &mut DbConnection,
    owner: &UserId,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    repo::api_keys::revoke_all_of(conn, owner.as_str(), now)
}

#[derive(Debug)]
pub enum Rotated {
    /// The old key is revoked; here is its replacement.
    Now { old: ApiKeyRow, new: IssuedKey },
    /// A revoked key cannot be rotated (create a new one instead).
    AlreadyRevoked(ApiKeyRow),
}

/// Revokes one of the owner's keys and issues a replacement with the same name, scopes and
/// lifetime (counted from now), in one transaction.
pub fn rotate(
    conn: &mut DbConnection,
    owner: &UserId,
    id: &ApiKeyId,
    now: NaiveDateTime,
    by: &ChangedBy,
) -> Result<Rotated, AppError> {
    write_tx(conn, |conn| {
        let Some(old) = find_owned(conn, owner, id)? else {
            return Err(AppError::NotFound);
        };
        if old.revoked_at.is_some() {
            return Ok(Rotated::AlreadyRevoked(old));
        }
        mark_revoked(conn, owner, id, now)?;
        let lifetime = old.expires_at.map(|at| at - old.created_at);
        let new = insert_key(
            conn,
            owner,
            &old.name,
            old.scope_set(),
            lifetime.map(|d| now + d),
            now,
        )?;
        audit::record(
            conn,
            &Event::new(by.actor.clone(), "api_key.rotate", Outcome::Success)
                .origin(by.origin.clone())
                .target("api_key", old.id.as_str())
                .details(serde_json::json!({
                    "owner": owner.as_str(),
                    "prefix": old.prefix,
                    "new_key_id": new.id.as_str(),
                    "new_prefix": new.secret.prefix(),
                    "scopes": new.scopes.to_db_string(),
                    "expires_at": expiry_details(new.expires_at),
                    "via": by.via,
                })),
        )?;
        Ok(Rotated::Now { old, new })
    })
}

/// An accepted key in use: whose it is, what it may do, and the request it came with (for
/// the audit trail of a refusal).
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub user_id: UserId,
    pub email: String,
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    pub origin: Origin,
    pub method: String,
    pub path: String,
}

impl KeyUse {
    /// `Ok` when the key carries `scope`; otherwise audits `access.denied` and refuses.
    pub async fn require(
        &self,
        db: &crate::infra::db::Database,
        scope: Scope,
    ) -> Result<(), AppError> {
        if self.scopes.contains(scope) {
            return Ok(());
        }
        let event = Event::new(
            Actor::user(self.user_id.as_str(), &self.email),
            "access.denied",
            Outcome::Denied,
        )
        .origin(self.origin.clone())
        .target("api_key", self.key_id.as_str())
        .details(serde_json::json!({
            "method": self.method,
            "path": self.path,
            "needed": format!("scope {}", scope.as_str()),
            "scopes": self.scopes.to_db_string(),
        }));
        db.run(move |conn| audit::record(conn, &event).map_err(AppError::from))
            .await?;
        Err(AppError::Forbidden)
    }
}

/// The owner of an accepted key, as the API sees them.
#[derive(Debug, Clone)]
pub struct KeyOwner {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub scopes: Scopes,
    pub key_id: ApiKeyId,
}

/// Why a presented key was refused. Only the extractor's 401 reaches the client; the reason
/// goes to the audit trail when the key's row is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongSecret,
    Revoked,
    Expired,
    OwnerDisabled,
    AdminWithoutTotp,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::WrongSecret => "wrong secret for this prefix",
            Self::Revoked => "key revoked",
            Self::Expired => "key expired",
            Self::OwnerDisabled => "owner account disabled",
            Self::AdminWithoutTotp => "owner is an administrator without two-factor authentication",
        }
    }
}

/// Checks a presented key: known prefix, matching hash (compared in constant time), not
/// revoked, not expired, owner enabled and, for an administrator, with TOTP enrolled (a
/// password alone must not reach every bucket). `None` for any refusal. Refusals of a key whose row
/// exists are audited (`api_key.authenticate`); unknown prefixes are not, as there is nothing
/// to attribute them to.
pub fn authenticate(
    conn: &mut DbConnection,
    presented: &ApiKeySecret,
    now: NaiveDateTime,
    origin: &Origin,
    anonymous: &Refusals,
) -> Result<Option<KeyOwner>, AppError> {
    let Some(found) = repo::api_keys::by_prefix_with_owner(conn, presented.prefix())? else {
        return Ok(None);
    };
    let repo::api_keys::WithOwner {
        key: row,
        email,
        role,
        disabled,
        totp_enabled,
    } = found;
    let role = Role::parse(&role).map_err(|_| AppError::internal("unknown role in users table"))?;
    let refusal = if !hashes_match(&row.key_hash, &presented.sha256_hex()) {
        Some(Refusal::WrongSecret)
    } else if row.revoked_at.is_some() {
        Some(Refusal::Revoked)
    } else if row.expires_at.is_some_and(|at| at <= now) {
        Some(Refusal::Expired)
    } else if disabled {
        Some(Refusal::OwnerDisabled)
    } else if role == Role::Admin && !totp_enabled {
        Some(Refusal::AdminWithoutTotp)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        // Someone holding the real key is its owner's script; a wrong secret is anyone, and
        // is counted like other anonymous refusals rather than stored each time.
        let (actor, outcome) = match refusal {
            Refusal::WrongSecret => (Actor::anonymous(), Outcome::Failure),
            _ => (Actor::user(row.user_id.as_str(), &email), Outcome::Denied),
        };
        let event = Event::new(actor, "api_key.authenticate", outcome)
            .origin(origin.clone())
            .target("api_key", row.id.as_str())
            .details(serde_json::json!({
                "prefix": row.prefix,
                "reason": refusal.as_str(),
            }));
        let verdict = match refusal {
            Refusal::WrongSecret => {
                let ip = origin.ip.as_deref().and_then(|ip| ip.parse().ok());
                anonymous.admit(ip, refusal.as_str(), now.and_utc().timestamp())
            }
            _ => Verdict {
                record: true,
                summary: None,
            },
        };
        for event in verdict
            .summary
            .iter()
            .chain(verdict.record.then_some(&event))
        {
            audit::record(conn, event)?;
        }
        return Ok(None);
    }
    let stale_before = now - TimeDelta::seconds(LAST_USED_GRANULARITY_SECS);
    if row.last_used_at.is_none_or(|at| at < stale_before) {
        repo::api_keys::touch_last_used(conn, &row.id, stale_before, now)?;
    }
    Ok(Some(KeyOwner {
        user_id: UserId::from_db(row.user_id.clone()),
        email,
        role,
        scopes: row.scope_set(),
        key_id: row.key_id(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_trimmed_and_bounded() {
        assert_eq!(
            KeyName::parse("  nightly export ").unwrap().as_str(),
            "nightly export"
        );
        assert_eq!(KeyName::parse(" ").unwrap_err().message, "is required");
        assert!(KeyName::parse(&"x".repeat(64)).is_ok());
        assert!(KeyName::parse(&"x".repeat(65)).is_err());
        assert!(KeyName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn expiry_is_one_to_365_days_or_none() {
        assert_eq!(ExpiryDays::parse_optional("").unwrap(), None);
        assert_eq!(
            ExpiryDays::parse_optional(" 30 ").unwrap().unwrap().days(),
            30
        );
        assert!(ExpiryDays::parse_optional("365").unwrap().is_some());
        for bad in ["0", "366", "-1", "1.5", "ten", "99999999"] {
            let err = ExpiryDays::parse_optional(bad).unwrap_err();
            assert_eq!(err.field, "expires_days", "{bad}");
        }
    }
}
