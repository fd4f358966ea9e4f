//! JSON API for scripts, authenticated only by an API key (`ApiPrincipal`); each handler
//! states the scope it needs. Successful calls are not audited one by one (the upload events
//! they cause are); refusals are.

use actix_web::{HttpResponse, web};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::app::error::AppError;
use crate::domain::api_key::Scope;
use crate::domain::ids::UserId;
use crate::infra::db::schema::uploads;
use crate::infra::db::{Database, DbConnection};
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

#[derive(Serialize, Queryable)]
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
    Ok(uploads::table
        .filter(uploads::user_id.eq(owner.as_str()))
        .order((uploads::created_at.desc(), uploads::id.desc()))
        .limit(UPLOADS_LIMIT)
        .select((
            uploads::id,
            uploads::filename,
            uploads::status,
            uploads::declared_size,
            uploads::created_at,
        ))
        .load(conn)?)
}
