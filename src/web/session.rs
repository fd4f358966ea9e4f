//! Reading and writing the signed-in state of a browser session.

use actix_session::Session;

use crate::app::accounts::single_sign_on::Pending;
use crate::app::error::AppError;
use crate::domain::ids::{SubmissionId, UserId};
use crate::web::session_store::keys;
use crate::web::views::Flash;

const CSRF: &str = "csrf";
pub const PENDING_USER: &str = "pending_uid";
pub const PENDING_SINCE: &str = "pending_since";
/// A sign-in through the provider under way (`Started`).
const SSO_STARTED: &str = "sso_started";
/// Signed in through the provider (sign-out goes there too); carried through the TOTP step.
const SSO: &str = "sso";
/// The provider's second factor counts for this session (admins need no medport TOTP).
const SSO_MFA: &str = "sso_mfa";
/// A sender's visit through an upload request: the submission whose id is their whole
/// right to upload.
const SENDING: &str = "sending";
/// The visit this browser finished: its receipt, and nothing else, stays readable.
const SENT: &str = "sent";

pub fn random_token() -> Result<String, AppError> {
    crate::infra::crypto::random_token().map_err(AppError::internal)
}

fn insert<T: serde::Serialize>(session: &Session, key: &str, value: T) -> Result<(), AppError> {
    session
        .insert(key, value)
        .map_err(|e| AppError::internal(format!("session insert: {e}")))
}

/// The session's CSRF token, created on first use.
pub fn csrf_token(session: &Session) -> Result<String, AppError> {
    if let Ok(Some(token)) = session.get::<String>(CSRF) {
        return Ok(token);
    }
    let token = random_token()?;
    insert(session, CSRF, &token)?;
    Ok(token)
}

/// Only reads: `None` when the session has no token (so nothing can match it).
pub fn existing_csrf_token(session: &Session) -> Option<String> {
    session.get::<String>(CSRF).ok().flatten()
}

pub fn user_id(session: &Session) -> Option<UserId> {
    session
        .get::<String>(keys::USER_ID)
        .ok()
        .flatten()
        .and_then(|id| UserId::parse(&id))
}

/// A new session id and CSRF token after a privilege change (password change, TOTP
/// enrolment). The absolute lifetime keeps counting from sign-in.
pub fn renew(session: &Session) -> Result<(), AppError> {
    session.renew();
    insert(session, CSRF, random_token()?)
}

/// Full sign-in: a new session id (the old one is deleted), a new CSRF token, a fresh
/// absolute lifetime, and the user recorded with the address and browser for the list.
pub fn sign_in(
    session: &Session,
    user: &UserId,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<(), AppError> {
    session.renew();
    session.remove(keys::CREATED);
    session.remove(PENDING_USER);
    session.remove(PENDING_SINCE);
    session.remove(keys::EXPIRED);
    remove_present(session, SSO);
    remove_present(session, SSO_MFA);
    remove_present(session, SSO_STARTED);
    insert(session, keys::USER_ID, user.as_str())?;
    insert(session, CSRF, random_token()?)?;
    if let Some(ip) = ip {
        insert(session, keys::IP, ip)?;
    }
    if let Some(ua) = user_agent {
        insert(session, keys::USER_AGENT, ua)?;
    }
    Ok(())
}

/// First step passed, TOTP still to come: nothing is granted yet.
pub fn begin_second_factor(session: &Session, user: &UserId, now: i64) -> Result<(), AppError> {
    session.renew();
    session.remove(keys::USER_ID);
    remove_present(session, SSO);
    remove_present(session, SSO_MFA);
    insert(session, PENDING_USER, user.as_str())?;
    insert(session, PENDING_SINCE, now)?;
    Ok(())
}

pub fn pending_user(session: &Session, now: i64, max_age_secs: i64) -> Option<UserId> {
    let since = session.get::<i64>(PENDING_SINCE).ok().flatten()?;
    if now - since > max_age_secs {
        return None;
    }
    session
        .get::<String>(PENDING_USER)
        .ok()
        .flatten()
        .and_then(|id| UserId::parse(&id))
}

/// True once, after the store ended this session for inactivity or age.
pub fn take_expired(session: &Session) -> bool {
    remove_present(session, keys::EXPIRED).is_some()
}

/// Removes `key` only when it is there: a removal marks the session changed even for an
/// absent key, and a changed session is written back, so every page view would write.
fn remove_present(session: &Session, key: &str) -> Option<String> {
    if session.contains_key(key) {
        session.remove(key)
    } else {
        None
    }
}

pub fn flash(session: &Session, kind: &'static str, message: impl Into<String>) {
    let mut all: Vec<(String, String)> =
        session.get(keys::FLASH).ok().flatten().unwrap_or_default();
    all.push((kind.to_string(), message.into()));
    let _ = session.insert(keys::FLASH, all);
}

pub fn take_flashes(session: &Session) -> Vec<Flash> {
    let all: Vec<(String, String)> = remove_present(session, keys::FLASH)
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or_default();
    all.into_iter()
        .map(|(kind, message)| Flash {
            kind: match kind.as_str() {
                "success" => "success",
                "error" => "error",
                _ => "info",
            },
            message,
        })
        .collect()
}

/// A sign-in through the provider under way: what the callback must match, where the
/// browser goes afterwards, and since when.
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    pending: Pending,
    next: String,
    since: i64,
}

/// Starts a sign-in through the provider: the browser comes back within `max_age` seconds
/// (see `take_single_sign_on`) with the same `state`, or starts again.
pub fn begin_single_sign_on(
    session: &Session,
    pending: &Pending,
    next: &str,
    now: i64,
) -> Result<(), AppError> {
    let started = Started {
        pending: pending.clone(),
        next: next.to_string(),
        since: now,
    };
    insert(session, SSO_STARTED, started)
}

/// The sign-in under way, taken out of the session so that its `state` is used once.
pub fn take_single_sign_on(session: &Session, now: i64, max_age: i64) -> Option<(Pending, String)> {
    let started: Started = serde_json::from_str(&remove_present(session, SSO_STARTED)?).ok()?;
    if now - started.since > max_age || now < started.since {
        return None;
    }
    Some((started.pending, started.next))
}

/// Marks the session as signed in through the provider (and whether its second factor
/// counts). Called after `sign_in` or `begin_second_factor`.
pub fn mark_single_sign_on(session: &Session, provider_mfa: bool) -> Result<(), AppError> {
    insert(session, SSO, true)?;
    if provider_mfa {
        insert(session, SSO_MFA, true)?;
    }
    Ok(())
}

pub fn signed_in_with_provider(session: &Session) -> bool {
    session.get::<bool>(SSO).ok().flatten().unwrap_or(false)
}

pub fn provider_mfa(session: &Session) -> bool {
    session.get::<bool>(SSO_MFA).ok().flatten().unwrap_or(false)
}

/// A sender starts a visit: a new session id and CSRF token, and the submission that is
/// their right to upload.
pub fn start_sending(session: &Session, submission: &SubmissionId) -> Result<(), AppError> {
    session.renew();
    remove_present(session, SENT);
    insert(session, SENDING, submission.as_str())?;
    insert(session, CSRF, random_token()?)
}

pub fn sending(session: &Session) -> Option<SubmissionId> {
    session
        .get::<String>(SENDING)
        .ok()
        .flatten()
        .and_then(|id| SubmissionId::parse(&id))
}

/// The visit is over: no more uploads; its receipt stays readable in this session.
pub fn finish_sending(session: &Session, submission: &SubmissionId) -> Result<(), AppError> {
    remove_present(session, SENDING);
    insert(session, SENT, submission.as_str())
}

pub fn sent(session: &Session) -> Option<SubmissionId> {
    session
        .get::<String>(SENT)
        .ok()
        .flatten()
        .and_then(|id| SubmissionId::parse(&id))
}
