//! Changes to one's own two-factor authentication: turning it on, new recovery codes and
//! turning it off, each with its audit event in one write transaction. Changes made with
//! it on are confirmed by a second factor ([`SecondFactorCheck`]) checked in that same
//! transaction.

use chrono::NaiveDateTime;
use secrecy::ExposeSecret;

use crate::app::accounts::recovery_codes::StoredCodes;
use crate::app::accounts::totp::{self, TotpSecret};
use crate::app::accounts::{throttle, users};
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::UserId;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::repo::users as user_rows;
use crate::infra::db::{Database, DbConnection, write_tx};

pub const WRONG_CODE: &str =
    "That code is not right. Check the time on your device and enter the code now shown.";
const REPLAYED_CODE: &str =
    "This code has already been used. Wait for the next code and try again.";

/// Why a password or code was not accepted.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    Throttled(NaiveDateTime),
    WrongCode,
    ReplayedCode,
}

impl Refusal {
    pub fn message(self, now: NaiveDateTime) -> String {
        match self {
            Self::Throttled(until) => throttle::wait_message(until, now),
            Self::WrongCode => WRONG_CODE.into(),
            Self::ReplayedCode => REPLAYED_CODE.into(),
        }
    }
}

/// The signed-in owner of the account, as a check and the audit trail name them.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: UserId,
    pub email: String,
    pub actor: Actor,
    pub origin: Origin,
}

/// A current TOTP code (each time step accepted once), or a recovery code where allowed,
/// checked inside the change's write transaction. Wrong codes count against the sign-in
/// throttle and are audited in the same transaction.
pub struct SecondFactorCheck {
    user_id: UserId,
    actor: Actor,
    origin: Origin,
    throttle_key: String,
    keyring: Keyring,
    code: String,
    unix: i64,
    now: NaiveDateTime,
    accept_recovery_code: bool,
}

impl SecondFactorCheck {
    pub fn new(
        owner: &Owner,
        keyring: &Keyring,
        code: String,
        unix: i64,
        now: NaiveDateTime,
        accept_recovery_code: bool,
    ) -> Self {
        Self {
            user_id: owner.id.clone(),
            actor: owner.actor.clone(),
            origin: owner.origin.clone(),
            throttle_key: throttle::key_for_input(&owner.email),
            keyring: keyring.clone(),
            code,
            unix,
            now,
            accept_recovery_code,
        }
    }

    fn run(
        &self,
        conn: &mut DbConnection,
        action: &'static str,
    ) -> Result<Result<(), Refusal>, AppError> {
        let row = users::find_by_id(conn, &self.user_id)?.ok_or(AppError::NotFound)?;
        let Some(sealed) = row.totp_secret_sealed.as_deref() else {
            return Err(AppError::SeeOther("/account/totp".into()));
        };
        let ctx = SealContext {
            table: "users",
            row_id: &row.id,
            field: "totp_secret",
        };
        let seed = secrets::open(&self.keyring, &ctx, sealed).map_err(AppError::internal)?;
        let secret = TotpSecret::from_bytes(seed.expose_secret())
            .ok_or_else(|| AppError::internal("stored TOTP seed has the wrong length"))?;

        if let Some(step) = totp::verify(&secret, &self.code, self.unix) {
            if user_rows::claim_totp_step(conn, &row.id, step)? {
                throttle::clear(conn, &self.throttle_key)?;
                return Ok(Ok(()));
            }
            self.audit_failure(conn, action, "code already used")?;
            return Ok(Err(Refusal::ReplayedCode));
        }
        if self.accept_recovery_code
            && let Some(rest) = row
                .recovery_codes
                .as_deref()
                .and_then(StoredCodes::from_json)
                .and_then(|stored| stored.consume(&self.code))
        {
            user_rows::set_recovery_codes(conn, &row.id, &rest.to_json())?;
            throttle::clear(conn, &self.throttle_key)?;
            return Ok(Ok(()));
        }
        let (_, until) = throttle::record_failure(conn, &self.throttle_key, self.now)?;
        self.audit_failure(conn, action, "wrong code")?;
        Ok(Err(until.map_or(Refusal::WrongCode, Refusal::Throttled)))
    }

    fn audit_failure(
        &self,
        conn: &mut DbConnection,
        action: &'static str,
        reason: &str,
    ) -> Result<(), AppError> {
        audit::record(
            conn,
            &Event::new(self.actor.clone(), action, Outcome::Failure)
                .origin(self.origin.clone())
                .target("user", self.user_id.as_str())
                .details(serde_json::json!({ "reason": reason })),
        )?;
        Ok(())
    }
}

/// What turning two-factor authentication on stores.
pub struct Enrolment {
    pub sealed_seed: Vec<u8>,
    /// The confirming code's time step: it cannot be replayed at the next sign-in.
    pub step: i64,
    /// The new recovery codes' hashes, as JSON.
    pub recovery_codes: String,
    /// The session to keep (the one enrolling); the owner's others end.
    pub keep_session: Option<String>,
    pub is_admin: bool,
}

/// Turns two-factor authentication on, unless the account already has a seed (`false`).
/// Other sessions end, and an administrator's API keys are revoked.
pub async fn enrol(
    db: &Database,
    owner: &Owner,
    enrolment: Enrolment,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let id = owner.id.clone();
    let event = Event::new(owner.actor.clone(), "totp.enrol", Outcome::Success)
        .origin(owner.origin.clone())
        .target("user", owner.id.as_str());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let Enrolment {
                sealed_seed,
                step,
                recovery_codes,
                keep_session,
                is_admin,
            } = enrolment;
            // Only an account without a seed: a parallel enrolment cannot overwrite one.
            if !user_rows::enable_totp(conn, id.as_str(), sealed_seed, step, recovery_codes, now)? {
                return Ok::<_, AppError>(false);
            }
            // Sessions opened with the password alone must not gain what the second
            // factor now guards (for admins: the admin pages).
            let ended = users::end_sessions(conn, &id, keep_session.as_deref())?;
            // An administrator's keys were minted with the password alone (they do not
            // authenticate without TOTP, and must not start to now).
            let keys_revoked = if is_admin {
                crate::app::accounts::api_keys::revoke_all_of(conn, &id, now)?
            } else {
                0
            };
            audit::record(
                conn,
                &event.details(serde_json::json!({
                    "other_sessions_ended": ended,
                    "api_keys_revoked": keys_revoked,
                })),
            )?;
            Ok(true)
        })
    })
    .await
}

/// Replaces the recovery codes once `check` passes.
pub async fn renew_recovery_codes(
    db: &Database,
    owner: &Owner,
    check: SecondFactorCheck,
    recovery_codes: String,
    count: usize,
    now: NaiveDateTime,
) -> Result<Result<(), Refusal>, AppError> {
    let event = Event::new(owner.actor.clone(), "totp.recovery_codes", Outcome::Success)
        .origin(owner.origin.clone())
        .target("user", owner.id.as_str())
        .details(serde_json::json!({ "count": count }));
    let id = owner.id.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            if let Err(refusal) = check.run(conn, "totp.recovery_codes")? {
                return Ok::<_, AppError>(Err(refusal));
            }
            user_rows::renew_recovery_codes(conn, id.as_str(), recovery_codes, now)?;
            audit::record(conn, &event)?;
            Ok(Ok(()))
        })
    })
    .await
}

/// Turns two-factor authentication off once `check` passes; `weak` asks for a new
/// password next.
pub async fn disable(
    db: &Database,
    owner: &Owner,
    check: SecondFactorCheck,
    weak: bool,
    now: NaiveDateTime,
) -> Result<Result<(), Refusal>, AppError> {
    let event = Event::new(owner.actor.clone(), "totp.disable", Outcome::Success)
        .origin(owner.origin.clone())
        .target("user", owner.id.as_str())
        .details(serde_json::json!({ "password_change_required": weak }));
    let id = owner.id.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            if let Err(refusal) = check.run(conn, "totp.disable")? {
                return Ok::<_, AppError>(Err(refusal));
            }
            user_rows::disable_totp(conn, id.as_str(), weak, now)?;
            audit::record(conn, &event)?;
            Ok(Ok(()))
        })
    })
    .await
}
