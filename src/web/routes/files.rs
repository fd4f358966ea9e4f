//! Downloads. Only the owner and administrators may fetch a file, and only once it is
//! completed (stored, verified and, when scanning is on, found clean). Every download is
//! audited before the first byte leaves. The bytes are streamed from storage, never held
//! whole, and always sent as an attachment of type `application/octet-stream`: the type the
//! client declared is never echoed, so a stored file cannot become a page on this origin.

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::TryStreamExt;

use super::uploads::Viewer;
use crate::app::audit::{self, Event, Outcome};
use crate::app::buckets;
use crate::app::error::AppError;
use crate::app::uploads::filename::{SafeFilename, content_disposition};
use crate::app::uploads::model::{self, Upload};
use crate::app::uploads::{UploadContext, UploadStatus};
use crate::domain::ids::UploadId;
use crate::infra::storage::blob::{ByteRange, RangeError};
use crate::web::error_pages::keep_body;
use crate::web::extractors::CurrentUser;

crate::route_table! {
    GET "/files/{id}/download" => download,
}

/// Why a visible upload cannot be downloaded, for the person asking.
fn not_downloadable(upload: &Upload) -> AppError {
    let why = match upload.status {
        UploadStatus::Active => "This file has not finished uploading yet.",
        UploadStatus::Completing => {
            "This file is still being verified and scanned. Try again in a moment."
        }
        UploadStatus::Quarantined => {
            "This file is quarantined (infected, or it could not be scanned) and cannot be downloaded."
        }
        UploadStatus::Rejected => "This upload was rejected, so there is no file to download.",
        UploadStatus::Aborted
        | UploadStatus::Expired
        | UploadStatus::CleanupFailed
        | UploadStatus::Completed => "This upload did not finish, so there is no file to download.",
    };
    AppError::refused(409, why)
}

/// The single range asked for, if any and usable. A malformed or multi-range header is
/// ignored (the whole file is sent), as HTTP allows; an unsatisfiable one is refused.
fn requested_range(req: &HttpRequest, size: u64) -> Result<Option<ByteRange>, RangeError> {
    let Some(raw) = req.headers().get(header::RANGE) else {
        return Ok(None);
    };
    let Ok(raw) = raw.to_str() else {
        return Ok(None);
    };
    match ByteRange::parse_http(raw, size) {
        Ok(range) => Ok(Some(range)),
        Err(RangeError::Malformed) => Ok(None),
        Err(RangeError::Unsatisfiable) => Err(RangeError::Unsatisfiable),
    }
}

pub async fn download(
    user: CurrentUser,
    req: HttpRequest,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    // Auditors read the history but never file contents; administrators need TOTP.
    let viewer = Viewer::of(&user)?;
    let id = UploadId::parse(&path).ok_or(AppError::NotFound)?;
    let (upload, bucket) = ctx
        .db
        .run(move |conn| {
            let upload = model::find(conn, &id)?
                .filter(|u| viewer.may_download(u))
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
    let size = upload.declared_size;
    let range = match requested_range(&req, size) {
        Ok(range) => range,
        Err(_) => {
            return Ok(keep_body(
                HttpResponse::RangeNotSatisfiable()
                    .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                    .finish(),
            ));
        }
    };
    let store = ctx.store_for(&bucket).await?;
    let (info, stream) = store.get(&upload.object_key, range).await?;
    if info.size != size {
        // The pipeline verified the size at completion; a difference now is damage.
        return Err(AppError::internal(format!(
            "stored object of upload {} is {} bytes, expected {size}",
            upload.id, info.size
        )));
    }
    let (start, end) = match range {
        Some(r) => r
            .resolve(size)
            .map_err(|_| AppError::internal("range resolved twice"))?,
        None => (0, size.saturating_sub(1)),
    };
    let length = if size == 0 { 0 } else { end - start + 1 };

    let event = Event::new(user.actor(), "file.download", Outcome::Success)
        .origin(user.origin())
        .target("upload", upload.id.as_str())
        .details(serde_json::json!({
            "bucket": bucket.id.as_str(),
            "size": size,
            "range": range.map(|_| format!("{start}-{end}")),
        }));
    audit::record_alone(&ctx.db, event).await?;

    let upload_id = upload.id.clone();
    let body = stream.inspect_err(move |e| {
        // The client sees a cut-off download (the length was promised); the cause is here.
        tracing::error!(upload = %upload_id, error = %e, "download stopped part-way");
    });
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    ))
    .insert_header((header::CONTENT_DISPOSITION, content_disposition(&name)))
    .insert_header((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
    .insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    if range.is_some() {
        res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
    }
    Ok(res.body(SizedStream::new(length, body)))
}
