//! File-system plumbing for the local store: where things live, crash-safe writes, error
//! mapping, and running blocking calls off the async threads.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::infra::storage::blob::{MultipartId, ObjectKey, PartNumber, Result, StorageError};

/// ENOSPC and EDQUOT: both mean "no room", which callers answer with 507.
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

pub fn io_error(context: &str, e: &io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT)) {
        StorageError::Full
    } else {
        StorageError::Io(format!("{context}: {e}"))
    }
}

/// Runs blocking file work on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(format!("blocking task failed: {e}")))?
}

/// The directory tree under the store's root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub const SUBDIRS: [&'static str; 4] = ["index", "blobs", "multipart", "tmp"];

    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Index files are named by the SHA-256 of the key: no key can reach outside the tree,
    /// and keys `a` and `a/b` can both exist (a path tree could not hold both).
    pub fn index_path(&self, key: &ObjectKey) -> PathBuf {
        let hash = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        let (fan, rest) = hash.split_at(2);
        self.root.join("index").join(fan).join(rest)
    }

    pub fn blob_dir(&self, name: &BlobName) -> PathBuf {
        self.root.join("blobs").join(&name.0)
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("multipart")
    }

    /// `None` for an id this store never issued (so it cannot name a path).
    pub fn upload_dir(&self, id: &MultipartId) -> Option<PathBuf> {
        is_local_upload_id(id.as_str()).then(|| self.uploads_dir().join(id.as_str()))
    }

    pub fn part_file(dir: &Path, number: PartNumber) -> PathBuf {
        dir.join(part_file_name(number))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn tmp_path(&self, kind: &str) -> PathBuf {
        self.tmp_dir()
            .join(format!("{kind}-{}", uuid::Uuid::now_v7().simple()))
    }
}

pub fn part_file_name(number: PartNumber) -> String {
    format!("part-{:05}", number.get())
}

pub fn parse_part_file_name(name: &str) -> Option<PartNumber> {
    let digits = name.strip_prefix("part-")?;
    (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse::<u64>().ok().and_then(PartNumber::new))
        .flatten()
}

/// Upload ids this store issues: 32 lowercase hex digits.
pub fn new_upload_id() -> MultipartId {
    MultipartId::new(uuid::Uuid::now_v7().simple().to_string())
}

pub fn is_local_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A completed object's data directory, `<2 hex>/<32 hex>` under `blobs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobName(String);

impl BlobName {
    pub fn new(key: &ObjectKey) -> Self {
        let hash = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        Self(format!("{}/{}", &hash[..2], uuid::Uuid::now_v7().simple()))
    }

    /// Checked even when read from an authenticated index: it becomes a path to delete.
    pub fn parse(raw: &str) -> Option<Self> {
        let (fan, id) = raw.split_once('/')?;
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (fan.len() == 2 && hex(fan) && is_local_upload_id(id)).then(|| Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn create_private_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| io_error("creating a directory", &e))
}

pub fn create_private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("creating a file", &e))
}

/// Makes directory entries (new files, renames) in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing a directory", &e))
}

pub fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .ok_or_else(|| StorageError::Io("path has no parent".into()))
}

/// Writes a small file so that readers see either nothing or all of it: temp file, fsync,
/// rename into place, fsync the directory. The directory must exist (a file is never
/// written into a directory that was removed meanwhile).
pub fn write_atomically(layout: &Layout, path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = TempPath::new(layout.tmp_path("write"));
    let mut file = create_private_file(tmp.path())?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing a file", &e))?;
    let dir = parent(path)?;
    fs::rename(tmp.path(), path).map_err(|e| io_error("renaming into place", &e))?;
    tmp.disarm();
    sync_dir(dir)
}

/// Moves a file or directory out of sight in one rename, then deletes it. A crash between
/// the two leaves garbage in `tmp/` (swept later), never a half-deleted visible entry.
/// Returns false when `path` did not exist.
pub fn remove_atomically(layout: &Layout, path: &Path) -> Result<bool> {
    let trash = layout.tmp_path("trash");
    match fs::rename(path, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error("moving to trash", &e)),
    }
    sync_dir(parent(path)?)?;
    remove_any(&trash);
    Ok(true)
}

/// Best-effort removal of a file or directory tree (leftovers are swept from `tmp/`).
pub fn remove_any(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not remove storage leftovers");
    }
}

/// Deletes entries in `tmp/` untouched for `max_age`: leftovers of crashes. Active temp
/// files are written to continually, so their modification time stays recent.
pub fn sweep_tmp(layout: &Layout, max_age: std::time::Duration) {
    let Ok(entries) = fs::read_dir(layout.tmp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > max_age);
        if stale {
            remove_any(&entry.path());
        }
    }
}

/// A temp path removed when dropped unless disarmed: an upload abandoned halfway (error,
/// client gone, future dropped) leaves nothing behind.
#[derive(Debug)]
pub struct TempPath(Option<PathBuf>);

impl TempPath {
    pub fn new(path: PathBuf) -> Self {
        Self(Some(path))
    }

    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    pub fn disarm(mut self) {
        self.0 = None;
    }

    /// Removes the path now (on the blocking pool) rather than at some point after drop.
    pub async fn remove(mut self) {
        if let Some(path) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || remove_any(&path)).await;
        }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let Some(path) = self.0.take() else { return };
        // Off the async threads when inside the runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(move || remove_any(&path))),
            Err(_) => remove_any(&path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_maps_to_full() {
        let mut devfull = OpenOptions::new().write(true).open("/dev/full").unwrap();
        let e = devfull
            .write_all(&[0u8; 4096])
            .and_then(|()| devfull.flush())
            .unwrap_err();
        assert!(matches!(io_error("x", &e), StorageError::Full));
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(io_error("x", &e), StorageError::Io(_)));
    }

    #[test]
    fn names_are_checked() {
        assert!(is_local_upload_id(&new_upload_id().to_string()));
        for bad in [
            "",
            "../../etc",
            "0190C3A27B1E7C4D9F00000000000001",
            "0190c3a2",
        ] {
            assert!(!is_local_upload_id(bad), "{bad}");
        }
        let key = ObjectKey::parse("a/b").unwrap();
        let name = BlobName::new(&key);
        assert_eq!(BlobName::parse(name.as_str()), Some(name));
        for bad in [
            "",
            "ab",
            "../x",
            "ab/../../etc",
            "zz/0190c3a27b1e7c4d9f00000000000001",
        ] {
            assert!(BlobName::parse(bad).is_none(), "{bad}");
        }
        let n = PartNumber::new(42).unwrap();
        assert_eq!(parse_part_file_name(&part_file_name(n)), Some(n));
        for bad in ["part-00000", "part-10001", "part-1", "part-00001.tmp", "x"] {
            assert!(parse_part_file_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn temp_paths_are_removed_unless_disarmed() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"x").unwrap();
        drop(TempPath::new(a.clone()));
        assert!(!a.exists());
        let b = dir.path().join("b");
        fs::write(&b, b"x").unwrap();
        TempPath::new(b.clone()).disarm();
        assert!(b.exists());
    }
}
