//! The multipart half of the S3 store: create, upload parts (streamed), list, complete
//! (checked against the server's part list, then verified with `HeadObject`), abort.

use std::collections::BTreeMap;
use std::pin::pin;

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::{FutureExt, Stream};

use super::error::{Failure, storage_error};
use super::{S3Store, body, normalize_etag, sse};
use crate::infra::storage::blob::{
    MAX_PART_SIZE, MultipartId, ObjectInfo, ObjectKey, PartInfo, PartNumber, Result, StorageError,
};

impl S3Store {
    pub async fn create_multipart(&self, key: &ObjectKey) -> Result<MultipartId> {
        let (encryption, kms_key_id) = sse::requested(&self.sse);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type("application/octet-stream")
            .set_server_side_encryption(encryption)
            .set_ssekms_key_id(kms_key_id)
            .send()
            .await
            .map_err(|e| self.write_error("CreateMultipartUpload", &Failure::from_sdk(&e)))?;
        out.upload_id()
            .filter(|id| !id.is_empty())
            .map(MultipartId::new)
            .ok_or_else(|| StorageError::Io("CreateMultipartUpload returned no upload id".into()))
    }

    pub async fn upload_part(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        number: PartNumber,
        body: impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
        expected_len: u64,
    ) -> Result<PartInfo> {
        if expected_len > MAX_PART_SIZE {
            return Err(StorageError::InvalidPart(format!(
                "a part is at most {MAX_PART_SIZE} bytes"
            )));
        }
        let content_length = i64::try_from(expected_len)
            .map_err(|_| StorageError::InvalidPart("part too large".into()))?;
        let limit = self.timeouts.part_attempt(expected_len);
        let request = |payload: ByteStream| {
            let operation = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(id.as_str())
                .part_number(i32::from(number.get()))
                .content_length(content_length)
                .body(payload)
                .customize()
                .config_override(
                    aws_sdk_s3::Config::builder().timeout_config(self.timeouts.sdk(limit, limit)),
                );
            if self.sign_parts {
                operation.send()
            } else {
                operation.disable_payload_signing().send()
            }
        };
        let sent = if expected_len == 0 {
            body::ensure_empty(body).await?;
            request(ByteStream::from_static(b"")).await
        } else {
            let (tx, channel_body) = body::channel(expected_len);
            let mut send = pin!(request(ByteStream::new(SdkBody::from_body_1_x(
                channel_body
            ))));
            let mut pump = pin!(body::pump(body, tx, expected_len));
            let mut pumped = None;
            let sent = loop {
                tokio::select! {
                    biased;
                    done = &mut pump, if pumped.is_none() => pumped = Some(done),
                    sent = &mut send => break sent,
                }
            };
            // A pump that failed the body has its reason ready by now.
            if let Some(Err(e)) = pumped.or_else(|| pump.now_or_never()) {
                return Err(e);
            }
            sent
        };
        let out = sent.map_err(|e| self.write_error("UploadPart", &Failure::from_sdk(&e)))?;
        let etag = out
            .e_tag()
            .map(normalize_etag)
            .ok_or_else(|| StorageError::Io("UploadPart returned no ETag".into()))?;
        self.recent.record(id, number, &etag);
        Ok(PartInfo {
            number,
            size: expected_len,
            etag,
        })
    }

    /// The parts stored so far, one per number. Where the server lists several copies of a
    /// re-uploaded number (SeaweedFS does; AWS lists only the latest), the newest is taken;
    /// copies from the same second are told apart by what this process uploaded last, and
    /// otherwise cannot be (`complete` then trusts the caller's records).
    pub async fn list_parts(&self, key: &ObjectKey, id: &MultipartId) -> Result<Vec<PartInfo>> {
        Ok(self
            .latest_parts(key, id)
            .await?
            .into_values()
            .filter_map(|candidates| candidates.into_iter().next())
            .collect())
    }

    /// For each part number, the copies that may be the latest upload: one, unless the
    /// server lists several copies with the same newest timestamp that this process cannot
    /// tell apart.
    async fn latest_parts(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
    ) -> Result<BTreeMap<PartNumber, Vec<PartInfo>>> {
        let mut found: BTreeMap<PartNumber, Vec<(Option<i128>, PartInfo)>> = BTreeMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(id.as_str())
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| storage_error("ListParts", &e))?;
            for part in out.parts() {
                let number = part
                    .part_number()
                    .and_then(|n| u64::try_from(n).ok())
                    .and_then(PartNumber::new);
                let size = part.size().and_then(|s| u64::try_from(s).ok());
                let (Some(number), Some(size), Some(etag)) = (number, size, part.e_tag()) else {
                    return Err(StorageError::Io(
                        "ListParts returned an incomplete part".into(),
                    ));
                };
                let info = PartInfo {
                    number,
                    size,
                    etag: normalize_etag(etag),
                };
                let modified = part.last_modified().map(|t| t.as_nanos());
                found.entry(number).or_default().push((modified, info));
            }
            match out.next_part_number_marker() {
                Some(next) if out.is_truncated() == Some(true) && !next.is_empty() => {
                    marker = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(found
            .into_iter()
            .map(|(number, copies)| {
                let newest = copies.iter().map(|(modified, _)| *modified).max().flatten();
                let mut candidates: Vec<PartInfo> = copies
                    .into_iter()
                    .filter(|(modified, _)| *modified == newest)
                    .map(|(_, info)| info)
                    .collect();
                candidates.sort_by(|a, b| (&a.etag, a.size).cmp(&(&b.etag, b.size)));
                candidates.dedup();
                if candidates.len() > 1
                    && let Some(last) = self.recent.get(id, number)
                    && let Some(known) = candidates.iter().find(|c| c.etag == last)
                {
                    candidates = vec![known.clone()];
                }
                (number, candidates)
            })
            .collect())
    }

    pub async fn complete(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        parts: &[PartInfo],
    ) -> Result<ObjectInfo> {
        crate::infra::storage::blob::check_part_list(parts)?;
        let size = parts
            .iter()
            .try_fold(0u64, |total, part| total.checked_add(part.size))
            .ok_or_else(|| StorageError::InvalidPart("object too large".into()))?;
        match self.latest_parts(key, id).await {
            Ok(stored) => {
                for part in parts {
                    let matches = stored
                        .get(&part.number)
                        .is_some_and(|candidates| candidates.contains(part));
                    if !matches {
                        return Err(StorageError::InvalidPart(format!(
                            "part {} does not match a stored part (size or ETag)",
                            part.number
                        )));
                    }
                }
            }
            Err(StorageError::NoSuchUpload) => {
                return self.completed_before(key, parts, size).await;
            }
            Err(e) => return Err(e),
        }
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|part| {
                        CompletedPart::builder()
                            .part_number(i32::from(part.number.get()))
                            .e_tag(format!("\"{}\"", part.etag))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(id.as_str())
            .multipart_upload(completed)
            .send()
            .await;
        match result {
            Ok(_) => self.recent.forget(id),
            Err(e) => match storage_error("CompleteMultipartUpload", &e) {
                StorageError::NoSuchUpload => {
                    return self.completed_before(key, parts, size).await;
                }
                other => return Err(other),
            },
        }
        let info = self
            .head(key)
            .await?
            .ok_or_else(|| StorageError::Io("the completed object is not visible".into()))?;
        if info.size != size {
            return Err(StorageError::Integrity(format!(
                "the completed object has {} bytes, the parts add up to {size}",
                info.size
            )));
        }
        if let Err(reason) = self.check_sse(&info) {
            tracing::error!(key = %key, %reason, "object stored without the required encryption; deleting it");
            if let Err(e) = self.delete(key).await {
                tracing::error!(key = %key, error = %e, "unencrypted object could not be deleted");
            }
            return Err(StorageError::Config(reason));
        }
        Ok(info)
    }

    /// A completion retried after the upload is gone (answer lost, or completed by another
    /// instance): the object must be there, made of as many parts, with the same size.
    async fn completed_before(
        &self,
        key: &ObjectKey,
        parts: &[PartInfo],
        size: u64,
    ) -> Result<ObjectInfo> {
        let suffix = format!("-{}", parts.len());
        match self.head(key).await? {
            Some(info)
                if info.size == size
                    && info.etag.ends_with(&suffix)
                    && self.check_sse(&info).is_ok() =>
            {
                Ok(info)
            }
            _ => Err(StorageError::NoSuchUpload),
        }
    }

    pub async fn abort(&self, key: &ObjectKey, id: &MultipartId) -> Result<()> {
        let result = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(id.as_str())
            .send()
            .await;
        self.recent.forget(id);
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = Failure::from_sdk(&e);
                // Already aborted, completed, or never existed: nothing is left to discard.
                // (A missing bucket is not that: it is reported as a configuration error.)
                let no_bucket = failure.code.as_deref() == Some("NoSuchBucket");
                if failure.is_no_such_upload() || (failure.status == Some(404) && !no_bucket) {
                    Ok(())
                } else {
                    Err(failure.into_storage_error("AbortMultipartUpload"))
                }
            }
        }
    }
}
