//! One pass over the stored object: its bytes go to clamd (INSTREAM) and through SHA-256 at
//! the same time, so the verdict is about exactly the bytes a download would serve, and
//! those bytes are checked against the checksum recorded when the upload completed.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::reason::Reason;
use crate::app::uploads::model::Upload;
use crate::infra::clamd::{ClamdClient, ClamdTimeouts, ScanError, ScanVerdict};
use crate::infra::storage::blob::{BlobStore, StorageError};

/// Longest signature name kept (clamd's are far shorter).
const MAX_SIGNATURE_LEN: usize = 200;
/// The slowest scanning rate allowed for before the wait for clamd's verdict gives up.
const MIN_SCAN_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;
/// Upper bound of that wait, whatever the size.
const MAX_VERDICT_WAIT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Scanned clean, and the bytes are the uploaded ones.
    Clean,
    /// A signature, whatever the checksum says.
    Infected {
        signature: String,
    },
    NotScanned(Reason),
}

/// Scans `upload`'s object with the clamd at `clamd`. Never fails: every problem is a
/// reason not to release the file.
pub async fn scan(store: &BlobStore, upload: &Upload, clamd: String, max_size: u64) -> Finding {
    if upload.declared_size > max_size {
        return Finding::NotScanned(Reason::OverScanLimit(max_size));
    }
    let Some(expected) = upload.sha256.as_deref() else {
        return Finding::NotScanned(Reason::ChecksumMissing);
    };
    let (info, stream) = match store.get(&upload.object_key, None).await {
        Ok(found) => found,
        Err(e) => return Finding::NotScanned(storage_reason(upload, &e)),
    };
    if info.size != upload.declared_size {
        tracing::warn!(upload = %upload.id, stored = info.size, declared = upload.declared_size, "stored object has the wrong size");
        return Finding::NotScanned(Reason::Integrity);
    }
    let client = ClamdClient::new(clamd, timeouts_for(upload.declared_size));
    let mut tally = Tally::new(upload.declared_size);
    let verdict = client
        .scan_stream(stream.map(|item| tally.feed(item)))
        .await;
    let finding = match verdict {
        Ok(ScanVerdict::Infected { signature }) => Finding::Infected {
            signature: clean_signature(&signature),
        },
        Ok(ScanVerdict::Clean) if tally.matches(upload.declared_size, expected) => Finding::Clean,
        Ok(ScanVerdict::Clean) => {
            tracing::error!(upload = %upload.id, "stored bytes differ from the recorded SHA-256");
            Finding::NotScanned(Reason::Integrity)
        }
        Err(e) => Finding::NotScanned(tally.reason_for(upload, &e)),
    };
    match &finding {
        Finding::NotScanned(why) => {
            tracing::warn!(upload = %upload.id, reason = why.code(), "upload not scanned");
        }
        Finding::Infected { signature } => {
            tracing::warn!(upload = %upload.id, %signature, "malware found in an upload");
        }
        Finding::Clean => tracing::info!(upload = %upload.id, "upload scanned clean"),
    }
    finding
}

/// clamd gets patient limits for large files: it may scan for a while after the last chunk.
fn timeouts_for(size: u64) -> ClamdTimeouts {
    let base = ClamdTimeouts::default();
    let scanning = Duration::from_secs(size / MIN_SCAN_BYTES_PER_SEC);
    ClamdTimeouts {
        read: (base.read + scanning).min(MAX_VERDICT_WAIT),
        ..base
    }
}

/// What went past on the way to clamd.
struct Tally {
    hasher: Sha256,
    bytes: u64,
    limit: u64,
    longer_than_declared: bool,
    storage_error: Option<StorageError>,
}

impl Tally {
    fn new(limit: u64) -> Self {
        Self {
            hasher: Sha256::new(),
            bytes: 0,
            limit,
            longer_than_declared: false,
            storage_error: None,
        }
    }

    /// Hashes and counts a chunk on its way to clamd; a storage failure is kept (clamd's
    /// client only sees text) and ends the stream.
    fn feed(&mut self, item: Result<Bytes, StorageError>) -> Result<Bytes, &'static str> {
        match item {
            Ok(chunk) => {
                self.bytes = self.bytes.saturating_add(chunk.len() as u64);
                if self.bytes > self.limit {
                    self.longer_than_declared = true;
                    return Err("stored object is longer than its recorded size");
                }
                self.hasher.update(&chunk);
                Ok(chunk)
            }
            Err(e) => {
                self.storage_error = Some(e);
                Err("reading the stored object failed")
            }
        }
    }

    fn matches(&self, size: u64, expected_hex: &str) -> bool {
        let digest = hex::encode(self.hasher.clone().finalize());
        self.bytes == size && digest.eq_ignore_ascii_case(expected_hex)
    }

    fn reason_for(&self, upload: &Upload, e: &ScanError) -> Reason {
        if self.longer_than_declared {
            return Reason::Integrity;
        }
        if let Some(storage) = &self.storage_error {
            return storage_reason(upload, storage);
        }
        tracing::warn!(upload = %upload.id, error = %e, "upload not scanned");
        scanner_reason(e)
    }
}

/// The reason for a scanner failure that was not caused by storage.
fn scanner_reason(e: &ScanError) -> Reason {
    match e {
        ScanError::Unavailable(cause)
            if cause.contains("timed out") || cause.contains("in time") =>
        {
            Reason::ScannerTimeout
        }
        ScanError::Unavailable(_) => Reason::ScannerUnavailable,
        ScanError::TooLarge => Reason::OverScannerLimit,
        ScanError::Protocol(_) => Reason::ScannerProtocol,
        ScanError::Source(_) => Reason::StorageUnreadable,
    }
}

fn storage_reason(upload: &Upload, e: &StorageError) -> Reason {
    tracing::warn!(upload = %upload.id, error = %e, "cannot read the stored object to scan it");
    match e {
        StorageError::NotFound => Reason::StorageMissing,
        StorageError::Integrity(_) => Reason::Integrity,
        _ => Reason::StorageUnreadable,
    }
}

/// Signature names are shown on pages and written to the audit trail: printable, bounded.
fn clean_signature(raw: &str) -> String {
    let name: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SIGNATURE_LEN)
        .collect();
    if name.trim().is_empty() {
        "unnamed signature".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_wait_grows_with_the_size_up_to_a_bound() {
        let small = timeouts_for(1024);
        assert_eq!(small, ClamdTimeouts::default());
        let big = timeouts_for(4 * 1024 * 1024 * 1024);
        assert_eq!(
            big.read,
            ClamdTimeouts::default().read + Duration::from_secs(1024)
        );
        assert_eq!(timeouts_for(u64::MAX).read, MAX_VERDICT_WAIT);
    }

    #[test]
    fn the_tally_hashes_what_passes_and_stops_past_the_recorded_size() {
        let mut tally = Tally::new(6);
        assert!(tally.feed(Ok(Bytes::from_static(b"abc"))).is_ok());
        assert!(tally.feed(Ok(Bytes::from_static(b"def"))).is_ok());
        let abcdef = "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721";
        assert!(tally.matches(6, abcdef));
        assert!(!tally.matches(6, &"0".repeat(64)));
        assert!(tally.feed(Ok(Bytes::from_static(b"g"))).is_err());
        assert!(tally.longer_than_declared);
    }

    #[test]
    fn scanner_failures_map_to_their_reasons() {
        let cases = [
            (
                ScanError::Unavailable("connect to x: refused".into()),
                Reason::ScannerUnavailable,
            ),
            (
                ScanError::Unavailable("connect to x timed out".into()),
                Reason::ScannerTimeout,
            ),
            (
                ScanError::Unavailable("write to clamd timed out".into()),
                Reason::ScannerTimeout,
            ),
            (
                ScanError::Unavailable("clamd did not answer in time".into()),
                Reason::ScannerTimeout,
            ),
            (ScanError::TooLarge, Reason::OverScannerLimit),
            (
                ScanError::Protocol("x ERROR".into()),
                Reason::ScannerProtocol,
            ),
            (ScanError::Source("gone".into()), Reason::StorageUnreadable),
        ];
        for (error, reason) in cases {
            assert_eq!(scanner_reason(&error), reason, "{error:?}");
        }
    }

    #[test]
    fn signature_names_are_printable_and_bounded() {
        assert_eq!(clean_signature("Eicar-Test\u{7}"), "Eicar-Test");
        assert_eq!(clean_signature(&"x".repeat(500)).len(), MAX_SIGNATURE_LEN);
        assert_eq!(clean_signature("\n"), "unnamed signature");
    }
}
