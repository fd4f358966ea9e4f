//! The cleanup worker's database side: claiming due uploads under a lease, keeping the lease
//! while one is worked on, and recording the outcome with its audit event.
//!
//! A claim sets `lease_token` / `lease_until`, the same columns a PATCH holds while bytes
//! flow. Only rows whose lease is free or run out are claimed, and every later write checks
//! the token, so the worker never touches an upload another request (or instance) is
//! working on, and two workers never process the same upload.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::json;

use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::app::uploads::UploadStatus;
use crate::domain::ids::{BucketId, UploadId};
use crate::infra::db::repo::uploads as repo;
use crate::infra::db::{DbConnection, write_tx};
use crate::infra::storage::blob::ObjectKey;

/// How long a claim holds an upload before another worker may take it over (a worker that
/// died mid-pass). Renewed before each upload is worked on; each one is bounded well below.
pub const LEASE: TimeDelta = TimeDelta::minutes(5);
/// Shown to the uploader for an expired upload.
pub const REASON: &str = "Not finished in time";
/// First retry after a failed cleanup; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: TimeDelta = TimeDelta::minutes(1);
const MAX_BACKOFF: TimeDelta = TimeDelta::hours(1);

/// One claimed upload: what the worker needs to clean its storage.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: UploadId,
    pub bucket_id: BucketId,
    /// The stored key as read; checked when used (a malformed one is a failure, not a skip).
    pub object_key: String,
    pub storage_upload_id: Option<String>,
    pub offset: u64,
    pub part_size: u64,
    pub attempts: i32,
    pub declared_size: u64,
}

impl Job {
    pub fn key(&self) -> Option<ObjectKey> {
        ObjectKey::parse(&self.object_key)
    }
}

fn job(row: repo::CleanupRow) -> Job {
    let size_of = |v: i64| u64::try_from(v).unwrap_or(0);
    Job {
        id: UploadId::from_db(row.id),
        bucket_id: BucketId::from_db(row.bucket_id),
        object_key: row.object_key,
        storage_upload_id: row.storage_upload_id,
        offset: size_of(row.upload_offset),
        part_size: size_of(row.part_size),
        attempts: row.cleanup_attempts,
        declared_size: size_of(row.declared_size),
    }
}

/// The wait before retry number `attempts` + 1: 1 min, 2, 4, ... capped at 1 h.
pub fn backoff(attempts: i32) -> TimeDelta {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_BACKOFF
        .checked_mul(1 << doublings)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Claims up to `limit` due uploads under `token`. On PostgreSQL the rows are locked with
/// `SKIP LOCKED`, so concurrent workers take disjoint batches instead of waiting; on SQLite
/// `write_tx` (`BEGIN IMMEDIATE`) already admits one writer.
pub fn claim(
    conn: &mut DbConnection,
    token: &str,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Job>, AppError> {
    write_tx(conn, |conn| {
        // Due: expired and still active, or failed earlier and due again; nobody holds it.
        let ids = repo::due_for_cleanup(
            conn,
            UploadStatus::Active.as_str(),
            UploadStatus::CleanupFailed.as_str(),
            now,
            limit,
        )?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        repo::lease_all(conn, &ids, token, now + LEASE)?;
        let rows = repo::cleanup_rows(conn, &ids)?;
        Ok(rows.into_iter().map(job).collect())
    })
}

/// Renews the claim on one upload just before its storage is touched. False when the claim
/// was lost (it ran out and someone else took the row) or the upload is no longer due
/// for cleanup: then it must be left alone.
pub fn renew(
    conn: &mut DbConnection,
    id: &UploadId,
    token: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    Ok(repo::renew_lease_in(
        conn,
        id.as_str(),
        token,
        &[
            UploadStatus::Active.as_str(),
            UploadStatus::CleanupFailed.as_str(),
        ],
        now + LEASE,
    )?)
}

/// Gives claims back untouched (a pass that stops early), so they need not run out first.
pub fn release(conn: &mut DbConnection, ids: &[String], token: &str) -> Result<(), AppError> {
    Ok(repo::release_leases(conn, ids, token)?)
}

/// Storage is clean: the upload becomes `expired`, with its `upload.expire` event in the same
/// transaction. False (nothing written) when the claim was lost meanwhile.
pub fn mark_expired(
    conn: &mut DbConnection,
    job: &Job,
    token: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let expired = write_tx(conn, |conn| {
        let changed = repo::cleaned(
            conn,
            job.id.as_str(),
            token,
            UploadStatus::Expired.as_str(),
            REASON,
            now,
        )?;
        if !changed {
            return Ok(false);
        }
        audit::record(
            conn,
            &Event::new(Actor::system(), "upload.expire", Outcome::Success)
                .target("upload", job.id.as_str())
                .details(json!({
                    "bucket": job.bucket_id.as_str(),
                    "offset": job.offset,
                    "size": job.declared_size,
                    "cleanup_attempts": job.attempts,
                })),
        )?;
        Ok::<_, AppError>(true)
    })?;
    if expired {
        crate::infra::metrics::metrics().uploads_expired.inc();
    }
    Ok(expired)
}

/// Storage could not be cleaned: the upload becomes `cleanup_failed` and is retried after
/// the backoff, with its `upload.cleanup_failed` event. `reason` must be safe to store (no
/// credentials). Returns when the retry is due, or `None` when the claim was lost.
pub fn mark_failed(
    conn: &mut DbConnection,
    job: &Job,
    token: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, AppError> {
    let attempts = job.attempts.saturating_add(1);
    let retry_at = now + backoff(attempts);
    write_tx(conn, |conn| {
        let changed = repo::cleanup_failed(
            conn,
            job.id.as_str(),
            token,
            UploadStatus::CleanupFailed.as_str(),
            REASON,
            attempts,
            retry_at,
            now,
        )?;
        if !changed {
            return Ok(None);
        }
        audit::record(
            conn,
            &Event::new(Actor::system(), "upload.cleanup_failed", Outcome::Failure)
                .target("upload", job.id.as_str())
                .details(json!({
                    "bucket": job.bucket_id.as_str(),
                    "attempt": attempts,
                    "retry_at": retry_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "reason": reason,
                })),
        )?;
        Ok(Some(retry_at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_minute_up_to_an_hour() {
        let minutes: Vec<i64> = (1..=9).map(|n| backoff(n).num_minutes()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0).num_minutes(), 1);
        assert_eq!(backoff(i32::MAX).num_minutes(), 60);
    }
}
