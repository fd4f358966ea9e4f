//! User rows: lookups and the changes the account and admin pages make.

use chrono::NaiveDateTime;

use crate::app::error::AppError;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::role::Role;
pub use crate::infra::db::repo::users::UserRow;
use crate::infra::db::{DbConnection, DbError, repo};

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
    repo::users::by_email(conn, email.as_str())
}

pub fn find_by_id(conn: &mut DbConnection, id: &UserId) -> Result<Option<UserRow>, DbError> {
    repo::users::by_id(conn, id.as_str())
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
    let inserted = repo::users::insert(
        conn,
        &repo::users::NewUserRow {
            id: id.as_str(),
            email: new.email.as_str(),
            role: new.role.as_str(),
            password_hash: new.password_hash,
            must_change_password: new.must_change_password,
            disabled: false,
            password_changed_at: now,
            created_at: now,
            updated_at: now,
        },
    )?;
    if inserted {
        Ok(id)
    } else {
        Err(CreateUserError::EmailTaken)
    }
}

pub fn set_password(
    conn: &mut DbConnection,
    id: &UserId,
    password_hash: &str,
    must_change: bool,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    repo::users::set_password(conn, id.as_str(), password_hash, must_change, now)
}

pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, DbError> {
    repo::users::count_active_admins(conn)
}

/// Ends every session of a user, optionally keeping one (the caller's own).
pub fn end_sessions(
    conn: &mut DbConnection,
    id: &UserId,
    keep_hash: Option<&str>,
) -> Result<usize, DbError> {
    repo::sessions::delete_of_user(conn, id.as_str(), keep_hash)
}
