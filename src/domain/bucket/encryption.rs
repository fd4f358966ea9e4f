//! Server-side encryption of a bucket's objects, as configured.

/// Server-side encryption requested for every object written to an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    None,
    /// SSE-S3: AES-256 with keys managed by the server.
    SseS3,
    /// SSE-KMS with this key (id, ARN or alias).
    SseKms {
        key_id: String,
    },
}

impl Encryption {
    /// The database and form spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SseS3 => "sse-s3",
            Self::SseKms { .. } => "sse-kms",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Self::None => "None",
            Self::SseS3 => "SSE-S3 (AES-256)",
            Self::SseKms { .. } => "SSE-KMS",
        }
    }

    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            Self::SseKms { key_id } => Some(key_id),
            _ => None,
        }
    }

    /// From the stored spelling; `None` for a combination that was never stored.
    pub fn from_db(mode: &str, kms_key_id: Option<String>) -> Option<Self> {
        match (mode, kms_key_id) {
            ("none", _) => Some(Self::None),
            ("sse-s3", _) => Some(Self::SseS3),
            ("sse-kms", Some(key_id)) if !key_id.is_empty() => Some(Self::SseKms { key_id }),
            _ => None,
        }
    }
}
