//! One upload over the JSON API: its details, its bytes and cancelling it. The key owner's
//! uploads only (an administrator's key is not special); anyone else's id answers 404, as
//! an unknown one does. Reading needs scope `read`, cancelling scope `upload`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDateTime;
use serde::Serialize;

use crate::app::error::AppError;
use crate::app::uploads::details::{self, InstanceUids, UploadDetails};
use crate::app::uploads::download::{self, Downloader};
use crate::app::uploads::{UploadContext, Uploader, cancel};
use crate::domain::api_key::Scope;
use crate::domain::ids::UploadId;
use crate::web::api_principal::ApiPrincipal;
use crate::web::download::{
    etag_of, none_match_hits, not_modified, range_not_satisfiable, requested_range, stream,
};

crate::route_table! {
    GET "/api/v1/uploads/{id}" => show,
    GET "/api/v1/uploads/{id}/content" => content,
    DELETE "/api/v1/uploads/{id}" => delete,
}

fn utc(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[derive(Serialize)]
struct Dicom {
    /// How the index took it: `indexed`, `duplicate`, `conflict`, `unreadable`, `directory`.
    state: String,
    study_instance_uid: Option<String>,
    series_instance_uid: Option<String>,
    sop_instance_uid: Option<String>,
}

impl From<InstanceUids> for Dicom {
    fn from(u: InstanceUids) -> Self {
        Self {
            state: u.state,
            study_instance_uid: u.study_uid,
            series_instance_uid: u.series_uid,
            sop_instance_uid: u.sop_instance_uid,
        }
    }
}

#[derive(Serialize)]
struct UploadJson {
    id: String,
    filename: String,
    relative_path: Option<String>,
    bucket_id: String,
    status: &'static str,
    /// Why it was rejected or quarantined, written for the uploader.
    status_reason: Option<String>,
    declared_size: u64,
    /// Bytes stored so far (all of them once completed).
    stored_size: u64,
    sha256: Option<String>,
    created_at: String,
    completed_at: Option<String>,
    scan_status: Option<&'static str>,
    dicom: Option<Dicom>,
}

impl From<UploadDetails> for UploadJson {
    fn from(d: UploadDetails) -> Self {
        let u = d.upload;
        Self {
            id: u.id.as_str().to_string(),
            filename: u.filename,
            relative_path: u.relative_path.map(|p| p.as_str().to_string()),
            bucket_id: u.bucket_id.as_str().to_string(),
            status: u.status.as_str(),
            status_reason: u.status_reason,
            declared_size: u.declared_size,
            stored_size: u.offset,
            sha256: u.sha256,
            created_at: utc(u.created_at),
            completed_at: u.completed_at.map(utc),
            scan_status: u.scan_status.map(|s| s.as_str()),
            dicom: d.dicom.map(Dicom::from),
        }
    }
}

/// The id in the path; one that cannot be an id is as unknown as any other.
fn upload_id(path: &str) -> Result<UploadId, AppError> {
    UploadId::parse(path).ok_or(AppError::NotFound)
}

pub async fn show(
    principal: ApiPrincipal,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read).await?;
    let id = upload_id(&path)?;
    let found = details::of_owner(&ctx.db, &principal.user_id, &id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(UploadJson::from(found)))
}

/// The bytes, by the download page's rules and with its audit event. A client whose copy
/// is current (`If-None-Match`) gets 304 and no event: nothing of the file was sent.
pub async fn content(
    principal: ApiPrincipal,
    req: HttpRequest,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read).await?;
    let id = upload_id(&path)?;
    let who = Downloader {
        user_id: principal.user_id.clone(),
        admin: false,
        actor: principal.actor(),
        origin: principal.origin(),
    };
    let file = download::check(&ctx, who, &id).await?;
    let etag = file.upload().sha256.as_deref().map(etag_of);
    if let Some(etag) = &etag
        && none_match_hits(&req, etag)
    {
        return Ok(not_modified(etag));
    }
    let Ok(range) = requested_range(&req, file.size()) else {
        return Ok(range_not_satisfiable(file.size()));
    };
    let bytes = file.open(&ctx, range).await?;
    Ok(stream(bytes, |res| {
        if let Some(etag) = etag {
            res.insert_header((actix_web::http::header::ETAG, etag));
        }
    }))
}

/// Cancels an unfinished upload (tus termination); 409 once it is finished.
pub async fn delete(
    principal: ApiPrincipal,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Upload).await?;
    let who = Uploader::with_key(principal.key_use(), principal.role);
    let id = upload_id(&path)?;
    cancel::cancel(&ctx, &who, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
