//! Scanning completed uploads with clamd and settling their final status.
// Being written: see issue 5.

use super::UploadContext;
use crate::domain::ids::UploadId;
use crate::error::AppError;

/// Scans the stored object of an upload in status `completing` with scan status `pending`,
/// then marks it `completed` (clean) or `quarantined`.
pub async fn settle(ctx: &UploadContext, id: &UploadId) -> Result<(), AppError> {
    let _ = (ctx, id);
    Ok(())
}
