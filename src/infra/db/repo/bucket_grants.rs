//! The bucket_grants table: which uploaders may use a bucket.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{bucket_grants as g, users as u};
use crate::infra::db::{DbConnection, DbError};

/// Whether `user_id` holds a grant for `bucket_id`.
pub fn exists(conn: &mut DbConnection, bucket_id: &str, user_id: &str) -> Result<bool, DbError> {
    let n: i64 = g::table
        .filter(g::bucket_id.eq(bucket_id))
        .filter(g::user_id.eq(user_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn insert(
    conn: &mut DbConnection,
    bucket_id: &str,
    user_id: &str,
    granted_by: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(g::table)
        .values((
            g::bucket_id.eq(bucket_id),
            g::user_id.eq(user_id),
            g::granted_by.eq(Some(granted_by)),
            g::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes one user's grant; returns how many rows went (0 or 1).
pub fn delete(conn: &mut DbConnection, bucket_id: &str, user_id: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(
        g::table
            .filter(g::bucket_id.eq(bucket_id))
            .filter(g::user_id.eq(user_id)),
    )
    .execute(conn)?)
}

/// Removes every grant of a bucket; returns how many went.
pub fn delete_all_of(conn: &mut DbConnection, bucket_id: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(g::table.filter(g::bucket_id.eq(bucket_id))).execute(conn)?)
}

/// Grants per bucket id.
pub fn counts(conn: &mut DbConnection) -> Result<HashMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = g::table
        .group_by(g::bucket_id)
        .select((g::bucket_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// One user holding a grant, with the grant's time.
#[derive(Debug, Clone, Queryable)]
pub struct Holder {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub granted_at: NaiveDateTime,
}

/// The users holding a grant for the bucket, by email.
pub fn holders(conn: &mut DbConnection, bucket_id: &str) -> Result<Vec<Holder>, DbError> {
    Ok(g::table
        .inner_join(u::table.on(u::id.eq(g::user_id)))
        .filter(g::bucket_id.eq(bucket_id))
        .order(u::email.asc())
        .select((u::id, u::email, u::role, u::disabled, g::created_at))
        .load(conn)?)
}

/// Enabled users of `role` without a grant for the bucket, by email: (id, email).
pub fn enabled_without_grant(
    conn: &mut DbConnection,
    bucket_id: &str,
    role: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let granted = g::table
        .filter(g::bucket_id.eq(bucket_id))
        .select(g::user_id);
    Ok(u::table
        .filter(u::role.eq(role))
        .filter(u::disabled.eq(false))
        .filter(u::id.ne_all(granted))
        .order(u::email.asc())
        .select((u::id, u::email))
        .load(conn)?)
}
