//! The upload lease, as the scanner uses it: one holder at a time per upload, across
//! instances. A claim succeeds only on a row that waits for its scan and whose lease is free
//! (never taken, released, or run out); the holder renews it while it works, and the final
//! write releases it (`record`). A crashed holder's lease simply runs out.

use std::future::Future;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, ScanStatus, Upload, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::crypto::random_token;
use crate::infra::db::repo::uploads as repo;

/// How long a claim lasts without renewal: long enough to ride out a slow database, short
/// enough that a crashed instance's upload is taken over soon.
const LEASE: TimeDelta = TimeDelta::seconds(120);
/// How often a holder renews while it works.
const RENEW_EVERY: Duration = Duration::from_secs(30);

pub struct Lease {
    pub id: UploadId,
    pub token: String,
}

/// The state a claim may take an upload in: waiting for its scan.
pub(super) fn waiting() -> repo::ScanState<'static> {
    repo::ScanState {
        status: UploadStatus::Completing.as_str(),
        scan_status: ScanStatus::Pending.as_str(),
    }
}

/// The answer to a claim.
pub enum Claim {
    Taken(Lease, Box<Upload>),
    /// Waiting for its scan, but someone holds the lease (the pipeline, just before it lets
    /// go, or another scanner).
    Held,
    /// Not waiting for a scan (already settled, or in any other state), or gone.
    NotWaiting,
}

impl Lease {
    /// Takes the lease on an upload waiting for its scan.
    pub async fn claim(ctx: &UploadContext, id: &UploadId) -> Result<Claim, AppError> {
        let token = random_token().map_err(AppError::internal)?;
        let now = ctx.clock.now_naive();
        let (row_id, held) = (id.as_str().to_string(), token.clone());
        let upload = ctx
            .db
            .run(move |conn| -> Result<Option<Upload>, AppError> {
                if !repo::claim_for_scan(conn, &row_id, waiting(), &held, until(now), now)? {
                    return Ok(None);
                }
                model::find(conn, &UploadId::from_db(row_id))
            })
            .await?;
        Ok(match upload {
            Some(upload) => Claim::Taken(
                Self {
                    id: id.clone(),
                    token,
                },
                Box::new(upload),
            ),
            None => Self::why_not(ctx, id).await?,
        })
    }

    async fn why_not(ctx: &UploadContext, id: &UploadId) -> Result<Claim, AppError> {
        let lookup = id.clone();
        let upload = ctx.db.run(move |conn| model::find(conn, &lookup)).await?;
        Ok(match upload {
            Some(u)
                if u.status == UploadStatus::Completing
                    && u.scan_status == Some(ScanStatus::Pending) =>
            {
                Claim::Held
            }
            _ => Claim::NotWaiting,
        })
    }

    /// Runs `work` while renewing the lease. `None` when the lease was lost (another
    /// holder took over after it ran out): the work is dropped unfinished.
    pub async fn hold<T>(&self, ctx: &UploadContext, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the claim has just set the lease.
        tick.tick().await;
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                _ = tick.tick() => match self.renew(ctx).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    // The final write checks the token anyway; a slow database is no reason
                    // to abandon a scan that is nearly done.
                    Err(e) => tracing::warn!(upload = %self.id, error = %e, "could not renew the upload lease"),
                },
            }
        }
    }

    async fn renew(&self, ctx: &UploadContext) -> Result<bool, AppError> {
        let now = ctx.clock.now_naive();
        let (id, token) = (self.id.as_str().to_string(), self.token.clone());
        ctx.db
            .run(move |conn| -> Result<bool, AppError> {
                Ok(repo::extend_lease(conn, &id, &token, until(now))?)
            })
            .await
    }
}

fn until(now: NaiveDateTime) -> NaiveDateTime {
    now + LEASE
}
