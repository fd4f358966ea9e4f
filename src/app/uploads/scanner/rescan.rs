//! An administrator's second scan of a quarantined upload: one that was not scanned (scanner
//! down, timed out, over a limit, storage unreadable), or an infected one kept under
//! `quarantine/` (signatures change). The row goes back to `completing` / `pending` with an
//! `upload.rescan` event, in one transaction, and [`settle`](super::settle) runs again with
//! every check it always makes: a rescan can release a file only when clamd says it is clean
//! and its bytes still match the recorded SHA-256.

use std::time::Duration;

use serde_json::json;

use super::quarantine::is_quarantine_key;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::{AppError, Refusable};
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, ScanStatus, Upload, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::db::repo::uploads as repo;
use crate::infra::db::write_tx;

/// Why a rescan was refused; each text is written for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Without a scanner, "settling" would release the file unscanned.
    ScanningOff,
    /// Not quarantined, or infected and already deleted from storage.
    NotEligible,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::ScanningOff => {
                "Virus scanning is not configured (MEDPORT_CLAMD), so nothing can be rescanned."
            }
            Self::NotEligible => {
                "Only quarantined uploads that were not scanned, or infected files kept in quarantine, can be rescanned."
            }
        }
    }
}

/// Whether the admin page offers a rescan for this upload.
pub fn eligible(upload: &Upload) -> bool {
    upload.status == UploadStatus::Quarantined
        && match upload.scan_status {
            Some(ScanStatus::NotScanned) => true,
            // An infected object that was deleted has nothing left to scan.
            Some(ScanStatus::Infected) => is_quarantine_key(&upload.object_key),
            _ => false,
        }
}

/// Puts the upload back in the scanner's queue (`upload.rescan`). `NotFound` for an
/// unknown id.
pub async fn request(
    ctx: &UploadContext,
    id: &UploadId,
    actor: Actor,
    origin: Origin,
) -> Result<(), Refusable<Refusal>> {
    let scanning_on = ctx.settings.uploads.clamd.is_some();
    let now = ctx.clock.now_naive();
    let id = id.clone();
    ctx.db
        .run(move |conn| -> Result<(), Refusable<Refusal>> {
            write_tx(conn, |conn| {
                let upload = model::find(conn, &id)?.ok_or(AppError::NotFound)?;
                if !scanning_on {
                    return Err(Refusable::Refused(Refusal::ScanningOff));
                }
                if !eligible(&upload) {
                    return Err(Refusable::Refused(Refusal::NotEligible));
                }
                let previous = upload.scan_status.map_or("", ScanStatus::as_str);
                // Guarded by the state just read, so two admins pressing the button at once
                // queue one scan.
                let queued = repo::requeue_scan(
                    conn,
                    id.as_str(),
                    repo::ScanState {
                        status: UploadStatus::Quarantined.as_str(),
                        scan_status: previous,
                    },
                    upload.object_key.as_str(),
                    repo::ScanState {
                        status: UploadStatus::Completing.as_str(),
                        scan_status: ScanStatus::Pending.as_str(),
                    },
                    now,
                )?;
                if !queued {
                    return Err(Refusable::Refused(Refusal::NotEligible));
                }
                let event = Event::new(actor, "upload.rescan", Outcome::Success)
                    .target("upload", id.as_str())
                    .origin(origin)
                    .details(json!({
                        "previous_scan": previous,
                        "previous_reason": upload.status_reason,
                        "previous_detail": upload.scan_detail,
                    }));
                audit::record(conn, &event)?;
                Ok(())
            })
        })
        .await
}

/// Runs the scan in the background and waits up to `wait` for it; `true` when it finished
/// in that time. A scan that takes longer carries on (its result shows on the pages).
pub async fn run(ctx: UploadContext, id: UploadId, wait: Duration) -> bool {
    let task = tokio::spawn(async move {
        if let Err(e) = super::settle(&ctx, &id).await {
            tracing::error!(upload = %id, error = %e, "rescan failed");
        }
    });
    tokio::time::timeout(wait, task).await.is_ok()
}
