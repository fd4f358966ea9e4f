//! The cleanup worker's storage side: opening each bucket once per pass, and removing what an
//! unfinished upload left behind (its multipart upload and its partial tail object).

use std::collections::HashMap;
use std::time::Duration;

use super::claims::Job;
use crate::app::buckets::opener::safe_reason;
use crate::app::buckets::queries;
use crate::app::error::AppError;
use crate::app::uploads::pipeline::leftovers;
use crate::app::uploads::{UploadContext, layout};
use crate::domain::ids::BucketId;
use crate::infra::storage::blob::{BlobStore, MultipartId, StorageError};
use crate::infra::storage::s3::S3Timeouts;

/// Cleanup is not urgent: a bucket that does not answer quickly is retried later rather
/// than holding the pass (and its claims) for the patient upload timeouts.
const TIMEOUTS: S3Timeouts = S3Timeouts {
    connect: Duration::from_secs(5),
    attempt: Duration::from_secs(20),
    operation: Duration::from_secs(40),
    part_min_bytes_per_sec: 256 * 1024,
    stall_grace: Duration::from_secs(10),
    max_attempts: 2,
};
/// The bound on one upload's cleanup (abort plus tail delete), whatever the backend does.
const PER_UPLOAD: Duration = Duration::from_secs(90);

/// Each bucket's backend, opened at most once per pass. A bucket that cannot be opened, or
/// stops answering, is remembered as down with its reason, so the rest of its uploads fail
/// fast (and are retried later) instead of each waiting for a timeout.
pub struct Stores<'a> {
    ctx: &'a UploadContext,
    opened: HashMap<BucketId, Result<BlobStore, String>>,
}

impl<'a> Stores<'a> {
    pub fn new(ctx: &'a UploadContext) -> Self {
        Self {
            ctx,
            opened: HashMap::new(),
        }
    }

    /// The bucket's backend, or why it cannot be used (safe to store and show). Only a
    /// database failure is an error.
    pub async fn open(&mut self, id: &BucketId) -> Result<Result<BlobStore, String>, AppError> {
        if let Some(known) = self.opened.get(id) {
            return Ok(known.clone());
        }
        let lookup = id.clone();
        let bucket = self
            .ctx
            .db
            .run(move |conn| queries::find(conn, &lookup))
            .await?;
        let opened = match bucket {
            None => Err("the bucket no longer exists".to_string()),
            Some(bucket) => self.ctx.opener().open(&bucket, TIMEOUTS).await,
        };
        if let Err(reason) = &opened {
            tracing::warn!(bucket = %id, %reason, "cleanup cannot open bucket storage");
        }
        self.opened.insert(id.clone(), opened.clone());
        Ok(opened)
    }

    /// Removes the upload's storage leftovers. `Ok(Err(reason))` is a storage failure to
    /// retry later; `Err` is a database failure.
    pub async fn clean(&mut self, job: &Job) -> Result<Result<(), String>, AppError> {
        let store = match self.open(&job.bucket_id).await? {
            Ok(store) => store,
            Err(reason) => return Ok(Err(reason)),
        };
        let tails = leftovers::recorded_tails(self.ctx, &job.id).await?;
        let removed = tokio::time::timeout(PER_UPLOAD, remove_leftovers(&store, job, &tails)).await;
        let outcome = match removed {
            Ok(Ok(())) => {
                leftovers::forget_tails(self.ctx, &job.id, tails).await?;
                return Ok(Ok(()));
            }
            Ok(Err(Leftover::Storage(e))) => {
                tracing::warn!(upload = %job.id, bucket = %job.bucket_id, error = %e,
                    "cleanup could not abort an upload in storage");
                let reason = safe_reason(&e);
                if matches!(e, StorageError::Unavailable(_) | StorageError::Config(_)) {
                    self.opened
                        .insert(job.bucket_id.clone(), Err(reason.clone()));
                }
                reason
            }
            Ok(Err(Leftover::BadKey)) => {
                tracing::error!(upload = %job.id, "stored object key is malformed");
                "the stored object key is malformed".to_string()
            }
            Err(_) => {
                let reason = format!("no answer within {} seconds", PER_UPLOAD.as_secs());
                self.opened
                    .insert(job.bucket_id.clone(), Err(reason.clone()));
                reason
            }
        };
        Ok(Err(outcome))
    }
}

enum Leftover {
    Storage(StorageError),
    BadKey,
}

/// Aborts the multipart upload (a missing one counts as done) or deletes the object of a
/// file stored whole, deletes the tail object
/// kept past the last whole part, if any, then everything else the upload left: multipart
/// uploads under its key that no row names and the tails written down for it.
async fn remove_leftovers(store: &BlobStore, job: &Job, tails: &[u64]) -> Result<(), Leftover> {
    let key = job.key().ok_or(Leftover::BadKey)?;
    match &job.storage_upload_id {
        Some(id) => store
            .abort(&key, &MultipartId::new(id.as_str()))
            .await
            .map_err(Leftover::Storage)?,
        // A file stored whole has an object only once its last byte was stored; one here
        // belongs to a request whose commit never landed.
        None => store.delete(&key).await.map_err(Leftover::Storage)?,
    }
    let (_, tail_len) = layout::split(job.offset, job.part_size);
    if tail_len != 0 {
        let tail = layout::tail_key(&key, job.offset).ok_or(Leftover::BadKey)?;
        store.delete(&tail).await.map_err(Leftover::Storage)?;
    }
    leftovers::sweep(store, &key, tails)
        .await
        .map_err(Leftover::Storage)
}
