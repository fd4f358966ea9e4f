//! Checking a second factor for a change to the account: a current TOTP code, or a
//! recovery code where the form allows one.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::ExposeSecret;

use crate::app::accounts::recovery_codes::StoredCodes;
use crate::app::accounts::totp::{self, TotpSecret};
use crate::app::accounts::{throttle, users};
use crate::app::audit::{self, Event, Outcome};
use crate::app::error::AppError;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::DbConnection;
use crate::infra::db::schema::users as user_cols;
use crate::web::extractors::CurrentUser;
use crate::web::routes::account::Refused;

pub(super) const WRONG_CODE: &str =
    "That code is not right. Check the time on your device and enter the code now shown.";
const REPLAYED_CODE: &str =
    "This code has already been used. Wait for the next code and try again.";

/// Why a password or code was not accepted.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    Throttled(NaiveDateTime),
    WrongCode,
    ReplayedCode,
}

impl Refusal {
    pub(super) fn message(self, now: NaiveDateTime) -> String {
        match self {
            Self::Throttled(until) => throttle::wait_message(until, now),
            Self::WrongCode => WRONG_CODE.into(),
            Self::ReplayedCode => REPLAYED_CODE.into(),
        }
    }

    pub(super) fn answer(self, now: NaiveDateTime) -> Refused {
        match self {
            Self::Throttled(until) => Refused::Throttled { until, now },
            Self::WrongCode | Self::ReplayedCode => Refused::Invalid,
        }
    }
}

/// A current TOTP code (each time step accepted once), or a recovery code where allowed,
/// checked inside the caller's write transaction. Wrong codes count against the sign-in
/// throttle and are audited in the same transaction.
pub(super) struct SecondFactorCheck {
    user_id: String,
    actor: audit::Actor,
    origin: audit::Origin,
    throttle_key: String,
    keyring: Keyring,
    code: String,
    unix: i64,
    now: NaiveDateTime,
    accept_recovery_code: bool,
}

impl SecondFactorCheck {
    pub(super) fn new(
        user: &CurrentUser,
        keyring: &Keyring,
        code: String,
        unix: i64,
        now: NaiveDateTime,
        accept_recovery_code: bool,
    ) -> Self {
        Self {
            user_id: user.id.as_str().to_string(),
            actor: user.actor(),
            origin: user.origin(),
            throttle_key: throttle::key_for_input(&user.email),
            keyring: keyring.clone(),
            code,
            unix,
            now,
            accept_recovery_code,
        }
    }

    pub(super) fn run(
        &self,
        conn: &mut DbConnection,
        action: &'static str,
    ) -> Result<Result<(), Refusal>, AppError> {
        let row: users::UserRow = user_cols::table
            .find(self.user_id.as_str())
            .select(users::UserRow::as_select())
            .first(conn)?;
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
            let claimed = diesel::update(
                user_cols::table.find(&row.id).filter(
                    user_cols::totp_last_step
                        .is_null()
                        .or(user_cols::totp_last_step.lt(step)),
                ),
            )
            .set(user_cols::totp_last_step.eq(step))
            .execute(conn)?;
            if claimed == 1 {
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
            diesel::update(user_cols::table.find(&row.id))
                .set(user_cols::recovery_codes.eq(rest.to_json()))
                .execute(conn)?;
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
                .target("user", self.user_id.clone())
                .details(serde_json::json!({ "reason": reason })),
        )?;
        Ok(())
    }
}
