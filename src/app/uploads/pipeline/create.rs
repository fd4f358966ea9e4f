//! Starting an upload: authorise the bucket, check type and size against it, reserve the
//! space, then open the multipart upload in storage (unless the file is small enough to be
//! stored whole with one request, see `layout::stored_whole`). Nothing is stored before
//! every check has passed.

use chrono::TimeDelta;
use serde_json::json;

use crate::app::audit::{Event, Outcome};
use crate::app::buckets::{self, Bucket, SYSTEM_BUCKET_ID};
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::Uploader;
use crate::app::uploads::batches;
use crate::app::uploads::hasher::FileHasher;
use crate::app::uploads::layout::{part_size_for, stored_whole};
use crate::app::uploads::lease::Lease;
use crate::app::uploads::model::{self, Upload, UploadStatus};
use crate::domain::ids::{BucketId, UploadId};
use crate::infra::metrics::{Refused, metrics};
use crate::infra::storage::blob::ObjectKey;

use super::records::{self, Audited, NewRow};
use super::request::UploadRequest;

pub fn audited(who: &Uploader) -> Audited {
    Audited {
        actor: who.actor(),
        origin: who.origin.clone(),
    }
}

/// Creates the upload and, for a file larger than one part, its multipart upload in
/// storage; returns the new row.
pub async fn create(
    ctx: &UploadContext,
    who: &Uploader,
    request: UploadRequest,
) -> Result<Upload, AppError> {
    let (upload, _) = create_row(ctx, who, request, &UploadId::new(), None).await?;
    Ok(upload)
}

/// The same for a request that goes on to send the upload's first bytes: the row is
/// written with this request's lease held, and the bucket comes back for the writer.
pub(super) async fn create_leased(
    ctx: &UploadContext,
    who: &Uploader,
    request: UploadRequest,
) -> Result<(Upload, Bucket, Lease), AppError> {
    let id = UploadId::new();
    let lease = Lease::for_new_row(&id);
    // On failure there is nothing to release: either no row was written, or it was aborted
    // (nothing takes an aborted upload's lease; it simply runs out).
    let (upload, bucket) = create_row(ctx, who, request, &id, Some(lease.token())).await?;
    Ok((upload, bucket, lease))
}

async fn create_row(
    ctx: &UploadContext,
    who: &Uploader,
    mut request: UploadRequest,
    id: &UploadId,
    lease: Option<&str>,
) -> Result<(Upload, Bucket), AppError> {
    who.require_upload(&ctx.db).await?;
    if let Some(scope) = who.sender() {
        // A sender names no bucket: their files go where the request's owner chose.
        request.bucket = Some(scope.bucket.clone());
    }
    let bucket = authorised_bucket(ctx, who, &request).await?;
    let object_key = ObjectKey::for_upload("", id.as_str())
        .ok_or_else(|| AppError::internal("cannot derive an object key"))?;
    let now = ctx.clock.now_naive();
    let expires_at = now
        + TimeDelta::from_std(ctx.settings.uploads.expiry)
            .map_err(|_| AppError::internal("expiry out of range"))?;
    let who_audit = audited(who);
    let whole = stored_whole(request.size);
    let inserted = {
        let row_id = id.clone();
        let owner = who.clone();
        let user_id = who.user_id.clone();
        let api_key_id = who.api_key_id.clone();
        let bucket = bucket.clone();
        let key = object_key.clone();
        let who_audit = who_audit.clone();
        let sender = who.sender().cloned();
        let lease = lease.map(str::to_string);
        ctx.db
            .run(move |conn| {
                if let Some(batch) = &request.batch {
                    let batch = batches::owned(conn, &owner, batch)?;
                    batches::check_member(&batch, Some(&bucket.id))?;
                }
                let row = NewRow {
                    id: &row_id,
                    user_id: user_id.as_str(),
                    api_key_id: api_key_id.as_ref().map(|k| k.as_str()),
                    bucket: &bucket,
                    request: &request,
                    part_size: part_size_for(request.size),
                    object_key: &key,
                    hash_state: FileHasher::new().save(),
                    expires_at,
                    now,
                    sender: sender.as_ref(),
                    lease: lease.as_deref(),
                };
                records::insert(conn, &row, &who_audit)?;
                // A file stored whole is ready now; a larger one once storage opened it.
                if whole {
                    model::find(conn, &row_id)
                } else {
                    Ok(None)
                }
            })
            .await?
    };
    let upload = match inserted {
        Some(upload) => Some(upload),
        None if whole => None,
        None => open_multipart(ctx, &bucket, id, &object_key, &who_audit).await?,
    };
    let upload = upload.ok_or_else(|| AppError::internal("new upload vanished"))?;
    Ok((upload, bucket))
}

/// Opens the upload's multipart upload, writes its id down and returns the row; when
/// storage fails the row is aborted (releasing the reservation) and the client may simply
/// try again.
async fn open_multipart(
    ctx: &UploadContext,
    bucket: &Bucket,
    id: &UploadId,
    object_key: &ObjectKey,
    who_audit: &Audited,
) -> Result<Option<Upload>, AppError> {
    let now = ctx.clock.now_naive();
    let opened = match ctx.store_for(bucket).await {
        Ok(store) => store
            .create_multipart(object_key)
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match opened {
        Ok(multipart) => {
            let row_id = id.clone();
            ctx.db
                .run(move |conn| {
                    records::set_storage_id(conn, &row_id, multipart.as_str())?;
                    model::find(conn, &row_id)
                })
                .await
        }
        Err(e) => {
            let row_id = id.clone();
            let event = who_audit
                .on("upload.abort", Outcome::Failure, id)
                .details(json!({ "reason": "storage unavailable at creation" }));
            ctx.db
                .run(move |conn| {
                    records::transition(
                        conn,
                        &row_id,
                        None,
                        &[UploadStatus::Active],
                        UploadStatus::Aborted,
                        Some("Storage was unavailable; please try again."),
                        now,
                        Some(event),
                    )
                })
                .await?;
            Err(e)
        }
    }
}

/// The bucket, if this user may upload there and it takes this type; else 404 / 415, both
/// audited.
async fn authorised_bucket(
    ctx: &UploadContext,
    who: &Uploader,
    request: &UploadRequest,
) -> Result<Bucket, AppError> {
    let bucket_id = request
        .bucket
        .clone()
        .unwrap_or_else(|| BucketId::from_db(SYSTEM_BUCKET_ID.to_string()));
    let user = who.user_id.clone();
    let role = who.role;
    let lookup = bucket_id.clone();
    let bucket = ctx
        .db
        .run(move |conn| buckets::visible_bucket(conn, &user, role, &lookup))
        .await?;
    let refusal = match &bucket {
        None => Some((
            Refused::BucketNotVisible,
            "bucket not visible",
            AppError::NotFound,
        )),
        Some(b) if !b.extensions.allows(request.extension) => Some((
            Refused::TypeNotAllowed,
            "type not allowed in bucket",
            AppError::refused(
                415,
                format!(
                    "This bucket does not accept {}. It accepts: {}.",
                    type_name(request.extension),
                    b.extensions.describe()
                ),
            ),
        )),
        Some(_) => None,
    };
    match (bucket, refusal) {
        (Some(bucket), None) => Ok(bucket),
        (_, Some((counted, reason, error))) => {
            metrics().refused(counted);
            let event = Event::new(who.actor(), "upload.reject", Outcome::Denied)
                .origin(who.origin.clone())
                .details(json!({
                    "bucket": bucket_id.as_str(),
                    "filename": request.filename.as_str(),
                    "reason": reason,
                }));
            ctx.db
                .run(move |conn| records::audit_only(conn, &event))
                .await?;
            Err(error)
        }
        (None, None) => Err(AppError::NotFound),
    }
}

/// "DICOM files" for a name without a type (taken only as DICOM), else ".pdf files".
fn type_name(extension: &str) -> String {
    if extension == buckets::UNNAMED_DICOM {
        "DICOM files (a file named without an extension is taken only as DICOM)".to_string()
    } else {
        format!(".{extension} files")
    }
}
