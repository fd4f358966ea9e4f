//! The users table, as pages show it (never the hash, seed or recovery codes).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::users;
use crate::infra::db::{DbConnection, DbError};

/// Emails of the given users, by id; ids of accounts that no longer exist are absent.
pub fn emails_by_id(
    conn: &mut DbConnection,
    ids: &[&str],
) -> Result<HashMap<String, String>, DbError> {
    let rows: Vec<(String, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::email))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// The columns the admin pages read: never the hash, seed or recovery codes.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct AdminView {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    #[diesel(select_expression = users::totp_secret_sealed.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<users::totp_secret_sealed>)]
    pub totp_enabled: bool,
    pub must_change_password: bool,
    pub created_at: NaiveDateTime,
    pub password_changed_at: NaiveDateTime,
}

/// Every account, by email.
pub fn admin_views(conn: &mut DbConnection) -> Result<Vec<AdminView>, DbError> {
    Ok(users::table
        .select(AdminView::as_select())
        .order(users::email.asc())
        .load(conn)?)
}

/// One account, if it exists.
pub fn admin_view(conn: &mut DbConnection, id: &str) -> Result<Option<AdminView>, DbError> {
    Ok(users::table
        .find(id)
        .select(AdminView::as_select())
        .first(conn)
        .optional()?)
}

/// Records TOTP time step `step` as used, unless it is not newer than the last one used:
/// each step is accepted once. `true` when this call claimed it.
pub fn claim_totp_step(conn: &mut DbConnection, id: &str, step: i64) -> Result<bool, DbError> {
    let claimed = diesel::update(
        users::table.find(id).filter(
            users::totp_last_step
                .is_null()
                .or(users::totp_last_step.lt(step)),
        ),
    )
    .set(users::totp_last_step.eq(step))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Replaces the stored recovery codes (their hashes, as JSON).
pub fn set_recovery_codes(conn: &mut DbConnection, id: &str, codes: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set(users::recovery_codes.eq(codes))
        .execute(conn)?;
    Ok(())
}

/// Turns two-factor authentication on, only for an account without a seed (a parallel
/// enrolment cannot overwrite one): the sealed seed, the confirming code's time step (so it
/// cannot be replayed) and the recovery codes. `true` when the account was changed.
pub fn enable_totp(
    conn: &mut DbConnection,
    id: &str,
    sealed_seed: Vec<u8>,
    step: i64,
    recovery_codes: String,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        users::table
            .find(id)
            .filter(users::totp_secret_sealed.is_null()),
    )
    .set((
        users::totp_secret_sealed.eq(Some(sealed_seed)),
        users::totp_last_step.eq(Some(step)),
        users::recovery_codes.eq(Some(recovery_codes)),
        users::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n != 0)
}

/// Replaces the recovery codes (their hashes, as JSON) at the owner's request.
pub fn renew_recovery_codes(
    conn: &mut DbConnection,
    id: &str,
    recovery_codes: String,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::recovery_codes.eq(Some(recovery_codes)),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Turns two-factor authentication off: seed, last step and recovery codes go; the password
/// must be changed when `must_change_password`.
pub fn disable_totp(
    conn: &mut DbConnection,
    id: &str,
    must_change_password: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::totp_secret_sealed.eq(None::<Vec<u8>>),
            users::totp_last_step.eq(None::<i64>),
            users::recovery_codes.eq(None::<String>),
            users::must_change_password.eq(must_change_password),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
