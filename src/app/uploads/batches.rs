//! Batches: one folder or CD sent at once. The browser declares the batch (bucket, file
//! count, bytes), sends each file as an ordinary upload naming it, asks which files the
//! server already holds when it resumes after a reload, and closes it with a summary.
//! Names and paths may hold patient names, so they go to the page, never to the logs or
//! the audit details.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::json;

use crate::app::audit::{self, Event, Outcome};
use crate::app::buckets::{self, SYSTEM_BUCKET_ID};
use crate::app::error::AppError;
use crate::app::notifications::webhooks;
use crate::app::studies::index::IndexState;
use crate::app::uploads::model::{ScanStatus, UploadStatus};
use crate::app::uploads::{UploadContext, Uploader};
use crate::domain::ids::{BatchId, BucketId, UserId};
use crate::infra::db::DbConnection;
use crate::infra::db::repo::upload_batches as repo;

/// Most files one batch may declare: a large CD has a few thousand.
pub const MAX_FILES: u64 = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub id: BatchId,
    #[serde(skip)]
    pub user_id: UserId,
    pub bucket: BucketId,
    pub declared_files: u64,
    pub declared_bytes: u64,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl Batch {
    fn from_row(row: repo::Row) -> Self {
        Self {
            id: BatchId::from_db(row.id),
            user_id: UserId::from_db(row.user_id),
            bucket: BucketId::from_db(row.bucket_id),
            declared_files: u64::try_from(row.declared_files).unwrap_or(0),
            declared_bytes: u64::try_from(row.declared_bytes).unwrap_or(0),
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

/// One file of a batch as its summary shows it. `problem` is written for the uploader.
#[derive(Debug, Clone, Serialize)]
pub struct BatchFile {
    pub upload_id: String,
    pub filename: String,
    pub relative_path: Option<String>,
    pub size: u64,
    pub status: &'static str,
    pub sha256: Option<String>,
    pub dicom: Option<&'static str>,
    pub problem: Option<String>,
}

impl BatchFile {
    fn from_row(row: repo::FileRow) -> Self {
        let status = UploadStatus::parse(&row.status);
        let dicom = row.dicom_state.as_deref().and_then(IndexState::parse);
        let problem = match (status, dicom) {
            (
                Some(UploadStatus::Completed),
                Some(IndexState::Unreadable | IndexState::Conflict),
            ) => dicom.map(|d| match &row.dicom_detail {
                Some(detail) => format!("{}: {detail}", d.label()),
                None => d.label().to_string(),
            }),
            (Some(UploadStatus::Completed), _) => {
                (row.scan_status.as_deref().and_then(ScanStatus::parse)
                    == Some(ScanStatus::Infected))
                .then(|| "Quarantined by the virus scanner".to_string())
            }
            (Some(UploadStatus::Active | UploadStatus::Completing), _) => None,
            _ => Some(
                row.status_reason
                    .clone()
                    .unwrap_or_else(|| format!("The upload ended as {}", row.status)),
            ),
        };
        Self {
            upload_id: row.upload_id,
            filename: row.filename,
            relative_path: row.relative_path,
            size: u64::try_from(row.declared_size).unwrap_or(0),
            status: status.map(UploadStatus::as_str).unwrap_or("unknown"),
            sha256: row.sha256,
            dicom: dicom.map(IndexState::as_str),
            problem,
        }
    }

    pub fn is_stored(&self) -> bool {
        self.status == UploadStatus::Completed.as_str()
    }
}

/// A batch with its files, newest attempt of each path last.
#[derive(Debug, Clone, Serialize)]
pub struct BatchStatus {
    #[serde(flatten)]
    pub batch: Batch,
    pub stored: usize,
    pub duplicates: usize,
    pub problems: usize,
    pub files: Vec<BatchFile>,
}

pub struct NewBatch {
    pub bucket: Option<BucketId>,
    pub files: u64,
    pub bytes: u64,
}

/// Declares a batch in a bucket the uploader may use.
pub async fn create(ctx: &UploadContext, who: &Uploader, new: NewBatch) -> Result<Batch, AppError> {
    who.require_upload(&ctx.db).await?;
    if new.files == 0 || new.files > MAX_FILES {
        return Err(AppError::BadRequest(format!(
            "A batch holds between 1 and {MAX_FILES} files."
        )));
    }
    let most = new.files.saturating_mul(ctx.settings.uploads.max_size);
    if new.bytes > most {
        return Err(AppError::refused(
            413,
            "The batch declares more bytes than its files may hold.",
        ));
    }
    let bucket = match who.sender() {
        // A sender's files go where the request's owner chose.
        Some(scope) => scope.bucket.clone(),
        None => new
            .bucket
            .unwrap_or_else(|| BucketId::from_db(SYSTEM_BUCKET_ID.to_string())),
    };
    let row = repo::Row {
        id: BatchId::new().into_string(),
        user_id: who.user_id.as_str().to_string(),
        bucket_id: bucket.as_str().to_string(),
        declared_files: i64::try_from(new.files).map_err(AppError::internal)?,
        declared_bytes: i64::try_from(new.bytes).map_err(AppError::internal)?,
        started_at: ctx.clock.now_naive(),
        finished_at: None,
        submission_id: who.sender().map(|s| s.submission.as_str().to_string()),
    };
    let (user, role, event) = (
        who.user_id.clone(),
        who.role,
        Event::new(who.actor(), "batch.create", Outcome::Success)
            .origin(who.origin.clone())
            .target("batch", &row.id)
            .details(json!({ "bucket": bucket.as_str(), "files": new.files, "bytes": new.bytes })),
    );
    let stored = row.clone();
    let sender = who.sender().cloned();
    let (now, files, bytes) = (ctx.clock.now_naive(), new.files, new.bytes);
    ctx.db
        .run(move |conn| {
            crate::infra::db::write_tx(conn, |conn| {
                if buckets::visible_bucket(conn, &user, role, &bucket)?.is_none() {
                    return Err(AppError::NotFound);
                }
                if let Some(scope) = &sender {
                    crate::app::requests::quota::admit_batch(
                        conn,
                        &scope.request,
                        &scope.submission,
                        files,
                        bytes,
                        now,
                    )?;
                }
                repo::insert(conn, &stored)?;
                audit::record(conn, &event)?;
                Ok(())
            })
        })
        .await?;
    Ok(Batch::from_row(row))
}

/// The uploader's own batch (for a sender: one this visit declared), or 404 (someone
/// else's looks like no batch at all).
pub fn owned(conn: &mut DbConnection, who: &Uploader, id: &BatchId) -> Result<Batch, AppError> {
    match repo::find(conn, id.as_str())? {
        Some(row) if who.owns(&row.user_id, row.submission_id.as_deref()) => {
            Ok(Batch::from_row(row))
        }
        _ => Err(AppError::NotFound),
    }
}

/// Where a file of `batch` may go: the batch's bucket, still open.
pub fn check_member(batch: &Batch, bucket: Option<&BucketId>) -> Result<(), AppError> {
    if batch.finished_at.is_some() {
        return Err(AppError::refused(
            409,
            "This batch is already finished; start a new one to send more files.",
        ));
    }
    let system = BucketId::from_db(SYSTEM_BUCKET_ID.to_string());
    if bucket.unwrap_or(&system) != &batch.bucket {
        return Err(AppError::BadRequest(
            "A file must go to the bucket of its batch.".into(),
        ));
    }
    Ok(())
}

/// The batch and what the server holds of it: the browser skips what is stored when the
/// same folder is chosen again.
pub async fn status(
    ctx: &UploadContext,
    who: &Uploader,
    id: &BatchId,
) -> Result<BatchStatus, AppError> {
    let (who, id) = (who.clone(), id.clone());
    ctx.db
        .run(move |conn| {
            let batch = owned(conn, &who, &id)?;
            Ok(summarise(batch, files_of(conn, &id)?))
        })
        .await
}

/// Several batches with their files, for the history page (which has already scoped the
/// ids to what the viewer sees): two queries whatever the count.
pub fn statuses(conn: &mut DbConnection, ids: &[BatchId]) -> Result<Vec<BatchStatus>, AppError> {
    let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    let mut files: std::collections::HashMap<String, Vec<BatchFile>> = Default::default();
    for (batch, row) in repo::files_of(conn, &ids)? {
        if let Some(batch) = batch {
            files
                .entry(batch)
                .or_default()
                .push(BatchFile::from_row(row));
        }
    }
    Ok(repo::by_ids(conn, &ids)?
        .into_iter()
        .map(|row| {
            let list = files.remove(&row.id).unwrap_or_default();
            summarise(Batch::from_row(row), list)
        })
        .collect())
}

fn files_of(conn: &mut DbConnection, id: &BatchId) -> Result<Vec<BatchFile>, AppError> {
    Ok(repo::files(conn, id.as_str())?
        .into_iter()
        .map(BatchFile::from_row)
        .collect())
}

/// Counts over the newest attempt at each path: a file sent again after a reload cut its
/// first attempt short is judged by how the new one ended (files come ordered by path, then
/// age).
fn summarise(batch: Batch, files: Vec<BatchFile>) -> BatchStatus {
    let newest: Vec<&BatchFile> = files
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            f.relative_path.is_none()
                || files
                    .get(i + 1)
                    .is_none_or(|next| next.relative_path != f.relative_path)
        })
        .map(|(_, f)| f)
        .collect();
    let stored = newest.iter().filter(|f| f.is_stored()).count();
    let duplicates = newest
        .iter()
        .filter(|f| f.dicom == Some(IndexState::Duplicate.as_str()))
        .count();
    let problems = newest.iter().filter(|f| f.problem.is_some()).count();
    BatchStatus {
        batch,
        stored,
        duplicates,
        problems,
        files,
    }
}

/// Closes the batch (idempotent) and audits one event with its counts; `skipped` is how
/// many files the browser left out (system files, programs on a CD).
pub async fn finish(
    ctx: &UploadContext,
    who: &Uploader,
    id: &BatchId,
    skipped: u64,
) -> Result<BatchStatus, AppError> {
    who.require_upload(&ctx.db).await?;
    let (owner, id, now) = (who.clone(), id.clone(), ctx.clock.now_naive());
    let (actor, origin) = (who.actor(), who.origin.clone());
    let portal = crate::app::requests::notices::Portal::of(&ctx.settings);
    ctx.db
        .run(move |conn| {
            crate::infra::db::write_tx(conn, |conn| {
                let mut batch = owned(conn, &owner, &id)?;
                let files = files_of(conn, &id)?;
                let finished = repo::finish(conn, id.as_str(), now)?;
                if finished {
                    batch.finished_at = Some(now);
                }
                let status = summarise(batch, files);
                if finished {
                    let event = Event::new(actor, "batch.finish", Outcome::Success)
                        .origin(origin)
                        .target("batch", id.as_str())
                        .details(json!({
                            "declared_files": status.batch.declared_files,
                            "stored": status.stored,
                            "duplicates": status.duplicates,
                            "problems": status.problems,
                            "skipped": skipped,
                        }));
                    audit::record(conn, &event)?;
                    webhooks::batch_event(&id, &status.batch.bucket, &event.details).queue(conn)?;
                    // A folder with nothing stored is not news (and could be sent again and
                    // again).
                    if let Some(scope) = owner.sender().filter(|_| status.stored > 0) {
                        crate::app::requests::notices::folder_finished(
                            conn,
                            scope.submission.as_str(),
                            status.stored,
                            status.problems,
                            &portal,
                        )?;
                    }
                }
                Ok(status)
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, status: &'static str, problem: Option<&str>) -> BatchFile {
        BatchFile {
            upload_id: String::new(),
            filename: path.rsplit('/').next().unwrap_or(path).to_string(),
            relative_path: Some(path.to_string()),
            size: 1,
            status,
            sha256: None,
            dicom: None,
            problem: problem.map(str::to_string),
        }
    }

    #[test]
    fn a_path_sent_again_counts_once_by_its_newest_attempt() {
        let batch = Batch {
            id: BatchId::new(),
            user_id: UserId::new(),
            bucket: BucketId::new(),
            declared_files: 2,
            declared_bytes: 2,
            started_at: chrono::NaiveDateTime::default(),
            finished_at: None,
        };
        let status = summarise(
            batch,
            vec![
                file("CD/A", "expired", Some("The upload ended as expired")),
                file("CD/A", "completed", None),
                file("CD/B", "rejected", Some("not DICOM")),
            ],
        );
        assert_eq!((status.stored, status.problems), (1, 1));
        assert_eq!(status.files.len(), 3, "every attempt stays listed");
    }
}
