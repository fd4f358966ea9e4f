//! Scanning completed uploads with clamd and settling their final status.
//!
//! The pipeline hands over an upload in status `completing` with scan status `pending` (every
//! byte stored, the object assembled and its SHA-256 recorded). [`settle`] claims the row
//! with the upload lease, streams the stored object to clamd while hashing it again, and
//! records one final state together with its audit event, in one transaction:
//!
//! | finding | status / scan status | object | audit |
//! | --- | --- | --- | --- |
//! | clean, bytes match the recorded SHA-256 | `completed` / `clean` | kept | `upload.scan` `{scan: "clean"}` |
//! | a signature | `quarantined` / `infected` | moved to `quarantine/<key>` or deleted | `upload.quarantine` |
//! | scanner down, timeout, over a size limit, storage unreadable | `quarantined` / `not_scanned` | kept | `upload.quarantine` |
//! | stored bytes differ from the recorded SHA-256 | `quarantined` / `not_scanned` | kept | `upload.quarantine` |
//!
//! Everything that is not "scanned clean" fails closed: only `completed` is downloadable.
//! (`upload.complete` was recorded by the pipeline when the bytes were verified, with
//! `{scan: "pending"}`; `upload.scan` is the verdict that releases the file.)
//!
//! `settle` is idempotent. It does nothing unless the row is `completing` / `pending` and its
//! lease is free (never taken or run out), so the pipeline's call and a later retry (after a
//! crash) never scan one upload twice at once; the final write checks the lease token, so an
//! instance that lost its lease changes nothing. A lease still held is waited for briefly
//! (the pipeline starts the scan just before it lets go of its own lease), then left to its
//! holder.

use std::time::Duration;

mod inspect;
mod quarantine;
mod reason;
mod record;
pub mod rescan;

use super::UploadContext;
use super::lease::{Claim, Lease};
use super::model::Upload;
use crate::app::buckets::queries as bucket_queries;
use crate::app::error::AppError;
use crate::domain::ids::UploadId;
use crate::infra::storage::blob::BlobStore;
use crate::infra::storage::blob::ObjectKey;
use inspect::Finding;
use quarantine::Disposal;
pub use reason::Reason;
use record::Final;

/// How long `settle` waits for a held lease before leaving the upload to its holder.
const HANDOVER_WAIT: Duration = Duration::from_secs(15);

/// The prefix infected objects are moved under (`quarantine/<original key>`).
pub const QUARANTINE_PREFIX: &str = "quarantine/";

/// Scans the stored object of an upload in status `completing` with scan status `pending`,
/// then marks it `completed` (clean) or `quarantined`. Without a configured scanner it marks
/// the upload `completed` with no scan status.
pub async fn settle(ctx: &UploadContext, id: &UploadId) -> Result<(), AppError> {
    let Some(clamd) = ctx.settings.uploads.clamd.clone() else {
        return record::complete_unscanned(ctx, id).await;
    };
    let Some((lease, upload)) = claim(ctx, id).await? else {
        return Ok(());
    };
    let outcome = lease
        .hold(ctx, scan_and_record(ctx, &lease, &upload, clamd))
        .await;
    match outcome {
        Some(result) => result,
        None => {
            tracing::warn!(upload = %id, "lost the upload lease during the scan; left to its new holder");
            Ok(())
        }
    }
}

/// Claims the upload, waiting a little while its lease is held: the pipeline starts the
/// scan just before it lets go of the lease it completed the upload with.
async fn claim(ctx: &UploadContext, id: &UploadId) -> Result<Option<(Lease, Upload)>, AppError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match Lease::claim_for_scan(ctx, id).await? {
            Claim::Taken(lease, upload) => return Ok(Some((lease, *upload))),
            Claim::NotWaiting => {
                tracing::debug!(upload = %id, "not waiting for a scan: nothing to do");
                return Ok(None);
            }
            Claim::Held if started.elapsed() >= HANDOVER_WAIT => {
                tracing::info!(upload = %id, "upload lease still held; the scan is left to its holder or a later retry");
                return Ok(None);
            }
            Claim::Held => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn scan_and_record(
    ctx: &UploadContext,
    lease: &Lease,
    upload: &Upload,
    clamd: String,
) -> Result<(), AppError> {
    let store = match open_store(ctx, upload).await {
        Ok(store) => store,
        Err(why) => return record::write(ctx, lease, upload, Final::NotScanned(why)).await,
    };
    let finding = inspect::scan(&store, upload, clamd, ctx.settings.uploads.scan_max_size).await;
    let signature = match finding {
        Finding::Clean => return record::write(ctx, lease, upload, Final::Clean).await,
        Finding::NotScanned(why) => {
            return record::write(ctx, lease, upload, Final::NotScanned(why)).await;
        }
        Finding::Infected { signature } => signature,
    };
    let disposal = quarantine::dispose(&store, upload, ctx.settings.uploads.quarantine).await;
    let written = record::write(
        ctx,
        lease,
        upload,
        Final::Infected {
            signature,
            disposal: disposal.clone(),
        },
    )
    .await;
    // The row points at the copy before the original goes, so it never names a missing
    // object; a failed delete leaves an unreachable copy, which the log reports.
    if let (Ok(()), Disposal::Moved { from, .. }) = (&written, &disposal) {
        delete_original(&store, upload, from).await;
    }
    written
}

async fn open_store(ctx: &UploadContext, upload: &Upload) -> Result<BlobStore, Reason> {
    let bucket_id = upload.bucket_id.clone();
    let bucket = ctx
        .db
        .run(move |conn| bucket_queries::find(conn, &bucket_id))
        .await
        .map_err(|e| {
            tracing::warn!(upload = %upload.id, error = %e, "cannot read the upload's bucket");
            Reason::StorageUnreadable
        })?
        .ok_or(Reason::StorageUnreadable)?;
    ctx.store_for(&bucket)
        .await
        .map_err(|_| Reason::StorageUnreadable)
}

async fn delete_original(store: &BlobStore, upload: &Upload, key: &ObjectKey) {
    if let Err(e) = store.delete(key).await {
        tracing::error!(
            upload = %upload.id,
            key = %key,
            error = %e,
            "infected upload copied to quarantine, but its original object could not be deleted"
        );
    }
}
