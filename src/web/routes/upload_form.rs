//! `POST /uploads`: the upload page without JavaScript. A plain multipart form (`bucket`,
//! then `file`) goes through the same pipeline as tus, streamed: the file is never held
//! whole in memory. The CSRF token comes in the query string, because the CSRF layer does
//! not read multipart bodies.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::Uploader;
use crate::app::uploads::pipeline::{self, RawRequest, UploadRequest};
use crate::web::extractors::CurrentUser;

crate::route_table! {
    POST "/uploads" => submit,
}

/// Longest text field accepted before the file (a bucket id is 36 characters).
const MAX_FIELD: usize = 256;

pub async fn submit(
    req: HttpRequest,
    user: CurrentUser,
    ctx: web::Data<UploadContext>,
    form: Multipart,
) -> Result<HttpResponse, AppError> {
    let who = Uploader::signed_in(
        user.id.clone(),
        user.email.clone(),
        user.role,
        user.origin(),
    );
    let (id, _) = receive(&req, &ctx, &who, form).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/uploads/{id}")))
        .finish())
}

/// Reads the form and sends its file through the pipeline as `who`; the new upload's id
/// and the file's name. Also a sender's form (`routes::send`).
pub async fn receive(
    req: &HttpRequest,
    ctx: &UploadContext,
    who: &Uploader,
    mut form: Multipart,
) -> Result<(crate::domain::ids::UploadId, String), AppError> {
    // The request's length bounds the file's size: it reserves quota and sizes the parts.
    let bound = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| AppError::refused(411, "The upload must say how long it is."))?;
    let mut bucket: Option<String> = None;
    while let Some(field) = form.try_next().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "bucket" => bucket = Some(read_text(field).await?),
            "file" => {
                let filename = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .map(str::to_string)
                    .unwrap_or_default();
                let filetype = field.content_type().map(ToString::to_string);
                let request = UploadRequest::parse(
                    &RawRequest {
                        filename: Some(&filename),
                        filetype: filetype.as_deref(),
                        bucket: bucket.as_deref(),
                        checksum: None,
                        relative_path: None,
                        batch: None,
                        size: bound,
                    },
                    ctx.settings.uploads.max_size,
                )?;
                let (upload, received) =
                    pipeline::create_and_receive(ctx, who, request, None, true, field).await?;
                if let Err(e) = received {
                    // Nothing half-made stays behind (a no-op when the pipeline already
                    // rejected it).
                    if let Err(cleanup) = pipeline::terminate(ctx, who, &upload.id).await {
                        tracing::debug!(error = %cleanup, "nothing to cancel after a failed form upload");
                    }
                    return Err(e);
                }
                // Anything after the file is ignored.
                while let Some(rest) = form.next().await {
                    drop(rest);
                }
                return Ok((upload.id, upload.filename));
            }
            _ => {
                // Unknown fields are read and dropped.
                read_text(field).await?;
            }
        }
    }
    Err(AppError::BadRequest("Choose a file to upload.".into()))
}

fn bad_form(e: actix_multipart::MultipartError) -> AppError {
    tracing::debug!(error = %e, "malformed multipart form");
    AppError::BadRequest("The form could not be read. Please try again.".into())
}

async fn read_text(mut field: actix_multipart::Field) -> Result<String, AppError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.try_next().await.map_err(bad_form)? {
        if text.len() + chunk.len() > MAX_FIELD {
            return Err(AppError::BadRequest("A form field is too long.".into()));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).map_err(|_| AppError::BadRequest("A form field is not text.".into()))
}
