//! Quarantined uploads for administrators: the list (file, owner, bucket, reason, date) with
//! its count, and the rescan button. The scanning itself, its rules and its audit events
//! live in `uploads::scanner`.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use crate::app::error::{AppError, Refusable};
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{self, ListFilter, ScanStatus, Upload, UploadStatus};
use crate::app::uploads::scanner::rescan;
use crate::domain::ids::UploadId;
use crate::infra::db::DbConnection;
use crate::web::extractors::Admin;
use crate::web::respond::{render, see_other};
use crate::web::routes::uploads::history::{bucket_names, owner_emails};
use crate::web::session;
use crate::web::timestamp::Timestamp;
use crate::web::views::Layout;

crate::route_table! {
    GET "/admin/uploads/quarantine" => quarantine,
    POST "/admin/uploads/{id}/rescan" => rescan_upload,
}

const LIST_PATH: &str = "/admin/uploads/quarantine";
const PAGE_SIZE: i64 = 50;
/// How long the rescan button waits for the verdict before answering; a longer scan goes
/// on in the background.
const RESCAN_WAIT: Duration = Duration::from_secs(20);

/// What the list shows about one quarantined upload (askama escapes every field).
pub struct QuarantinedView {
    pub id: String,
    pub filename: String,
    pub owner: String,
    pub bucket: String,
    pub reason: String,
    pub scan: &'static str,
    pub date: Timestamp,
    pub can_rescan: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_quarantine.html")]
pub struct QuarantinePage {
    pub layout: Layout,
    /// All quarantined uploads (also what `admin_quarantine_notice.html` shows).
    pub quarantined: i64,
    pub rows: Vec<QuarantinedView>,
    pub scanning_on: bool,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    page: Option<String>,
}

pub async fn quarantine(
    admin: Admin,
    query: Result<web::Query<PageQuery>, actix_web::Error>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let page = query
        .ok()
        .and_then(|q| q.page.as_deref().and_then(|p| p.parse::<i64>().ok()))
        .filter(|p| (1..=100_000).contains(p))
        .unwrap_or(1);
    let (quarantined, rows) = ctx.db.run(move |conn| load(conn, page)).await?;
    let href = |p: i64| format!("{LIST_PATH}?page={p}");
    render(
        StatusCode::OK,
        &QuarantinePage {
            layout: Layout::for_user(&admin.0, LIST_PATH),
            quarantined,
            rows,
            scanning_on: ctx.settings.uploads.clamd.is_some(),
            prev_href: (page > 1).then(|| href(page - 1)),
            next_href: (page * PAGE_SIZE < quarantined).then(|| href(page + 1)),
        },
    )
}

fn load(conn: &mut DbConnection, page: i64) -> Result<(i64, Vec<QuarantinedView>), AppError> {
    let quarantined = model::quarantined_count(conn)?;
    let uploads = model::list(
        conn,
        &ListFilter {
            status: Some(UploadStatus::Quarantined),
            limit: PAGE_SIZE,
            offset: (page - 1) * PAGE_SIZE,
            ..ListFilter::default()
        },
    )?;
    let owner_ids: Vec<&str> = uploads.iter().map(|u| u.user_id.as_str()).collect();
    let owners = owner_emails(conn, &owner_ids)?;
    let buckets = bucket_names(conn)?;
    let rows = uploads
        .into_iter()
        .map(|u| view(u, &owners, &buckets))
        .collect();
    Ok((quarantined, rows))
}

fn view(
    upload: Upload,
    owners: &HashMap<String, String>,
    buckets: &HashMap<String, String>,
) -> QuarantinedView {
    let lookup = |map: &HashMap<String, String>, id: &str| {
        map.get(id)
            .cloned()
            .unwrap_or_else(|| "(removed)".to_string())
    };
    QuarantinedView {
        can_rescan: rescan::eligible(&upload),
        owner: lookup(owners, upload.user_id.as_str()),
        bucket: lookup(buckets, upload.bucket_id.as_str()),
        reason: upload
            .status_reason
            .clone()
            .unwrap_or_else(|| "Quarantined".to_string()),
        scan: upload.scan_status.map_or("Not scanned", ScanStatus::label),
        date: Timestamp::minutes(upload.updated_at),
        id: upload.id.into_string(),
        filename: upload.filename,
    }
}

pub async fn rescan_upload(
    admin: Admin,
    path: web::Path<String>,
    ctx: web::Data<UploadContext>,
) -> Result<HttpResponse, AppError> {
    let id = UploadId::parse(&path).ok_or(AppError::NotFound)?;
    let user = &admin.0;
    match rescan::request(&ctx, &id, user.actor(), user.origin()).await {
        Ok(()) => {}
        Err(Refusable::Error(e)) => return Err(e),
        Err(Refusable::Refused(why)) => {
            session::flash(&user.session, "error", why.message());
            return Ok(see_other(LIST_PATH));
        }
    }
    let finished = rescan::run(ctx.get_ref().clone(), id.clone(), RESCAN_WAIT).await;
    let lookup = id.clone();
    let upload = ctx.db.run(move |conn| model::find(conn, &lookup)).await?;
    let (kind, message) = match upload {
        Some(u) if finished && u.status == UploadStatus::Completed => (
            "success",
            format!(
                "{} was scanned again and is clean: it can be downloaded.",
                u.filename
            ),
        ),
        Some(u) if finished && u.status == UploadStatus::Quarantined => (
            "error",
            format!(
                "{} is still quarantined: {}",
                u.filename,
                u.status_reason.unwrap_or_default()
            ),
        ),
        _ => (
            "info",
            "The rescan is still running; its result will show on the upload's page.".to_string(),
        ),
    };
    session::flash(&user.session, kind, message);
    Ok(see_other(LIST_PATH))
}
