//! The typed upload row and the read-only queries the pages and the API need. Writes belong
//! to the pipeline (`pipeline`), the scanner (`scanning`) and the cleanup worker (`cleanup`).

use chrono::NaiveDateTime;

use crate::app::error::AppError;
use crate::domain::RelativePath;
use crate::domain::ids::{ApiKeyId, BatchId, BucketId, RequestId, SubmissionId, UploadId, UserId};
use crate::domain::role::Role;
use crate::infra::db::repo::uploads as repo;
use crate::infra::db::{DbConnection, DbError};
use crate::infra::storage::blob::{MultipartId, ObjectKey};

/// Where an upload is in its life. Stored as the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadStatus {
    /// Bytes are arriving (or may still arrive: the client can resume).
    Active,
    /// Every byte is stored; the object is being assembled, verified and scanned.
    Completing,
    /// Stored, verified and (when scanning is on) found clean: downloadable.
    Completed,
    /// Refused by a check (type, checksum, size); the storage upload was aborted.
    Rejected,
    /// Cancelled by the uploader (tus termination) or an admin.
    Aborted,
    /// Not finished in time; the cleanup worker aborted it in storage.
    Expired,
    /// The cleanup worker could not abort it in storage yet; it retries with backoff.
    CleanupFailed,
    /// Infected, or could not be scanned (fail closed): never downloadable.
    Quarantined,
}

impl UploadStatus {
    pub const ALL: [Self; 8] = [
        Self::Active,
        Self::Completing,
        Self::Completed,
        Self::Rejected,
        Self::Aborted,
        Self::Expired,
        Self::CleanupFailed,
        Self::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Aborted => "aborted",
            Self::Expired => "expired",
            Self::CleanupFailed => "cleanup_failed",
            Self::Quarantined => "quarantined",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// For people: "In progress", "Scanning", ...
    pub fn label(self) -> &'static str {
        match self {
            Self::Active => "In progress",
            Self::Completing => "Verifying",
            Self::Completed => "Completed",
            Self::Rejected => "Rejected",
            Self::Aborted => "Cancelled",
            Self::Expired => "Expired",
            Self::CleanupFailed => "Expired (cleanup pending)",
            Self::Quarantined => "Quarantined",
        }
    }

    /// Bytes may still arrive or the pipeline is still working on it: pages keep polling.
    pub fn is_in_progress(self) -> bool {
        matches!(self, Self::Active | Self::Completing)
    }

    /// Counts against the bucket's size limit: in progress (reserved) or stored.
    pub fn holds_space(self) -> bool {
        matches!(
            self,
            Self::Active | Self::Completing | Self::Completed | Self::Quarantined
        )
    }

    /// Every status that holds space, as stored: what size limits count.
    pub fn holding_space() -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|s| s.holds_space())
            .map(Self::as_str)
            .collect()
    }
}

/// The scanner's verdict, stored in `scan_status`. `None` in the row means scanning was not
/// configured when the upload completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// Completed in storage; the scan has not finished yet.
    Pending,
    Clean,
    Infected,
    /// The scanner was down, timed out, or the file was over its limit: fail closed.
    NotScanned,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Clean => "clean",
            Self::Infected => "infected",
            Self::NotScanned => "not_scanned",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Clean, Self::Infected, Self::NotScanned]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "Scanning",
            Self::Clean => "Clean",
            Self::Infected => "Infected",
            Self::NotScanned => "Not scanned",
        }
    }
}

/// One upload, typed. The hash state and the lease are the pipeline's business and are not
/// read here.
#[derive(Debug, Clone)]
pub struct Upload {
    pub id: UploadId,
    pub user_id: UserId,
    pub bucket_id: BucketId,
    pub api_key_id: Option<ApiKeyId>,
    /// Already safe (`SafeFilename`); templates still escape it.
    pub filename: String,
    pub content_type: Option<String>,
    /// The allowlisted extension (`dcm`, `nii.gz`, `gz`...).
    pub extension: String,
    pub declared_size: u64,
    /// Bytes durably stored so far (the tus `Upload-Offset`).
    pub offset: u64,
    pub part_size: u64,
    pub object_key: ObjectKey,
    pub storage_upload_id: Option<String>,
    pub status: UploadStatus,
    /// Why it was rejected, quarantined or failed; safe to show to the uploader.
    pub status_reason: Option<String>,
    /// Lowercase hex SHA-256 of the whole file, set at completion.
    pub sha256: Option<String>,
    pub client_checksum: Option<String>,
    pub scan_status: Option<ScanStatus>,
    pub scan_detail: Option<String>,
    pub cleanup_attempts: i32,
    pub next_cleanup_at: Option<NaiveDateTime>,
    pub expires_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub batch_id: Option<BatchId>,
    /// The upload request it was sent through, and the sender's visit (`None`: sent by the
    /// owner).
    pub request_id: Option<RequestId>,
    pub submission_id: Option<SubmissionId>,
    /// Where it sat in the dropped folder; a label, never a key.
    pub relative_path: Option<RelativePath>,
}

impl Upload {
    /// Whether the file is (or claims to be) DICOM: named so, or taken by content.
    pub fn is_dicom(&self) -> bool {
        crate::app::uploads::sniff::FileKind::from_extension(&self.extension)
            == Some(crate::app::uploads::sniff::FileKind::Dicom)
    }

    fn from_row(row: repo::Row) -> Result<Self, AppError> {
        let status = UploadStatus::parse(&row.status)
            .ok_or_else(|| AppError::internal(format!("unknown upload status {}", row.status)))?;
        let object_key = ObjectKey::parse(&row.object_key)
            .ok_or_else(|| AppError::internal("stored object key is malformed"))?;
        let size = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| AppError::internal(format!("negative {what}")))
        };
        Ok(Self {
            id: UploadId::from_db(row.id),
            user_id: UserId::from_db(row.user_id),
            bucket_id: BucketId::from_db(row.bucket_id),
            api_key_id: row.api_key_id.map(ApiKeyId::from_db),
            filename: row.filename,
            content_type: row.content_type,
            extension: row.extension,
            declared_size: size(row.declared_size, "size")?,
            offset: size(row.upload_offset, "offset")?,
            part_size: size(row.part_size, "part size")?,
            object_key,
            storage_upload_id: row.storage_upload_id,
            status,
            status_reason: row.status_reason,
            sha256: row.sha256,
            client_checksum: row.client_checksum,
            scan_status: row.scan_status.as_deref().and_then(ScanStatus::parse),
            scan_detail: row.scan_detail,
            cleanup_attempts: row.cleanup_attempts,
            next_cleanup_at: row.next_cleanup_at,
            expires_at: row.expires_at,
            completed_at: row.completed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            batch_id: row.batch_id.map(BatchId::from_db),
            request_id: row.request_id.map(RequestId::from_db),
            submission_id: row.submission_id.map(SubmissionId::from_db),
            relative_path: row.relative_path.map(RelativePath::from_db),
        })
    }

    /// The multipart upload its bytes go to; `None` for a file stored whole (below).
    pub fn multipart(&self) -> Option<MultipartId> {
        self.storage_upload_id.clone().map(MultipartId::new)
    }

    /// Stored whole with one request at its last byte (`layout::stored_whole`): no
    /// multipart upload was opened for it.
    pub fn stored_whole(&self) -> bool {
        self.storage_upload_id.is_none() && self.declared_size <= self.part_size
    }

    /// Downloadable: completed (which, with scanning on, means scanned clean).
    pub fn is_downloadable(&self) -> bool {
        self.status == UploadStatus::Completed
    }

    /// Percentage of bytes stored, 0..=100, for progress bars.
    pub fn percent(&self) -> u8 {
        if self.declared_size == 0 {
            return 100;
        }
        let pct = u128::from(self.offset) * 100 / u128::from(self.declared_size);
        u8::try_from(pct.min(100)).unwrap_or(100)
    }

    /// The owner, or an administrator. Everyone else gets a 404 from callers, so guessing
    /// ids reveals nothing.
    pub fn visible_to(&self, user: &UserId, role: Role) -> bool {
        role == Role::Admin || &self.user_id == user
    }
}

/// One upload by id, whoever owns it.
pub fn find(conn: &mut DbConnection, id: &UploadId) -> Result<Option<Upload>, AppError> {
    repo::find(conn, id.as_str())?
        .map(Upload::from_row)
        .transpose()
}

/// Uploads by id, whoever owns them (the caller has scoped the ids), in no order.
pub fn find_many(conn: &mut DbConnection, ids: &[UploadId]) -> Result<Vec<Upload>, AppError> {
    let ids: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    repo::find_many(conn, &ids)?
        .into_iter()
        .map(Upload::from_row)
        .collect()
}

/// The downloadable uploads among `ids` (the caller has scoped them), in the order of `ids`.
pub fn downloadable_in_order(
    conn: &mut DbConnection,
    ids: &[UploadId],
) -> Result<Vec<Upload>, AppError> {
    let order: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut uploads: Vec<Upload> = find_many(conn, ids)?
        .into_iter()
        .filter(Upload::is_downloadable)
        .collect();
    uploads.sort_by_key(|u| order.get(u.id.as_str()).copied().unwrap_or(usize::MAX));
    Ok(uploads)
}

/// One upload if `user` may see it (owner or admin), else `None`.
pub fn find_visible(
    conn: &mut DbConnection,
    id: &UploadId,
    user: &UserId,
    role: Role,
) -> Result<Option<Upload>, AppError> {
    Ok(find(conn, id)?.filter(|u| u.visible_to(user, role)))
}

/// Which uploads a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this owner's uploads. `None` means everyone's (admins only; callers decide).
    pub owner: Option<UserId>,
    pub status: Option<UploadStatus>,
    pub bucket: Option<BucketId>,
    /// A batch stands as one row, its first upload (the history page).
    pub batch_leads: bool,
    /// Newest first; at most this many.
    pub limit: i64,
    /// Skip this many (paging).
    pub offset: i64,
}

impl ListFilter {
    fn rows(&self) -> repo::Filter<'_> {
        repo::Filter {
            owner: self.owner.as_ref().map(UserId::as_str),
            status: self.status.map(UploadStatus::as_str),
            bucket: self.bucket.as_ref().map(BucketId::as_str),
            batch_leads: self.batch_leads,
        }
    }
}

/// Uploads matching `filter`, newest first.
pub fn list(conn: &mut DbConnection, filter: &ListFilter) -> Result<Vec<Upload>, AppError> {
    let rows = repo::list(
        conn,
        &filter.rows(),
        filter.limit.clamp(1, 1000),
        filter.offset.max(0),
    )?;
    rows.into_iter().map(Upload::from_row).collect()
}

/// How many uploads match `filter` (ignoring its limit and offset), for paging, counting
/// no further than `cap` (a result of `cap` means "at least").
pub fn count_up_to(conn: &mut DbConnection, filter: &ListFilter, cap: i64) -> Result<i64, DbError> {
    repo::count_up_to(conn, &filter.rows(), cap)
}

/// Uploads quarantined and not yet looked at by an admin (for the dashboard notice).
pub fn quarantined_count(conn: &mut DbConnection) -> Result<i64, DbError> {
    repo::count_in_status(conn, UploadStatus::Quarantined.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_match_the_database_check() {
        for s in UploadStatus::ALL {
            assert_eq!(UploadStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(UploadStatus::parse("done"), None);
        for s in ["pending", "clean", "infected", "not_scanned"] {
            assert_eq!(ScanStatus::parse(s).map(ScanStatus::as_str), Some(s));
        }
    }
}
