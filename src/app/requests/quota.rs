//! A request's limits, checked when a sender's upload is created, in the transaction that
//! reserves the bucket's space (which holds the bucket's lock, and every file of a request
//! goes to its one bucket: two senders cannot both take the last free file).

use chrono::NaiveDateTime;

use crate::app::buckets::size;
use crate::app::error::AppError;
use crate::app::requests::{self, Status, UploadRequest, Usage};
use crate::domain::ids::{RequestId, SubmissionId};
use crate::infra::db::DbConnection;

/// Why a request takes no more: written for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Full {
    /// Closed, revoked or expired since the sender opened it.
    NotOpen,
    Files(u64),
    Bytes {
        free: u64,
        size: u64,
    },
}

impl Full {
    pub fn message(&self) -> String {
        match self {
            Full::NotOpen => {
                "This upload link is no longer open: it was closed or has expired.".into()
            }
            Full::Files(most) => format!(
                "This request has received all the files it can take ({most}). Please ask the \
                 person who sent you the link for a new one."
            ),
            Full::Bytes { free, size } => format!(
                "This request can take {} more; the file is {}. Please ask the person who sent \
                 you the link for a new one.",
                size::human(*free),
                size::human(*size)
            ),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Full::NotOpen => "request not open",
            Full::Files(_) => "request file limit",
            Full::Bytes { .. } => "request size limit",
        }
    }
}

/// The request and what its uploads add up to, while it takes files; `None` once it is
/// closed, revoked or expired (or gone).
pub fn open_with_usage(
    conn: &mut DbConnection,
    id: &RequestId,
    now: NaiveDateTime,
) -> Result<Option<(UploadRequest, Usage)>, AppError> {
    match requests::find(conn, id)? {
        Some(request) if request.status(now) == Status::Open => {
            let used = Usage::of(conn, id)?;
            Ok(Some((request, used)))
        }
        _ => Ok(None),
    }
}

/// Whether one more file of `size` bytes fits the request.
pub fn admit(
    conn: &mut DbConnection,
    id: &RequestId,
    size: u64,
    now: NaiveDateTime,
) -> Result<Result<(), Full>, AppError> {
    let Some((request, used)) = open_with_usage(conn, id, now)? else {
        return Ok(Err(Full::NotOpen));
    };
    if used.files >= request.limits.files() {
        return Ok(Err(Full::Files(request.limits.files())));
    }
    let free = request.limits.bytes().saturating_sub(used.bytes);
    if size > free {
        return Ok(Err(Full::Bytes { free, size }));
    }
    Ok(Ok(()))
}

/// A sender's folder, declared before its files: refused at once (413) when it cannot fit,
/// rather than after the files that do fit have gone. A visit declares at most as many
/// folders as the request takes files, so empty folders cannot be declared (and audited)
/// without end.
pub fn admit_batch(
    conn: &mut DbConnection,
    id: &RequestId,
    submission: &SubmissionId,
    files: u64,
    bytes: u64,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    let Some((request, used)) = open_with_usage(conn, id, now)? else {
        return Err(AppError::refused(410, Full::NotOpen.message()));
    };
    let files_left = request.limits.files().saturating_sub(used.files);
    let bytes_left = request.limits.bytes().saturating_sub(used.bytes);
    if files > files_left || bytes > bytes_left {
        return Err(AppError::refused(
            413,
            format!(
                "This folder holds {files} files ({}); the request can take {files_left} more \
                 files ({} more). Please send fewer files, or ask the person who sent you the \
                 link for a larger request.",
                size::human(bytes),
                size::human(bytes_left)
            ),
        ));
    }
    let declared =
        crate::infra::db::repo::upload_batches::count_of_submission(conn, submission.as_str())?;
    if u64::try_from(declared).unwrap_or(u64::MAX) >= request.limits.files() {
        return Err(AppError::refused(
            413,
            "You have started as many folders as this request takes files. Finish to get              your receipt, or ask the person who sent you the link for a new one.",
        ));
    }
    Ok(())
}
