//! QIDO-RS: searches for studies, series and instances, answered in DICOM JSON. An empty
//! result is `200 []` (PS3.18 allows 204; every client we know reads both).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{Answer, DICOM_JSON, base, negotiate, reader, respond};
use crate::app::dicomweb::qido;
use crate::app::dicomweb::search::{Level, Search};
use crate::app::dicomweb::uid;
use crate::app::uploads::UploadContext;
use crate::web::api_principal::ApiPrincipal;

crate::route_table! {
    GET "/dicomweb/studies" => studies,
    GET "/dicomweb/series" => all_series,
    GET "/dicomweb/instances" => all_instances,
    GET "/dicomweb/studies/{study}/series" => series,
    GET "/dicomweb/studies/{study}/instances" => study_instances,
    GET "/dicomweb/studies/{study}/series/{series}/instances" => instances,
}

type Key = Result<ApiPrincipal, actix_web::Error>;

/// The query string's pairs, decoded.
fn pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn run(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
    level: Level,
    path: (Option<&str>, Option<&str>),
) -> Answer {
    let principal = reader(key).await?;
    negotiate::json(&req)?;
    let study = path.0.map(|s| uid("the study UID", s)).transpose()?;
    let series = path.1.map(|s| uid("the series UID", s)).transpose()?;
    let search = Search::parse(level, study.as_ref(), series.as_ref(), pairs(&req))?;
    let found = qido::search(&ctx, &principal.user_id, search, &base(&req)).await?;
    Ok(HttpResponse::Ok()
        .content_type(DICOM_JSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(found))
}

pub async fn studies(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> HttpResponse {
    respond(run(req, key, ctx, Level::Study, (None, None)).await)
}

pub async fn all_series(req: HttpRequest, key: Key, ctx: web::Data<UploadContext>) -> HttpResponse {
    respond(run(req, key, ctx, Level::Series, (None, None)).await)
}

pub async fn all_instances(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
) -> HttpResponse {
    respond(run(req, key, ctx, Level::Instance, (None, None)).await)
}

pub async fn series(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> HttpResponse {
    respond(run(req, key, ctx, Level::Series, (Some(&path), None)).await)
}

pub async fn study_instances(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
    path: web::Path<String>,
) -> HttpResponse {
    respond(run(req, key, ctx, Level::Instance, (Some(&path), None)).await)
}

pub async fn instances(
    req: HttpRequest,
    key: Key,
    ctx: web::Data<UploadContext>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (study, series) = path.into_inner();
    respond(
        run(
            req,
            key,
            ctx,
            Level::Instance,
            (Some(&study), Some(&series)),
        )
        .await,
    )
}
