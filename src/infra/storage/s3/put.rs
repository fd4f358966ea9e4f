//! Whole objects in one request (`PutObject`): a small file or a partial tail would otherwise
//! pay four round trips (create, part, list and complete) for a one-part multipart upload.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::error::Failure;
use super::{S3Store, normalize_etag, sse};
use crate::infra::storage::blob::{
    MAX_PART_SIZE, ObjectInfo, ObjectKey, PartInfo, PartNumber, Put, Result, StorageError,
};

impl S3Store {
    /// Stores `bytes` as the whole object at `key`, replacing any object there. The SDK may
    /// retry it (the body is in memory). The answer's encryption header is checked like a
    /// completed upload's: an object stored against the bucket's policy is deleted.
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<Put> {
        let size = bytes.len() as u64;
        if size > MAX_PART_SIZE {
            return Err(StorageError::InvalidPart(format!(
                "a single request stores at most {MAX_PART_SIZE} bytes"
            )));
        }
        let content_length = i64::try_from(size)
            .map_err(|_| StorageError::InvalidPart("object too large".into()))?;
        let (encryption, kms_key_id) = sse::requested(&self.sse);
        let limit = self.timeouts.part_attempt(size);
        let operation = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type("application/octet-stream")
            .content_length(content_length)
            .set_server_side_encryption(encryption)
            .set_ssekms_key_id(kms_key_id)
            .body(ByteStream::from(bytes))
            .customize()
            .config_override(
                aws_sdk_s3::Config::builder().timeout_config(self.timeouts.sdk(limit, limit)),
            );
        let sent = if self.sign_parts {
            operation.send().await
        } else {
            operation.disable_payload_signing().send().await
        };
        let out = sent.map_err(|e| self.write_error("PutObject", &Failure::from_sdk(&e)))?;
        let etag = out
            .e_tag()
            .map(normalize_etag)
            .ok_or_else(|| StorageError::Io("PutObject returned no ETag".into()))?;
        let object = ObjectInfo {
            size,
            etag: etag.clone(),
            sse: out.server_side_encryption().map(|s| s.as_str().to_string()),
            checksum_sha256: None,
        };
        if let Err(reason) = self.check_sse(&object) {
            tracing::error!(key = %key, %reason, "object stored without the required encryption; deleting it");
            if let Err(e) = self.delete(key).await {
                tracing::error!(key = %key, error = %e, "unencrypted object could not be deleted");
            }
            return Err(StorageError::Config(reason));
        }
        let number = PartNumber::new(1).ok_or_else(|| StorageError::Io("part 1".into()))?;
        Ok(Put {
            object,
            part: PartInfo { number, size, etag },
        })
    }
}
