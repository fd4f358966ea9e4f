//! The rules shared by the bucket changes: refusals an admin can act on, and `run`, which
//! makes a change in one write transaction and audits a refusal after rolling it back.

use serde_json::json;

use super::model::Bucket;
use super::queries;
use crate::app::accounts::ActingAdmin;
use crate::app::audit::{self, Actor, Event, Origin, Outcome};
use crate::app::error::AppError;
use crate::domain::ids::BucketId;
use crate::infra::db::repo::buckets;
use crate::infra::db::{Database, DbConnection, DbError, write_tx};

/// A rule the admin can act on, as opposed to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The system default bucket is set by configuration (answered with 403).
    SystemBucket,
    NameTaken,
    WrongConfirmation,
    UploadsInProgress(i64),
    StoredFiles(i64),
    UploadHistory(i64),
    UnknownUser,
    NotAnUploader,
    UserDisabled,
}

impl Refusal {
    /// For the page, written for the administrator.
    pub fn message(&self) -> String {
        match self {
            Self::SystemBucket => "The system default bucket is set by the server configuration and cannot be changed here.".into(),
            Self::NameTaken => "Another bucket already has this display name.".into(),
            Self::WrongConfirmation => "The name typed does not match the bucket's display name; nothing was deleted.".into(),
            Self::UploadsInProgress(n) => format!(
                "{n} upload(s) to this bucket are still in progress. Wait for them to finish or be cancelled, then delete it."
            ),
            Self::StoredFiles(n) => format!(
                "{n} stored file(s) are in this bucket; deleting it would make them unreachable. Archive or move its files first."
            ),
            Self::UploadHistory(n) => format!(
                "{n} earlier upload record(s) refer to this bucket and are kept as history, so it cannot be deleted."
            ),
            Self::UnknownUser => "Choose a user from the list.".into(),
            Self::NotAnUploader => "Only uploaders can be given a bucket: administrators already see every bucket and auditors do not upload.".into(),
            Self::UserDisabled => "This account is disabled; enable it first.".into(),
        }
    }

    /// For the audit trail.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Self::SystemBucket => "system default bucket",
            Self::NameTaken => "display name taken",
            Self::WrongConfirmation => "confirmation did not match",
            Self::UploadsInProgress(_) => "uploads in progress",
            Self::StoredFiles(_) => "stored files",
            Self::UploadHistory(_) => "upload history",
            Self::UnknownUser => "unknown user",
            Self::NotAnUploader => "not an uploader",
            Self::UserDisabled => "user disabled",
        }
    }
}

pub(super) type Failure = crate::app::error::Refusable<Refusal>;

/// Who makes a change, as the audit trail names them.
#[derive(Clone)]
pub(super) struct By {
    pub actor: Actor,
    pub origin: Origin,
}

impl By {
    pub fn admin(admin: &ActingAdmin) -> Self {
        Self {
            actor: admin.actor.clone(),
            origin: admin.origin.clone(),
        }
    }

    pub fn event(&self, action: &'static str, outcome: Outcome, id: &BucketId) -> Event {
        Event::new(self.actor.clone(), action, outcome)
            .origin(self.origin.clone())
            .target("bucket", id.as_str())
    }
}

/// Runs `change` in a write transaction; a refusal is rolled back, then audited as denied.
pub(super) async fn run<T: Send + 'static>(
    db: &Database,
    by: By,
    action: &'static str,
    id: &BucketId,
    change: impl FnOnce(&mut DbConnection, &By) -> Result<T, Failure> + Send + 'static,
) -> Result<Result<T, Refusal>, AppError> {
    let tx_by = by.clone();
    let result = db
        .run(move |conn| Ok::<_, DbError>(write_tx(conn, |conn| change(conn, &tx_by))))
        .await?;
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(Failure::Error(e)) => Err(e),
        Err(Failure::Refused(refusal)) => {
            let event = by
                .event(action, Outcome::Denied, id)
                .details(json!({ "reason": refusal.reason() }));
            db.run(move |conn| audit::record(conn, &event).map(drop))
                .await?;
            Ok(Err(refusal))
        }
    }
}

/// Locks the bucket's row until the transaction ends (PostgreSQL; SQLite's `BEGIN
/// IMMEDIATE` already admits one writer), then reads it.
pub(super) fn lock(conn: &mut DbConnection, id: &BucketId) -> Result<Bucket, Failure> {
    buckets::lock(conn, id.as_str())?;
    Ok(queries::get(conn, id)?)
}
