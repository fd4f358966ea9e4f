//! Room left in a bucket, for a caller that streams files whose size it knows only as an
//! upper bound (STOW-RS parts): reserving the bound would refuse a file that fits merely
//! because more of the request follows it. A bound cut down to the room left is still
//! honest: a file larger than it is refused by the pipeline when its bytes overflow it.

use crate::app::buckets::{self, SYSTEM_BUCKET_ID};
use crate::app::error::AppError;
use crate::app::uploads::{UploadContext, Uploader};
use crate::domain::ids::BucketId;

/// Bytes `bucket` (the system default bucket when `None`) can still take, `None` when it
/// has no size limit or `who` may not see it (creation then answers for it, audited).
pub async fn room_left(
    ctx: &UploadContext,
    who: &Uploader,
    bucket: Option<&BucketId>,
) -> Result<Option<u64>, AppError> {
    let id = bucket
        .cloned()
        .unwrap_or_else(|| BucketId::from_db(SYSTEM_BUCKET_ID.to_string()));
    let (user, role) = (who.user_id.clone(), who.role);
    ctx.db
        .run(move |conn| {
            let Some(bucket) = buckets::visible_bucket(conn, &user, role, &id)? else {
                return Ok(None);
            };
            let Some(limit) = bucket.size_limit else {
                return Ok(None);
            };
            let used = super::records::reserved(conn, &bucket.id)?;
            Ok(Some(limit.saturating_sub(used)))
        })
        .await
}
