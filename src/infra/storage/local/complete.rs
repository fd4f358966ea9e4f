//! Completing a multipart upload: checking the caller's part list, pinning the parts it
//! names with hard links, and publishing the object's index.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::files::{
    self, BlobName, Layout, TempPath, create_private_dir, io_error, remove_any, remove_atomically,
    sync_dir, write_atomically,
};
use super::format::{PART_HEADER_LEN, PartContent, PartHeader, UploadKeys};
use super::meta::{Index, IndexBody, IndexPart, Manifest};
use crate::infra::storage::blob::{
    LOCAL_SSE, MultipartId, ObjectInfo, ObjectKey, PartInfo, PartNumber, Result, StorageError,
};

pub fn part_info(header: &PartHeader) -> PartInfo {
    PartInfo {
        number: header.number,
        size: header.size,
        etag: hex::encode(header.etag),
    }
}

/// Reads and authenticates a part file's header; `NotFound` when the file is gone.
pub fn read_header(
    path: &Path,
    keys: &UploadKeys,
    key: &ObjectKey,
    number: PartNumber,
) -> Result<PartHeader> {
    let file = match fs::File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StorageError::NotFound),
        other => other.map_err(|e| io_error("opening a part", &e))?,
    };
    let mut raw = [0u8; PART_HEADER_LEN];
    let len = file
        .read_exact_at(&mut raw, 0)
        .and_then(|()| file.metadata())
        .map_err(|e| StorageError::Integrity(format!("part {number} is unreadable: {e}")))?
        .len();
    let header = PartHeader::decode(&raw, keys, key)?;
    if header.number != number || len != PartHeader::file_len(header.size) {
        return Err(StorageError::Integrity(format!(
            "part {number} is truncated or misplaced"
        )));
    }
    Ok(header)
}

pub fn same_parts(index: &Index, parts: &[PartInfo]) -> bool {
    index.body.parts.len() == parts.len()
        && index.body.parts.iter().zip(parts).all(|(stored, asked)| {
            stored.number == asked.number.get()
                && stored.size == asked.size
                && stored.etag == asked.etag
        })
}

/// The blocking half of `complete`.
pub struct Completion<'a> {
    pub layout: &'a Layout,
    pub key: &'a ObjectKey,
    pub id: &'a MultipartId,
    pub keys: &'a UploadKeys,
}

impl Completion<'_> {
    pub fn run(&self, dir: &Path, manifest: &Manifest, parts: &[PartInfo]) -> Result<ObjectInfo> {
        let stage = TempPath::new(self.layout.tmp_path("complete"));
        create_private_dir(stage.path())?;
        let mut index_parts = Vec::with_capacity(parts.len());
        let (mut size, mut etags) = (0u64, Vec::new());
        // S3's composite checksum, while every part file still records its SHA-256 (only
        // files from before the content field named the tags do).
        let mut digests = Some(Vec::new());
        for part in parts {
            let header = self.link_part(dir, stage.path(), part)?;
            size = size
                .checked_add(header.size)
                .ok_or_else(|| StorageError::InvalidPart("object too large".into()))?;
            etags.extend_from_slice(&header.etag);
            let sha256 = match header.content {
                PartContent::Sha256(sha256) => Some(sha256),
                PartContent::Tags(_) => None,
            };
            digests = digests.zip(sha256).map(|(mut all, one)| {
                all.extend_from_slice(&one);
                all
            });
            index_parts.push(IndexPart {
                number: header.number.get(),
                size: header.size,
                etag: hex::encode(header.etag),
                sha256: sha256.map(hex::encode),
            });
        }
        sync_dir(stage.path())?;

        let blob = BlobName::new(self.key);
        let blob_dir = self.layout.blob_dir(&blob);
        create_private_dir(files::parent(&blob_dir)?)?;
        fs::rename(stage.path(), &blob_dir).map_err(|e| io_error("storing an object", &e))?;
        stage.disarm();
        sync_dir(files::parent(&blob_dir)?)?;

        let count = parts.len();
        let body = IndexBody {
            key: self.key.as_str().to_string(),
            upload_id: self.id.as_str().to_string(),
            blob: blob.as_str().to_string(),
            size,
            etag: format!(
                "{}-{count}",
                hex::encode(&self.keys.mac(&[b"medport-object-etag-v1", &etags])[..16])
            ),
            checksum_sha256: digests.map(|digests| {
                format!(
                    "{}-{count}",
                    data_encoding::BASE64.encode(&Sha256::digest(&digests))
                )
            }),
            parts: index_parts,
        };
        let index_path = self.layout.index_path(self.key);
        let replaced = fs::read(&index_path)
            .ok()
            .and_then(|b| Index::blob_unverified(&b));
        let written = Index::encode(&body, &manifest.sealed_key, self.keys).and_then(|bytes| {
            create_private_dir(files::parent(&index_path)?)?;
            write_atomically(self.layout, &index_path, &bytes)
        });
        if let Err(e) = written {
            // Keep the data if the index made it into place after all (failed dir sync).
            let visible = fs::read(&index_path)
                .ok()
                .and_then(|b| Index::blob_unverified(&b));
            if visible.as_ref() != Some(&blob) {
                remove_any(&blob_dir);
            }
            return Err(e);
        }
        if let Some(old) = replaced.filter(|old| *old != blob) {
            remove_any(&self.layout.blob_dir(&old));
        }
        // The object is complete; a leftover upload directory is only untidy.
        if let Err(e) = remove_atomically(self.layout, dir) {
            tracing::warn!(upload = %self.id, error = %e, "completed upload not removed");
        }
        Ok(ObjectInfo {
            size,
            etag: body.etag,
            sse: Some(LOCAL_SSE.to_string()),
            checksum_sha256: body.checksum_sha256,
        })
    }

    /// Hard-links one part into the staging directory, then checks the linked file: a
    /// concurrent re-upload may replace the original name, but not what we linked.
    fn link_part(&self, dir: &Path, stage: &Path, part: &PartInfo) -> Result<PartHeader> {
        let staged = Layout::part_file(stage, part.number);
        match fs::hard_link(Layout::part_file(dir, part.number), &staged) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if dir.exists() {
                    StorageError::InvalidPart(format!("part {} was not uploaded", part.number))
                } else {
                    StorageError::NoSuchUpload
                });
            }
            Err(e) => return Err(io_error("linking a part", &e)),
            Ok(()) => {}
        }
        let header = read_header(&staged, self.keys, self.key, part.number)?;
        if header.size != part.size || hex::encode(header.etag) != part.etag {
            return Err(StorageError::InvalidPart(format!(
                "part {} does not match the stored part (size or ETag)",
                part.number
            )));
        }
        Ok(header)
    }
}
