//! One upload, ready to show: every value the history row, the status fragment and the
//! detail page print, computed once. Templates escape every field (file names may contain
//! markup); nothing here is marked safe.

use chrono::NaiveDateTime;

use crate::app::buckets::size::human;
use crate::app::uploads::batches::BatchStatus;
use crate::app::uploads::{ScanStatus, Upload, UploadStatus};
use crate::web::timestamp::Timestamp;

/// How long an upload may go without news before its row stops polling. Polling only while
/// bytes are flowing keeps an idle page from holding a session open (the idle sign-out
/// must still happen) and keeps a long history within the rate limit.
const LIVE_ACTIVE_SECS: i64 = 120;
/// Verifying and scanning a large file takes a while without touching the row.
const LIVE_COMPLETING_SECS: i64 = 15 * 60;
/// Seconds between polls of a live upload.
pub const POLL_SECS: u32 = 2;

fn status_badge(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Completed => "badge-ok",
        UploadStatus::Rejected | UploadStatus::Quarantined => "badge-bad",
        UploadStatus::CleanupFailed => "badge-warn",
        UploadStatus::Active
        | UploadStatus::Completing
        | UploadStatus::Aborted
        | UploadStatus::Expired => "badge-muted",
    }
}

fn scan_badge(scan: ScanStatus) -> &'static str {
    match scan {
        ScanStatus::Clean => "badge-ok",
        ScanStatus::Infected => "badge-bad",
        ScanStatus::NotScanned => "badge-warn",
        ScanStatus::Pending => "badge-muted",
    }
}

/// Whether the row should keep asking for news: the upload is in progress and something
/// happened to it recently.
fn is_live(upload: &Upload, now: NaiveDateTime) -> bool {
    let quiet = (now - upload.updated_at).num_seconds();
    match upload.status {
        UploadStatus::Active => quiet < LIVE_ACTIVE_SECS,
        UploadStatus::Completing => quiet < LIVE_COMPLETING_SECS,
        _ => false,
    }
}

pub struct UploadView {
    pub id: String,
    pub filename: String,
    pub status: &'static str,
    pub status_badge: &'static str,
    pub in_progress: bool,
    /// Polls for news (see [`is_live`]); an in-progress upload that is not live is paused.
    pub live: bool,
    pub reason: Option<String>,
    pub size: String,
    pub size_bytes: u64,
    pub offset: u64,
    pub offset_human: String,
    pub percent: u8,
    pub bucket: String,
    pub extension: String,
    /// What the client said the type was; shown for information only, never sent back.
    pub declared_type: Option<String>,
    pub sha256: Option<String>,
    pub sha_short: Option<String>,
    pub scan: Option<&'static str>,
    pub scan_badge: &'static str,
    pub scan_detail: Option<String>,
    pub created: Timestamp,
    pub completed: Option<Timestamp>,
    pub expires: Timestamp,
    pub downloadable: bool,
    /// The owner's email, for viewers who see everyone's uploads.
    pub owner: Option<String>,
    pub via_api_key: bool,
}

impl UploadView {
    /// `bucket`: the bucket's display name when it still exists. `owner`: set for viewers
    /// who see everyone's uploads (the email, or the id when the account is gone).
    /// `may_download`: whether the viewer may fetch the file once it is downloadable.
    pub fn new(
        upload: &Upload,
        bucket: Option<&str>,
        owner: Option<String>,
        now: NaiveDateTime,
        may_download: bool,
    ) -> Self {
        let (scan, scan_badge) = match upload.scan_status {
            Some(s) => (Some(s.label()), self::scan_badge(s)),
            None => (None, "badge-muted"),
        };
        Self {
            id: upload.id.to_string(),
            filename: upload.filename.clone(),
            status: if upload.status == UploadStatus::Active && !is_live(upload, now) {
                "Paused"
            } else {
                upload.status.label()
            },
            status_badge: status_badge(upload.status),
            in_progress: upload.status.is_in_progress(),
            live: is_live(upload, now),
            reason: upload.status_reason.clone(),
            size: human(upload.declared_size),
            size_bytes: upload.declared_size,
            offset: upload.offset,
            offset_human: human(upload.offset),
            percent: upload.percent(),
            bucket: bucket.unwrap_or("(deleted bucket)").to_string(),
            extension: upload.extension.clone(),
            declared_type: upload.content_type.clone(),
            sha256: upload.sha256.clone(),
            sha_short: upload
                .sha256
                .as_deref()
                .map(|h| format!("{}…", h.get(..12).unwrap_or(h))),
            scan,
            scan_badge,
            scan_detail: upload.scan_detail.clone(),
            created: Timestamp::minutes(upload.created_at),
            completed: upload.completed_at.map(Timestamp::minutes),
            expires: Timestamp::minutes(upload.expires_at),
            downloadable: upload.is_downloadable() && may_download,
            owner,
            via_api_key: upload.api_key_id.is_some(),
        }
    }

    pub fn detail_href(&self) -> String {
        format!("/uploads/{}", self.id)
    }

    pub fn download_href(&self) -> String {
        format!("/files/{}/download", self.id)
    }

    pub fn poll_trigger(&self) -> String {
        format!("every {POLL_SECS}s")
    }
}

/// One file of a batch row.
pub struct BatchFileView {
    pub href: String,
    pub name: String,
    pub size: String,
    pub status: &'static str,
    pub badge: &'static str,
    pub problem: Option<String>,
}

/// A batch as one history row: its counts, and its files behind a disclosure.
pub struct BatchView {
    pub id: String,
    pub started: Timestamp,
    pub finished: Option<Timestamp>,
    pub declared_files: u64,
    pub stored: usize,
    pub problems: usize,
    pub size: String,
    pub size_bytes: u64,
    pub bucket: String,
    pub owner: Option<String>,
    /// At most [`BatchView::LISTED`], the files with a problem first.
    pub files: Vec<BatchFileView>,
    /// Every file of the batch, listed or not.
    pub file_total: usize,
}

impl BatchView {
    /// Files listed in the history row: a CD of thousands would make the history page
    /// megabytes long. The study pages list every file.
    pub const LISTED: usize = 100;

    pub fn new(batch: &BatchStatus, bucket: Option<&str>, owner: Option<String>) -> Self {
        let size_bytes = batch.files.iter().map(|f| f.size).sum();
        Self {
            id: batch.batch.id.to_string(),
            started: Timestamp::minutes(batch.batch.started_at),
            finished: batch.batch.finished_at.map(Timestamp::minutes),
            declared_files: batch.batch.declared_files,
            stored: batch.stored,
            problems: batch.problems,
            size: human(size_bytes),
            size_bytes,
            bucket: bucket.unwrap_or("(deleted bucket)").to_string(),
            owner,
            file_total: batch.files.len(),
            files: batch
                .files
                .iter()
                .filter(|f| f.problem.is_some())
                .chain(batch.files.iter().filter(|f| f.problem.is_none()))
                .take(Self::LISTED)
                .map(|f| {
                    let status = UploadStatus::parse(f.status);
                    BatchFileView {
                        href: format!("/uploads/{}", f.upload_id),
                        name: f
                            .relative_path
                            .clone()
                            .unwrap_or_else(|| f.filename.clone()),
                        size: human(f.size),
                        status: status.map_or("Unknown", UploadStatus::label),
                        badge: match (&f.problem, status) {
                            (Some(_), _) => "badge-bad",
                            (None, Some(s)) => status_badge(s),
                            (None, None) => "badge-muted",
                        },
                        problem: f.problem.clone(),
                    }
                })
                .collect(),
        }
    }

    pub fn file_count(&self) -> usize {
        self.file_total
    }

    /// Files of the batch the row does not list.
    pub fn unlisted(&self) -> usize {
        self.file_total - self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::uploads::batches::{Batch, BatchFile};
    use crate::domain::ids::{BatchId, BucketId, UserId};

    fn file(n: usize, problem: bool) -> BatchFile {
        BatchFile {
            upload_id: format!("u{n}"),
            filename: format!("IM{n}"),
            relative_path: Some(format!("CD/IM{n}")),
            size: 10,
            status: "completed",
            sha256: None,
            dicom: None,
            problem: problem.then(|| "A duplicate".to_string()),
        }
    }

    #[test]
    fn a_large_batch_lists_its_first_files_and_every_problem_first() {
        let t = NaiveDateTime::parse_from_str("2026-12-06 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let files: Vec<BatchFile> = (0..250).map(|n| file(n, n % 50 == 49)).collect();
        let status = BatchStatus {
            batch: Batch {
                id: BatchId::from_db("b".into()),
                user_id: UserId::from_db("u".into()),
                bucket: BucketId::from_db("system".into()),
                declared_files: 250,
                declared_bytes: 2500,
                started_at: t,
                finished_at: None,
            },
            stored: 245,
            duplicates: 5,
            problems: 5,
            files,
        };
        let view = BatchView::new(&status, Some("Default"), None);
        assert_eq!(view.file_count(), 250);
        assert_eq!(view.files.len(), BatchView::LISTED);
        assert_eq!(view.unlisted(), 150);
        let problems: Vec<&str> = view.files[..5].iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            problems,
            ["CD/IM49", "CD/IM99", "CD/IM149", "CD/IM199", "CD/IM249"]
        );
        assert!(view.files[5..].iter().all(|f| f.problem.is_none()));
        assert_eq!(view.files[5].name, "CD/IM0");
        assert_eq!(view.size_bytes, 2500, "the size counts every file");
    }

    #[test]
    fn live_means_in_progress_with_recent_news() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        let now = t("2026-01-01 12:00:00");
        let upload = |status, updated| Upload {
            id: crate::domain::ids::UploadId::new(),
            user_id: crate::domain::ids::UserId::new(),
            bucket_id: crate::domain::ids::BucketId::new(),
            api_key_id: None,
            filename: "a.pdf".into(),
            content_type: None,
            extension: "pdf".into(),
            declared_size: 10,
            offset: 5,
            part_size: 8,
            object_key: crate::infra::storage::blob::ObjectKey::parse("uploads/x").unwrap(),
            storage_upload_id: None,
            status,
            status_reason: None,
            sha256: None,
            client_checksum: None,
            scan_status: None,
            scan_detail: None,
            cleanup_attempts: 0,
            next_cleanup_at: None,
            expires_at: now,
            completed_at: None,
            created_at: now,
            updated_at: t(updated),
            batch_id: None,
            request_id: None,
            submission_id: None,
            relative_path: None,
        };
        assert!(is_live(
            &upload(UploadStatus::Active, "2026-01-01 11:59:00"),
            now
        ));
        assert!(!is_live(
            &upload(UploadStatus::Active, "2026-01-01 11:57:00"),
            now
        ));
        assert!(is_live(
            &upload(UploadStatus::Completing, "2026-01-01 11:50:00"),
            now
        ));
        assert!(!is_live(
            &upload(UploadStatus::Completed, "2026-01-01 12:00:00"),
            now
        ));
        let paused = UploadView::new(
            &upload(UploadStatus::Active, "2026-01-01 11:00:00"),
            None,
            None,
            now,
            true,
        );
        assert_eq!(paused.status, "Paused");
        assert!(paused.in_progress && !paused.live);
    }
}
