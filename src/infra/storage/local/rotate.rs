//! Moving sealed data keys to the current master key (for `medport keys rotate`), so that
//! old master keys can eventually be retired. Only the small manifest and index files are
//! rewritten (atomically); object data is never touched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::LocalStore;
use super::files::{Layout, blocking, io_error, write_atomically};
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::storage::blob::{ObjectKey, Result, StorageError};

impl LocalStore {
    /// Re-seals every data key not sealed under the current master key; returns how many
    /// files moved. Safe to interrupt and to run again. A file replaced while it is being
    /// re-sealed (an upload completing) is left alone: its new contents are current already.
    pub async fn reseal_data_keys(&self) -> Result<usize> {
        let (layout, keyring) = (self.layout.clone(), self.keyring.clone());
        blocking(move || {
            let mut moved = 0;
            for path in metadata_files(&layout)? {
                if reseal_file(&layout, &keyring, &path)? {
                    moved += 1;
                }
            }
            Ok(moved)
        })
        .await
    }
}

/// Every upload manifest and object index.
fn metadata_files(layout: &Layout) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in read_dir(&layout.uploads_dir())? {
        files.push(entry.join("upload"));
    }
    for fan in read_dir(&layout.root().join("index"))? {
        files.extend(read_dir(&fan)?);
    }
    Ok(files)
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("listing the store", &e)),
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<_>>()
            .map_err(|e| io_error("listing the store", &e)),
    }
}

/// Both file kinds hold the sealed key (hex) on line 2 and the object key in their JSON.
fn reseal_file(layout: &Layout, keyring: &Keyring, path: &Path) -> Result<bool> {
    let text = match fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        other => other.map_err(|e| io_error("reading store metadata", &e))?,
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    let bad = || StorageError::Integrity(format!("{} is malformed", path.display()));
    let sealed = lines
        .get(1)
        .and_then(|l| hex::decode(l).ok())
        .ok_or_else(bad)?;
    if !secrets::needs_reseal(keyring, &sealed) {
        return Ok(false);
    }
    let json = lines
        .iter()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(bad)?;
    let key = serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("key")?.as_str().and_then(ObjectKey::parse))
        .ok_or_else(bad)?;
    let ctx = SealContext {
        table: "objects",
        row_id: key.as_str(),
        field: "data_key",
    };
    let resealed = hex::encode(
        secrets::reseal(keyring, &ctx, &sealed)
            .map_err(|e| StorageError::Integrity(format!("{}: {e}", path.display())))?,
    );
    lines[1] = &resealed;
    // Narrows, without closing, the window in which a concurrent rewrite could be undone;
    // indexes and manifests are written once per upload, so it does not arise in practice.
    if fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        return Ok(false);
    }
    match write_atomically(layout, path, lines.join("\n").as_bytes()) {
        // The upload completed or was aborted meanwhile: nothing left to re-seal.
        Err(_) if !path.parent().is_some_and(Path::exists) => Ok(false),
        Err(e) => Err(e),
        Ok(()) => Ok(true),
    }
}
