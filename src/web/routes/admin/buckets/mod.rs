//! Bucket administration: the list (with lazily loaded health badges), create and edit
//! forms, the bucket page (security check, test connection, grants, delete). Every handler
//! takes `Admin`; the changes, their rules and their audit events live in `crate::app::buckets`.
//! The secret key is write-only: no page ever shows it back, not even masked.
//! The system default bucket is listed but never edited or deleted here (403).

mod actions;
mod checks;
mod edit;
mod pages;
mod views;

use actix_web::web;

use super::{FormResult, fields};
use crate::app::buckets::opener::Opener;
use crate::app::error::AppError;
use crate::config::Settings;
use crate::domain::ids::{BucketId, UserId};
use crate::infra::crypto::secrets::Keyring;
use crate::infra::db::Database;
use crate::web::respond::{render, see_other};

crate::route_table! {
    GET "/admin/buckets" => pages::list,
    GET "/admin/buckets/new" => edit::new_form,
    POST "/admin/buckets" => edit::create,
    GET "/admin/buckets/{id}" => pages::show,
    GET "/admin/buckets/{id}/edit" => edit::edit_form,
    POST "/admin/buckets/{id}" => edit::update,
    GET "/admin/buckets/{id}/health" => checks::health,
    GET "/admin/buckets/{id}/security" => checks::security,
    POST "/admin/buckets/{id}/test" => checks::test,
    POST "/admin/buckets/{id}/delete" => actions::delete,
    POST "/admin/buckets/{id}/grants" => actions::grant,
    POST "/admin/buckets/{id}/grants/{user_id}/remove" => actions::revoke,
}

const NAV: &str = "/admin/buckets";

fn bucket_path(id: &BucketId) -> String {
    format!("/admin/buckets/{id}")
}

/// An id from the URL: anything but a canonical bucket id is simply not found.
fn parse_id(raw: &str) -> Result<BucketId, AppError> {
    BucketId::parse(raw).ok_or(AppError::NotFound)
}

fn parse_user_id(raw: &str) -> Result<UserId, AppError> {
    UserId::parse(raw).ok_or(AppError::NotFound)
}

/// What the checks need to open a bucket's backend (here and on the incident page).
pub(super) fn opener(
    db: &web::Data<Database>,
    settings: &web::Data<Settings>,
    keyring: &web::Data<Keyring>,
) -> Opener {
    Opener {
        db: db.get_ref().clone(),
        settings: settings.clone().into_inner(),
        keyring: keyring.clone().into_inner(),
    }
}
