//! Cancelling an unfinished upload from the API. The work is tus termination
//! (`pipeline::terminate`); what this adds is the answer for an upload that can no longer be
//! cancelled: a 409 with its reason, where tus (which only knows unfinished uploads) says 404.

use crate::app::error::AppError;
use crate::app::uploads::{UploadContext, UploadStatus, Uploader, pipeline};
use crate::domain::ids::UploadId;

/// Cancels `who`'s unfinished upload `id`: its stored parts are removed and the row is kept
/// as history (`aborted`). 404 when it is not theirs; 409 once it is finished.
pub async fn cancel(ctx: &UploadContext, who: &Uploader, id: &UploadId) -> Result<(), AppError> {
    who.require_upload(&ctx.db).await?;
    let upload = who.own_upload(&ctx.db, id).await?;
    match upload.status {
        UploadStatus::Active => pipeline::terminate(ctx, who, id).await,
        UploadStatus::Completing => Err(AppError::conflict(
            "upload_verifying",
            "Every byte of this upload has arrived and it is being verified, so it can no longer be cancelled.",
        )),
        UploadStatus::Completed
        | UploadStatus::Quarantined
        | UploadStatus::Rejected
        | UploadStatus::Aborted
        | UploadStatus::Expired
        | UploadStatus::CleanupFailed => Err(AppError::conflict(
            "upload_finished",
            "This upload is already finished, so there is nothing to cancel.",
        )),
    }
}
