//! The upload lease: one holder at a time per upload, across instances, recorded in the
//! row's `lease_token` / `lease_until`. A holder takes it only while it is free (never taken,
//! released, or run out), renews it while it works, and every later write checks the token,
//! so a holder that lost its lease changes nothing. A holder that dies simply lets it run
//! out.
//!
//! Two holders take it one upload at a time:
//! - a writer (a tus PATCH, a form upload, termination, completing the upload):
//!   [`Lease::take_for_write`], 423 when busy; released when the request ends;
//! - the scanner: [`Lease::claim_for_scan`] on an upload waiting for its scan; the scan's
//!   final write releases it.
//!
//! (The cleanup worker claims due uploads in batches under the same columns, in
//! `cleanup::claims`.)

use std::future::Future;
use std::time::Duration;

use chrono::TimeDelta;

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, ScanStatus, Upload, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::crypto::random_token;
use crate::infra::db::repo::uploads as repo;
use crate::infra::db::write_tx;

/// How long a writer's lease lasts without renewal: short, so an upload whose request died
/// can be resumed within a minute. Every committed part renews it too.
pub const WRITE_TTL: TimeDelta = TimeDelta::seconds(60);
/// How often a writer renews while bytes trickle in (parts committed less often than that).
pub const WRITE_RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long a scan claim lasts without renewal: long enough to ride out a slow database,
/// short enough that a crashed instance's upload is taken over soon.
const SCAN_TTL: TimeDelta = TimeDelta::seconds(120);
/// How often the scanner renews while it works.
const SCAN_RENEW_EVERY: Duration = Duration::from_secs(30);

/// A held lease on one upload.
pub struct Lease {
    id: UploadId,
    token: String,
    /// How far each renewal moves the end: the holder's TTL.
    ttl: TimeDelta,
}

/// The answer to a scan claim.
pub enum Claim {
    Taken(Lease, Box<Upload>),
    /// Waiting for its scan, but someone holds the lease (the pipeline, just before it lets
    /// go, or another scanner).
    Held,
    /// Not waiting for a scan (already settled, or in any other state), or gone.
    NotWaiting,
}

/// The state a scan claim may take an upload in, and the scanner's final write expects:
/// waiting for its scan.
pub(super) fn waiting_for_scan() -> repo::ScanState<'static> {
    repo::ScanState {
        status: UploadStatus::Completing.as_str(),
        scan_status: ScanStatus::Pending.as_str(),
    }
}

/// Waits, at most `limit`, while a request holds the upload's lease. After a page reload
/// the browser's cut-off PATCH is still being stored for a moment; a HEAD that waits for it
/// tells the resuming client the final offset, so its next PATCH is accepted at once
/// instead of meeting 423 with a body already on the wire.
pub async fn wait_while_held(
    ctx: &UploadContext,
    id: &UploadId,
    limit: Duration,
) -> Result<(), AppError> {
    let started = std::time::Instant::now();
    loop {
        let (lookup, now) = (id.as_str().to_string(), ctx.clock.now_naive());
        let held = ctx
            .db
            .run(move |conn| -> Result<bool, AppError> {
                Ok(repo::lease_held(conn, &lookup, now)?)
            })
            .await?;
        if !held || started.elapsed() >= limit {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Lease {
    /// Takes the lease of an upload in `status` for a writer; 423 when another request
    /// holds it.
    pub async fn take_for_write(
        ctx: &UploadContext,
        id: &UploadId,
        status: UploadStatus,
    ) -> Result<Self, AppError> {
        let token = uuid::Uuid::now_v7().to_string();
        let now = ctx.clock.now_naive();
        let (row_id, held) = (id.as_str().to_string(), token.clone());
        let taken = ctx
            .db
            .run(move |conn| -> Result<bool, AppError> {
                Ok(write_tx(conn, |conn| {
                    repo::take_lease(conn, &row_id, status.as_str(), &held, now + WRITE_TTL, now)
                })?)
            })
            .await?;
        if !taken {
            return Err(AppError::refused(
                423,
                "Another request is writing to this upload right now. Try again in a moment.",
            ));
        }
        Ok(Self {
            id: id.clone(),
            token,
            ttl: WRITE_TTL,
        })
    }

    /// A writer's lease on a row not yet written: the request that creates an upload and
    /// sends its first bytes writes the row with the lease held (`NewRow::lease`), which
    /// spares it a second write before the bytes.
    pub fn for_new_row(id: &UploadId) -> Self {
        Self {
            id: id.clone(),
            token: uuid::Uuid::now_v7().to_string(),
            ttl: WRITE_TTL,
        }
    }

    /// Takes the lease on an upload waiting for its scan.
    pub async fn claim_for_scan(ctx: &UploadContext, id: &UploadId) -> Result<Claim, AppError> {
        let token = random_token().map_err(AppError::internal)?;
        let now = ctx.clock.now_naive();
        let (row_id, held) = (id.as_str().to_string(), token.clone());
        let upload = ctx
            .db
            .run(move |conn| -> Result<Option<Upload>, AppError> {
                let until = now + SCAN_TTL;
                if !repo::claim_for_scan(conn, &row_id, waiting_for_scan(), &held, until, now)? {
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
                    ttl: SCAN_TTL,
                },
                Box::new(upload),
            ),
            None => Self::why_not_claimed(ctx, id).await?,
        })
    }

    async fn why_not_claimed(ctx: &UploadContext, id: &UploadId) -> Result<Claim, AppError> {
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

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Moves the lease's end one TTL past now. `false`: it was lost meanwhile (it ran out
    /// and another holder took it).
    async fn extend(&self, ctx: &UploadContext) -> Result<bool, AppError> {
        let until = ctx.clock.now_naive() + self.ttl;
        let (id, token) = (self.id.as_str().to_string(), self.token.clone());
        ctx.db
            .run(move |conn| -> Result<bool, AppError> {
                Ok(write_tx(conn, |conn| {
                    repo::extend_lease(conn, &id, &token, until)
                })?)
            })
            .await
    }

    /// Extends a writer's lease; 409 if it was lost meanwhile (it ran out and was taken).
    pub async fn renew(&self, ctx: &UploadContext) -> Result<(), AppError> {
        if self.extend(ctx).await? {
            Ok(())
        } else {
            Err(AppError::refused(
                409,
                "The upload changed while this request was running. Ask for its offset and resume.",
            ))
        }
    }

    /// Runs `work` while renewing a scan claim. `None` when the lease was lost (another
    /// holder took over after it ran out): the work is dropped unfinished.
    pub async fn hold<T>(&self, ctx: &UploadContext, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval(SCAN_RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; the claim has just set the lease.
        tick.tick().await;
        loop {
            tokio::select! {
                out = &mut work => return Some(out),
                _ = tick.tick() => match self.extend(ctx).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    // The final write checks the token anyway; a slow database is no reason
                    // to abandon a scan that is nearly done.
                    Err(e) => tracing::warn!(upload = %self.id, error = %e, "could not renew the upload lease"),
                },
            }
        }
    }

    /// Gives the lease back. A failure only delays the next holder until it runs out.
    pub async fn release(self, ctx: &UploadContext) {
        let (id, token) = (self.id.as_str().to_string(), self.token);
        if let Err(e) = ctx
            .db
            .run(move |conn| -> Result<(), AppError> {
                write_tx(conn, |conn| repo::release_lease(conn, &id, &token))?;
                Ok(())
            })
            .await
        {
            tracing::warn!(error = %e, "could not release an upload lease");
        }
    }
}
