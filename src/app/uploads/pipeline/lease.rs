//! The per-upload lease as a value: taken before any storage work, renewed while bytes
//! flow, released when the request ends (or left to run out if the process dies).

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::UploadStatus;
use crate::domain::ids::UploadId;

use super::records;

/// Waits, at most `limit`, while a request holds the upload's lease. After a page reload
/// the browser's cut-off PATCH is still being stored for a moment; a HEAD that waits for it
/// tells the resuming client the final offset, so its next PATCH is accepted at once
/// instead of meeting 423 with a body already on the wire.
pub async fn wait_while_held(
    ctx: &UploadContext,
    id: &UploadId,
    limit: std::time::Duration,
) -> Result<(), AppError> {
    let started = std::time::Instant::now();
    loop {
        let (lookup, now) = (id.clone(), ctx.clock.now_naive());
        let held = ctx
            .db
            .run(move |conn| records::lease_held(conn, &lookup, now))
            .await?;
        if !held || started.elapsed() >= limit {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub struct Lease {
    id: UploadId,
    token: String,
}

impl Lease {
    /// Takes the lease of an upload in `status`; 423 when another request holds it.
    pub async fn take(
        ctx: &UploadContext,
        id: &UploadId,
        status: UploadStatus,
    ) -> Result<Self, AppError> {
        let token = uuid::Uuid::now_v7().to_string();
        let now = ctx.clock.now_naive();
        let (lookup, held) = (id.clone(), token.clone());
        let taken = ctx
            .db
            .run(move |conn| records::take_lease(conn, &lookup, status, &held, now))
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
        })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Extends the lease; 409 if it was lost meanwhile (it ran out and was taken).
    pub async fn renew(&self, ctx: &UploadContext) -> Result<(), AppError> {
        let (id, token, now) = (self.id.clone(), self.token.clone(), ctx.clock.now_naive());
        let held = ctx
            .db
            .run(move |conn| records::renew_lease(conn, &id, &token, now))
            .await?;
        if held {
            Ok(())
        } else {
            Err(AppError::refused(
                409,
                "The upload changed while this request was running. Ask for its offset and resume.",
            ))
        }
    }

    /// Gives the lease back. A failure only delays the next writer until it runs out.
    pub async fn release(self, ctx: &UploadContext) {
        let (id, token) = (self.id, self.token);
        if let Err(e) = ctx
            .db
            .run(move |conn| records::release_lease(conn, &id, &token))
            .await
        {
            tracing::warn!(error = %e, "could not release an upload lease");
        }
    }
}
