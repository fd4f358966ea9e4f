//! The second sign-in step: a TOTP code (each time step accepted once) or a recovery code
//! (each used once), checked in one write transaction so that two parallel requests cannot
//! both use the same one, and throttled like the password step.

use chrono::NaiveDateTime;

use crate::app::accounts::{recovery_codes, throttle, totp, users};
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::UserId;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::{Database, DbConnection, repo, write_tx};

/// Which factor passed.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor {
    Totp,
    RecoveryCode { remaining: usize },
}

/// The account and the factor that passed; or why not: a message for the user, or `None`
/// when the account went away or was disabled between the two steps.
pub type Checked = Result<(users::UserRow, SecondFactor), Option<String>>;

/// Checks `code` for `user_id`. `throttle_key` names the throttle entry for the account's
/// address (the browser's own when it is trusted for the account).
pub async fn check(
    db: &Database,
    keyring: std::sync::Arc<Keyring>,
    user_id: UserId,
    code: String,
    unix: i64,
    now: NaiveDateTime,
    throttle_key: impl FnOnce(&str) -> String + Send + 'static,
) -> Result<Checked, AppError> {
    db.run(move |conn| {
        write_tx(conn, |conn| {
            check_in(conn, &keyring, &user_id, &code, unix, now, throttle_key)
        })
    })
    .await
}

fn check_in(
    conn: &mut DbConnection,
    keyring: &Keyring,
    user_id: &UserId,
    code: &str,
    unix: i64,
    now: NaiveDateTime,
    throttle_key: impl FnOnce(&str) -> String,
) -> Result<Checked, AppError> {
    let Some(row) = users::find_by_id(conn, user_id)? else {
        return Ok(Err(None));
    };
    if row.disabled {
        return Ok(Err(None));
    }
    let key = throttle_key(&row.email);
    if let Some(until) = throttle::blocked_until(conn, &key, now)? {
        return Ok(Err(Some(throttle::wait_message(until, now))));
    }
    let Some(sealed) = row.totp_secret_sealed.as_deref() else {
        return Ok(Err(None));
    };
    let ctx = SealContext {
        table: "users",
        row_id: &row.id,
        field: "totp_secret",
    };
    let seed = secrets::open(keyring, &ctx, sealed).map_err(AppError::internal)?;
    let secret = totp::TotpSecret::from_bytes(secrecy::ExposeSecret::expose_secret(&seed))
        .ok_or_else(|| AppError::internal("stored TOTP seed has the wrong length"))?;
    let actor = Actor::user(&row.id, &row.email);

    if let Some(step) = totp::verify(&secret, code, unix) {
        // Accept each step once: the update only matches when the step is newer than the
        // last one used.
        if repo::users::claim_totp_step(conn, &row.id, step)? {
            throttle::clear(conn, &key)?;
            return Ok(Ok((row, SecondFactor::Totp)));
        }
        audit::record(
            conn,
            &Event::new(actor, "login.totp", Outcome::Failure)
                .details(serde_json::json!({ "reason": "code already used" })),
        )?;
        return Ok(Err(Some(
            "This code has already been used. Wait for the next code and try again.".into(),
        )));
    }
    if let Some(stored) = row
        .recovery_codes
        .as_deref()
        .and_then(recovery_codes::StoredCodes::from_json)
        && let Some(rest) = stored.consume(code)
    {
        repo::users::set_recovery_codes(conn, &row.id, &rest.to_json())?;
        throttle::clear(conn, &key)?;
        let remaining = rest.remaining();
        return Ok(Ok((row, SecondFactor::RecoveryCode { remaining })));
    }
    let (_, until) = throttle::record_failure(conn, &key, now)?;
    audit::record(
        conn,
        &Event::new(actor, "login.totp", Outcome::Failure)
            .details(serde_json::json!({ "reason": "wrong code" })),
    )?;
    Ok(Err(Some(until.map_or_else(
        || "That code is not right. Check the time on your device and try again.".to_string(),
        |u| throttle::wait_message(u, now),
    ))))
}
