//! The S3 store: one bucket on AWS S3 or an S3-compatible server (custom endpoint,
//! path-style addressing), through `aws-sdk-s3`.
//!
//! Transport. HTTPS with rustls (ring); plain HTTP only where the configured endpoint says so
//! (loopback test servers). Credentials are static (from the bucket's sealed settings) and
//! never printed: `Debug` of every type here redacts them.
//!
//! Timeouts and retries (see [`S3Timeouts`]): connecting is bounded by 5 s; every request
//! attempt by 60 s (an `UploadPart` gets 60 s plus the time to send its bytes at 256 KiB/s,
//! about 90 s for an 8 MiB part); a whole operation with its retries by 150 s. The SDK's
//! standard retry mode makes up to 3 attempts with jittered exponential backoff (0.5 s
//! initial, 5 s at most) on connection failures, timeouts, 5xx and throttling. A part body is
//! a one-shot stream, so `UploadPart` is tried once; the upload pipeline retries the part.
//! What still fails is `StorageError::Unavailable` (503 + `Retry-After` upstream).
//!
//! Part bodies are streamed: the caller's chunks are handed to the HTTP client through a
//! small bounded channel (`body.rs`); a part is never held whole in memory (peak RSS stays
//! at about 32 MiB for 1 GiB objects in 8 to 256 MiB parts). The SDK's default checksums
//! are kept (`WhenSupported`): a part goes out `aws-chunked` with a CRC32 trailer computed
//! while streaming, which S3 verifies, so corruption between here and the disk is caught.
//! Over HTTPS the chunks are not signed (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`; TLS protects
//! them); over plain HTTP (loopback test servers only) the SDK signs each chunk as it goes
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`). Neither needs the body up front. Against
//! SeaweedFS on loopback this costs about a fifth of the upload throughput compared with a
//! bare `UNSIGNED-PAYLOAD` (74 against 96 MiB/s), so to a literal loopback address, where
//! the bytes never leave the machine, parts go unsigned (`signs_part_bodies`).
//!
//! Encryption. The bucket's `Encryption` is requested at `CreateMultipartUpload` and
//! `PutObject` (`sse`), and checked with `HeadObject` after `CompleteMultipartUpload` or in
//! `PutObject`'s answer. If the object is not encrypted as asked, it is deleted and the write
//! fails with `Config`: an object stored against the bucket's policy is never reported as
//! complete.

mod body;
mod config;
mod error;
mod multipart;
mod put;
mod recent;
mod resolver;
mod security;
mod sse;

use std::fmt;

use aws_sdk_s3::types::ChecksumMode;
use futures_util::stream;

pub use self::config::{S3Config, S3Timeouts};
use self::error::{Failure, storage_error};
use self::recent::RecentParts;
pub use self::security::{Check, CheckState, SecurityCheck};
use crate::domain::bucket::Encryption;
use crate::infra::storage::blob::{
    ByteRange, MultipartId, ObjectInfo, ObjectKey, ObjectStream, Result, StorageError,
};

#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    sse: Encryption,
    timeouts: S3Timeouts,
    /// For messages: the endpoint (or "AWS") and region, never credentials.
    location: String,
    recent: RecentParts,
    /// Whether part bodies are signed chunk by chunk (see [`signs_part_bodies`]).
    sign_parts: bool,
}

/// Over plain HTTP the SDK signs every chunk of a part body, as nothing else protects it on
/// the wire; over HTTPS it never does (TLS does). To a loopback address the bytes never leave
/// the machine, so there the signing (about a fifth of the throughput) protects nothing and is
/// skipped. Only a literal loopback address or `localhost` counts: a name that merely resolves
/// there today could resolve elsewhere tomorrow. The CRC32 trailer is sent in every case.
pub fn signs_part_bodies(endpoint: Option<&url::Url>) -> bool {
    let Some(endpoint) = endpoint else {
        return true;
    };
    let loopback = match endpoint.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    !(endpoint.scheme() == "http" && loopback)
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("location", &self.location)
            .field("sse", &self.sse)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Builds the client. No network traffic: use `health` or `probe` to check the bucket.
    pub fn new(cfg: S3Config) -> Result<Self> {
        let (client, location) = config::client(&cfg)?;
        let sign_parts = signs_part_bodies(cfg.endpoint.as_ref());
        Ok(Self {
            sign_parts,
            client,
            bucket: cfg.bucket,
            sse: cfg.sse,
            timeouts: cfg.timeouts,
            location,
            recent: RecentParts::default(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The endpoint (or "AWS") and region, for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Maps a failed write. S3-compatible servers without a KMS answer HTTP 500 to every
    /// SSE-KMS write (SeaweedFS accepts `CreateMultipartUpload` and fails `UploadPart`);
    /// retrying cannot help, so with SSE-KMS a 5xx on a write is a configuration error.
    fn write_error(&self, op: &str, failure: &Failure) -> StorageError {
        if matches!(self.sse, Encryption::SseKms { .. }) && failure.is_server_error() {
            return StorageError::Config(format!(
                "{op} with SSE-KMS failed with HTTP {}: the server has no usable KMS or does \
                 not know the key; choose SSE-S3 or configure KMS on the server",
                failure.status.unwrap_or(500)
            ));
        }
        failure.clone().into_storage_error(op)
    }

    /// Whether `info` shows the encryption this store requires.
    fn check_sse(&self, info: &ObjectInfo) -> std::result::Result<(), String> {
        let Some(wanted) = sse::header(&self.sse) else {
            return Ok(());
        };
        match info.sse.as_deref() {
            Some(actual) if actual == wanted => Ok(()),
            actual => Err(format!(
                "the server stored the object with server-side encryption {}, not {wanted} \
                 as configured",
                actual.unwrap_or("none")
            )),
        }
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let failure = Failure::from_sdk(&e);
                if failure.is_not_found() && !failure.unreachable {
                    return Ok(None);
                }
                return Err(failure.into_storage_error("HeadObject"));
            }
        };
        Ok(Some(ObjectInfo {
            size: non_negative(out.content_length(), "HeadObject")?,
            etag: out.e_tag().map(normalize_etag).unwrap_or_default(),
            sse: out.server_side_encryption().map(|s| s.as_str().to_string()),
            checksum_sha256: out.checksum_sha256().map(str::to_string),
        }))
    }

    pub async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<(ObjectInfo, ObjectStream)> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str());
        request = match range {
            Some(range) => request.range(range.to_http()),
            None => request.checksum_mode(ChecksumMode::Enabled),
        };
        let out = request.send().await.map_err(|e| {
            let failure = Failure::from_sdk(&e);
            if failure.is_not_found() && !failure.unreachable {
                StorageError::NotFound
            } else {
                failure.into_storage_error("GetObject")
            }
        })?;
        let length = non_negative(out.content_length(), "GetObject")?;
        let size = match out.content_range() {
            Some(content_range) => total_from_content_range(content_range).ok_or_else(|| {
                StorageError::Io(format!(
                    "GetObject: unusable Content-Range {content_range:?}"
                ))
            })?,
            None => length,
        };
        let info = ObjectInfo {
            size,
            etag: out.e_tag().map(normalize_etag).unwrap_or_default(),
            sse: out.server_side_encryption().map(|s| s.as_str().to_string()),
            checksum_sha256: out.checksum_sha256().map(str::to_string),
        };
        let body = stream::unfold(Some(out.body), |state| async move {
            let mut body = state?;
            match body.next().await {
                None => None,
                Some(Ok(chunk)) => Some((Ok(chunk), Some(body))),
                Some(Err(e)) => Some((Err(download_error(&e)), None)),
            }
        });
        Ok((info, Box::pin(body)))
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = Failure::from_sdk(&e);
                if failure.code.as_deref() == Some("NoSuchKey") {
                    Ok(())
                } else {
                    Err(failure.into_storage_error("DeleteObject"))
                }
            }
        }
    }

    /// `HeadBucket`: the server answers and these credentials may use the bucket.
    pub async fn health(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| {
                let failure = Failure::from_sdk(&e);
                if failure.status == Some(404) {
                    StorageError::Config(format!(
                        "bucket {:?} does not exist at {}",
                        self.bucket, self.location
                    ))
                } else {
                    failure.into_storage_error("HeadBucket")
                }
            })
    }

    /// Unfinished multipart uploads, all or those whose key starts with `prefix`.
    pub async fn list_multipart_uploads(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<(ObjectKey, MultipartId)>> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_prefix(prefix.map(str::to_string))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| storage_error("ListMultipartUploads", &e))?;
            for upload in out.uploads() {
                let (Some(raw_key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                // Checked here too: some S3-compatible servers ignore the prefix.
                if prefix.is_some_and(|p| !raw_key.starts_with(p)) {
                    continue;
                }
                match ObjectKey::parse(raw_key) {
                    Some(key) => uploads.push((key, MultipartId::new(id))),
                    // Not one of ours (another application shares the bucket).
                    None => tracing::debug!("skipping a multipart upload with a foreign key"),
                }
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        uploads.sort();
        uploads.dedup();
        Ok(uploads)
    }
}

/// ETags are compared as bare strings; S3 sends them quoted.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

fn non_negative(value: Option<i64>, op: &str) -> Result<u64> {
    value
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| StorageError::Io(format!("{op} returned no usable Content-Length")))
}

/// The total size from `Content-Range: bytes a-b/total`.
fn total_from_content_range(value: &str) -> Option<u64> {
    value.rsplit_once('/')?.1.trim().parse().ok()
}

fn download_error(e: &aws_sdk_s3::primitives::ByteStreamError) -> StorageError {
    let text = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
    if text.to_ascii_lowercase().contains("checksum mismatch") {
        StorageError::Integrity(format!("GetObject: {text}"))
    } else {
        StorageError::Unavailable(format!("GetObject: the download broke off: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_credentials() {
        let cfg = config::tests::config();
        let text = format!("{cfg:?}");
        assert!(!text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
        let store = S3Store::new(cfg).unwrap();
        let text = format!("{store:?}");
        assert!(!text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn small_helpers() {
        assert_eq!(normalize_etag("\"abc-3\""), "abc-3");
        assert_eq!(total_from_content_range("bytes 0-9/100"), Some(100));
        assert_eq!(total_from_content_range("bytes */100"), Some(100));
        assert_eq!(total_from_content_range("bytes 0-9/*"), None);
    }

    #[test]
    fn part_bodies_go_unsigned_only_over_plain_http_to_a_literal_loopback_address() {
        let signs = |url: &str| signs_part_bodies(Some(&url::Url::parse(url).unwrap()));
        for unsigned in [
            "http://127.0.0.1:8333",
            "http://127.8.9.10",
            "http://[::1]:9000",
            "http://localhost:9000",
            "http://LOCALHOST",
        ] {
            assert!(!signs(unsigned), "{unsigned}");
        }
        for signed in [
            "http://10.0.0.5:9000",
            "http://minio.internal:9000",
            "http://localhost.example.org",
            "http://127.0.0.1.example.org",
            "http://[::ffff:127.0.0.1]",
        ] {
            assert!(signs(signed), "{signed}");
        }
        // Over HTTPS the SDK does not sign the body either way (TLS protects it); the flag
        // only says whether medport asks for signing over plain HTTP.
        assert!(signs("https://s3.eu-west-1.amazonaws.com"));
        assert!(signs_part_bodies(None));
    }
}
