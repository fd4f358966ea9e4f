//! WADO-RS: stored instances as `multipart/related; type="application/dicom"` (streamed)
//! and metadata as DICOM JSON, at study, series and instance level. Rendered media,
//! frames, thumbnails and bulk data would need transcoding, which is not offered: they
//! answer 406 with a message that says so.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{Answer, DICOM_JSON, base, negotiate, reader, respond};
use crate::app::dicomweb::uid;
use crate::app::dicomweb::wado::{self, Target};
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::web::api_principal::ApiPrincipal;

crate::route_table! {
    GET "/dicomweb/studies/{study}" => study,
    GET "/dicomweb/studies/{study}/metadata" => study_metadata,
    GET "/dicomweb/studies/{study}/series/{series}" => series,
    GET "/dicomweb/studies/{study}/series/{series}/metadata" => series_metadata,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}" => instance,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/metadata" => instance_metadata,
    GET "/dicomweb/studies/{study}/rendered" => not_offered,
    GET "/dicomweb/studies/{study}/thumbnail" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/rendered" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/thumbnail" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/thumbnail" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/rendered" => not_offered,
    GET "/dicomweb/studies/{study}/series/{series}/instances/{sop}/frames/{frames}/thumbnail" => not_offered,
}

type Key = Result<ApiPrincipal, actix_web::Error>;

/// The target the path names (the first one to three segments after `/studies/`).
fn target(req: &HttpRequest) -> Result<Target, AppError> {
    let info = req.match_info();
    let part = |name: &str, what: &str| info.get(name).map(|raw| uid(what, raw)).transpose();
    Ok(Target {
        study: uid("the study UID", info.get("study").unwrap_or_default())?,
        series: part("series", "the series UID")?,
        instance: part("sop", "the SOP instance UID")?,
    })
}

async fn retrieve(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> Answer {
    let principal = reader(key).await?;
    let syntax = negotiate::instances(&req)?;
    let target = target(&req)?;
    let who = (&principal.user_id, principal.actor(), principal.origin());
    let retrieval = wado::retrieve(&ctx, who, &target, &syntax).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            format!(
                "multipart/related; type=\"application/dicom\"; boundary={}",
                retrieval.boundary
            ),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(retrieval.body))
}

async fn metadata(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> Answer {
    let principal = reader(key).await?;
    negotiate::json(&req)?;
    let target = target(&req)?;
    let who = (&principal.user_id, principal.actor(), principal.origin());
    let sets = wado::metadata(&ctx, who, &target, &base(&req)).await?;
    Ok(HttpResponse::Ok()
        .content_type(DICOM_JSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(sets))
}

pub async fn study(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> HttpResponse {
    respond(retrieve(req, key, ctx).await)
}

pub async fn series(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> HttpResponse {
    respond(retrieve(req, key, ctx).await)
}

pub async fn instance(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> HttpResponse {
    respond(retrieve(req, key, ctx).await)
}

pub async fn study_metadata(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
) -> HttpResponse {
    respond(metadata(req, key, ctx).await)
}

pub async fn series_metadata(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
) -> HttpResponse {
    respond(metadata(req, key, ctx).await)
}

pub async fn instance_metadata(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
) -> HttpResponse {
    respond(metadata(req, key, ctx).await)
}

/// Rendered media, frames and thumbnails: refused after the key is checked.
pub async fn not_offered(key: Key) -> HttpResponse {
    respond(
        async {
            reader(key).await?;
            Err(AppError::refused(
                406,
                "rendered images, frames and thumbnails need pixel-data transcoding, which \
                 this server does not offer; retrieve the instances as stored instead",
            )
            .into())
        }
        .await,
    )
}
