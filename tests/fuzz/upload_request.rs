//! `UploadRequest::parse`: the raw values of a new upload (tus metadata or form fields),
//! typed at the edge. Every refusal is a 4xx with a reason; nothing is a 500.

use actix_web::ResponseError as _;
use medport::app::buckets::{ALLOWED_EXTENSIONS, UNNAMED_DICOM, type_of};
use medport::app::uploads::filename::SafeFilename;
use medport::app::uploads::pipeline::{RawRequest, UploadRequest};
use medport::app::uploads::sniff::FileKind;
use medport::domain::RelativePath;
use medport::domain::ids::{BatchId, BucketId};
use proptest::prelude::*;
use serde::Deserialize;

use crate::support::{config, ensure, mutated_text, replay};

/// One request, as the corpus stores it (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Raw {
    filename: Option<String>,
    filetype: Option<String>,
    bucket: Option<String>,
    checksum: Option<String>,
    relative_path: Option<String>,
    batch: Option<String>,
    size: u64,
    max_size: u64,
}

impl Raw {
    fn as_request(&self) -> RawRequest<'_> {
        RawRequest {
            filename: self.filename.as_deref(),
            filetype: self.filetype.as_deref(),
            bucket: self.bucket.as_deref(),
            checksum: self.checksum.as_deref(),
            relative_path: self.relative_path.as_deref(),
            batch: self.batch.as_deref(),
            size: self.size,
        }
    }
}

/// The status the documented rules give, checked in their order: name (400), type (415),
/// size (413), bucket (404), checksum (400).
fn expected_status(raw: &Raw) -> u16 {
    let Some(name) = raw.filename.as_deref().filter(|n| !n.trim().is_empty()) else {
        return 400;
    };
    let Ok(safe) = SafeFilename::parse(name) else {
        return 400;
    };
    if type_of(safe.as_str()).is_none() {
        return 415;
    }
    if raw.size > raw.max_size {
        return 413;
    }
    if let Some(b) = raw
        .bucket
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        && BucketId::parse(b).is_none()
    {
        return 404;
    }
    if let Some(c) = &raw.checksum {
        let c = c.trim();
        let hex = c
            .strip_prefix("sha256:")
            .or_else(|| c.strip_prefix("sha256 "))
            .unwrap_or(c)
            .trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return 400;
        }
    }
    if let Some(p) = raw.relative_path.as_deref().filter(|p| !p.is_empty())
        && RelativePath::parse(p).is_err()
    {
        return 400;
    }
    if let Some(b) = raw
        .batch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        && BatchId::parse(b).is_none()
    {
        return 404;
    }
    200
}

fn check_request(raw: &Raw) -> Result<(), TestCaseError> {
    let parsed = UploadRequest::parse(&raw.as_request(), raw.max_size);
    let status = parsed
        .as_ref()
        .err()
        .map_or(200, |e| e.status_code().as_u16());
    ensure(status < 500, || format!("{raw:?}: server error {parsed:?}"))?;
    let expected = expected_status(raw);
    ensure(status == expected, || {
        format!("{raw:?}: expected {expected}, got {status} ({parsed:?})")
    })?;
    let Ok(req) = parsed else {
        return Ok(());
    };
    let fail = |what: &str| format!("{raw:?} -> {req:?}: {what}");
    let name = raw.filename.as_deref().unwrap_or_default();
    ensure(
        SafeFilename::parse(name).ok().as_ref() == Some(&req.filename),
        || fail("name differs from SafeFilename::parse"),
    )?;
    ensure(
        (ALLOWED_EXTENSIONS.contains(&req.extension) || req.extension == UNNAMED_DICOM)
            && type_of(req.filename.as_str()) == Some(req.extension),
        || fail("extension"),
    )?;
    ensure(
        FileKind::from_extension(req.extension) == Some(req.kind),
        || fail("kind"),
    )?;
    ensure(req.size == raw.size && req.size <= raw.max_size, || {
        fail("size")
    })?;
    let bucket = raw
        .bucket
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    ensure(
        req.bucket.as_ref().map(BucketId::as_str)
            == bucket
                .and_then(BucketId::parse)
                .as_ref()
                .map(BucketId::as_str),
        || fail("bucket"),
    )?;
    if let Some(t) = &req.content_type {
        ensure(
            !t.is_empty()
                && t.len() <= 127
                && t.trim() == t
                && t.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
            || fail("content type"),
        )?;
    }
    if let Some(c) = &req.checksum {
        ensure(
            c.len() == 64
                && c.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            || fail("checksum"),
        )?;
    }
    let path = raw.relative_path.as_deref().filter(|p| !p.is_empty());
    ensure(
        req.relative_path == path.and_then(|p| RelativePath::parse(p).ok()),
        || fail("relative path differs from RelativePath::parse"),
    )?;
    if let Some(p) = &req.relative_path {
        // Normalised: a label of plain components, no longer than the rule allows.
        let p = p.as_str();
        ensure(
            p.len() <= RelativePath::MAX_BYTES
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.split('/').all(|c| !matches!(c, "" | "." | "..")),
            || fail("relative path not normalised"),
        )?;
    }
    let batch = raw
        .batch
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .and_then(BatchId::parse);
    ensure(req.batch == batch, || fail("batch"))?;
    Ok(())
}

fn filename() -> impl Strategy<Value = Option<String>> {
    let ext = proptest::sample::select(
        ALLOWED_EXTENSIONS
            .iter()
            .copied()
            .chain(["exe", "PDF", "Nii.Gz", "tar.gz", "pdf.exe", "dcm ", ""])
            .collect::<Vec<_>>(),
    );
    let name = ("(\\.\\./|C:\\\\)?[a-zA-Z0-9 _.-]{0,20}", ext)
        .prop_map(|(stem, ext)| format!("{stem}.{ext}"));
    prop::option::of(prop_oneof![
        4 => mutated_text(name),
        1 => any::<String>(),
    ])
}

fn bucket() -> impl Strategy<Value = Option<String>> {
    let id = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}";
    prop::option::of(prop_oneof![
        3 => mutated_text(id.prop_map(|s| s.to_string())),
        1 => "[ \t]{0,2}",
        1 => any::<String>(),
    ])
}

fn checksum() -> impl Strategy<Value = Option<String>> {
    let hex = ("(sha256:|sha256 |SHA256:| )?", "[0-9a-fA-F]{64}")
        .prop_map(|(prefix, hex)| format!("{prefix}{hex}"));
    prop::option::of(prop_oneof![3 => mutated_text(hex), 1 => any::<String>()])
}

fn filetype() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        3 => mutated_text("(application|image|text)/[a-z0-9.+-]{1,20}".prop_map(|s| s.to_string())),
        1 => "[ -~]{120,135}",
        1 => any::<String>(),
    ])
}

fn size() -> impl Strategy<Value = (u64, u64)> {
    let n = prop_oneof![0u64..2048, any::<u64>(), Just(u64::MAX), Just(0)];
    (n.clone(), n)
}

fn relative_path() -> impl Strategy<Value = Option<String>> {
    let folder = "[A-Za-z0-9 ._-]{1,12}(/[A-Za-z0-9 ._-]{1,12}){0,4}".prop_map(|s| s.to_string());
    // Near the length limit in characters that NFC decomposes (3 bytes become 6), in
    // components short enough to pass.
    let near_limit = (30usize..33).prop_map(|n| vec!["\u{958}".repeat(42); n].join("/"));
    prop::option::of(prop_oneof![
        3 => mutated_text(folder),
        1 => "(\\.\\./|/|[A-Z]:\\\\)[a-z/]{0,20}",
        1 => near_limit,
        1 => any::<String>(),
    ])
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        (filename(), filetype(), bucket(), checksum(), size()),
        (relative_path(), bucket()),
    )
        .prop_map(
            |((filename, filetype, bucket, checksum, (size, max_size)), (relative_path, batch))| {
                Raw {
                    filename,
                    filetype,
                    bucket,
                    checksum,
                    relative_path,
                    batch,
                    size,
                    max_size,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn upload_request_structured(raw in raw()) {
        check_request(&raw)?;
    }
}

#[test]
fn upload_request_corpus() {
    replay("upload_request", |name, bytes| {
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| TestCaseError::fail(format!("{name} is not a request: {e}")))?;
        check_request(&raw)
    });
}
