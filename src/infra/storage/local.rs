//! The local store: objects as encrypted files under one directory (the embedded default
//! bucket, `<data dir>/objects`). Several instances may share the directory; every piece of
//! upload state is on disk.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! FORMAT                        "medport-local-store 1"
//! multipart/<id>/upload         manifest: format line, sealed data key (hex), JSON {key, id}
//! multipart/<id>/part-00001     part file (below), replaced atomically on re-upload
//! blobs/<hh>/<uuid>/part-00001  a completed object's parts (hard links to the part files)
//! index/<hh>/<sha256(key)>      index: format line, sealed data key (hex), MAC (hex), JSON
//!                               {key, upload id, blob dir, size, ETag, checksum, parts}
//! tmp/                          temp files, staging and trash; stale entries swept at start
//! ```
//!
//! Keys. Each multipart upload (and the object it becomes) gets a random 256-bit data key,
//! sealed with the master key (`secrets::seal`, context table `objects`, row id = object key,
//! field `data_key`). From it, HMAC-SHA256 derives a content key and a MAC key. Each part
//! file has a random 16-byte salt; its AES-256-GCM key is HMAC(content key, salt), so no two
//! files share a key.
//!
//! Part file: a 122-byte header (`MPP2`, part number, chunk size, plaintext size, salt,
//! 8-byte nonce prefix, ETag, content field, HMAC over the header and object key),
//! then the plaintext in 64 KiB chunks, each AES-256-GCM ciphertext followed by its 16-byte
//! tag. Chunk `i` sits at `122 + i * (65536 + 16)`; its nonce is the prefix followed by `i`
//! (32-bit big-endian); its associated data is the object key, part number, `i` and a flag
//! set only on the last chunk. An empty part has one empty final chunk. Truncation, chunk
//! reordering and chunks moved between parts or objects all fail authentication.
//!
//! The index MAC (under the MAC key) fixes the part list, order, sizes and ETags. A part's
//! content field is a MAC over its object key, number, size, salt and chunk tags; the tags
//! authenticate every byte under the file's own key, so the field names exactly that file,
//! and the plaintext is not hashed a second time (the upload pipeline hashes the whole file).
//! ETags are a keyed hash (MAC key) of the content field, opaque outside the store. Files of
//! format `MPP1` (written before) hold the plaintext's SHA-256 there instead; they are still
//! read, and an object made only of them keeps S3's composite `checksum_sha256` over them.
//!
//! The sealed data key sits on its own line in the manifest and index, outside their MACs:
//! `LocalStore::reseal_data_keys` moves it to a new master key by rewriting those small files.
//!
//! Crash safety. Everything becomes visible by one `rename` after its data is fsynced, and
//! the directory is fsynced after: an upload (manifest staged in `tmp/`), a part (temp file),
//! an object (parts hard-linked into a staged blob directory, moved under `blobs/`, then the
//! index renamed into place). Hard links make `complete` immune to a concurrent re-upload or
//! abort: it verifies the files it linked, which nobody else can change. Removal renames
//! into `tmp/` first. A crash leaves at worst unreferenced files in `tmp/` or `blobs/`,
//! never a visible object with wrong content.

mod complete;
mod files;
mod format;
mod meta;
mod read;
mod rotate;
mod write;

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use self::complete::{Completion, part_info, read_header, same_parts};
use self::files::{
    Layout, TempPath, blocking, create_private_dir, create_private_file, io_error,
    parse_part_file_name, remove_atomically, sync_dir, write_atomically,
};
use self::format::UploadKeys;
use self::meta::{Index, Manifest};
use self::read::ObjectReader;
pub use self::write::BATCH as WRITE_BATCH_BYTES;
use crate::infra::crypto::secrets::Keyring;
use crate::infra::storage::blob::{
    ByteRange, MAX_PART_SIZE, MultipartId, ObjectInfo, ObjectKey, ObjectStream, PartInfo,
    PartNumber, Put, Result, StorageError,
};

const FORMAT_MARKER: &str = "medport-local-store 1\n";
/// Temp entries untouched this long are crash leftovers.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct LocalStore {
    layout: Layout,
    keyring: Arc<Keyring>,
}

impl LocalStore {
    /// Opens (creating, mode 0700) the store at `root`. Blocking: call at start-up.
    pub fn new(root: PathBuf, keyring: Arc<Keyring>) -> Result<Self> {
        let layout = Layout::new(root);
        let root = layout.root();
        for dir in std::iter::once(root.to_path_buf())
            .chain(Layout::SUBDIRS.iter().map(|sub| root.join(sub)))
        {
            create_private_dir(&dir)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error("setting directory permissions", &e))?;
        }
        let marker = root.join("FORMAT");
        match fs::read_to_string(&marker) {
            Ok(text) if text == FORMAT_MARKER => {}
            Ok(_) => {
                return Err(StorageError::Config(format!(
                    "{} holds a local store in an unknown format",
                    root.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomically(&layout, &marker, FORMAT_MARKER.as_bytes())?;
            }
            Err(e) => return Err(io_error("reading the format marker", &e)),
        }
        files::sweep_tmp(&layout, STALE_TMP);
        Ok(Self { layout, keyring })
    }

    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    pub async fn create_multipart(&self, key: &ObjectKey) -> Result<MultipartId> {
        let (_, sealed_key) = UploadKeys::generate(&self.keyring, key)?;
        let id = files::new_upload_id();
        let manifest = Manifest {
            key: key.clone(),
            sealed_key,
        }
        .encode(&id)?;
        let layout = self.layout.clone();
        let dest = layout
            .upload_dir(&id)
            .ok_or_else(|| StorageError::Io("generated an invalid upload id".into()))?;
        blocking(move || {
            // Staged whole, then renamed: other instances never see a half-made upload.
            let staging = TempPath::new(layout.tmp_path("upload"));
            create_private_dir(staging.path())?;
            let file = create_private_file(&staging.path().join("upload"))?;
            file.write_all_at(&manifest, 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("writing an upload manifest", &e))?;
            sync_dir(staging.path())?;
            fs::rename(staging.path(), &dest).map_err(|e| io_error("creating an upload", &e))?;
            staging.disarm();
            sync_dir(&layout.uploads_dir())
        })
        .await?;
        Ok(id)
    }

    pub async fn upload_part(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        number: PartNumber,
        body: impl Stream<Item = Result<Bytes, io::Error>> + Unpin + Send,
        expected_len: u64,
    ) -> Result<PartInfo> {
        if expected_len > MAX_PART_SIZE {
            return Err(StorageError::InvalidPart(format!(
                "a part is at most {MAX_PART_SIZE} bytes"
            )));
        }
        let (dir, manifest) = self
            .manifest(key, id)
            .await?
            .ok_or(StorageError::NoSuchUpload)?;
        let keys = Arc::new(manifest.keys(&self.keyring)?);
        let tmp_path = self.layout.tmp_path("part");
        // Armed before the file exists: a dropped future still cleans up.
        let tmp = TempPath::new(tmp_path.clone());
        let file = blocking(move || create_private_file(&tmp_path)).await?;
        let stored = async {
            let written = write::write_part(file, keys, key, number, body, expected_len).await?;
            let src = tmp.path().to_path_buf();
            blocking(move || {
                let dest = Layout::part_file(&dir, number);
                match fs::rename(&src, &dest) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.exists() => {
                        Err(StorageError::NoSuchUpload)
                    }
                    Err(e) => Err(io_error("storing a part", &e)),
                    Ok(()) => sync_dir(&dir),
                }
            })
            .await?;
            Ok(written.header)
        }
        .await;
        match stored {
            Ok(header) => {
                tmp.disarm();
                Ok(part_info(&header))
            }
            Err(e) => {
                tmp.remove().await;
                Err(e)
            }
        }
    }

    pub async fn list_parts(&self, key: &ObjectKey, id: &MultipartId) -> Result<Vec<PartInfo>> {
        let (dir, manifest) = self
            .manifest(key, id)
            .await?
            .ok_or(StorageError::NoSuchUpload)?;
        let keys = manifest.keys(&self.keyring)?;
        let key = key.clone();
        blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(StorageError::NoSuchUpload);
                }
                other => other.map_err(|e| io_error("listing parts", &e))?,
            };
            let mut parts = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error("listing parts", &e))?;
                let Some(number) = entry.file_name().to_str().and_then(parse_part_file_name) else {
                    continue;
                };
                match read_header(&entry.path(), &keys, &key, number) {
                    Ok(header) => parts.push(part_info(&header)),
                    // Removed by a concurrent abort or completion after the listing.
                    Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            parts.sort_by_key(|p| p.number);
            Ok(parts)
        })
        .await
    }

    pub async fn complete(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
        parts: &[PartInfo],
    ) -> Result<ObjectInfo> {
        crate::infra::storage::blob::check_part_list(parts)?;
        let outcome = match self.manifest(key, id).await? {
            None => Err(StorageError::NoSuchUpload),
            Some((dir, manifest)) => {
                let keys = manifest.keys(&self.keyring)?;
                let layout = self.layout.clone();
                let (key, id, parts) = (key.clone(), id.clone(), parts.to_vec());
                blocking(move || {
                    let job = Completion {
                        layout: &layout,
                        key: &key,
                        id: &id,
                        keys: &keys,
                    };
                    job.run(&dir, &manifest, &parts)
                })
                .await
            }
        };
        match outcome {
            // A retried completion (answer lost, a crash after the object became visible,
            // or a concurrent call that won) gets the same answer for the same parts.
            Err(StorageError::NoSuchUpload) => match self.index(key).await? {
                Some(index) if index.body.upload_id == id.as_str() && same_parts(&index, parts) => {
                    Ok(index.info())
                }
                _ => Err(StorageError::NoSuchUpload),
            },
            other => other,
        }
    }

    /// A one-part upload made and completed at once: on local disk the multipart steps cost
    /// no round trips, and the object gets the same format and crash safety as any other.
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> Result<Put> {
        let id = self.create_multipart(key).await?;
        let number = PartNumber::new(1).ok_or_else(|| StorageError::Io("part 1".into()))?;
        let size = bytes.len() as u64;
        let stored = async {
            let body = stream::iter([Ok::<_, io::Error>(bytes)]);
            let part = self.upload_part(key, &id, number, body, size).await?;
            let object = self.complete(key, &id, std::slice::from_ref(&part)).await?;
            Ok(Put { object, part })
        }
        .await;
        if stored.is_err()
            && let Err(e) = self.abort(key, &id).await
        {
            tracing::warn!(error = %e, key = %key, "could not discard a failed one-part upload");
        }
        stored
    }

    pub async fn abort(&self, key: &ObjectKey, id: &MultipartId) -> Result<()> {
        let Some(dir) = self.layout.upload_dir(id) else {
            return Ok(());
        };
        let (layout, key, id) = (self.layout.clone(), key.clone(), id.clone());
        blocking(move || {
            match fs::read(dir.join("upload")) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_error("reading an upload manifest", &e)),
                // Another key's upload is not ours to drop; an unreadable manifest is.
                Ok(bytes) => match Manifest::decode(&bytes, &id) {
                    Ok(manifest) if manifest.key != key => return Ok(()),
                    _ => {}
                },
            }
            remove_atomically(&layout, &dir).map(drop)
        })
        .await
    }

    pub async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>> {
        Ok(self.index(key).await?.map(|index| index.info()))
    }

    pub async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<(ObjectInfo, ObjectStream)> {
        let index = self.index(key).await?.ok_or(StorageError::NotFound)?;
        let info = index.info();
        let (start, end) = match range {
            None => (0, info.size),
            Some(range) => {
                let (first, last) = range.resolve(info.size)?;
                (first, last + 1)
            }
        };
        let blob_dir = self.layout.blob_dir(&index.blob);
        let mut reader = ObjectReader::new(
            &self.layout,
            key.clone(),
            index.keys,
            blob_dir,
            &index.body.parts,
            start,
            end,
        );
        if start == end {
            return Ok((info, reader.into_stream()));
        }
        // The first block is read before answering, so a missing or damaged object fails
        // before any response has started.
        let (reader, first) = blocking(move || {
            let first = reader.next_block()?;
            Ok((reader, first))
        })
        .await?;
        let rest = reader.into_stream();
        Ok((
            info,
            Box::pin(stream::once(async { Ok(first) }).chain(rest)),
        ))
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let layout = self.layout.clone();
        let path = layout.index_path(key);
        blocking(move || {
            let bytes = match fs::read(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                other => other.map_err(|e| io_error("reading an object index", &e))?,
            };
            if remove_atomically(&layout, &path)?
                && let Some(blob) = Index::blob_unverified(&bytes)
            {
                remove_atomically(&layout, &layout.blob_dir(&blob))?;
            }
            Ok(())
        })
        .await
    }

    pub async fn health(&self) -> Result<()> {
        let layout = self.layout.clone();
        blocking(move || {
            for sub in Layout::SUBDIRS {
                let dir = layout.root().join(sub);
                if !fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
                    return Err(StorageError::Unavailable(format!(
                        "{} is missing",
                        dir.display()
                    )));
                }
            }
            let probe = TempPath::new(layout.tmp_path("health"));
            let file = create_private_file(probe.path())?;
            file.write_all_at(b"medport health probe", 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error("writing a probe file", &e))
        })
        .await
    }

    /// Unfinished multipart uploads, all or those whose key starts with `prefix`.
    pub async fn list_multipart_uploads(
        &self,
        prefix: Option<&str>,
    ) -> Result<Vec<(ObjectKey, MultipartId)>> {
        let layout = self.layout.clone();
        let prefix = prefix.map(str::to_string);
        blocking(move || {
            let mut uploads = Vec::new();
            let entries =
                fs::read_dir(layout.uploads_dir()).map_err(|e| io_error("listing uploads", &e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_error("listing uploads", &e))?;
                let Some(id) = entry.file_name().to_str().map(MultipartId::new) else {
                    continue;
                };
                if layout.upload_dir(&id).is_none() {
                    continue;
                }
                match fs::read(entry.path().join("upload")) {
                    Ok(bytes) => match Manifest::decode(&bytes, &id) {
                        Ok(manifest) => {
                            if prefix
                                .as_deref()
                                .is_none_or(|p| manifest.key.as_str().starts_with(p))
                            {
                                uploads.push((manifest.key, id));
                            }
                        }
                        Err(e) => tracing::warn!(upload = %id, error = %e, "unreadable upload"),
                    },
                    // Completed or aborted while we listed.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("reading an upload manifest", &e)),
                }
            }
            uploads.sort();
            Ok(uploads)
        })
        .await
    }

    /// The upload's directory and manifest, or `None` when it does not exist for this key.
    async fn manifest(
        &self,
        key: &ObjectKey,
        id: &MultipartId,
    ) -> Result<Option<(PathBuf, Manifest)>> {
        let Some(dir) = self.layout.upload_dir(id) else {
            return Ok(None);
        };
        let (key, id) = (key.clone(), id.clone());
        blocking(move || match fs::read(dir.join("upload")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading an upload manifest", &e)),
            Ok(bytes) => {
                let manifest = Manifest::decode(&bytes, &id)?;
                Ok((manifest.key == key).then_some((dir, manifest)))
            }
        })
        .await
    }

    /// The object's authenticated index, or `None` when there is no such object.
    async fn index(&self, key: &ObjectKey) -> Result<Option<Index>> {
        let path = self.layout.index_path(key);
        let (key, keyring) = (key.clone(), self.keyring.clone());
        blocking(move || match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading an object index", &e)),
            Ok(bytes) => Index::decode(&bytes, &key, &keyring).map(Some),
        })
        .await
    }
}
