//! Grants: which uploaders may use a bucket. Granting and revoking are audited
//! (`bucket.grant`, `bucket.revoke_grant`) in the transaction that makes the change.

use chrono::NaiveDateTime;
use serde_json::json;

use super::rules::{By, Failure, Refusal, lock, run};
use crate::app::accounts::ActingAdmin;
use crate::app::accounts::users;
use crate::app::audit::{self, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::{BucketId, UserId};
use crate::domain::role::Role;
use crate::infra::db::Database;
use crate::infra::db::repo::bucket_grants;

/// What a grant or revoke did, with the user's address for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChange {
    Granted(String),
    AlreadyGranted(String),
    Revoked(String),
    NotGranted(String),
}

/// Lets an enabled uploader use the bucket.
pub async fn grant(
    db: &Database,
    admin: &ActingAdmin,
    bucket: &BucketId,
    user: UserId,
    now: NaiveDateTime,
) -> Result<Result<GrantChange, Refusal>, AppError> {
    let target = bucket.clone();
    let granted_by = admin.id.as_str().to_string();
    run(
        db,
        By::admin(admin),
        "bucket.grant",
        bucket,
        move |conn, by| {
            lock(conn, &target)?;
            let Some(row) = users::find_by_id(conn, &user)? else {
                return Err(Failure::Refused(Refusal::UnknownUser));
            };
            if row.role()? != Role::Uploader {
                return Err(Failure::Refused(Refusal::NotAnUploader));
            }
            if row.disabled {
                return Err(Failure::Refused(Refusal::UserDisabled));
            }
            if bucket_grants::exists(conn, target.as_str(), user.as_str())? {
                return Ok(GrantChange::AlreadyGranted(row.email));
            }
            bucket_grants::insert(conn, target.as_str(), user.as_str(), &granted_by, now)?;
            let event = by
                .event("bucket.grant", Outcome::Success, &target)
                .details(json!({ "user_id": user.as_str(), "email": row.email }));
            audit::record(conn, &event)?;
            Ok(GrantChange::Granted(row.email))
        },
    )
    .await
}

/// Takes a bucket away from a user. Their uploads already stored stay where they are.
pub async fn revoke(
    db: &Database,
    admin: &ActingAdmin,
    bucket: &BucketId,
    user: UserId,
) -> Result<Result<GrantChange, Refusal>, AppError> {
    let target = bucket.clone();
    run(
        db,
        By::admin(admin),
        "bucket.revoke_grant",
        bucket,
        move |conn, by| {
            lock(conn, &target)?;
            let email = users::find_by_id(conn, &user)?
                .map(|row| row.email)
                .ok_or(Failure::Error(AppError::NotFound))?;
            let removed = bucket_grants::delete(conn, target.as_str(), user.as_str())?;
            if removed == 0 {
                return Ok(GrantChange::NotGranted(email));
            }
            let event = by
                .event("bucket.revoke_grant", Outcome::Success, &target)
                .details(json!({ "user_id": user.as_str(), "email": email }));
            audit::record(conn, &event)?;
            Ok(GrantChange::Revoked(email))
        },
    )
    .await
}
