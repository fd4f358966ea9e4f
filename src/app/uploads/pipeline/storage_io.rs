//! Storage steps with the pipeline's own retry: a part body is held in memory while it is
//! sent, so a part that failed on a transient error is simply sent again (S3's `UploadPart`
//! is tried once by the store, see `storage::s3`). A whole object (`BlobStore::put`) needs no
//! retry here: its body is in memory for the S3 client, which retries it itself.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

use crate::infra::storage::blob::{
    BlobStore, MultipartId, ObjectKey, PartInfo, PartNumber, StorageError,
};

const ATTEMPTS: u32 = 3;

/// Uploads one part, retrying transient failures with backoff (0.5 s, 1 s).
pub async fn put_part(
    store: &BlobStore,
    key: &ObjectKey,
    multipart: &MultipartId,
    number: PartNumber,
    bytes: Bytes,
) -> Result<PartInfo, StorageError> {
    let len = bytes.len() as u64;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes.clone())]);
        let started = std::time::Instant::now();
        match store.upload_part(key, multipart, number, body, len).await {
            Ok(info) => {
                // The part timeline of `scripts/bench-upload-timeline.py`.
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::debug!(part = %number, bytes = len, ms, "part stored");
                return Ok(info);
            }
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tracing::warn!(error = %e, part = %number, attempt, "part upload failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads a small object whole into `into`.
pub async fn read_small(
    store: &BlobStore,
    key: &ObjectKey,
    into: &mut BytesMut,
) -> Result<(), StorageError> {
    let (_, mut stream) = store.get(key, None).await?;
    while let Some(chunk) = stream.next().await {
        into.extend_from_slice(&chunk?);
    }
    Ok(())
}

pub async fn abort_quietly(store: &BlobStore, key: &ObjectKey, multipart: &MultipartId) {
    if let Err(e) = store.abort(key, multipart).await {
        tracing::warn!(error = %e, key = %key, "could not abort a multipart upload");
    }
}

/// Deletes an object that is no longer needed; a failure leaves garbage, not a wrong
/// result, so it is logged and not returned.
pub async fn delete_quietly(store: &BlobStore, key: &ObjectKey) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(error = %e, key = %key, "could not delete an obsolete object");
    }
}
