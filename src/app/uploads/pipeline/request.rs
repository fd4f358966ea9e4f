//! What a client asks for when it starts an upload, validated at the edge into typed values:
//! a safe file name with an allowlisted extension, a size within the global limit, a bucket
//! id, an optional declared type and an optional whole-file SHA-256.

use crate::app::buckets::{ALLOWED_EXTENSIONS, size, type_of};
use crate::app::error::AppError;
use crate::app::uploads::filename::SafeFilename;
use crate::app::uploads::sniff::FileKind;
use crate::domain::RelativePath;
use crate::domain::ids::{BatchId, BucketId};

/// Longest `filetype` kept (it is only ever shown, never trusted).
const MAX_CONTENT_TYPE: usize = 127;

#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub filename: SafeFilename,
    /// The allowlisted extension (`dcm`, `nii.gz`, `gz`...).
    pub extension: &'static str,
    pub kind: FileKind,
    pub size: u64,
    /// `None`: the system default bucket.
    pub bucket: Option<BucketId>,
    pub content_type: Option<String>,
    /// Lowercase hex SHA-256 the client says the whole file has.
    pub checksum: Option<String>,
    /// Where the file sat in a dropped folder (tus metadata `relativePath`, as Uppy sends).
    pub relative_path: Option<RelativePath>,
    /// The batch (one folder or CD) the file belongs to.
    pub batch: Option<BatchId>,
}

/// The raw values, as they arrived (tus metadata or form fields).
#[derive(Debug, Default)]
pub struct RawRequest<'a> {
    pub filename: Option<&'a str>,
    pub filetype: Option<&'a str>,
    pub bucket: Option<&'a str>,
    pub checksum: Option<&'a str>,
    pub relative_path: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub size: u64,
}

impl UploadRequest {
    pub fn parse(raw: &RawRequest<'_>, max_size: u64) -> Result<Self, AppError> {
        let name = raw
            .filename
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| AppError::BadRequest("A file name is required.".into()))?;
        let filename = SafeFilename::parse(name)
            .map_err(|e| AppError::BadRequest(format!("The file name {}.", e.message)))?;
        let extension = type_of(filename.as_str()).ok_or_else(|| {
            AppError::refused(
                415,
                format!(
                    "Files of this type are not accepted. Allowed types: {}, and DICOM files \
                     named without an extension.",
                    allowed_list()
                ),
            )
        })?;
        let kind = FileKind::from_extension(extension)
            .ok_or_else(|| AppError::internal(format!("no file kind for .{extension}")))?;
        if raw.size > max_size {
            return Err(AppError::refused(
                413,
                format!(
                    "The file is {}; the largest file accepted is {}.",
                    size::human(raw.size),
                    size::human(max_size)
                ),
            ));
        }
        let bucket = match raw.bucket.map(str::trim).filter(|b| !b.is_empty()) {
            None => None,
            // An id that cannot exist is answered like one the user may not see.
            Some(b) => Some(BucketId::parse(b).ok_or(AppError::NotFound)?),
        };
        let content_type = raw
            .filetype
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && t.len() <= MAX_CONTENT_TYPE
                    && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .map(str::to_string);
        let checksum = raw.checksum.map(parse_file_checksum).transpose()?;
        let relative_path = raw
            .relative_path
            .filter(|p| !p.is_empty())
            .map(|p| {
                RelativePath::parse(p)
                    .map_err(|e| AppError::BadRequest(format!("The {} {}.", e.field, e.message)))
            })
            .transpose()?;
        let batch = match raw.batch.map(str::trim).filter(|b| !b.is_empty()) {
            None => None,
            // Like a bucket: an id that cannot exist is one the user may not see.
            Some(b) => Some(BatchId::parse(b).ok_or(AppError::NotFound)?),
        };
        Ok(Self {
            filename,
            extension,
            kind,
            size: raw.size,
            bucket,
            content_type,
            checksum,
            relative_path,
            batch,
        })
    }
}

fn allowed_list() -> String {
    ALLOWED_EXTENSIONS
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `checksum` metadata: `sha256 <hex>`, `sha256:<hex>` or bare hex, 64 digits.
fn parse_file_checksum(raw: &str) -> Result<String, AppError> {
    let raw = raw.trim();
    let hex = raw
        .strip_prefix("sha256:")
        .or_else(|| raw.strip_prefix("sha256 "))
        .unwrap_or(raw)
        .trim();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(AppError::BadRequest(
            "The checksum must be a SHA-256 in hexadecimal (64 digits), optionally prefixed by `sha256:`.".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, size: u64) -> RawRequest<'_> {
        RawRequest {
            filename: Some(name),
            size,
            ..RawRequest::default()
        }
    }

    /// The kind of refusal, as the status `web::error` gives it.
    fn status(r: Result<UploadRequest, AppError>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(AppError::BadRequest(_)) => 400,
            Err(AppError::NotFound) => 404,
            Err(AppError::PayloadTooLarge) => 413,
            Err(AppError::UnsupportedMediaType) => 415,
            Err(AppError::Refused(status, _)) => status,
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }

    #[test]
    fn names_types_and_sizes_are_checked_at_the_edge() {
        let ok = UploadRequest::parse(&raw("a/../scan.DCM", 10), 100).unwrap();
        assert_eq!(ok.filename.as_str(), "scan.DCM");
        assert_eq!(ok.extension, "dcm");
        assert_eq!(ok.kind, FileKind::Dicom);
        assert_eq!(
            UploadRequest::parse(&raw("x.tar.gz", 1), 9)
                .unwrap()
                .extension,
            "gz"
        );
        assert_eq!(status(UploadRequest::parse(&raw("evil.exe", 1), 9)), 415);
        assert_eq!(
            status(UploadRequest::parse(&raw("evil.pdf.exe", 1), 9)),
            415
        );
        assert_eq!(
            status(UploadRequest::parse(&raw("a/../evil.exe", 1), 9)),
            415
        );
        assert_eq!(status(UploadRequest::parse(&raw("", 1), 9)), 400);
        assert_eq!(status(UploadRequest::parse(&raw("big.pdf", 10), 9)), 413);
        // An RTL override cannot disguise the extension: it is removed, so `exe` is judged.
        assert_eq!(
            status(UploadRequest::parse(&raw("report\u{202E}fdp.exe", 1), 9)),
            415
        );
        let nul = UploadRequest::parse(&raw("sc\0an.pdf", 1), 9).unwrap();
        assert_eq!(nul.filename.as_str(), "scan.pdf");
    }

    #[test]
    fn buckets_and_checksums_are_typed() {
        let mut r = raw("a.pdf", 1);
        r.bucket = Some("not-an-id");
        assert_eq!(status(UploadRequest::parse(&r, 9)), 404);
        let mut r = raw("a.pdf", 1);
        let hex = "AB".repeat(32);
        let with_prefix = format!("sha256:{hex}");
        r.checksum = Some(&with_prefix);
        assert_eq!(
            UploadRequest::parse(&r, 9).unwrap().checksum,
            Some("ab".repeat(32))
        );
        r.checksum = Some("md5:abc");
        assert_eq!(status(UploadRequest::parse(&r, 9)), 400);
    }
}
