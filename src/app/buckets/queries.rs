//! Read-only bucket lookups. Columns are selected explicitly, so the sealed secret is never
//! loaded here (`sealed_secret` is the one exception, for opening the backend).

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::model::Bucket;
use crate::app::error::AppError;
use crate::domain::ids::{BucketId, UserId};
use crate::domain::role::Role;
use crate::infra::db::repo::{bucket_grants, buckets};
use crate::infra::db::{DbConnection, DbError};

fn typed(rows: Vec<buckets::Row>) -> Result<Vec<Bucket>, AppError> {
    rows.into_iter().map(Bucket::try_from).collect()
}

/// Every bucket, the system default first, then by display name.
pub fn all(conn: &mut DbConnection) -> Result<Vec<Bucket>, AppError> {
    typed(buckets::all(conn)?)
}

pub fn find(conn: &mut DbConnection, id: &BucketId) -> Result<Option<Bucket>, AppError> {
    let row = buckets::find(conn, id.as_str())?;
    row.map(Bucket::try_from).transpose()
}

/// The bucket, or 404.
pub fn get(conn: &mut DbConnection, id: &BucketId) -> Result<Bucket, AppError> {
    find(conn, id)?.ok_or(AppError::NotFound)
}

/// The sealed secret key of one bucket (for `store` only).
pub fn sealed_secret(conn: &mut DbConnection, id: &BucketId) -> Result<Option<Vec<u8>>, DbError> {
    buckets::sealed_secret(conn, id.as_str())
}

/// Grants per bucket.
pub fn grant_counts(conn: &mut DbConnection) -> Result<HashMap<String, i64>, DbError> {
    bucket_grants::counts(conn)
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
    bucket_grants::holders(conn, id.as_str())?
        .into_iter()
        .map(|h| {
            Ok(GrantView {
                role: Role::parse(&h.role)
                    .map_err(|_| AppError::internal("unknown role in users table"))?,
                user_id: h.user_id,
                email: h.email,
                disabled: h.disabled,
                granted_at: h.granted_at,
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
    let rows = bucket_grants::enabled_without_grant(conn, id.as_str(), Role::Uploader.as_str())?;
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
    let rows = buckets::upload_status_counts(conn, id.as_str())?;
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
    typed(buckets::granted_or_open(conn, user_id.as_str())?)
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
    let granted = bucket_grants::exists(conn, id.as_str(), user_id.as_str())?;
    Ok(granted.then_some(bucket))
}
