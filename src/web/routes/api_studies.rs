//! Studies over the JSON API: the key owner's own studies only (an administrator's key is
//! not special: scripts get what their owner uploaded). Scope `read`. No patient
//! attributes are returned, so none are decrypted.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::studies::{study_uid, zip_response};
use crate::app::error::AppError;
use crate::app::studies::query::{self, InstanceRef, ListPage, StudyDetail, StudySummary};
use crate::app::studies::{StudyScope, archive};
use crate::app::uploads::UploadContext;
use crate::domain::api_key::Scope;
use crate::web::api_principal::ApiPrincipal;

crate::route_table! {
    GET "/api/v1/studies" => list,
    GET "/api/v1/studies/{uid}" => show,
    GET "/api/v1/studies/{uid}/archive" => download,
}

/// What the list and the one-study answer share.
#[derive(Serialize)]
struct Common {
    study_instance_uid: String,
    modalities: Vec<String>,
    bytes: u64,
    /// `YYYY-MM-DD` when the header's date is a plain DICOM date.
    study_date: Option<String>,
    description: Option<String>,
    /// Nothing a DICOMDIR of the study lists is missing.
    complete: bool,
}

impl Common {
    fn new(s: &StudySummary) -> Self {
        Self {
            study_instance_uid: s.study_uid.clone(),
            modalities: s.modalities.clone(),
            bytes: s.bytes,
            study_date: s.study_date.as_deref().map(super::studies::dicom_date),
            description: s.description.clone(),
            complete: s.complete(),
        }
    }
}

/// A study in the list, with its counts.
#[derive(Serialize)]
struct Study {
    #[serde(flatten)]
    common: Common,
    instances: u64,
    series: u64,
}

/// One window of the list: `total` studies in all, `studies` from `offset`.
#[derive(Serialize)]
struct Studies {
    studies: Vec<Study>,
    total: u64,
    offset: u64,
    limit: u64,
}

/// `?limit=` (1 to 1,000; larger is lowered; `default` when absent) and `?offset=`.
#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
}

impl ListQuery {
    fn window(&self, default: u64) -> Result<ListPage, AppError> {
        let number = |name: &str, raw: Option<&str>, default: u64, least: u64| match raw {
            None => Ok(default),
            Some(raw) => raw
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= least && raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    AppError::BadRequest(format!("{name} must be a whole number from {least}."))
                }),
        };
        Ok(ListPage::window(
            number("offset", self.offset.as_deref(), 0, 0)?,
            number("limit", self.limit.as_deref(), default, 1)?,
        ))
    }
}

#[derive(Serialize)]
struct SeriesJson {
    series_instance_uid: String,
    number: Option<i32>,
    description: Option<String>,
    modality: Option<String>,
    instances: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Instance {
    upload_id: String,
    sop_instance_uid: Option<String>,
    series_instance_uid: Option<String>,
    instance_number: Option<i32>,
    relative_path: Option<String>,
    size: u64,
    sha256: Option<String>,
}

/// One study: the list's fields, `series` (the whole list), a window of `instances`
/// (`instance_count` in all, from `offset`, at most `limit`), and the paths a DICOMDIR
/// lists that never came.
#[derive(Serialize)]
struct OneStudy {
    #[serde(flatten)]
    common: Common,
    series: Vec<SeriesJson>,
    instance_count: u64,
    offset: u64,
    limit: u64,
    instances: Vec<Instance>,
    missing: Vec<String>,
}

impl OneStudy {
    fn new(d: &StudyDetail, page: ListPage, instances: Vec<InstanceRef>) -> Self {
        Self {
            common: Common::new(&d.summary),
            instance_count: d.summary.instances,
            offset: page.offset,
            limit: page.limit,
            series: d
                .series
                .iter()
                .map(|s| SeriesJson {
                    series_instance_uid: s.series_uid.clone(),
                    number: s.number,
                    description: s.description.clone(),
                    modality: s.modality.clone(),
                    instances: s.instances,
                    bytes: s.bytes,
                })
                .collect(),
            instances: instances
                .into_iter()
                .map(|i| Instance {
                    upload_id: i.upload_id,
                    sop_instance_uid: i.sop_instance_uid,
                    series_instance_uid: i.series_uid,
                    instance_number: i.instance_number,
                    relative_path: i.relative_path,
                    size: u64::try_from(i.declared_size).unwrap_or(0),
                    sha256: i.sha256,
                })
                .collect(),
            missing: d.missing.clone(),
        }
    }
}

/// The key owner's scope, once the key is known to carry `read`.
async fn scope_of(principal: &ApiPrincipal) -> Result<StudyScope, AppError> {
    principal.require(Scope::Read).await?;
    Ok(StudyScope::owner(principal.user_id.clone()).without_patient())
}

pub async fn list(
    principal: ApiPrincipal,
    query: web::Query<ListQuery>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let scope = scope_of(&principal).await?;
    let list = query::list(&ctx, &scope, query.window(ListPage::API_DEFAULT)?).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Studies {
            total: list.total,
            offset: list.page.offset,
            limit: list.page.limit,
            studies: list
                .studies
                .iter()
                .map(|s| Study {
                    common: Common::new(s),
                    instances: s.instances,
                    series: s.series,
                })
                .collect(),
        }))
}

/// Instances come a window at a time (`?limit=`, most and default 1,000; `?offset=`), so
/// that no answer grows with the study.
pub async fn show(
    principal: ApiPrincipal,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let scope = scope_of(&principal).await?;
    let page = query.window(ListPage::MAX_LIMIT)?;
    let (detail, instances) = query::with_instances(&ctx, &scope, &study_uid(&path)?, page).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(OneStudy::new(&detail, page, instances)))
}

pub async fn download(
    principal: ApiPrincipal,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let scope = scope_of(&principal).await?;
    let uid = study_uid(&path)?;
    let zip = archive::open(&ctx, &scope, principal.actor(), principal.origin(), &uid).await?;
    Ok(zip_response(zip))
}
