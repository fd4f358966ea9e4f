//! The changes an administrator makes to other accounts: creating one, and the actions on
//! one account (role, disable / enable, one-time password, sign-out everywhere, two-factor
//! reset). Each change commits with its audit event in one write transaction; a change
//! refused by a rule is audited too. Callers prove who they are with `Admin` (an
//! administrator with TOTP).
//!
//! Disabling an account also revokes its API keys, in the same transaction: a key refused
//! only while its owner is disabled would work again the moment the account is enabled.
//!
//! The last active administrator can be neither demoted nor disabled. The check counts the
//! active administrators inside the transaction that makes the change: SQLite's
//! `BEGIN IMMEDIATE` admits one writer at a time, and on PostgreSQL the active
//! administrators' rows are locked first, so two admins demoting each other at the same
//! moment are serialised and the second is refused.
//!
//! An administrator cannot reset their own two-factor authentication: without it the
//! `Admin` check would lock them out of the admin pages mid-session. Another administrator
//! must do it.

use chrono::NaiveDateTime;
use serde_json::json;

use crate::app::accounts::ActingAdmin;
use crate::app::accounts::api_keys;
use crate::app::accounts::users::{self, CreateUserError, NewUser};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::role::Role;
use crate::infra::db::{Database, DbConnection, DbError, repo, write_tx};

const LAST_ADMIN: &str = "There must always be at least one active administrator.";
const EMAIL_TAKEN: &str = "An account with this email address already exists.";
const OWN_TWO_FACTOR: &str = "You cannot reset your own two-factor authentication: without it you would be locked out of the admin pages at once. Another administrator must do it.";

/// One change to an existing account.
pub enum Action {
    SetRole(Role),
    Disable,
    Enable,
    /// A new one-time password (bcrypt hash): must be changed at the next sign-in.
    ResetPassword(String),
    RevokeSessions,
    /// Removes the TOTP seed, the last used step and the recovery codes, for a user who
    /// has lost their authenticator.
    ResetTotp,
}

impl Action {
    pub fn audit_name(&self) -> &'static str {
        match self {
            Self::SetRole(_) => "user.role_change",
            Self::Disable => "user.disable",
            Self::Enable => "user.enable",
            Self::ResetPassword(_) => "user.password_reset",
            Self::RevokeSessions => "session.revoke",
            Self::ResetTotp => "user.totp_reset",
        }
    }

    fn may_remove_an_admin(&self) -> bool {
        matches!(self, Self::Disable) || matches!(self, Self::SetRole(r) if *r != Role::Admin)
    }

    fn ends_sessions(&self) -> bool {
        !matches!(self, Self::Enable)
    }
}

/// What an action did.
pub enum Change {
    Done {
        email: String,
        sessions_ended: usize,
        /// Keys revoked by disabling the account.
        api_keys_revoked: usize,
    },
    Unchanged {
        email: String,
    },
}

/// A rule the admin can act on, as opposed to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    EmailTaken,
    LastAdmin,
    OwnTwoFactor,
}

impl Refusal {
    /// For the page, written for the administrator.
    pub fn message(&self) -> &'static str {
        match self {
            Self::EmailTaken => EMAIL_TAKEN,
            Self::LastAdmin => LAST_ADMIN,
            Self::OwnTwoFactor => OWN_TWO_FACTOR,
        }
    }

    /// For the audit trail.
    fn reason(&self) -> &'static str {
        match self {
            Self::EmailTaken => "email address taken",
            Self::LastAdmin => "last active administrator",
            Self::OwnTwoFactor => "own two-factor authentication",
        }
    }
}

/// The action (handed back for the answer) and what became of it.
pub struct Applied {
    pub action: Action,
    pub result: Result<Change, Refusal>,
}

type Failure = crate::app::error::Refusable<Refusal>;

/// Who makes a change: their id for the rules about one's own account, and how the audit
/// trail names them.
struct By {
    id: UserId,
    actor: Actor,
    origin: Origin,
}

impl By {
    fn admin(admin: &ActingAdmin) -> Self {
        Self {
            id: admin.id.clone(),
            actor: admin.actor.clone(),
            origin: admin.origin.clone(),
        }
    }
}

/// Creates an account that must choose its own password at the first sign-in. An address
/// already in use (in any letter case: addresses are stored folded) is refused.
pub async fn create_account(
    db: &Database,
    admin: &ActingAdmin,
    email: &Email,
    role: Role,
    password_hash: String,
    now: NaiveDateTime,
) -> Result<Result<UserId, Refusal>, AppError> {
    let event = Event::new(admin.actor.clone(), "user.create", Outcome::Success)
        .origin(admin.origin.clone())
        .details(json!({ "email": email.as_str(), "role": role.as_str() }));
    let new_email = email.clone();
    let created = db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let new = NewUser {
                    email: &new_email,
                    role,
                    password_hash: &password_hash,
                    must_change_password: true,
                };
                let id = users::create(conn, &new, now).map_err(|e| match e {
                    CreateUserError::EmailTaken => Failure::Refused(Refusal::EmailTaken),
                    CreateUserError::Db(e) => Failure::Error(e.into()),
                })?;
                audit::record(conn, &event.target("user", id.as_str()))?;
                Ok(id)
            })
        })
        .await;
    match created {
        Ok(id) => Ok(Ok(id)),
        Err(Failure::Refused(refusal)) => Ok(Err(refusal)),
        Err(Failure::Error(e)) => Err(e),
    }
}

/// Runs one action in a write transaction. A refusal is audited after the rollback.
/// `keep_session` (the stored hash of the admin's own session) survives an action that
/// ends sessions.
pub async fn apply(
    db: &Database,
    admin: &ActingAdmin,
    id: &UserId,
    action: Action,
    keep_session: Option<String>,
    now: NaiveDateTime,
) -> Result<Applied, AppError> {
    let by = By::admin(admin);
    let target = id.clone();
    let (action, result) = db
        .run(move |conn| {
            let result = write_tx(conn, |conn| {
                change(conn, &target, &action, keep_session.as_deref(), by, now)
            });
            Ok::<_, DbError>((action, result))
        })
        .await?;
    let result = match result {
        Ok(change) => Ok(change),
        Err(Failure::Refused(refusal)) => {
            record_refusal(db, admin, id, &action, refusal).await?;
            Err(refusal)
        }
        Err(Failure::Error(e)) => return Err(e),
    };
    Ok(Applied { action, result })
}

/// The whole of one action, inside the caller's write transaction: look up, check the
/// rules, change, end sessions, audit.
fn change(
    conn: &mut DbConnection,
    id: &UserId,
    action: &Action,
    keep_session: Option<&str>,
    by: By,
    now: NaiveDateTime,
) -> Result<Change, Failure> {
    // Locks first (PostgreSQL), then the read, so the read sees any change just committed.
    let active_admins = if action.may_remove_an_admin() {
        // On PostgreSQL their rows stay locked until the transaction ends; on SQLite
        // `write_tx` already admits a single writer.
        repo::users::lock_active_admins(conn)?
    } else {
        0
    };
    let user = users::find_by_id(conn, id)?.ok_or(AppError::NotFound)?;
    if matches!(action, Action::ResetTotp) && by.id == *id {
        return Err(Failure::Refused(Refusal::OwnTwoFactor));
    }
    let email = user.email.clone();
    let from = user.role()?;
    let unchanged = match action {
        Action::SetRole(to) => *to == from,
        Action::Disable => user.disabled,
        Action::Enable => !user.disabled,
        Action::ResetTotp => !user.totp_enabled(),
        Action::ResetPassword(_) | Action::RevokeSessions => false,
    };
    if unchanged {
        return Ok(Change::Unchanged { email });
    }
    if action.may_remove_an_admin() && from == Role::Admin && !user.disabled && active_admins <= 1 {
        return Err(Failure::Refused(Refusal::LastAdmin));
    }

    let mut api_keys_revoked = 0;
    let mut details = match action {
        Action::SetRole(to) => {
            repo::users::set_role(conn, id.as_str(), to.as_str(), now)?;
            json!({ "from": from.as_str(), "to": to.as_str() })
        }
        Action::Disable => {
            repo::users::set_disabled(conn, id.as_str(), true, now)?;
            // Revoked, not just refused while disabled: enabling must not revive them.
            api_keys_revoked = api_keys::revoke_all_of(conn, id, now)?;
            json!({ "api_keys_revoked": api_keys_revoked })
        }
        Action::Enable => {
            repo::users::set_disabled(conn, id.as_str(), false, now)?;
            json!({})
        }
        Action::ResetPassword(hash) => {
            users::set_password(conn, id, hash, true, now)?;
            json!({ "must_change_password": true })
        }
        Action::RevokeSessions => json!({}),
        Action::ResetTotp => {
            // The password may be as short as 8 characters, which is allowed only with
            // two-factor on: the user must choose a new one at the next sign-in.
            repo::users::reset_totp(conn, id.as_str(), now)?;
            json!({ "role": from.as_str(), "must_change_password": true })
        }
    };
    let sessions_ended = if action.ends_sessions() {
        users::end_sessions(conn, id, keep_session)?
    } else {
        0
    };
    if action.ends_sessions() {
        let key = if matches!(action, Action::RevokeSessions) {
            "count"
        } else {
            "sessions_ended"
        };
        details[key] = json!(sessions_ended);
    }
    let event = Event::new(by.actor, action.audit_name(), Outcome::Success)
        .origin(by.origin)
        .target("user", id.as_str())
        .details(details);
    audit::record(conn, &event)?;
    Ok(Change::Done {
        email,
        sessions_ended,
        api_keys_revoked,
    })
}

/// A refused attempt is recorded too (the change itself was rolled back).
async fn record_refusal(
    db: &Database,
    admin: &ActingAdmin,
    id: &UserId,
    action: &Action,
    refusal: Refusal,
) -> Result<(), AppError> {
    let mut details = json!({ "reason": refusal.reason() });
    if let Action::SetRole(to) = action {
        details["to"] = json!(to.as_str());
    }
    let event = Event::new(admin.actor.clone(), action.audit_name(), Outcome::Denied)
        .origin(admin.origin.clone())
        .target("user", id.as_str())
        .details(details);
    db.run(move |conn| write_tx(conn, |conn| audit::record(conn, &event).map(drop)))
        .await
        .map_err(AppError::from)
}
