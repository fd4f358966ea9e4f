//! The scanner's final write: the upload's new state, the lease released and the audit
//! event, in one transaction. The update only applies to the row as the claim left it (still
//! `completing` / `pending`, still our lease), so a holder that lost its lease changes
//! nothing.

use chrono::NaiveDateTime;
use serde_json::json;

use super::quarantine::Disposal;
use super::reason::Reason;
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::app::error::AppError;
use crate::app::notifications::webhooks::{BucketEvent, WebhookEvent, upload_event};
use crate::app::uploads::UploadContext;
use crate::app::uploads::lease::{Lease, waiting_for_scan};
use crate::app::uploads::model::{self, ScanStatus, Upload, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::db::repo::uploads::{self as repo, Settled};
use crate::infra::db::{DbConnection, write_tx};

pub enum Final {
    Clean,
    Infected {
        signature: String,
        disposal: Disposal,
    },
    NotScanned(Reason),
}

pub async fn write(
    ctx: &UploadContext,
    lease: &Lease,
    upload: &Upload,
    outcome: Final,
) -> Result<(), AppError> {
    let now = ctx.clock.now_naive();
    let quarantined = !matches!(outcome, Final::Clean);
    let (changes, event) = describe(upload, outcome, now);
    let kind = if quarantined {
        WebhookEvent::UploadQuarantined
    } else {
        WebhookEvent::UploadCompleted
    };
    let notice = upload_event(upload, kind, None, changes.scan_status.unwrap_or(""));
    let (id, token) = (upload.id.as_str().to_string(), lease.token().to_string());
    let applied = ctx
        .db
        .run(move |conn| apply(conn, &id, &token, &changes, &event, &notice))
        .await?;
    if !applied {
        tracing::warn!(upload = %upload.id, "the upload changed under the scanner; its result was not recorded");
    } else if quarantined {
        crate::infra::metrics::metrics().uploads_quarantined.inc();
    }
    Ok(())
}

fn describe(upload: &Upload, outcome: Final, now: NaiveDateTime) -> (Settled, Event) {
    let mut settled = Settled {
        status: UploadStatus::Quarantined.as_str(),
        scan_status: None,
        scan_detail: None,
        status_reason: None,
        object_key: upload.object_key.as_str().to_string(),
        completed_at: upload.completed_at,
        updated_at: now,
        lease_token: None,
        lease_until: None,
    };
    let event = |action, details| {
        Event::new(Actor::system(), action, Outcome::Success)
            .target("upload", upload.id.as_str())
            .details(details)
    };
    let event = match outcome {
        Final::Clean => {
            settled.status = UploadStatus::Completed.as_str();
            settled.scan_status = Some(ScanStatus::Clean.as_str());
            settled.completed_at = Some(upload.completed_at.unwrap_or(now));
            event(
                "upload.scan",
                json!({
                    "scan": ScanStatus::Clean.as_str(),
                    "size": upload.declared_size,
                    "sha256": upload.sha256,
                }),
            )
        }
        Final::Infected {
            signature,
            disposal,
        } => {
            settled.scan_status = Some(ScanStatus::Infected.as_str());
            settled.status_reason = Some(format!("Malware detected ({signature})"));
            if let Disposal::Moved { to, .. } = &disposal {
                settled.object_key = to.as_str().to_string();
            }
            settled.scan_detail = Some(signature.clone());
            event(
                "upload.quarantine",
                json!({
                    "scan": ScanStatus::Infected.as_str(),
                    "reason": "malware detected",
                    "signature": signature,
                    "object": disposal.describe(),
                    "object_key": settled.object_key,
                }),
            )
        }
        Final::NotScanned(why) => {
            settled.scan_status = Some(ScanStatus::NotScanned.as_str());
            settled.status_reason = Some(why.status_reason());
            settled.scan_detail = Some(why.code().to_string());
            event(
                "upload.quarantine",
                json!({
                    "scan": ScanStatus::NotScanned.as_str(),
                    "reason": why.text(),
                    "code": why.code(),
                }),
            )
        }
    };
    (settled, event)
}

fn apply(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    changes: &Settled,
    event: &Event,
    notice: &BucketEvent,
) -> Result<bool, AppError> {
    write_tx(conn, |conn| {
        if !repo::settle(conn, id, token, waiting_for_scan(), changes)? {
            return Ok(false);
        }
        audit::record(conn, event)?;
        notice.queue(conn)?;
        Ok(true)
    })
}

/// Scanning is off: an upload waiting for a scan is simply completed (the pipeline normally
/// does this itself; this covers a row left waiting when scanning was switched off).
pub async fn complete_unscanned(ctx: &UploadContext, id: &UploadId) -> Result<(), AppError> {
    let now = ctx.clock.now_naive();
    let row_id = id.as_str().to_string();
    let event = Event::new(Actor::system(), "upload.scan", Outcome::Success)
        .target("upload", id.as_str())
        .details(json!({ "scan": "off", "result": "completed without a scan" }));
    ctx.db
        .run(move |conn| -> Result<(), AppError> {
            write_tx(conn, |conn| {
                let Some(upload) = model::find(conn, &UploadId::from_db(row_id.clone()))? else {
                    return Ok(());
                };
                let completed = repo::complete_unscanned(
                    conn,
                    &row_id,
                    waiting_for_scan(),
                    UploadStatus::Completed.as_str(),
                    upload.completed_at.unwrap_or(now),
                    now,
                )?;
                if completed {
                    audit::record(conn, &event)?;
                    upload_event(&upload, WebhookEvent::UploadCompleted, None, "off")
                        .queue(conn)?;
                }
                Ok(())
            })
        })
        .await
}
