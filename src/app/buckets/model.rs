//! A bucket as the rest of the program sees it: typed, and without its sealed secret key
//! (which only `store` reads, to open the backend).

use chrono::NaiveDateTime;

use super::extensions::Extensions;
use super::size;
use crate::app::error::AppError;
use crate::domain::bucket::Encryption;
use crate::domain::ids::BucketId;
use crate::infra::db::repo::buckets::Row as BucketRow;

/// Which storage backend holds a bucket's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local encrypted store under the data directory (the system default bucket).
    Local,
    /// AWS S3 or an S3-compatible server.
    S3,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::S3 => "s3",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Local => "Local (encrypted)",
            Self::S3 => "S3",
        }
    }

    fn from_db(raw: &str) -> Result<Self, AppError> {
        match raw {
            "local" => Ok(Self::Local),
            "s3" => Ok(Self::S3),
            _ => Err(AppError::internal("unknown backend in buckets table")),
        }
    }
}

/// One bucket. The sealed secret key is deliberately not here: only whether one is set.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub id: BucketId,
    pub display_name: String,
    pub backend: Backend,
    pub bucket_name: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub has_secret: bool,
    pub encryption: Encryption,
    pub size_limit: Option<u64>,
    pub extensions: Extensions,
    pub notes: String,
    pub is_system: bool,
    pub open_to_all: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Bucket {
    /// "AWS (eu-central-1)", "https://s3.example.org (us-east-1)", or the local store.
    pub fn location(&self) -> String {
        match (self.backend, &self.endpoint, &self.region) {
            (Backend::Local, _, _) => "Data directory".to_string(),
            (Backend::S3, Some(endpoint), Some(region)) => format!("{endpoint} ({region})"),
            (Backend::S3, Some(endpoint), None) => endpoint.clone(),
            (Backend::S3, None, Some(region)) => format!("AWS ({region})"),
            (Backend::S3, None, None) => "AWS".to_string(),
        }
    }

    pub fn size_limit_human(&self) -> String {
        self.size_limit
            .map_or_else(|| "No limit".to_string(), size::human)
    }

    /// What the pages say about encryption: the local store always encrypts.
    pub fn encryption_label(&self) -> &'static str {
        match self.backend {
            Backend::Local => "AES-256-GCM at rest (medport)",
            Backend::S3 => self.encryption.label(),
        }
    }
}

impl TryFrom<BucketRow> for Bucket {
    type Error = AppError;

    fn try_from(row: BucketRow) -> Result<Self, AppError> {
        let size_limit = match row.size_limit_bytes {
            None => None,
            Some(n) => Some(
                u64::try_from(n).map_err(|_| AppError::internal("negative bucket size limit"))?,
            ),
        };
        Ok(Self {
            id: BucketId::from_db(row.id),
            backend: Backend::from_db(&row.backend)?,
            encryption: Encryption::from_db(&row.encryption, row.kms_key_id)
                .ok_or_else(|| AppError::internal("bad encryption settings in buckets table"))?,
            extensions: Extensions::from_db(row.allowed_extensions.as_deref()),
            display_name: row.display_name,
            bucket_name: row.bucket_name,
            region: row.region,
            endpoint: row.endpoint,
            path_style: row.path_style,
            access_key_id: row.access_key_id,
            has_secret: row.has_secret,
            size_limit,
            notes: row.notes,
            is_system: row.is_system,
            open_to_all: row.open_to_all,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
