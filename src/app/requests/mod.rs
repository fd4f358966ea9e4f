//! Upload requests: a link through which someone without an account (a patient with a CD, a
//! referring practice) sends files to the request's owner, and gets a receipt.
//!
//! - `manage`: the owner's side (create, list, extend, close, revoke); admins see all.
//! - `sending`: the sender's side: the link, the passphrase (throttled), the sending
//!   capability, the finish and its receipt.
//! - `quota`: the request's limits, checked with the bucket's when an upload is created.
//!
//! The files a sender sends are uploads of the owner (`uploads.user_id`), marked with the
//! request and the submission; so the owner sees them in the history as any other upload.

pub mod manage;
pub mod notices;
pub mod quota;
pub mod receipt;
pub mod sending;

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::app::error::AppError;
use crate::app::uploads::model::UploadStatus;
use crate::domain::ids::{BucketId, RequestId, UserId};
use crate::domain::upload_request::{Limits, LinkToken, RequiredFields};
use crate::infra::db::DbConnection;
use crate::infra::db::repo::{upload_requests as repo, uploads};

/// The path of a request's link; the token follows it.
pub const LINK_PATH: &str = "/r/";

/// What is stored of a link's token: its SHA-256, hex. The token itself is shown once.
pub fn token_hash(token: &LinkToken) -> String {
    hex::encode(Sha256::digest(token.expose().as_bytes()))
}

/// Where a request stands. Anything but `Open` makes the link "not valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Expired,
    Closed,
    Revoked,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Open => "Open",
            Status::Expired => "Expired",
            Status::Closed => "Closed",
            Status::Revoked => "Revoked",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub id: RequestId,
    pub owner_id: UserId,
    pub bucket_id: BucketId,
    pub title: String,
    pub instructions: String,
    pub has_passphrase: bool,
    pub required: RequiredFields,
    pub limits: Limits,
    pub expires_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub first_file_at: Option<NaiveDateTime>,
    pub last_activity_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

impl UploadRequest {
    pub(crate) fn from_row(row: repo::Row) -> Self {
        Self {
            id: RequestId::from_db(row.id),
            owner_id: UserId::from_db(row.owner_id),
            bucket_id: BucketId::from_db(row.bucket_id),
            title: row.title,
            instructions: row.instructions,
            has_passphrase: row.passphrase_hash.is_some(),
            required: RequiredFields::from_db(&row.required_fields),
            limits: Limits::from_db(row.max_files, row.max_bytes),
            expires_at: row.expires_at,
            closed_at: row.closed_at,
            revoked_at: row.revoked_at,
            first_file_at: row.first_file_at,
            last_activity_at: row.last_activity_at,
            created_at: row.created_at,
        }
    }

    pub fn status(&self, now: NaiveDateTime) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.closed_at.is_some() {
            Status::Closed
        } else if self.expires_at <= now {
            Status::Expired
        } else {
            Status::Open
        }
    }
}

/// What the request's uploads add up to: every upload that holds space counts, so files on
/// their way count as much as stored ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

impl Usage {
    pub fn of(conn: &mut DbConnection, id: &RequestId) -> Result<Self, AppError> {
        let sizes =
            uploads::declared_sizes_of_request(conn, id.as_str(), &UploadStatus::holding_space())?;
        Ok(Self {
            files: sizes.len() as u64,
            bytes: sizes
                .into_iter()
                .map(|s| u64::try_from(s).unwrap_or(0))
                .fold(0u64, u64::saturating_add),
        })
    }

    pub fn is_full(self, limits: Limits) -> bool {
        self.files >= limits.files() || self.bytes >= limits.bytes()
    }
}

pub(crate) fn find(
    conn: &mut DbConnection,
    id: &RequestId,
) -> Result<Option<UploadRequest>, AppError> {
    Ok(repo::find(conn, id.as_str())?.map(UploadRequest::from_row))
}
