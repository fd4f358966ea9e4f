//! Downloads: who may fetch a file's bytes, when, and the audit event that comes before the
//! first byte. The download page and the API both come here, so the rules exist once; the
//! HTTP side (headers, `Range`, ETags) stays in `web`.

use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::buckets::{self, Bucket};
use crate::app::error::AppError;
use crate::app::uploads::filename::SafeFilename;
use crate::app::uploads::model::{self, Upload};
use crate::app::uploads::{UploadContext, UploadStatus};
use crate::domain::ids::{UploadId, UserId};
use crate::infra::storage::blob::{ByteRange, ObjectStream};

/// Who asks for a file. Everyone but the owner and (on the pages) an administrator gets
/// 404, so guessing ids reveals nothing.
#[derive(Debug, Clone)]
pub struct Downloader {
    pub user_id: UserId,
    /// May fetch anyone's file: an administrator with TOTP on the pages. API keys never are.
    pub admin: bool,
    pub actor: Actor,
    pub origin: Origin,
}

impl Downloader {
    fn may_download(&self, upload: &Upload) -> bool {
        self.admin || upload.user_id == self.user_id
    }
}

/// A file the asker may download now; nothing is read or audited yet.
#[derive(Debug)]
pub struct Downloadable {
    upload: Upload,
    bucket: Bucket,
    name: SafeFilename,
    who: Downloader,
}

/// The bytes on their way, after the audit event was written.
pub struct Download {
    pub name: SafeFilename,
    /// The whole file's size.
    pub size: u64,
    /// First and last byte sent (inclusive) when a range was asked for.
    pub span: Option<(u64, u64)>,
    /// Bytes in `stream`.
    pub length: u64,
    pub stream: ObjectStream,
}

/// Why a visible upload cannot be downloaded: a stable code for scripts and a sentence for
/// the person asking.
fn not_downloadable(upload: &Upload) -> AppError {
    let (code, why) = match upload.status {
        UploadStatus::Active => (
            "upload_unfinished",
            "This file has not finished uploading yet.",
        ),
        UploadStatus::Completing => (
            "upload_verifying",
            "This file is still being verified and scanned. Try again in a moment.",
        ),
        UploadStatus::Quarantined => (
            "upload_quarantined",
            "This file is quarantined (infected, or it could not be scanned) and cannot be downloaded.",
        ),
        UploadStatus::Rejected => (
            "upload_rejected",
            "This upload was rejected, so there is no file to download.",
        ),
        UploadStatus::Aborted
        | UploadStatus::Expired
        | UploadStatus::CleanupFailed
        | UploadStatus::Completed => (
            "upload_unfinished",
            "This upload did not finish, so there is no file to download.",
        ),
    };
    AppError::conflict(code, why)
}

/// The upload `id` if `who` may download it now: 404 when it is not theirs, 409 with the
/// reason while it is not completed (stored, verified and, when scanning is on, clean).
pub async fn check(
    ctx: &UploadContext,
    who: Downloader,
    id: &UploadId,
) -> Result<Downloadable, AppError> {
    let id = id.clone();
    let rules = who.clone();
    let (upload, bucket) = ctx
        .db
        .run(move |conn| {
            let upload = model::find(conn, &id)?
                .filter(|u| rules.may_download(u))
                .ok_or(AppError::NotFound)?;
            let bucket = buckets::queries::get(conn, &upload.bucket_id)?;
            Ok::<_, AppError>((upload, bucket))
        })
        .await?;
    if !upload.is_downloadable() {
        return Err(not_downloadable(&upload));
    }
    let name = SafeFilename::parse(&upload.filename)
        .map_err(|e| AppError::internal(format!("stored file name is not safe: {e}")))?;
    Ok(Downloadable {
        upload,
        bucket,
        name,
        who,
    })
}

impl Downloadable {
    pub fn upload(&self) -> &Upload {
        &self.upload
    }

    pub fn size(&self) -> u64 {
        self.upload.declared_size
    }

    /// Audits `file.download`, then opens the bytes (`range` already checked against the
    /// size by the caller).
    pub async fn open(
        self,
        ctx: &UploadContext,
        range: Option<ByteRange>,
    ) -> Result<Download, AppError> {
        let Self {
            upload,
            bucket,
            name,
            who,
        } = self;
        let size = upload.declared_size;
        let store = ctx.store_for(&bucket).await?;
        let (info, stream) = store.get(&upload.object_key, range).await?;
        if info.size != size {
            // The pipeline verified the size at completion; a difference now is damage.
            return Err(AppError::internal(format!(
                "stored object of upload {} is {} bytes, expected {size}",
                upload.id, info.size
            )));
        }
        let span = range
            .map(|r| r.resolve(size))
            .transpose()
            .map_err(|_| AppError::internal("range resolved twice"))?;
        let length = match span {
            Some((start, end)) => end - start + 1,
            None => size,
        };
        let event = Event::new(who.actor, "file.download", Outcome::Success)
            .origin(who.origin)
            .target("upload", upload.id.as_str())
            .details(serde_json::json!({
                "bucket": bucket.id.as_str(),
                "size": size,
                "range": span.map(|(start, end)| format!("{start}-{end}")),
            }));
        audit::record_alone(&ctx.db, event).await?;

        let upload_id = upload.id.clone();
        let stream = stream
            .inspect_ok(|chunk| {
                crate::infra::metrics::metrics()
                    .bytes_downloaded
                    .inc_by(chunk.len() as u64);
            })
            .inspect_err(move |e| {
                // The client sees a cut-off download (the length was promised); the cause
                // is here.
                tracing::error!(upload = %upload_id, error = %e, "download stopped part-way");
            })
            .boxed();
        Ok(Download {
            name,
            size,
            span,
            length,
            stream,
        })
    }
}
