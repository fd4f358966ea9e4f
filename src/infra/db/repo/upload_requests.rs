//! The upload_requests table: links through which people without an account send files,
//! and what the uploads sent through them add up to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{upload_requests, users};
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = upload_requests, treat_none_as_default_value = false)]
pub struct Row {
    pub id: String,
    pub owner_id: String,
    pub bucket_id: String,
    pub token_hash: String,
    pub title: String,
    pub instructions: String,
    pub passphrase_hash: Option<String>,
    pub required_fields: String,
    pub max_files: i64,
    pub max_bytes: i64,
    pub expires_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub reminded_at: Option<NaiveDateTime>,
    pub first_file_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &Row) -> Result<(), DbError> {
    diesel::insert_into(upload_requests::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(upload_requests::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_token_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<Row>, DbError> {
    Ok(upload_requests::table
        .filter(upload_requests::token_hash.eq(hash))
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Requests newest first with their owner's address: one owner's, or everyone's (`None`).
pub fn list(
    conn: &mut DbConnection,
    owner: Option<&str>,
    limit: i64,
) -> Result<Vec<(Row, String)>, DbError> {
    let mut query = upload_requests::table
        .inner_join(users::table)
        .select((Row::as_select(), users::email))
        .order((
            upload_requests::created_at.desc(),
            upload_requests::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(upload_requests::owner_id.eq(owner.to_string()));
    }
    Ok(query.load(conn)?)
}

pub fn set_expiry(
    conn: &mut DbConnection,
    id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        upload_requests::table
            .find(id)
            .filter(upload_requests::revoked_at.is_null())
            .filter(upload_requests::closed_at.is_null()),
    )
    .set((
        upload_requests::expires_at.eq(expires_at),
        // A new expiry earns a new reminder.
        upload_requests::reminded_at.eq(None::<NaiveDateTime>),
        upload_requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn close(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let changed = diesel::update(
        upload_requests::table
            .find(id)
            .filter(upload_requests::closed_at.is_null())
            .filter(upload_requests::revoked_at.is_null()),
    )
    .set((
        upload_requests::closed_at.eq(now),
        upload_requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn revoke(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let changed = diesel::update(
        upload_requests::table
            .find(id)
            .filter(upload_requests::revoked_at.is_null()),
    )
    .set((
        upload_requests::revoked_at.eq(now),
        upload_requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// A file arrived: the last activity moves, and the first file's time is kept. True when
/// this was the request's first file.
pub fn file_received(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let first = diesel::update(
        upload_requests::table
            .find(id)
            .filter(upload_requests::first_file_at.is_null()),
    )
    .set(upload_requests::first_file_at.eq(now))
    .execute(conn)?;
    diesel::update(upload_requests::table.find(id))
        .set(upload_requests::last_activity_at.eq(now))
        .execute(conn)?;
    Ok(first == 1)
}

pub fn touch(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    diesel::update(upload_requests::table.find(id))
        .set(upload_requests::last_activity_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Open requests that expire before `before` and have not been reminded of it.
pub fn due_reminders(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    before: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Row>, DbError> {
    Ok(upload_requests::table
        .filter(upload_requests::expires_at.gt(now))
        .filter(upload_requests::expires_at.le(before))
        .filter(upload_requests::reminded_at.is_null())
        .filter(upload_requests::closed_at.is_null())
        .filter(upload_requests::revoked_at.is_null())
        .select(Row::as_select())
        .order(upload_requests::expires_at.asc())
        .limit(limit)
        .load(conn)?)
}

/// Marks the reminder sent, once (two instances may find the same request due).
pub fn mark_reminded(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        upload_requests::table
            .find(id)
            .filter(upload_requests::reminded_at.is_null()),
    )
    .set(upload_requests::reminded_at.eq(now))
    .execute(conn)?;
    Ok(changed == 1)
}
