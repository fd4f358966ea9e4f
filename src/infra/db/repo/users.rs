//! The users table, as pages show it (never the hash, seed or recovery codes).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::domain::role::Role;
use crate::infra::db::schema::users;
use crate::infra::db::{DbConnection, DbError};

/// A whole account row, for the sign-in and account code (never for a page as is).
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub disabled: bool,
    pub totp_secret_sealed: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
    pub recovery_codes: Option<String>,
    pub password_changed_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

// Hand-written so a hash or a sealed seed can never end up in a log line.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// The account with this (case-folded) email, if any.
pub fn by_email(conn: &mut DbConnection, email: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// The account with this id, if any.
pub fn by_id(conn: &mut DbConnection, id: &str) -> Result<Option<UserRow>, DbError> {
    Ok(super::on_backend!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .first(c)
        .optional())?)
}

/// A new, enabled account.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUserRow<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub must_change_password: bool,
    pub disabled: bool,
    pub password_changed_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Inserts an account; `false` when a unique column (the email) is already taken.
pub fn insert(conn: &mut DbConnection, new: &NewUserRow<'_>) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(users::table).values(new).execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sets a new password hash, and whether it must be changed at the next sign-in.
pub fn set_password(
    conn: &mut DbConnection,
    id: &str,
    password_hash: &str,
    must_change: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(password_hash),
            users::must_change_password.eq(must_change),
            users::password_changed_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Administrators not disabled.
pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}

/// Counts the active administrators. On PostgreSQL their rows stay locked (taken in id
/// order, so concurrent changes queue instead of deadlocking) until the transaction ends;
/// SQLite has no row locks (its write transaction admits a single writer).
pub fn lock_active_admins(conn: &mut DbConnection) -> Result<usize, DbError> {
    let active = users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .order(users::id.asc())
        .select(users::id);
    let ids: Vec<String> = match conn {
        DbConnection::Postgresql(pg) => active.for_update().load(pg)?,
        other => active.load(other)?,
    };
    Ok(ids.len())
}

/// Sets the role.
pub fn set_role(
    conn: &mut DbConnection,
    id: &str,
    role: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((users::role.eq(role), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Disables or enables the account.
pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    disabled: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Removes the TOTP seed, the last used step and the recovery codes, and requires a new
/// password at the next sign-in.
pub fn reset_totp(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::totp_secret_sealed.eq(None::<Vec<u8>>),
            users::totp_last_step.eq(None::<i64>),
            users::recovery_codes.eq(None::<String>),
            users::must_change_password.eq(true),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// An account id and its sealed TOTP seed.
pub type SealedSeed = (String, Option<Vec<u8>>);

/// Every stored TOTP seed (sealed), with its account id.
pub fn sealed_totp_seeds(conn: &mut DbConnection) -> Result<Vec<SealedSeed>, DbError> {
    Ok(users::table
        .select((users::id, users::totp_secret_sealed))
        .filter(users::totp_secret_sealed.is_not_null())
        .load(conn)?)
}

/// Replaces the sealed TOTP seed (re-sealed under another key).
pub fn set_sealed_totp_seed(
    conn: &mut DbConnection,
    id: &str,
    sealed: Vec<u8>,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set(users::totp_secret_sealed.eq(Some(sealed)))
        .execute(conn)?;
    Ok(())
}

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
