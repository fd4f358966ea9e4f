//! The storage contract every backend implements, shaped after S3 multipart uploads so that
//! the upload pipeline has one code path for all of them:
//!
//! - `create_multipart` -> `upload_part` (streamed; a part number uploaded again replaces the
//!   earlier one) -> `complete` with the caller's own part list (or `abort`).
//! - `put`: a small object whole, in one request, as if it were a one-part upload (it reports
//!   that part too, so the caller records it like any other).
//! - Parts are numbered 1..=10,000; every part but the last must be at least
//!   [`MIN_PART_SIZE`]; a part is at most [`MAX_PART_SIZE`].
//! - An object becomes visible only when `complete` succeeds, and then whole.
//! - Reads are streamed in bounded chunks. A backend that detects damaged data ends the
//!   stream with [`StorageError::Integrity`]; it never hands out bytes it cannot vouch for.
//! - State lives in the backend, not in the process: any instance can continue any upload.
//!
//! `BlobStore` is an enum rather than a trait object because `async fn` in traits is not
//! dyn-compatible; each method dispatches to the backend's inherent method of the same name
//! and signature.

mod names;
mod range;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;

pub use names::{MultipartId, ObjectKey, PartNumber};
pub use range::{ByteRange, RangeError};

use super::local::LocalStore;
use super::s3::S3Store;

/// S3's minimum size of every part but the last (`EntityTooSmall` below it).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's maximum part size.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An object's bytes, in chunks of bounded size. `'static` so it can be handed to a
/// streaming HTTP response.
pub type ObjectStream = BoxStream<'static, Result<Bytes>>;

/// What a backend reports for a stored part. The caller keeps these in its own records and
/// passes them back to `complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub number: PartNumber,
    pub size: u64,
    /// Opaque; compare exactly. It names what was stored: S3 gives equal content the same
    /// ETag, the local store gives every upload of a part its own.
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The whole object's size, also when a range was requested.
    pub size: u64,
    pub etag: String,
    /// Server-side encryption in force: S3's `AES256` / `aws:kms`, or [`LOCAL_SSE`].
    pub sse: Option<String>,
    /// S3's composite form for multipart objects: base64 of the SHA-256 of the concatenated
    /// binary SHA-256 digests of the parts, then `-<part count>`. `None` when the backend
    /// does not report one.
    pub checksum_sha256: Option<String>,
}

/// What `put` stored: the object, and the one part it counts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub object: ObjectInfo,
    pub part: PartInfo,
}

/// The `sse` the local store reports: its own AES-256-GCM encryption at rest.
pub const LOCAL_SSE: &str = "medport:aes-256-gcm";

/// Storage failures. Messages carry ids and causes, never object content or key material.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("multipart upload not found (never created, completed or aborted)")]
    NoSuchUpload,
    /// The request itself is wrong: a part of the wrong length, a part list that does not
    /// match what was stored, a part too small or too large.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    /// Stored data failed authentication or is missing: tampering or corruption. Never
    /// retried, never answered with data.
    #[error("stored data failed its integrity check: {0}")]
    Integrity(String),
    /// No space left (HTTP 507). Nothing partial is left visible.
    #[error("storage is full")]
    Full,
    /// The backend cannot be reached or timed out (HTTP 503 with Retry-After).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Misconfiguration: wrong credentials, missing bucket, unknown master key.
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("storage I/O: {0}")]
    Io(String),
}

/// S3's rules for a completion request, the same for every backend: at least one part,
/// ascending numbers (each once), every part but the last at least `MIN_PART_SIZE`.
pub fn check_part_list(parts: &[PartInfo]) -> Result<()> {
    let invalid = |m: String| Err(StorageError::InvalidPart(m));
    if parts.is_empty() {
        return invalid("a completion needs at least one part".into());
    }
    for pair in parts.windows(2) {
        if pair[0].number >= pair[1].number {
            return invalid("parts must be listed in ascending order, each once".into());
        }
        if pair[0].size < MIN_PART_SIZE {
            return invalid(format!(
                "part {} is {} bytes; every part but the last needs at least {MIN_PART_SIZE}",
                pair[0].number, pair[0].size
            ));
        }
    }
    Ok(())
}

impl StorageError {
    /// Whether the same request may succeed if tried again later without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<RangeError> for StorageError {
    fn from(_: RangeError) -> Self {
        Self::RangeNotSatisfiable
    }
}

/// One bucket's storage backend.
#[derive(Debug, Clone)]
pub enum BlobStore {
    /// Encrypted files under the data directory (the embedded default bucket).
    Local(LocalStore),
    /// A bucket on S3 or an S3-compatible server (aws-sdk-s3). `get` returns a boxed
    /// stream so both arms have one type.
    S3(S3Store),
}

impl BlobStore {
    pub async fn create_multipart(&self, key: &ObjectKey) -> Result<MultipartId> {
        match self {
            Self::Local(store) => store.create_multipart(key).await,
            Self::S3(store) => store.create_multipart(key).await,
        }
    }

    /// Streams one part to the backend, reading `body` chunk by chunk (never whole). Fails
    /// with `InvalidPart`, recording nothing, when the body is not exactly `expected_len`
    /// bytes or fails. Uploading a part number again replaces the earlier part.
    pub async fn upload_part(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        number: PartNumber,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
        expected_len: u64,
    ) -> Result<PartInfo> {
        match self {
            Self::Local(store) => store.upload_part(key, id, number, body, expected_len).await,
            Self::S3(store) => store.upload_part(key, id, number, body, expected_len).await,
        }
    }

    /// The parts stored so far, sorted by number, one entry per number.
    pub async fn list_parts(&self, key: &ObjectKey, id: &MultipartId) -> Result<Vec<PartInfo>> {
        match self {
            Self::Local(store) => store.list_parts(key, id).await,
            Self::S3(store) => store.list_parts(key, id).await,
        }
    }

    /// Assembles the object from `parts` (ascending numbers, from the caller's records).
    /// Each part must be stored with that size and ETag, and every part but the last must be
    /// at least [`MIN_PART_SIZE`]; otherwise `InvalidPart` and nothing changes.
    pub async fn complete(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        parts: &[PartInfo],
    ) -> Result<ObjectInfo> {
        match self {
            Self::Local(store) => store.complete(key, id, parts).await,
            Self::S3(store) => store.complete(key, id, parts).await,
        }
    }

    /// Stores `bytes` (at most [`MAX_PART_SIZE`]) as the whole object at `key`, replacing any
    /// object there; visible only once it succeeded, and then whole.
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<Put> {
        match self {
            Self::Local(store) => store.put(key, bytes).await,
            Self::S3(store) => store.put(key, bytes).await,
        }
    }

    /// Discards an upload and its parts. A missing upload is success.
    pub async fn abort(&self, key: &ObjectKey, id: &MultipartId) -> Result<()> {
        match self {
            Self::Local(store) => store.abort(key, id).await,
            Self::S3(store) => store.abort(key, id).await,
        }
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>> {
        match self {
            Self::Local(store) => store.head(key).await,
            Self::S3(store) => store.head(key).await,
        }
    }

    /// The object (or `range` of it) as a stream. A range starting past the end is
    /// `RangeNotSatisfiable`; damage found while streaming ends the stream with an `Err`.
    pub async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<(ObjectInfo, ObjectStream)> {
        match self {
            Self::Local(store) => store.get(key, range).await,
            Self::S3(store) => store.get(key, range).await,
        }
    }

    /// Removes an object. A missing object is success.
    pub async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match self {
            Self::Local(store) => store.delete(key).await,
            Self::S3(store) => store.delete(key).await,
        }
    }

    /// A cheap probe that the backend answers and accepts writes.
    pub async fn health(&self) -> Result<()> {
        match self {
            Self::Local(store) => store.health().await,
            Self::S3(store) => store.health().await,
        }
    }

    /// Every multipart upload that is neither completed nor aborted (for cleanup and orphan
    /// checks).
    pub async fn list_multipart_uploads(&self) -> Result<Vec<(ObjectKey, MultipartId)>> {
        match self {
            Self::Local(store) => store.list_multipart_uploads(None).await,
            Self::S3(store) => store.list_multipart_uploads(None).await,
        }
    }

    /// The unfinished multipart uploads of `key` and of every key that extends it (an
    /// upload's object and its tail objects).
    pub async fn list_multipart_uploads_under(
        &self,
        key: &ObjectKey,
    ) -> Result<Vec<(ObjectKey, MultipartId)>> {
        let prefix = Some(key.as_str());
        match self {
            Self::Local(store) => store.list_multipart_uploads(prefix).await,
            Self::S3(store) => store.list_multipart_uploads(prefix).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(StorageError::Unavailable("timeout".into()).is_retryable());
        for not in [
            StorageError::NotFound,
            StorageError::NoSuchUpload,
            StorageError::InvalidPart("x".into()),
            StorageError::RangeNotSatisfiable,
            StorageError::Integrity("x".into()),
            StorageError::Full,
            StorageError::Config("x".into()),
            StorageError::Io("x".into()),
        ] {
            assert!(!not.is_retryable(), "{not}");
        }
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let store: Option<BlobStore> = None;
        if let Some(store) = store {
            let key = ObjectKey::parse("a").unwrap();
            let id = MultipartId::new("x");
            let n = PartNumber::new(1).unwrap();
            let body = futures_util::stream::empty::<Result<Bytes, std::io::Error>>();
            assert_send(store.upload_part(&key, &id, n, body, 0));
            assert_send(store.complete(&key, &id, &[]));
            assert_send(store.put(&key, Bytes::new()));
            assert_send(store.get(&key, None));
            assert_send(store.list_multipart_uploads());
        }
    }
}
