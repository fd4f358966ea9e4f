//! JSON API for scripts, authenticated only by an API key (`ApiPrincipal`); each handler
//! states the scope it needs. Successful calls are not audited one by one (the upload events
//! they cause are); refusals are.

use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use serde::Serialize;

use crate::app::error::AppError;
use crate::domain::api_key::Scope;
use crate::domain::ids::UserId;
use crate::infra::db::{Database, DbConnection, repo};
use crate::web::api_principal::ApiPrincipal;

crate::route_table! {
    GET "/api/v1/me" => me,
    GET "/api/v1/uploads" => list_uploads,
}

/// The most uploads one listing returns, newest first.
const UPLOADS_LIMIT: i64 = 500;

#[derive(Serialize)]
struct Me<'a> {
    email: &'a str,
    role: &'static str,
    scopes: Vec<&'static str>,
}

pub async fn me(principal: ApiPrincipal) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read).await?;
    Ok(HttpResponse::Ok().json(Me {
        email: &principal.email,
        role: principal.role.as_str(),
        scopes: principal.scopes.iter().map(Scope::as_str).collect(),
    }))
}

#[derive(Serialize)]
struct UploadSummary {
    id: String,
    filename: String,
    status: String,
    declared_size: i64,
    #[serde(serialize_with = "utc_timestamp")]
    created_at: NaiveDateTime,
}

fn utc_timestamp<S: serde::Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

#[derive(Serialize)]
struct Uploads {
    uploads: Vec<UploadSummary>,
}

pub async fn list_uploads(
    principal: ApiPrincipal,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read).await?;
    let owner = principal.user_id.clone();
    let uploads = db.run(move |conn| uploads_of(conn, &owner)).await?;
    Ok(HttpResponse::Ok().json(Uploads { uploads }))
}

/// The key owner's own uploads only.
fn uploads_of(conn: &mut DbConnection, owner: &UserId) -> Result<Vec<UploadSummary>, AppError> {
    Ok(
        repo::uploads::summaries_of(conn, owner.as_str(), UPLOADS_LIMIT)?
            .into_iter()
            .map(|u| UploadSummary {
                id: u.id,
                filename: u.filename,
                status: u.status,
                declared_size: u.declared_size,
                created_at: u.created_at,
            })
            .collect(),
    )
}
