//! Deleting a bucket (typed confirmation) and its grants. Each handler asks
//! `crate::app::buckets` to make the change, then answers: onwards with a message, or the bucket
//! page again with the reason in the section it is about.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::pages::bucket_page;
use super::views::PageErrors;
use super::{FormResult, bucket_path, fields, parse_id, parse_user_id, see_other};
use crate::app::buckets::grants::{self, GrantChange};
use crate::app::buckets::service::{self, Refusal};
use crate::app::error::AppError;
use crate::domain::clock::Clock;
use crate::domain::ids::{BucketId, UserId};
use crate::infra::db::Database;
use crate::web::extractors::Admin;
use crate::web::session;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteForm {
    confirm: String,
}

fn status_for(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::WrongConfirmation | Refusal::UnknownUser => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    }
}

pub async fn delete(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<DeleteForm>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let confirm = fields(form)?.confirm;
    match service::delete(&db, &admin.acting(), &id, confirm).await? {
        Ok(deleted) => {
            let text = format!(
                "Bucket {} deleted; {} grant(s) removed.",
                deleted.display_name, deleted.grants_removed
            );
            session::flash(&admin.0.session, "success", text);
            Ok(see_other("/admin/buckets"))
        }
        Err(Refusal::SystemBucket) => Err(AppError::Forbidden),
        Err(refusal) => {
            let errors = PageErrors {
                delete: Some(refusal.message()),
                ..PageErrors::default()
            };
            bucket_page(&admin, &db, id, errors, None, status_for(refusal)).await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GrantForm {
    user_id: String,
}

/// Back to the bucket page with a message, or the page again with the refusal.
async fn answer(
    admin: &Admin,
    db: &Database,
    id: BucketId,
    result: Result<GrantChange, Refusal>,
) -> Result<HttpResponse, AppError> {
    let (kind, text) = match result {
        Ok(GrantChange::Granted(email)) => {
            ("success", format!("{email} can now upload to this bucket."))
        }
        Ok(GrantChange::AlreadyGranted(email)) => {
            ("info", format!("{email} already has this bucket."))
        }
        Ok(GrantChange::Revoked(email)) => (
            "success",
            format!(
                "{email} can no longer upload to this bucket. Files already stored stay where they are."
            ),
        ),
        Ok(GrantChange::NotGranted(email)) => {
            ("info", format!("{email} did not have this bucket."))
        }
        Err(refusal) => {
            let errors = PageErrors {
                grant: Some(refusal.message()),
                ..PageErrors::default()
            };
            return bucket_page(admin, db, id, errors, None, status_for(refusal)).await;
        }
    };
    session::flash(&admin.0.session, kind, text);
    Ok(see_other(&format!("{}#grants", bucket_path(&id))))
}

pub async fn grant(
    admin: Admin,
    path: web::Path<String>,
    form: FormResult<GrantForm>,
    db: web::Data<Database>,
    clock: web::Data<Clock>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let raw = fields(form)?.user_id;
    let result = match UserId::parse(raw.trim()) {
        Some(user) => grants::grant(&db, &admin.acting(), &id, user, clock.now_naive()).await?,
        None => Err(Refusal::UnknownUser),
    };
    answer(&admin, &db, id, result).await
}

pub async fn revoke(
    admin: Admin,
    path: web::Path<(String, String)>,
    db: web::Data<Database>,
) -> Result<HttpResponse, AppError> {
    let (raw_id, raw_user) = path.into_inner();
    let id = parse_id(&raw_id)?;
    let user = parse_user_id(&raw_user)?;
    let result = grants::revoke(&db, &admin.acting(), &id, user).await?;
    answer(&admin, &db, id, result).await
}
