//! The login_throttles table: failed sign-in attempts per hashed address.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::login_throttles;
use crate::infra::db::{DbConnection, DbError};

/// When the entry `key` may next try, if it has an entry (`Some(None)`: no wait recorded).
pub fn throttled_until(
    conn: &mut DbConnection,
    key: &str,
) -> Result<Option<Option<NaiveDateTime>>, DbError> {
    Ok(login_throttles::table
        .find(key)
        .select(login_throttles::throttled_until)
        .first(conn)
        .optional()?)
}

/// The failures counted so far for `key`, if it has an entry.
pub fn failures(conn: &mut DbConnection, key: &str) -> Result<Option<i32>, DbError> {
    Ok(login_throttles::table
        .find(key)
        .select(login_throttles::failures)
        .first(conn)
        .optional()?)
}

/// Overwrites the existing entry `key`.
pub fn update(
    conn: &mut DbConnection,
    key: &str,
    failures: i32,
    until: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(login_throttles::table.find(key))
        .set((
            login_throttles::failures.eq(failures),
            login_throttles::throttled_until.eq(until),
            login_throttles::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Adds the entry `key`.
pub fn insert(
    conn: &mut DbConnection,
    key: &str,
    failures: i32,
    until: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(login_throttles::table)
        .values((
            login_throttles::email_hash.eq(key),
            login_throttles::failures.eq(failures),
            login_throttles::throttled_until.eq(until),
            login_throttles::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes the entry `key`, if any.
pub fn delete(conn: &mut DbConnection, key: &str) -> Result<(), DbError> {
    diesel::delete(login_throttles::table.find(key)).execute(conn)?;
    Ok(())
}
