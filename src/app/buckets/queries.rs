//! Read-only bucket lookups. Columns are selected explicitly, so the sealed secret is never
//! loaded here (`sealed_secret` is the one exception, for opening the backend).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::model::{Bucket, BucketRow};
use crate::app::error::AppError;
use crate::domain::ids::{BucketId, UserId};
use crate::domain::role::Role;
use crate::infra::db::schema::{bucket_grants as g, buckets as b, uploads, users as u};
use crate::infra::db::{DbConnection, DbError};

fn typed(rows: Vec<BucketRow>) -> Result<Vec<Bucket>, AppError> {
    rows.into_iter().map(Bucket::try_from).collect()
}

/// Every bucket, the system default first, then by display name.
pub fn all(conn: &mut DbConnection) -> Result<Vec<Bucket>, AppError> {
    let rows = b::table
        .select(BucketRow::as_select())
        .order((b::is_system.desc(), b::display_name.asc(), b::id.asc()))
        .load(conn)?;
    typed(rows)
}

pub fn find(conn: &mut DbConnection, id: &BucketId) -> Result<Option<Bucket>, AppError> {
    let row = b::table
        .find(id.as_str())
        .select(BucketRow::as_select())
        .first(conn)
        .optional()?;
    row.map(Bucket::try_from).transpose()
}

/// The bucket, or 404.
pub fn get(conn: &mut DbConnection, id: &BucketId) -> Result<Bucket, AppError> {
    find(conn, id)?.ok_or(AppError::NotFound)
}

/// The sealed secret key of one bucket (for `store` only).
pub fn sealed_secret(conn: &mut DbConnection, id: &BucketId) -> Result<Option<Vec<u8>>, DbError> {
    Ok(b::table
        .find(id.as_str())
        .select(b::secret_key_sealed)
        .first::<Option<Vec<u8>>>(conn)
        .optional()?
        .flatten())
}

/// Grants per bucket.
pub fn grant_counts(conn: &mut DbConnection) -> Result<HashMap<String, i64>, DbError> {
    let rows: Vec<(String, i64)> = g::table
        .group_by(g::bucket_id)
        .select((g::bucket_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// One user with access to a bucket.
#[derive(Debug, Clone)]
pub struct GrantView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub granted_at: NaiveDateTime,
}

pub fn grants(conn: &mut DbConnection, id: &BucketId) -> Result<Vec<GrantView>, AppError> {
    let rows: Vec<(String, String, String, bool, NaiveDateTime)> = g::table
        .inner_join(u::table.on(u::id.eq(g::user_id)))
        .filter(g::bucket_id.eq(id.as_str()))
        .order(u::email.asc())
        .select((u::id, u::email, u::role, u::disabled, g::created_at))
        .load(conn)?;
    rows.into_iter()
        .map(|(user_id, email, role, disabled, granted_at)| {
            Ok(GrantView {
                role: Role::parse(&role)
                    .map_err(|_| AppError::internal("unknown role in users table"))?,
                user_id,
                email,
                disabled,
                granted_at,
            })
        })
        .collect()
}

/// A user who could be granted the bucket: an enabled uploader without a grant yet.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub user_id: String,
    pub email: String,
}

pub fn grant_candidates(conn: &mut DbConnection, id: &BucketId) -> Result<Vec<Candidate>, DbError> {
    let granted = g::table
        .filter(g::bucket_id.eq(id.as_str()))
        .select(g::user_id);
    let rows: Vec<(String, String)> = u::table
        .filter(u::role.eq(Role::Uploader.as_str()))
        .filter(u::disabled.eq(false))
        .filter(u::id.ne_all(granted))
        .order(u::email.asc())
        .select((u::id, u::email))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(user_id, email)| Candidate { user_id, email })
        .collect())
}

/// The uploads that refer to a bucket, by what deleting it would do to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// `active` or `completing`: data is on its way in.
    pub in_progress: i64,
    /// `completed` or `quarantined`: files stored in the bucket.
    pub stored: i64,
    /// Everything else (rejected, aborted, expired, cleanup failed): kept as history.
    pub history: i64,
}

pub fn upload_counts(conn: &mut DbConnection, id: &BucketId) -> Result<UploadCounts, DbError> {
    let rows: Vec<(String, i64)> = uploads::table
        .filter(uploads::bucket_id.eq(id.as_str()))
        .group_by(uploads::status)
        .select((uploads::status, diesel::dsl::count_star()))
        .load(conn)?;
    let mut counts = UploadCounts::default();
    for (status, n) in rows {
        let slot = match status.as_str() {
            "active" | "completing" => &mut counts.in_progress,
            "completed" | "quarantined" => &mut counts.stored,
            _ => &mut counts.history,
        };
        *slot = slot.saturating_add(n);
    }
    Ok(counts)
}

/// The buckets a user may upload to: administrators see every bucket; everyone else the
/// buckets granted to them, plus the system default bucket when it is open to all.
pub fn visible_to(
    conn: &mut DbConnection,
    user_id: &UserId,
    role: Role,
) -> Result<Vec<Bucket>, AppError> {
    if role == Role::Admin {
        return all(conn);
    }
    let granted = g::table
        .filter(g::user_id.eq(user_id.as_str()))
        .select(g::bucket_id);
    let rows = b::table
        .filter(
            b::id
                .eq_any(granted)
                .or(b::is_system.eq(true).and(b::open_to_all.eq(true))),
        )
        .select(BucketRow::as_select())
        .order((b::is_system.desc(), b::display_name.asc(), b::id.asc()))
        .load(conn)?;
    typed(rows)
}

/// One bucket if the user may upload to it, else `None` (callers answer 404, so guessing
/// ids reveals nothing).
pub fn visible_bucket(
    conn: &mut DbConnection,
    user_id: &UserId,
    role: Role,
    id: &BucketId,
) -> Result<Option<Bucket>, AppError> {
    let Some(bucket) = find(conn, id)? else {
        return Ok(None);
    };
    if role == Role::Admin || (bucket.is_system && bucket.open_to_all) {
        return Ok(Some(bucket));
    }
    let granted: i64 = g::table
        .filter(g::bucket_id.eq(id.as_str()))
        .filter(g::user_id.eq(user_id.as_str()))
        .count()
        .get_result(conn)?;
    Ok((granted > 0).then_some(bucket))
}
