//! The cleanup worker: expired uploads are aborted in storage and marked `expired`.
//!
//! Every `uploads.cleanup_interval` each instance runs one pass ([`run_once`], also
//! `medport cleanup --once`): it claims due uploads in small batches (active past
//! `expires_at`, or `cleanup_failed` whose retry is due), aborts each one's multipart upload,
//! deletes its partial tail object, and marks it `expired` (`upload.expire`). When storage
//! cannot be cleaned the upload becomes `cleanup_failed` (`upload.cleanup_failed`) and is
//! retried after 1 min, 2, 4, ... at most 1 h. Claims are leases on the row (see `claims`),
//! so instances share the work and an upload a request is writing to is never aborted.

mod claims;
mod storage;

use std::fmt;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::UploadContext;
use crate::app::error::AppError;
use claims::Job;
pub use storage::Stores;

pub use claims::{LEASE, REASON, backoff};

/// Uploads claimed at a time: small, so a claim never holds many rows for long.
const BATCH: i64 = 50;
/// Batches per pass; anything beyond waits for the next pass.
const MAX_BATCHES: usize = 40;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Aborted in storage and marked `expired`.
    pub expired: u64,
    /// Storage could not be cleaned: marked `cleanup_failed`, retry scheduled.
    pub failed: u64,
    /// Claimed, then left alone: another request or instance took it over meanwhile.
    pub skipped: u64,
}

impl CleanupReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Expired => self.expired += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
}

impl fmt::Display for CleanupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cleanup: {} expired, {} failed",
            self.expired, self.failed
        )?;
        if self.failed > 0 {
            f.write_str(" (retry scheduled)")?;
        }
        if self.skipped > 0 {
            write!(f, ", {} skipped (in use elsewhere)", self.skipped)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Expired,
    Failed,
    Skipped,
}

/// Starts the background worker on the current runtime. It ends when the runtime shuts
/// down; a failed pass is logged and the next one runs on schedule.
pub fn spawn_worker(ctx: UploadContext) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(worker(ctx));
        }
        Err(_) => tracing::error!("no async runtime: the upload cleanup worker is not running"),
    }
}

async fn worker(ctx: UploadContext) {
    // tokio's interval refuses a zero period; the settings never allow one anyway.
    let every = ctx
        .settings
        .uploads
        .cleanup_interval
        .max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let pass = ctx.clone();
        // Each pass is a task of its own, so even a bug that panics ends one pass, not the
        // worker.
        match tokio::spawn(async move { run_once(&pass).await }).await {
            Ok(Ok(report)) if report.is_empty() => tracing::debug!("upload cleanup: nothing due"),
            Ok(Ok(report)) => tracing::info!(
                expired = report.expired,
                failed = report.failed,
                skipped = report.skipped,
                "upload cleanup pass done"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upload cleanup pass failed; next pass on schedule")
            }
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                tracing::error!(error = %e, "upload cleanup pass crashed; next pass on schedule")
            }
        }
    }
}

/// One pass over every due upload. Storage failures are per upload (`cleanup_failed`, retried
/// later); a database failure ends the pass with an error (claims not yet worked on are
/// given back, or run out after [`LEASE`]).
pub async fn run_once(ctx: &UploadContext) -> Result<CleanupReport, AppError> {
    let token = uuid::Uuid::now_v7().simple().to_string();
    let mut report = CleanupReport::default();
    let mut stores = Stores::new(ctx);
    for _ in 0..MAX_BATCHES {
        let now = ctx.clock.now_naive();
        let owner = token.clone();
        let batch = ctx
            .db
            .run(move |conn| claims::claim(conn, &owner, now, BATCH))
            .await?;
        let full = i64::try_from(batch.len()).is_ok_and(|n| n >= BATCH);
        for (done, job) in batch.iter().enumerate() {
            match process(ctx, &mut stores, job, &token).await {
                Ok(outcome) => report.add(outcome),
                Err(e) => {
                    give_back(ctx, &batch[done..], &token).await;
                    return Err(e);
                }
            }
        }
        if !full {
            break;
        }
    }
    match crate::app::uploads::recovery::resume_stalled(ctx).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "resumed stalled completions or scans"),
        Err(e) => tracing::warn!(error = %e, "could not look for stalled uploads"),
    }
    match crate::app::studies::index::index_missing(ctx, &mut stores).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "indexed DICOM headers left unread at completion"),
        Err(e) => tracing::warn!(error = %e, "could not look for unindexed DICOM uploads"),
    }
    // Rows indexed before blind indexes existed get them here, a batch per pass.
    let keyring = ctx.keyring.clone();
    match ctx
        .db
        .run(move |conn| crate::app::studies::blind::refresh(conn, &keyring, 200))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "computed DICOM blind indexes"),
        Err(e) => tracing::warn!(error = %e, "could not compute DICOM blind indexes"),
    }
    Ok(report)
}

/// One claimed upload: renew the claim, clean storage, record the outcome.
async fn process(
    ctx: &UploadContext,
    stores: &mut Stores<'_>,
    job: &Job,
    token: &str,
) -> Result<Outcome, AppError> {
    let (id, owner, now) = (job.id.clone(), token.to_string(), ctx.clock.now_naive());
    let held = ctx
        .db
        .run(move |conn| claims::renew(conn, &id, &owner, now))
        .await?;
    if !held {
        return Ok(Outcome::Skipped);
    }
    let cleaned = stores.clean(job).await?;
    let (record, owner, now) = (job.clone(), token.to_string(), ctx.clock.now_naive());
    match cleaned {
        Ok(()) => {
            let marked = ctx
                .db
                .run(move |conn| claims::mark_expired(conn, &record, &owner, now))
                .await?;
            if !marked {
                tracing::warn!(upload = %job.id, "cleanup claim lost after the storage abort");
                return Ok(Outcome::Skipped);
            }
            tracing::info!(upload = %job.id, bucket = %job.bucket_id, "upload expired");
            Ok(Outcome::Expired)
        }
        Err(reason) => {
            let why = reason.clone();
            let retry = ctx
                .db
                .run(move |conn| claims::mark_failed(conn, &record, &owner, &why, now))
                .await?;
            match retry {
                Some(at) => {
                    tracing::warn!(upload = %job.id, bucket = %job.bucket_id, %reason,
                        retry_at = %at, "upload cleanup failed; retry scheduled");
                    Ok(Outcome::Failed)
                }
                None => Ok(Outcome::Skipped),
            }
        }
    }
}

/// Best effort: the database just failed, so this may fail too; the lease then runs out.
async fn give_back(ctx: &UploadContext, rest: &[Job], token: &str) {
    let ids: Vec<String> = rest.iter().map(|j| j.id.as_str().to_string()).collect();
    let owner = token.to_string();
    if let Err(e) = ctx
        .db
        .run(move |conn| claims::release(conn, &ids, &owner))
        .await
    {
        tracing::debug!(error = %e, "cleanup could not give back its claims");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_line_for_operators() {
        let mut r = CleanupReport::default();
        assert!(r.is_empty());
        assert_eq!(r.to_string(), "cleanup: 0 expired, 0 failed");
        r.expired = 3;
        r.failed = 1;
        assert_eq!(
            r.to_string(),
            "cleanup: 3 expired, 1 failed (retry scheduled)"
        );
        r.skipped = 2;
        assert_eq!(
            r.to_string(),
            "cleanup: 3 expired, 1 failed (retry scheduled), 2 skipped (in use elsewhere)"
        );
    }
}
