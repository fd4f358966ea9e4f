//! Batches over JSON, for the browser's folder upload and for scripts (session with CSRF
//! header, or an API key with the `upload` scope, like tus): declare, look up (to resume
//! after a reload), finish.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::app::error::AppError;
use crate::app::uploads::batches::{self, NewBatch};
use crate::app::uploads::{UploadContext, Uploader};
use crate::domain::ids::{BatchId, BucketId};

crate::route_table! {
    POST "/batches" => create,
    GET "/batches/{id}" => show,
    POST "/batches/{id}/finish" => finish,
}

/// Longest JSON body read: a declaration or a finish notice is a few dozen bytes.
const MAX_BODY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Declare {
    bucket: Option<String>,
    files: u64,
    bytes: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Finish {
    #[serde(default)]
    skipped: u64,
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if body.len() > MAX_BODY {
        return Err(AppError::PayloadTooLarge);
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("The request body is not valid: {e}.")))
}

fn batch_id(raw: &str) -> Result<BatchId, AppError> {
    BatchId::parse(raw).ok_or(AppError::NotFound)
}

pub async fn create(
    ctx: web::Data<UploadContext>,
    who: Uploader,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let declared: Declare = json_body(&body)?;
    let bucket = match declared.bucket.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(BucketId::parse(raw).ok_or(AppError::NotFound)?),
    };
    let batch = batches::create(
        &ctx,
        &who,
        NewBatch {
            bucket,
            files: declared.files,
            bytes: declared.bytes,
        },
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/batches/{}", batch.id)))
        .json(batch))
}

pub async fn show(
    ctx: web::Data<UploadContext>,
    who: Uploader,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let status = batches::status(&ctx, &who, &batch_id(&path)?).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(status))
}

pub async fn finish(
    ctx: web::Data<UploadContext>,
    who: Uploader,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let notice: Finish = if body.is_empty() {
        Finish::default()
    } else {
        json_body(&body)?
    };
    let status = batches::finish(&ctx, &who, &batch_id(&path)?, notice.skipped).await?;
    Ok(HttpResponse::Ok().json(status))
}
