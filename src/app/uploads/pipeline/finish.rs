//! The end of an upload: assemble the object from the server's own part list, verify size,
//! encryption and SHA-256, then either complete it or hand it to the scanner. Also
//! cancellation (tus termination) and the recovery of a completion cut short by a crash.

use std::time::Duration;

use bytes::Bytes;

use serde_json::json;

use crate::app::audit::{Actor, Outcome};
use crate::app::buckets::queries as bucket_queries;
use crate::app::buckets::{Backend, Bucket, Encryption};
use crate::app::error::AppError;
use crate::app::notifications::webhooks::{self, WebhookEvent};
use crate::app::uploads::UploadContext;
use crate::app::uploads::Uploader;
use crate::app::uploads::hasher::FileHasher;
use crate::app::uploads::layout::{split, tail_key};
use crate::app::uploads::lease::Lease;
use crate::app::uploads::model::{self, Upload, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::metrics::{Refused, metrics};
use crate::infra::storage::blob::{BlobStore, LOCAL_SSE, MultipartId, ObjectInfo, StorageError};

use super::leftovers;
use super::records::{self, Audited, StoredPart};
use super::storage_io::delete_quietly;

/// A file the request stored whole: what storage reported, and its bytes, still in memory,
/// so that a DICOM header is read from them rather than fetched back.
pub struct StoredWhole {
    pub info: ObjectInfo,
    pub bytes: Bytes,
}

/// What the request that received an upload's last byte knows, so that completing it reads
/// none of it back; all `None` when completion resumes after a crash.
#[derive(Default)]
pub struct Received {
    /// The file's digest state at its last byte.
    pub state: Option<Vec<u8>>,
    /// The tails written down when the last byte was committed.
    pub tails: Option<Vec<u64>>,
    /// What storage reported for a file this request stored whole.
    pub stored: Option<StoredWhole>,
    /// The last byte's parts, not committed yet: an upload created and stored whole by one
    /// request commits its last byte with the verdict, in one transaction.
    pub uncommitted: Option<Uncommitted>,
}

/// Parts stored from the committed offset `from` to the end, to commit with the verdict.
pub struct Uncommitted {
    pub from: u64,
    pub parts: Vec<StoredPart>,
}

/// Completes a fully received upload (its lease held by the caller). Its last byte's commit
/// already moved it to `completing`, unless `received` carries that commit
/// ([`Received::uncommitted`]): then a failure leaves the upload as it was before the
/// request's bytes, to be sent again.
pub async fn complete(
    ctx: &UploadContext,
    lease: &Lease,
    upload: &Upload,
    bucket: &Bucket,
    store: &BlobStore,
    received: Received,
    audited: &Audited,
) -> Result<(), AppError> {
    let Received {
        state,
        tails,
        stored,
        uncommitted,
    } = received;
    let status = if uncommitted.is_some() {
        UploadStatus::Active
    } else {
        UploadStatus::Completing
    };
    // A multipart upload needs its recorded parts: storage assembles them. A file this
    // request stored whole is checked against what storage holds, below.
    let multipart = upload.multipart();
    let (parts, state) = match (&multipart, state) {
        (None, Some(state)) => (None, Some(state)),
        (_, state) => {
            let id = upload.id.clone();
            ctx.db
                .run(move |conn| {
                    let parts = Some(records::parts(conn, &id)?);
                    let state = match state {
                        Some(state) => Some(state),
                        None => records::hash_state(conn, &id)?,
                    };
                    Ok::<_, AppError>((parts, state))
                })
                .await?
        }
    };
    if let Some(parts) = &parts {
        let recorded: u64 = parts.iter().map(|p| p.size).sum();
        if recorded != upload.declared_size {
            return Err(AppError::internal(format!(
                "upload {}: parts hold {recorded} bytes, declared {}",
                upload.id, upload.declared_size
            )));
        }
    }
    let (info, held) = match multipart {
        Some(multipart) => {
            let parts = parts.unwrap_or_default();
            (assemble(store, upload, &multipart, &parts).await?, None)
        }
        None if upload.stored_whole() => match stored {
            Some(StoredWhole { info, bytes }) => (info, Some(bytes)),
            // Resumed after a crash: the object's own record says what was stored.
            None => {
                let info = store.head(&upload.object_key).await?.ok_or_else(|| {
                    AppError::internal(format!("upload {}: no object stored whole", upload.id))
                })?;
                (info, None)
            }
        },
        None => {
            return Err(AppError::internal(
                "completing an upload without a storage id",
            ));
        }
    };
    let sha256 = state
        .as_deref()
        .and_then(FileHasher::restore)
        .map(FileHasher::finish_hex)
        .ok_or_else(|| AppError::internal(format!("upload {} lost its digest state", upload.id)))?;
    let problem = if info.size != upload.declared_size {
        Some(format!(
            "storage holds {} bytes instead of {}",
            info.size, upload.declared_size
        ))
    } else if !encryption_ok(bucket, &info) {
        Some("the stored object is not encrypted as the bucket requires".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        tracing::error!(upload = %upload.id, %problem, "completed object failed verification");
        store.delete(&upload.object_key).await?;
        leftovers::sweep_quietly(ctx, store, &upload.id, &upload.object_key).await;
        return Err(fail(ctx, lease, upload, status, audited, &problem, 500).await);
    }
    if let Some(expected) = &upload.client_checksum
        && *expected != sha256
    {
        store.delete(&upload.object_key).await?;
        leftovers::sweep_quietly(ctx, store, &upload.id, &upload.object_key).await;
        return Err(fail(
            ctx,
            lease,
            upload,
            status,
            audited,
            "the file's SHA-256 does not match the checksum given when the upload started",
            460,
        )
        .await);
    }
    let scan = ctx.settings.uploads.clamd.is_some();
    let event = audited
        .on("upload.complete", Outcome::Success, &upload.id)
        .details(json!({
            "bucket": upload.bucket_id.as_str(),
            "size": upload.declared_size,
            "sha256": sha256,
            "scan": if scan { "pending" } else { "off" },
        }));
    // Swept before the verdict is written: once the upload is completed nothing comes back
    // to it, so a crash right after the verdict must find nothing left to sweep. Until then
    // a crash leaves it `completing`, and resuming sweeps again.
    leftovers::sweep_completed(ctx, store, &upload.id, &upload.object_key, tails).await;
    let (id, token, now) = (
        upload.id.clone(),
        lease.token().to_string(),
        ctx.clock.now_naive(),
    );
    // Written with the verdict, in one commit. A storage error leaves no row: the file is
    // complete and listed, and the cleanup worker's next pass reads it again.
    let index = match upload.is_dicom() {
        false => None,
        true => {
            match crate::app::studies::index::prepare(ctx, store, upload, &sha256, held).await {
                Ok(prepared) => Some(prepared),
                Err(e) => {
                    tracing::warn!(upload = %upload.id, error = %e, "DICOM header not read");
                    None
                }
            }
        }
    };
    let request = upload.request_id.clone();
    let portal = crate::app::requests::notices::Portal::of(&ctx.settings);
    let completed = (!scan).then(|| {
        webhooks::upload_event(upload, WebhookEvent::UploadCompleted, Some(&sha256), "off")
    });
    let size = upload.declared_size;
    ctx.db
        .run(move |conn| {
            let last_byte = uncommitted.as_ref().map(|u| records::Progress {
                id: &id,
                token: &token,
                from: u.from,
                to: size,
                hash_state: state.as_deref().unwrap_or_default(),
                parts: &u.parts,
                finished: true,
                now,
            });
            let verdict = records::Verdict {
                sha256: &sha256,
                scan,
                now,
                event: &event,
                index: index.as_ref(),
                request: request.as_ref(),
                portal: &portal,
                completed: completed.as_ref(),
                last_byte,
            };
            records::verified(conn, &id, &token, &verdict)
        })
        .await?;
    metrics().uploads_completed.inc();
    if scan {
        let (ctx, id) = (ctx.clone(), upload.id.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::app::uploads::scanner::settle(&ctx, &id).await {
                tracing::error!(upload = %id, error = %e, "scan did not finish; it is retried later");
            }
        });
    }
    Ok(())
}

/// CompleteMultipartUpload with retries; an upload that storage already completed (a
/// previous attempt succeeded just before a crash) is accepted when the object is there.
async fn assemble(
    store: &BlobStore,
    upload: &Upload,
    multipart: &MultipartId,
    parts: &[crate::infra::storage::blob::PartInfo],
) -> Result<ObjectInfo, AppError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match store.complete(&upload.object_key, multipart, parts).await {
            Ok(_) => break,
            Err(StorageError::NoSuchUpload) => break,
            Err(e) if e.is_retryable() && attempt < 3 => {
                tracing::warn!(error = %e, attempt, "completion failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    store.head(&upload.object_key).await?.ok_or_else(|| {
        AppError::internal(format!("upload {}: no object after completion", upload.id))
    })
}

fn encryption_ok(bucket: &Bucket, info: &ObjectInfo) -> bool {
    let sse = info.sse.as_deref();
    match (bucket.backend, &bucket.encryption) {
        (Backend::Local, _) => sse == Some(LOCAL_SSE),
        (Backend::S3, Encryption::None) => true,
        (Backend::S3, Encryption::SseS3) => sse == Some("AES256"),
        (Backend::S3, Encryption::SseKms { .. }) => sse == Some("aws:kms"),
    }
}

/// Marks an upload in `from` (`completing`, or still `active` when its last byte was to be
/// committed with the verdict) `rejected` with `reason` and answers `status`.
async fn fail(
    ctx: &UploadContext,
    lease: &Lease,
    upload: &Upload,
    from: UploadStatus,
    audited: &Audited,
    reason: &str,
    status: u16,
) -> AppError {
    metrics().refused(if status == 460 {
        Refused::Checksum
    } else {
        Refused::Verification
    });
    let message = format!("The upload was refused: {reason}.");
    let event = audited
        .on("upload.reject", Outcome::Failure, &upload.id)
        .details(json!({ "reason": reason }));
    let (id, token, now, stored) = (
        upload.id.clone(),
        lease.token().to_string(),
        ctx.clock.now_naive(),
        message.clone(),
    );
    if let Err(e) = ctx
        .db
        .run(move |conn| {
            records::transition(
                conn,
                &id,
                Some(&token),
                &[from],
                UploadStatus::Rejected,
                Some(&stored),
                now,
                Some(event),
            )
        })
        .await
    {
        return e;
    }
    if status >= 500 {
        AppError::internal(message)
    } else {
        AppError::refused(status, message)
    }
}

/// Finishes an upload left in `completing` without a verdict (the process stopped during
/// completion). Safe to call from any instance at any time: it needs the lease, and does
/// nothing for uploads in any other state.
pub async fn resume_completion(ctx: &UploadContext, id: &UploadId) -> Result<(), AppError> {
    let lookup = id.clone();
    let Some(upload) = ctx.db.run(move |conn| model::find(conn, &lookup)).await? else {
        return Ok(());
    };
    if upload.status != UploadStatus::Completing || upload.sha256.is_some() {
        return Ok(());
    }
    let lease = Lease::take_for_write(ctx, id, UploadStatus::Completing).await?;
    let bucket_id = upload.bucket_id.clone();
    let result = async {
        let bucket = ctx
            .db
            .run(move |conn| bucket_queries::get(conn, &bucket_id))
            .await?;
        let store = ctx.store_for(&bucket).await?;
        let audited = Audited {
            actor: Actor::system(),
            origin: Default::default(),
        };
        let received = Received::default();
        complete(ctx, &lease, &upload, &bucket, &store, received, &audited).await
    }
    .await;
    lease.release(ctx).await;
    result
}

/// tus termination: the uploader cancels an unfinished upload. Storage is cleaned up and the
/// row is kept as history (`aborted`).
pub async fn terminate(ctx: &UploadContext, who: &Uploader, id: &UploadId) -> Result<(), AppError> {
    who.require_upload(&ctx.db).await?;
    let upload = super::append::writable(ctx, who, id).await?;
    let lease = Lease::take_for_write(ctx, id, UploadStatus::Active).await?;
    let result = async {
        let bucket_id = upload.bucket_id.clone();
        let bucket = ctx
            .db
            .run(move |conn| bucket_queries::get(conn, &bucket_id))
            .await?;
        let store = ctx.store_for(&bucket).await?;
        match upload.multipart() {
            Some(multipart) => store.abort(&upload.object_key, &multipart).await?,
            // Stored whole only at the last byte; an object here is from a request whose
            // commit never landed.
            None => delete_quietly(&store, &upload.object_key).await,
        }
        if split(upload.offset, upload.part_size).1 > 0
            && let Some(tail) = tail_key(&upload.object_key, upload.offset)
        {
            delete_quietly(&store, &tail).await;
        }
        leftovers::sweep_quietly(ctx, &store, &upload.id, &upload.object_key).await;
        let audited = super::create::audited(who);
        let event = audited
            .on("upload.abort", Outcome::Success, &upload.id)
            .details(json!({ "offset": upload.offset, "size": upload.declared_size }));
        let (row, token, now) = (
            upload.id.clone(),
            lease.token().to_string(),
            ctx.clock.now_naive(),
        );
        ctx.db
            .run(move |conn| {
                records::transition(
                    conn,
                    &row,
                    Some(&token),
                    &[UploadStatus::Active],
                    UploadStatus::Aborted,
                    Some("Cancelled by the uploader."),
                    now,
                    Some(event),
                )
            })
            .await?;
        Ok(())
    }
    .await;
    lease.release(ctx).await;
    result
}
