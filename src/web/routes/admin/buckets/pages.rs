//! The bucket list and the bucket page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::views::{BucketListPage, BucketPage, ListRow, PageErrors};
use super::{NAV, parse_id, render};
use crate::app::buckets::opener::StepResult;
use crate::app::buckets::queries;
use crate::app::error::AppError;
use crate::domain::ids::BucketId;
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::views::Layout;

pub async fn list(admin: Admin, db: web::Data<Database>) -> Result<HttpResponse, AppError> {
    let rows = db
        .run(|conn| {
            let counts = queries::grant_counts(conn)?;
            let rows = queries::all(conn)?
                .into_iter()
                .map(|bucket| ListRow {
                    grants: counts.get(bucket.id.as_str()).copied().unwrap_or(0),
                    bucket,
                })
                .collect::<Vec<_>>();
            Ok::<_, AppError>(rows)
        })
        .await?;
    render(
        StatusCode::OK,
        &BucketListPage {
            layout: Layout::for_user(&admin.0, NAV),
            rows,
        },
    )
}

pub async fn show(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    bucket_page(&admin, &db, id, PageErrors::default(), None, StatusCode::OK).await
}

/// The bucket page, with messages for its sections or "test connection" results.
pub(super) async fn bucket_page(
    admin: &Admin,
    db: &Database,
    id: BucketId,
    errors: PageErrors,
    tests: Option<Vec<StepResult>>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (bucket, grants, candidates, uploads) = db
        .run(move |conn| {
            let bucket = queries::get(conn, &id)?;
            let grants = queries::grants(conn, &id)?;
            let candidates = queries::grant_candidates(conn, &id)?;
            let uploads = queries::upload_counts(conn, &id)?;
            Ok::<_, AppError>((bucket, grants, candidates, uploads))
        })
        .await?;
    render(
        status,
        &BucketPage {
            layout: Layout::for_user(&admin.0, NAV),
            bucket,
            grants,
            candidates,
            uploads,
            errors,
            tests,
        },
    )
}
