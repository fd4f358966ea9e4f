//! The study pages and a study's ZIP. Who sees what follows the upload pages: uploaders
//! their own studies, administrators (with TOTP) and auditors everyone's; patient
//! attributes and files for the owner and administrators only. A study the viewer may not
//! see is a 404, like an upload, so guessing UIDs reveals nothing.

mod views;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::uploads::{Reach, Viewer};
use crate::app::error::AppError;
use crate::app::studies::query::{FilePage, ListPage};
use crate::app::studies::{StudyScope, archive, query};
use crate::app::uploads::UploadContext;
use crate::domain::DicomUid;
use crate::web::extractors::CurrentUser;
use crate::web::respond::render;
use crate::web::views::Layout;
pub(crate) use views::dicom_date;
use views::{StudiesPage, StudyPage};

crate::route_table! {
    GET "/studies" => index,
    GET "/studies/{uid}" => show,
    GET "/studies/{uid}/archive" => download,
}

const STUDIES_PATH: &str = "/studies";

/// The scope of a signed-in viewer; an administrator without TOTP is sent to enrol.
fn scope_of(user: &CurrentUser) -> Result<StudyScope, AppError> {
    let viewer = Viewer::of(user)?;
    Ok(match (viewer.reach, viewer.admin) {
        (Reach::Own, _) => StudyScope::owner(viewer.id),
        (Reach::All, true) => StudyScope::admin(),
        (Reach::All, false) => StudyScope::auditor(),
    })
}

/// A UID from the URL; anything that is not one is no study at all.
pub(crate) fn study_uid(raw: &str) -> Result<DicomUid, AppError> {
    DicomUid::parse(raw).ok_or(AppError::NotFound)
}

/// `?page=N` of the list, or of the study page's file list.
#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

pub async fn index(
    user: CurrentUser,
    query: web::Query<PageQuery>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let scope = scope_of(&user)?;
    let page = ListPage::number(page_number(query.page.as_deref())?);
    let list = query::list(&ctx, &scope, page).await?;
    let page = StudiesPage::new(
        Layout::for_user(&user, STUDIES_PATH),
        &list,
        scope.sees_everyone(),
    );
    render(StatusCode::OK, &page)
}

/// The page number asked for: 1 when absent, else a whole number from 1.
fn page_number(raw: Option<&str>) -> Result<u64, AppError> {
    match raw.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1 && p.bytes().all(|b| b.is_ascii_digit()))
            .map(u64::from)
            .ok_or_else(|| AppError::BadRequest("The page must be a whole number from 1.".into())),
    }
}

pub async fn show(
    user: CurrentUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let (scope, uid) = (scope_of(&user)?, study_uid(&path)?);
    let page = FilePage::number(page_number(query.page.as_deref())?);
    let detail = query::detail(&ctx, &scope, &uid, page).await?;
    let page = StudyPage::new(
        Layout::for_user(&user, STUDIES_PATH),
        &detail,
        scope.sees_everyone(),
        scope.fetches_files(),
    );
    render(StatusCode::OK, &page)
}

pub async fn download(
    user: CurrentUser,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let (scope, uid) = (scope_of(&user)?, study_uid(&path)?);
    let zip = archive::open(&ctx, &scope, user.actor(), user.origin(), &uid).await?;
    Ok(zip_response(zip))
}

/// The ZIP as an attachment, never cached.
pub(crate) fn zip_response(zip: archive::Archive) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", zip.filename),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(zip.body)
}
