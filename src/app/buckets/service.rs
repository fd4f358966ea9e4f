//! The changes administrators make to buckets: create, update, delete and the "test
//! connection" record (grants are in `grants`). Each change commits with its audit event in
//! one write transaction; a change refused by a rule is rolled back and audited as denied.
//! Audit details name fields, never secret values.

use chrono::NaiveDateTime;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::model::Bucket;
use super::opener::{StepResult, StepState};
use super::queries::{self, UploadCounts};
pub use super::rules::Refusal;
use super::rules::{By, Failure, lock, run};
use super::spec::BucketSpec;
use crate::app::accounts::ActingAdmin;
use crate::app::audit::{self, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::BucketId;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::repo::{bucket_grants, buckets};
use crate::infra::db::{Database, DbConnection, DbError, write_tx};

fn seal_secret(
    keyring: &Keyring,
    id: &BucketId,
    spec: &BucketSpec,
) -> Result<Option<Vec<u8>>, AppError> {
    let Some(secret) = &spec.secret_key else {
        return Ok(None);
    };
    let ctx = SealContext {
        table: "buckets",
        row_id: id.as_str(),
        field: "secret_key",
    };
    secrets::seal(keyring, &ctx, secret.expose_secret().as_bytes())
        .map(Some)
        .map_err(AppError::internal)
}

fn name_taken(
    conn: &mut DbConnection,
    name: &str,
    except: Option<&BucketId>,
) -> Result<bool, DbError> {
    let names = buckets::display_names(conn)?;
    let folded = name.to_lowercase();
    Ok(names.iter().any(|(id, other)| {
        Some(id.as_str()) != except.map(BucketId::as_str) && other.to_lowercase() == folded
    }))
}

/// What a create or update writes, apart from ids and times.
fn settings_json(spec: &BucketSpec) -> Value {
    json!({
        "display_name": spec.display_name,
        "bucket_name": spec.bucket_name.as_str(),
        "region": spec.region.as_str(),
        "endpoint": spec.endpoint.as_ref().map(|e| e.as_str()),
        "path_style": spec.path_style,
        "encryption": spec.encryption.as_str(),
        "size_limit_bytes": spec.size_limit,
        "allowed_extensions": spec.extensions.to_db(),
    })
}

/// The columns a create or update writes, apart from ids, the secret and times.
fn settings<'a>(
    spec: &'a BucketSpec,
    size: Option<i64>,
    extensions: Option<&'a str>,
) -> buckets::Settings<'a> {
    buckets::Settings {
        display_name: &spec.display_name,
        bucket_name: spec.bucket_name.as_str(),
        region: spec.region.as_str(),
        endpoint: spec.endpoint.as_ref().map(|e| e.as_str()),
        path_style: spec.path_style,
        access_key_id: &spec.access_key_id,
        encryption: spec.encryption.as_str(),
        kms_key_id: spec.encryption.kms_key_id(),
        size_limit_bytes: size,
        allowed_extensions: extensions,
        notes: &spec.notes,
    }
}

fn size_column(spec: &BucketSpec) -> Result<Option<i64>, AppError> {
    spec.size_limit
        .map(|n| i64::try_from(n).map_err(|_| AppError::internal("size limit out of range")))
        .transpose()
}

/// Creates an S3 bucket entry; the secret key is sealed to the new row before it is stored.
pub async fn create(
    db: &Database,
    keyring: &Keyring,
    admin: &ActingAdmin,
    spec: BucketSpec,
    now: NaiveDateTime,
) -> Result<Result<BucketId, Refusal>, AppError> {
    let id = BucketId::new();
    let sealed = seal_secret(keyring, &id, &spec)?
        .ok_or_else(|| AppError::internal("a new bucket needs a secret key"))?;
    let size = size_column(&spec)?;
    let created_by = admin.id.as_str().to_string();
    let new_id = id.clone();
    run(
        db,
        By::admin(admin),
        "bucket.create",
        &id,
        move |conn, by| {
            if name_taken(conn, &spec.display_name, None)? {
                return Err(Failure::Refused(Refusal::NameTaken));
            }
            let extensions = spec.extensions.to_db();
            let columns = settings(&spec, size, extensions.as_deref());
            buckets::insert_s3(conn, new_id.as_str(), &columns, &sealed, &created_by, now)?;
            let event = by
                .event("bucket.create", Outcome::Success, &new_id)
                .details(settings_json(&spec));
            audit::record(conn, &event)?;
            Ok(new_id)
        },
    )
    .await
}

/// What an update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The names of the fields that changed (`secret_key` when a new one was given).
    Changed(Vec<&'static str>),
    Unchanged,
}

fn changed_fields(old: &Bucket, spec: &BucketSpec) -> Vec<&'static str> {
    let checks = [
        (old.display_name != spec.display_name, "display_name"),
        (old.bucket_name != spec.bucket_name.as_str(), "bucket_name"),
        (
            old.region.as_deref() != Some(spec.region.as_str()),
            "region",
        ),
        (
            old.endpoint.as_deref() != spec.endpoint.as_ref().map(|e| e.as_str()),
            "endpoint",
        ),
        (old.path_style != spec.path_style, "path_style"),
        (
            old.access_key_id.as_deref() != Some(spec.access_key_id.as_str()),
            "access_key_id",
        ),
        (spec.secret_key.is_some(), "secret_key"),
        (old.encryption != spec.encryption, "encryption"),
        (old.size_limit != spec.size_limit, "size_limit"),
        (old.extensions != spec.extensions, "allowed_extensions"),
        (old.notes != spec.notes, "notes"),
    ];
    checks
        .into_iter()
        .filter(|(differs, _)| *differs)
        .map(|(_, name)| name)
        .collect()
}

/// Updates a bucket; a blank secret keeps the stored one. The system bucket is refused.
pub async fn update(
    db: &Database,
    keyring: &Keyring,
    admin: &ActingAdmin,
    id: &BucketId,
    spec: BucketSpec,
    now: NaiveDateTime,
) -> Result<Result<Updated, Refusal>, AppError> {
    let sealed = seal_secret(keyring, id, &spec)?;
    let size = size_column(&spec)?;
    let target = id.clone();
    run(
        db,
        By::admin(admin),
        "bucket.update",
        id,
        move |conn, by| {
            let old = lock(conn, &target)?;
            if old.is_system {
                return Err(Failure::Refused(Refusal::SystemBucket));
            }
            let changed = changed_fields(&old, &spec);
            if changed.is_empty() {
                return Ok(Updated::Unchanged);
            }
            if name_taken(conn, &spec.display_name, Some(&target))? {
                return Err(Failure::Refused(Refusal::NameTaken));
            }
            let extensions = spec.extensions.to_db();
            let columns = settings(&spec, size, extensions.as_deref());
            buckets::update_settings(conn, target.as_str(), &columns, sealed.as_deref(), now)?;
            let event = by
                .event("bucket.update", Outcome::Success, &target)
                .details(json!({ "changed": changed }));
            audit::record(conn, &event)?;
            Ok(Updated::Changed(changed))
        },
    )
    .await
}

/// What a deletion removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub display_name: String,
    pub grants_removed: usize,
}

fn refuse_for_uploads(counts: UploadCounts) -> Result<(), Failure> {
    let refusal = if counts.in_progress > 0 {
        Refusal::UploadsInProgress(counts.in_progress)
    } else if counts.stored > 0 {
        Refusal::StoredFiles(counts.stored)
    } else if counts.history > 0 {
        Refusal::UploadHistory(counts.history)
    } else {
        return Ok(());
    };
    Err(Failure::Refused(refusal))
}

/// Deletes a bucket and its grants, after the admin typed its display name. Refused while
/// any upload refers to it (in progress, stored files, or history), and for the system one.
pub async fn delete(
    db: &Database,
    admin: &ActingAdmin,
    id: &BucketId,
    confirmation: String,
) -> Result<Result<Deleted, Refusal>, AppError> {
    let target = id.clone();
    run(
        db,
        By::admin(admin),
        "bucket.delete",
        id,
        move |conn, by| {
            let bucket = lock(conn, &target)?;
            if bucket.is_system {
                return Err(Failure::Refused(Refusal::SystemBucket));
            }
            if confirmation.trim() != bucket.display_name {
                return Err(Failure::Refused(Refusal::WrongConfirmation));
            }
            refuse_for_uploads(queries::upload_counts(conn, &target)?)?;
            let grants_removed = bucket_grants::delete_all_of(conn, target.as_str())?;
            match buckets::delete(conn, target.as_str()) {
                // An upload created meanwhile still refers to it.
                Err(e) if e.is_foreign_key_violation() => {
                    return Err(Failure::Refused(Refusal::UploadsInProgress(1)));
                }
                other => other?,
            };
            let event = by
                .event("bucket.delete", Outcome::Success, &target)
                .details(json!({
                    "display_name": bucket.display_name,
                    "bucket_name": bucket.bucket_name,
                    "grants_removed": grants_removed,
                }));
            audit::record(conn, &event)?;
            Ok(Deleted {
                display_name: bucket.display_name,
                grants_removed,
            })
        },
    )
    .await
}

/// Records a "test connection" and its steps (each with its safe reason).
pub async fn record_test(
    db: &Database,
    admin: &ActingAdmin,
    id: &BucketId,
    steps: &[StepResult],
) -> Result<(), AppError> {
    let ok = steps.iter().all(|s| s.state == StepState::Ok);
    let outcome = if ok {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let details: Vec<Value> = steps
        .iter()
        .map(|s| json!({ "step": s.label, "state": s.state.as_str(), "detail": s.detail }))
        .collect();
    let event = By::admin(admin)
        .event("bucket.test", outcome, id)
        .details(json!({ "steps": details }));
    db.run(move |conn| write_tx(conn, |conn| audit::record(conn, &event).map(drop)))
        .await
        .map_err(AppError::from)
}

/// Records an attempt to change the system default bucket through the admin pages.
pub async fn refuse_system(
    db: &Database,
    admin: &ActingAdmin,
    id: &BucketId,
    action: &'static str,
) -> Result<(), AppError> {
    let event = By::admin(admin)
        .event(action, Outcome::Denied, id)
        .details(json!({ "reason": Refusal::SystemBucket.reason() }));
    db.run(move |conn| write_tx(conn, |conn| audit::record(conn, &event).map(drop)))
        .await
        .map_err(AppError::from)
}
