//! Finishing what a stopped process left half done: uploads whose last byte was stored but
//! whose completion (assembly, verification) or scan never ended. The cleanup worker calls
//! this on every pass, on every instance; the per-upload lease keeps it to one at a time.

use chrono::TimeDelta;

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{ScanStatus, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::db::repo::uploads as repo;

/// How long an upload may sit in `completing` before it counts as abandoned. Completion
/// and scanning renew `updated_at`/the lease while they work.
const STALLED_AFTER: TimeDelta = TimeDelta::minutes(2);
const BATCH: i64 = 50;

/// Resumes stalled completions and scans; returns how many were picked up.
pub async fn resume_stalled(ctx: &UploadContext) -> Result<usize, AppError> {
    let now = ctx.clock.now_naive();
    let rows = ctx
        .db
        .run(move |conn| {
            repo::stalled(
                conn,
                UploadStatus::Completing.as_str(),
                now - STALLED_AFTER,
                now,
                BATCH,
            )
            .map_err(AppError::from)
        })
        .await?;
    let mut picked = 0;
    for repo::Stalled {
        id,
        sha256,
        scan_status: scan,
    } in rows
    {
        let id = UploadId::from_db(id);
        let result = match (sha256, scan.as_deref().and_then(ScanStatus::parse)) {
            (None, _) => crate::app::uploads::pipeline::resume_completion(ctx, &id).await,
            (Some(_), Some(ScanStatus::Pending)) => {
                crate::app::uploads::scanner::settle(ctx, &id).await
            }
            _ => continue,
        };
        picked += 1;
        if let Err(e) = result {
            tracing::warn!(upload = %id, error = %e, "could not resume a stalled upload; retried next pass");
        }
    }
    Ok(picked)
}
