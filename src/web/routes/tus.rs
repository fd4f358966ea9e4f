//! tus 1.0.0 (<https://tus.io/protocols/resumable-upload>) at `/tus/`: core, `creation`,
//! `creation-with-upload`, `termination`, `expiration` and `checksum` (sha1, sha256).
//! Handlers only translate headers to typed values and back; the upload pipeline does the
//! work. Every answer carries `Tus-Resumable`.

use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::Uploader;
use crate::app::uploads::lease;
use crate::app::uploads::model::{self, Upload, UploadStatus};
use crate::app::uploads::pipeline::{self, RawRequest, UploadRequest};
use crate::app::uploads::tus_headers::{
    self as th, CHECKSUM_ALGORITHMS, TUS_VERSION, TusHeaderError, UploadMetadata,
};
use crate::config::Settings;
use crate::domain::ids::UploadId;

const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/tus")
            .wrap(
                DefaultHeaders::new()
                    .add(("Tus-Resumable", TUS_VERSION))
                    .add(("Tus-Version", TUS_VERSION))
                    .add((header::CACHE_CONTROL, "no-store")),
            )
            .service(
                web::resource("/")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(options))
                    .route(web::post().to(create))
                    .default_service(web::to(super::method_not_allowed)),
            )
            // A sender through an upload request (`routes::send`): the same protocol, with
            // the sender's session as the uploader.
            .service(
                web::resource("/send/")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(options))
                    .route(web::post().to(super::send::tus_create))
                    .default_service(web::to(super::method_not_allowed)),
            )
            .service(
                web::resource("/send/{id}")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(options))
                    .route(web::head().to(super::send::tus_head))
                    .route(web::patch().to(super::send::tus_patch))
                    .route(web::delete().to(super::send::tus_delete))
                    .default_service(web::to(super::method_not_allowed)),
            )
            .service(
                web::resource("/{id}")
                    .route(web::method(actix_web::http::Method::OPTIONS).to(options))
                    .route(web::head().to(head))
                    .route(web::patch().to(patch))
                    .route(web::delete().to(delete))
                    .default_service(web::to(super::method_not_allowed)),
            ),
    );
}

/// How long a HEAD waits for a request still writing to the upload.
const HEAD_WAITS_FOR_WRITER: std::time::Duration = std::time::Duration::from_secs(2);

fn header_error(e: TusHeaderError) -> AppError {
    AppError::Refused(e.status(), e.to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, AppError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| AppError::BadRequest(format!("{name} must be plain text."))),
    }
}

/// Every request but OPTIONS must speak our version (412 otherwise).
fn require_version(req: &HttpRequest) -> Result<(), AppError> {
    let value = header_str(req.headers(), "Tus-Resumable")?.unwrap_or("");
    th::parse_tus_resumable(value).map_err(header_error)
}

fn upload_id(raw: &str) -> Result<UploadId, AppError> {
    UploadId::parse(raw).ok_or(AppError::NotFound)
}

fn expires(at: NaiveDateTime) -> String {
    th::format_expires(DateTime::<Utc>::from_naive_utc_and_offset(at, Utc))
}

pub async fn options(settings: web::Data<Settings>) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Tus-Extension", EXTENSIONS))
        .insert_header(("Tus-Max-Size", settings.uploads.max_size.to_string()))
        .insert_header(("Tus-Checksum-Algorithm", CHECKSUM_ALGORITHMS))
        .finish()
}

/// The URL of an upload, absolute as tus clients expect, under the endpoint it was created
/// at (`/tus/`, or `/tus/send/` for a sender).
fn location(req: &HttpRequest, id: &UploadId) -> String {
    let endpoint = req.path().trim_end_matches('/');
    format!("{}{endpoint}/{id}", crate::web::client::base_url(req))
}

pub async fn create(
    req: HttpRequest,
    who: Uploader,
    ctx: web::Data<UploadContext>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    require_version(&req)?;
    let headers = req.headers();
    if headers.contains_key("Upload-Defer-Length") {
        return Err(AppError::BadRequest(
            "Upload-Length is required: deferred lengths are not supported.".into(),
        ));
    }
    let length = header_str(headers, "Upload-Length")?
        .ok_or_else(|| AppError::BadRequest("Upload-Length is required.".into()))
        .and_then(|v| th::parse_upload_length(v).map_err(header_error))?;
    let metadata = match header_str(headers, "Upload-Metadata")? {
        Some(v) => th::parse_upload_metadata(v).map_err(header_error)?,
        None => UploadMetadata::new(),
    };
    let request = UploadRequest::parse(
        &RawRequest {
            filename: metadata.get_str("filename"),
            filetype: metadata.get_str("filetype"),
            bucket: metadata.get_str("bucket"),
            checksum: metadata.get_str("checksum"),
            relative_path: metadata.get_str("relativePath"),
            batch: metadata.get_str("batch"),
            size: length,
        },
        ctx.settings.uploads.max_size,
    )?;
    let with_body = header_str(headers, "Content-Type")?
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_STREAM));
    let checksum = match (with_body, header_str(headers, "Upload-Checksum")?) {
        (true, Some(v)) => Some(th::parse_upload_checksum(v).map_err(header_error)?),
        _ => None,
    };
    let (upload, offset) = if with_body || length == 0 {
        let (upload, received) =
            pipeline::create_and_receive(&ctx, &who, request, checksum, false, body).await?;
        let offset = match received {
            Ok(done) => done.offset,
            // The upload exists; a refusal of its first bytes is the client's to see.
            Err(e) if refusal(&e) => return Err(e),
            Err(e) => {
                tracing::warn!(upload = %upload.id, error = %e, "first chunk not stored");
                current_offset(&ctx, &upload.id).await?
            }
        };
        (upload, offset)
    } else {
        (pipeline::create(&ctx, &who, request).await?, 0)
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location(&req, &upload.id)))
        .insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Expires", expires(upload.expires_at)))
        .finish())
}

fn refusal(e: &AppError) -> bool {
    use actix_web::ResponseError as _;
    e.status_code().is_client_error()
}

async fn current_offset(ctx: &UploadContext, id: &UploadId) -> Result<u64, AppError> {
    let id = id.clone();
    Ok(ctx
        .db
        .run(move |conn| model::find(conn, &id))
        .await?
        .map_or(0, |u| u.offset))
}

/// The upload as its owner sees it over tus. Finished uploads report their full length;
/// refused and cancelled ones are gone (404); expired ones 410.
async fn owned(ctx: &UploadContext, who: &Uploader, id: &UploadId) -> Result<Upload, AppError> {
    let upload = who.own_upload(&ctx.db, id).await?;
    let expired =
        upload.status == UploadStatus::Active && upload.expires_at <= ctx.clock.now_naive();
    match upload.status {
        UploadStatus::Expired | UploadStatus::CleanupFailed => Err(expired_error()),
        UploadStatus::Active if expired => Err(expired_error()),
        UploadStatus::Rejected | UploadStatus::Aborted => Err(AppError::NotFound),
        _ => Ok(upload),
    }
}

fn expired_error() -> AppError {
    AppError::refused(
        410,
        "This upload expired before it was finished. Please start it again.",
    )
}

pub async fn head(
    req: HttpRequest,
    who: Uploader,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_version(&req)?;
    let id = upload_id(&path)?;
    let mut upload = owned(&ctx, &who, &id).await?;
    if upload.status == UploadStatus::Active {
        // A writer still at work (typically the request a reload cut off): answer with the
        // offset it leaves, so the client resumes from there without a refused PATCH.
        lease::wait_while_held(&ctx, &id, HEAD_WAITS_FOR_WRITER).await?;
        upload = owned(&ctx, &who, &id).await?;
    }
    let offset = if upload.status == UploadStatus::Active {
        upload.offset
    } else {
        upload.declared_size
    };
    let mut metadata = UploadMetadata::new();
    // Names and types were validated at creation; re-encoding cannot fail for them.
    let _ = metadata.insert("filename", upload.filename.as_bytes().to_vec());
    if let Some(t) = &upload.content_type {
        let _ = metadata.insert("filetype", t.as_bytes().to_vec());
    }
    let _ = metadata.insert("bucket", upload.bucket_id.as_str().as_bytes().to_vec());
    let mut res = HttpResponse::Ok();
    res.insert_header(("Upload-Offset", offset.to_string()))
        .insert_header(("Upload-Length", upload.declared_size.to_string()))
        .insert_header(("Upload-Metadata", th::format_metadata(&metadata)));
    if upload.status == UploadStatus::Active {
        res.insert_header(("Upload-Expires", expires(upload.expires_at)));
    }
    Ok(res.finish())
}

pub async fn patch(
    req: HttpRequest,
    who: Uploader,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    require_version(&req)?;
    let headers = req.headers();
    let content_type = header_str(headers, "Content-Type")?.unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case(OFFSET_STREAM) {
        return Err(AppError::refused(
            415,
            "PATCH bodies must be sent as application/offset+octet-stream.",
        ));
    }
    let offset = header_str(headers, "Upload-Offset")?
        .ok_or_else(|| AppError::BadRequest("Upload-Offset is required.".into()))
        .and_then(|v| th::parse_upload_offset(v).map_err(header_error))?;
    let checksum = header_str(headers, "Upload-Checksum")?
        .map(|v| th::parse_upload_checksum(v).map_err(header_error))
        .transpose()?;
    let id = upload_id(&path)?;
    let done = pipeline::append(&ctx, &who, &id, offset, checksum, body).await?;
    let mut res = HttpResponse::NoContent();
    res.insert_header(("Upload-Offset", done.offset.to_string()));
    if !done.finished {
        res.insert_header(("Upload-Expires", expires(done.expires_at)));
    }
    Ok(res.finish())
}

pub async fn delete(
    req: HttpRequest,
    who: Uploader,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_version(&req)?;
    let id = upload_id(&path)?;
    pipeline::terminate(&ctx, &who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
