//! What happens to an infected object: moved under `quarantine/` (kept for investigation,
//! out of the uploads prefix) or deleted, as `MEDPORT_QUARANTINE` says. Neither depends on
//! storage cooperating: when the move or delete fails the object stays where it is and the
//! upload is quarantined all the same (the row, not the key, decides what is served).
//!
//! The move is a streamed copy (multipart upload of the new key, part by part, never the
//! whole file in memory), checked against the recorded SHA-256 before it is completed.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::QUARANTINE_PREFIX;
use crate::app::uploads::model::Upload;
use crate::config::QuarantineAction;
use crate::infra::storage::blob::{
    BlobStore, MAX_PART_SIZE, MIN_PART_SIZE, MultipartId, ObjectKey, ObjectStream, PartInfo,
    PartNumber, StorageError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposal {
    /// Copied to `to`; the original at `from` is deleted once the row names `to`.
    Moved {
        from: ObjectKey,
        to: ObjectKey,
    },
    Deleted,
    /// Left where it is: already under the quarantine prefix (a rescan), or storage failed.
    Kept {
        why: &'static str,
    },
}

impl Disposal {
    /// For the audit event.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Moved { .. } => "moved",
            Self::Deleted => "deleted",
            Self::Kept { why } => why,
        }
    }
}

/// `quarantine/<key>`, or `None` when that would not be a valid key.
pub fn quarantine_key(key: &ObjectKey) -> Option<ObjectKey> {
    ObjectKey::parse(&format!("{QUARANTINE_PREFIX}{}", key.as_str()))
}

pub fn is_quarantine_key(key: &ObjectKey) -> bool {
    key.as_str().starts_with(QUARANTINE_PREFIX)
}

pub async fn dispose(store: &BlobStore, upload: &Upload, action: QuarantineAction) -> Disposal {
    let key = &upload.object_key;
    match action {
        QuarantineAction::Delete => match store.delete(key).await {
            Ok(()) => Disposal::Deleted,
            Err(e) => {
                tracing::error!(upload = %upload.id, error = %e, "could not delete an infected object");
                Disposal::Kept {
                    why: "kept: delete failed",
                }
            }
        },
        QuarantineAction::Move if is_quarantine_key(key) => Disposal::Kept {
            why: "kept: already in quarantine",
        },
        QuarantineAction::Move => {
            let Some(to) = quarantine_key(key) else {
                tracing::error!(upload = %upload.id, "no quarantine key for this object key");
                return Disposal::Kept {
                    why: "kept: move failed",
                };
            };
            match copy(store, upload, &to).await {
                Ok(()) => Disposal::Moved {
                    from: key.clone(),
                    to,
                },
                Err(e) => {
                    tracing::error!(upload = %upload.id, error = %e, "could not move an infected object to quarantine");
                    Disposal::Kept {
                        why: "kept: move failed",
                    }
                }
            }
        }
    }
}

async fn copy(store: &BlobStore, upload: &Upload, to: &ObjectKey) -> Result<(), StorageError> {
    let (info, stream) = store.get(&upload.object_key, None).await?;
    let multipart = store.create_multipart(to).await?;
    let result = copy_parts(store, upload, to, &multipart, info.size, stream).await;
    match result {
        Ok(parts) => store.complete(to, &multipart, &parts).await.map(|_| ()),
        Err(e) => {
            if let Err(abort) = store.abort(to, &multipart).await {
                tracing::warn!(upload = %upload.id, error = %abort, "could not abort a failed quarantine copy");
            }
            Err(e)
        }
    }
}

async fn copy_parts(
    store: &BlobStore,
    upload: &Upload,
    to: &ObjectKey,
    multipart: &MultipartId,
    size: u64,
    stream: ObjectStream,
) -> Result<Vec<PartInfo>, StorageError> {
    let part_size = upload.part_size.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    let mut source = Source::new(stream);
    let mut parts = Vec::new();
    let mut left = size;
    // At least one part, even for an empty object.
    while parts.is_empty() || left > 0 {
        let number = PartNumber::new(parts.len() as u64 + 1)
            .ok_or_else(|| StorageError::InvalidPart("too many parts".into()))?;
        let len = left.min(part_size);
        // Fused: a backend may poll the body again after its end.
        let body = Box::pin(source.take(len).fuse());
        let uploaded = store.upload_part(to, multipart, number, body, len).await;
        if let Some(e) = source.error.take() {
            return Err(e);
        }
        parts.push(uploaded?);
        left -= len;
    }
    let digest = hex::encode(source.hasher.finalize());
    if upload
        .sha256
        .as_deref()
        .is_some_and(|want| want.eq_ignore_ascii_case(&digest))
    {
        Ok(parts)
    } else {
        Err(StorageError::Integrity(
            "the copy does not match the recorded SHA-256".into(),
        ))
    }
}

/// The object's stream, cut into parts: a chunk crossing a part boundary is split and its
/// rest kept for the next part.
struct Source {
    inner: ObjectStream,
    rest: Option<Bytes>,
    hasher: Sha256,
    error: Option<StorageError>,
}

impl Source {
    fn new(inner: ObjectStream) -> Self {
        Self {
            inner,
            rest: None,
            hasher: Sha256::new(),
            error: None,
        }
    }

    /// The next `len` bytes, as a part body.
    fn take(&mut self, len: u64) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + '_ {
        futures_util::stream::unfold((self, len), |(source, left)| async move {
            if left == 0 {
                return None;
            }
            match source.next_chunk(left).await {
                Ok(chunk) => {
                    let n = chunk.len() as u64;
                    Some((Ok(chunk), (source, left - n)))
                }
                Err(e) => Some((Err(e), (source, 0))),
            }
        })
    }

    /// At most `max` (> 0) bytes; never an empty chunk.
    async fn next_chunk(&mut self, max: u64) -> Result<Bytes, io::Error> {
        let mut chunk = loop {
            let next = match self.rest.take() {
                Some(rest) => rest,
                None => match self.inner.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => {
                        let text = e.to_string();
                        self.error = Some(e);
                        return Err(io::Error::other(text));
                    }
                    None => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the object ended early",
                        ));
                    }
                },
            };
            if !next.is_empty() {
                break next;
            }
        };
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        if chunk.len() > max {
            self.rest = Some(chunk.split_off(max));
        }
        self.hasher.update(&chunk);
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_keys_prefix_the_original() {
        let key = ObjectKey::parse("uploads/2026/11/0190c3a2-7b1e-7c4d-9f00-000000000001").unwrap();
        let q = quarantine_key(&key).unwrap();
        assert_eq!(
            q.as_str(),
            "quarantine/uploads/2026/11/0190c3a2-7b1e-7c4d-9f00-000000000001"
        );
        assert!(is_quarantine_key(&q));
        assert!(!is_quarantine_key(&key));
    }

    #[tokio::test]
    async fn parts_are_cut_at_their_boundaries_whatever_the_chunks() {
        let data: Vec<u8> = (0..100u8).collect();
        let chunks: Vec<Result<Bytes, StorageError>> = vec![
            Ok(Bytes::copy_from_slice(&data[..7])),
            Ok(Bytes::new()),
            Ok(Bytes::copy_from_slice(&data[7..60])),
            Ok(Bytes::copy_from_slice(&data[60..])),
        ];
        let mut source = Source::new(futures_util::stream::iter(chunks).boxed());
        let mut got = Vec::new();
        for len in [30u64, 30, 40] {
            let part: Vec<Bytes> = source
                .take(len)
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
                .await;
            let part: Vec<u8> = part.concat();
            assert_eq!(part.len() as u64, len);
            got.extend(part);
        }
        assert_eq!(got, data);
        assert_eq!(
            hex::encode(source.hasher.finalize()),
            hex::encode(Sha256::digest(&data))
        );
    }

    #[tokio::test]
    async fn a_short_object_is_an_error_not_a_short_part() {
        let chunks: Vec<Result<Bytes, StorageError>> = vec![Ok(Bytes::from_static(b"abc"))];
        let mut source = Source::new(futures_util::stream::iter(chunks).boxed());
        let items: Vec<_> = source.take(5).collect().await;
        assert!(items.last().unwrap().is_err());
    }
}
