//! User rows: lookups and the changes the account and admin pages make.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::app::error::AppError;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::role::Role;
use crate::infra::db::schema::{sessions, users};
use crate::infra::db::{DbConnection, DbError};

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

impl UserRow {
    pub fn user_id(&self) -> UserId {
        UserId::from_db(self.id.clone())
    }

    pub fn role(&self) -> Result<Role, AppError> {
        Role::parse(&self.role).map_err(|_| AppError::internal("unknown role in users table"))
    }

    pub fn totp_enabled(&self) -> bool {
        self.totp_secret_sealed.is_some()
    }
}

pub fn find_by_email(conn: &mut DbConnection, email: &Email) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::email.eq(email.as_str()))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &UserId) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .find(id.as_str())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email address already exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub struct NewUser<'a> {
    pub email: &'a Email,
    pub role: Role,
    pub password_hash: &'a str,
    pub must_change_password: bool,
}

pub fn create(
    conn: &mut DbConnection,
    new: &NewUser<'_>,
    now: NaiveDateTime,
) -> Result<UserId, CreateUserError> {
    let id = UserId::new();
    let inserted = diesel::insert_into(users::table)
        .values((
            users::id.eq(id.as_str()),
            users::email.eq(new.email.as_str()),
            users::role.eq(new.role.as_str()),
            users::password_hash.eq(new.password_hash),
            users::must_change_password.eq(new.must_change_password),
            users::disabled.eq(false),
            users::password_changed_at.eq(now),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(id),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Err(CreateUserError::EmailTaken),
        Err(e) => Err(CreateUserError::Db(e.into())),
    }
}

pub fn set_password(
    conn: &mut DbConnection,
    id: &UserId,
    password_hash: &str,
    must_change: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id.as_str()))
        .set((
            users::password_hash.eq(password_hash),
            users::must_change_password.eq(must_change),
            users::password_changed_at.eq(now),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}

/// Ends every session of a user, optionally keeping one (the caller's own).
pub fn end_sessions(
    conn: &mut DbConnection,
    id: &UserId,
    keep_hash: Option<&str>,
) -> Result<usize, DbError> {
    let mine = sessions::table.filter(sessions::user_id.eq(id.as_str()));
    let n = match keep_hash {
        Some(keep) => diesel::delete(mine.filter(sessions::id_hash.ne(keep))).execute(conn)?,
        None => diesel::delete(mine).execute(conn)?,
    };
    Ok(n)
}
