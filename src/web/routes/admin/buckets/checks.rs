//! Talking to a bucket's storage: the health badge (an htmx fragment on the list), the
//! security check (a fragment on the bucket page) and "test connection" (a button on the
//! bucket page; audited). Each is bounded in time and shows only safe reasons.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::pages::bucket_page;
use super::views::{HealthFragment, PageErrors, SecurityFragment};
use super::{opener, parse_id, render};
use crate::app::buckets::{Bucket, queries, service};
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::ids::BucketId;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::extractors::Admin;

async fn bucket(db: &Database, id: &BucketId) -> Result<Bucket, AppError> {
    let lookup = id.clone();
    db.run(move |conn| queries::get(conn, &lookup)).await
}

pub async fn health(
    _admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let bucket = bucket(&db, &id).await?;
    let health = opener(&db, &settings, &keyring).health(&bucket).await;
    render(StatusCode::OK, &HealthFragment { health })
}

pub async fn security(
    _admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let bucket = bucket(&db, &id).await?;
    let items = opener(&db, &settings, &keyring)
        .security_check(&bucket)
        .await;
    render(StatusCode::OK, &SecurityFragment { items })
}

pub async fn test(
    admin: Admin,
    path: web::Path<String>,
    db: web::Data<Database>,
    settings: web::Data<Settings>,
    keyring: web::Data<Keyring>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let bucket = bucket(&db, &id).await?;
    let steps = opener(&db, &settings, &keyring)
        .test_connection(&bucket)
        .await;
    service::record_test(&db, &admin.acting(), &id, &steps).await?;
    bucket_page(
        &admin,
        &db,
        id,
        PageErrors::default(),
        Some(steps),
        StatusCode::OK,
    )
    .await
}
