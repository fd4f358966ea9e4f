//! Why an upload could not be scanned: a short text for the uploader and the admin pages
//! (stored as `status_reason`, "Not scanned: ...") and a stable code (stored as
//! `scan_detail` and in the audit event). Causes with internal detail go to the log only.

use crate::app::buckets::size;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// clamd refused the connection, reset it, or stopped answering.
    ScannerUnavailable,
    /// clamd did not answer within the time allowed.
    ScannerTimeout,
    /// Larger than `scan_max_size`: not sent to clamd at all.
    OverScanLimit(u64),
    /// clamd's own limit (`StreamMaxLength`): "INSTREAM size limit exceeded".
    OverScannerLimit,
    /// clamd answered something that is neither a verdict nor a known error.
    ScannerProtocol,
    /// The bucket could not be opened or the object could not be read.
    StorageUnreadable,
    /// The object is not in the bucket.
    StorageMissing,
    /// What storage returned is not what was uploaded (size or SHA-256), or the backend's
    /// own integrity check failed.
    Integrity,
    /// The row has no SHA-256 to compare with.
    ChecksumMissing,
}

impl Reason {
    /// A short code for `scan_detail` and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ScannerUnavailable => "scanner_unavailable",
            Self::ScannerTimeout => "scanner_timeout",
            Self::OverScanLimit(_) => "over_scan_limit",
            Self::OverScannerLimit => "over_scanner_limit",
            Self::ScannerProtocol => "scanner_error",
            Self::StorageUnreadable => "storage_unreadable",
            Self::StorageMissing => "storage_missing",
            Self::Integrity => "integrity",
            Self::ChecksumMissing => "checksum_missing",
        }
    }

    /// The part after "Not scanned: ", safe to show to the uploader.
    pub fn text(&self) -> String {
        match self {
            Self::ScannerUnavailable => "the virus scanner is unavailable".into(),
            Self::ScannerTimeout => "the virus scanner did not answer in time".into(),
            Self::OverScanLimit(limit) => format!(
                "the file is larger than the scanning limit of {}",
                size::human(*limit)
            ),
            Self::OverScannerLimit => "the file exceeds the virus scanner's size limit".into(),
            Self::ScannerProtocol => "the virus scanner returned an error".into(),
            Self::StorageUnreadable => "the stored file could not be read".into(),
            Self::StorageMissing => "the stored file is missing".into(),
            Self::Integrity => "stored bytes do not match the uploaded file's checksum".into(),
            Self::ChecksumMissing => "the uploaded file's checksum is missing".into(),
        }
    }

    /// The stored `status_reason`.
    pub fn status_reason(&self) -> String {
        format!("Not scanned: {}", self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_not_scanned_and_have_distinct_codes() {
        let all = [
            Reason::ScannerUnavailable,
            Reason::ScannerTimeout,
            Reason::OverScanLimit(4 * 1024 * 1024 * 1024),
            Reason::OverScannerLimit,
            Reason::ScannerProtocol,
            Reason::StorageUnreadable,
            Reason::StorageMissing,
            Reason::Integrity,
            Reason::ChecksumMissing,
        ];
        let mut codes: Vec<_> = all.iter().map(Reason::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for r in &all {
            assert!(r.status_reason().starts_with("Not scanned: "), "{r:?}");
        }
        assert_eq!(
            Reason::OverScanLimit(4 * 1024 * 1024 * 1024).text(),
            "the file is larger than the scanning limit of 4 GiB"
        );
        assert!(
            Reason::Integrity
                .status_reason()
                .contains("stored bytes do not match the uploaded file's checksum")
        );
    }
}
