//! The receipt a sender gets when they finish: a number, the time, each file received with
//! its size and SHA-256 (and study for DICOM), and the hash of the audit event that records
//! it all. Shown as a page, saved as text, and sent by e-mail when the sender gave an address.

use std::fmt::Write as _;

use chrono::NaiveDateTime;

use crate::app::buckets::size;
use crate::app::error::AppError;
use crate::app::uploads::model::{ScanStatus, UploadStatus};
use crate::domain::ids::SubmissionId;
use crate::domain::upload_request::SenderDetails;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::DbConnection;
use crate::infra::db::repo::request_submissions::{self as repo, FileRow};

/// Where a sender's details are sealed (the associated data binds them to their row).
pub fn seal_context(submission: &str) -> SealContext<'_> {
    SealContext {
        table: "request_submissions",
        row_id: submission,
        field: "sender",
    }
}

/// The sender's details, sealed with the master key: they may name a patient.
pub fn seal_sender(
    keyring: &Keyring,
    submission: &SubmissionId,
    sender: &SenderDetails,
) -> Result<Vec<u8>, AppError> {
    let plain = serde_json::to_vec(sender).map_err(AppError::internal)?;
    secrets::seal(keyring, &seal_context(submission.as_str()), &plain).map_err(AppError::internal)
}

pub fn open_sender(keyring: &Keyring, row: &repo::Row) -> Result<SenderDetails, AppError> {
    let plain = secrets::open(keyring, &seal_context(&row.id), &row.sender_sealed)
        .map_err(|e| AppError::internal(format!("submission {}: {e}", row.id)))?;
    serde_json::from_slice(secrecy::ExposeSecret::expose_secret(&plain)).map_err(AppError::internal)
}

/// One file sent through a request.
#[derive(Debug, Clone)]
pub struct ReceiptFile {
    pub upload_id: String,
    pub submission_id: Option<String>,
    pub name: String,
    pub path: Option<String>,
    pub size: u64,
    pub sha256: Option<String>,
    pub state: FileState,
    pub received_at: NaiveDateTime,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

/// How a file stands, in the sender's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Received,
    /// Stored; the virus scan has not answered yet.
    BeingChecked,
    Quarantined,
    /// Still arriving, or it never arrived whole (not on a receipt).
    NotReceived,
}

impl FileState {
    pub fn label(self) -> &'static str {
        match self {
            FileState::Received => "Received",
            FileState::BeingChecked => "Received, being checked",
            FileState::Quarantined => "Received, held by the virus scanner",
            FileState::NotReceived => "Not received",
        }
    }
}

impl ReceiptFile {
    pub fn from_row(row: FileRow) -> Self {
        let status = UploadStatus::parse(&row.status);
        let scan = row.scan_status.as_deref().and_then(ScanStatus::parse);
        let state = match (status, row.sha256.is_some()) {
            (Some(UploadStatus::Quarantined), true) => FileState::Quarantined,
            (Some(UploadStatus::Completed), true) if scan == Some(ScanStatus::Infected) => {
                FileState::Quarantined
            }
            (Some(UploadStatus::Completed), true) => FileState::Received,
            (Some(UploadStatus::Completing), true) => FileState::BeingChecked,
            _ => FileState::NotReceived,
        };
        Self {
            upload_id: row.upload_id,
            submission_id: row.submission_id,
            name: row.filename,
            path: row.relative_path,
            size: u64::try_from(row.declared_size).unwrap_or(0),
            sha256: row.sha256,
            state,
            received_at: row.created_at,
            study_uid: row.study_uid,
            series_uid: row.series_uid,
            sop_instance_uid: row.sop_instance_uid,
        }
    }

    /// The folder path when the file came in one, else its name.
    pub fn shown_name(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.name)
    }

    pub fn human_size(&self) -> String {
        size::human(self.size)
    }
}

#[derive(Debug, Clone)]
pub struct Receipt {
    pub number: String,
    pub title: String,
    pub received_at: NaiveDateTime,
    pub sender: SenderDetails,
    pub files: Vec<ReceiptFile>,
    /// The hash of the `request.received` audit event, which lists every file's SHA-256.
    pub audit_hash: String,
}

impl Receipt {
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size)
            .fold(0, u64::saturating_add)
    }

    /// The receipt as plain text: what a sender saves, and the text part of its e-mail.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Receipt {}", self.number);
        let _ = writeln!(out, "Request: {}", self.title);
        let _ = writeln!(
            out,
            "Received: {} UTC",
            self.received_at.format("%Y-%m-%d %H:%M:%S")
        );
        if !self.sender.name.is_empty() {
            let _ = writeln!(out, "Sent by: {}", self.sender.name);
        }
        let _ = writeln!(
            out,
            "Files: {} ({})",
            self.files.len(),
            size::human(self.total_bytes())
        );
        let _ = writeln!(out);
        for f in &self.files {
            let _ = writeln!(out, "{}", f.shown_name());
            let _ = writeln!(out, "  size:    {} bytes", f.size);
            let _ = writeln!(out, "  sha256:  {}", f.sha256.as_deref().unwrap_or("-"));
            let _ = writeln!(out, "  status:  {}", f.state.label());
            if let Some(study) = &f.study_uid {
                let _ = writeln!(out, "  study:   {study}");
            }
            if let Some(sop) = &f.sop_instance_uid {
                let _ = writeln!(out, "  instance: {sop}");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Audit record (SHA-256 chain hash): {}",
            self.audit_hash
        );
        out
    }
}

/// The receipt of a finished submission; `None` while it is not finished.
pub fn load(
    conn: &mut DbConnection,
    keyring: &Keyring,
    submission: &SubmissionId,
) -> Result<Option<Receipt>, AppError> {
    let Some(row) = repo::find(conn, submission.as_str())? else {
        return Ok(None);
    };
    let (Some(received_at), Some(audit_hash)) = (row.finished_at, row.receipt_hash.clone()) else {
        return Ok(None);
    };
    let title = crate::infra::db::repo::upload_requests::find(conn, &row.request_id)?
        .map(|r| r.title)
        .unwrap_or_default();
    let sender = open_sender(keyring, &row)?;
    let files = received(conn, &row.request_id, &row.id)?;
    Ok(Some(Receipt {
        number: row.receipt_number,
        title,
        received_at,
        sender,
        files,
        audit_hash,
    }))
}

/// The files of a submission that arrived whole (what a receipt lists).
pub fn received(
    conn: &mut DbConnection,
    request: &str,
    submission: &str,
) -> Result<Vec<ReceiptFile>, AppError> {
    Ok(arrived(repo::files(conn, request, Some(submission))?))
}

/// Each file's id, size and SHA-256: what the audit event and the webhook record of a
/// receipt (never names, which may be patient data).
pub fn digests(files: &[ReceiptFile]) -> Vec<serde_json::Value> {
    files
        .iter()
        .map(|f| serde_json::json!({ "upload": f.upload_id, "size": f.size, "sha256": f.sha256 }))
        .collect()
}

/// Of a submission's files, those that arrived whole.
pub fn arrived(rows: Vec<FileRow>) -> Vec<ReceiptFile> {
    rows.into_iter()
        .map(ReceiptFile::from_row)
        .filter(|f| f.state != FileState::NotReceived)
        .collect()
}
