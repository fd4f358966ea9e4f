//! Files into a backup or a restored data directory: private modes, SHA-256 computed while
//! copying, synced before the manifest names them.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{BackupError, Entry, io};
use crate::infra::data_dir;

const CHUNK: usize = 1024 * 1024;

/// The directory written into. Unless `keep` is called, dropping it removes what was
/// written: a failed backup or restore leaves nothing that looks whole.
pub struct Target<'a> {
    dir: &'a Path,
    created: bool,
    kept: bool,
}

impl<'a> Target<'a> {
    /// `dir` missing (created 0700) or an empty directory; anything else is refused.
    pub fn create(dir: &'a Path) -> Result<Self, BackupError> {
        let created = match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BackupError::Refused(format!(
                        "{} is not empty: use a new or empty directory",
                        dir.display()
                    )));
                }
                fs::set_permissions(dir, Permissions::from_mode(0o700))
                    .map_err(io(format!("making {} private", dir.display())))?;
                false
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                data_dir::create_private_dirs(dir)
                    .map_err(io(format!("creating {}", dir.display())))?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(BackupError::Refused(format!(
                    "{} is a file, not a directory",
                    dir.display()
                )));
            }
            Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
        };
        Ok(Self {
            dir,
            created,
            kept: false,
        })
    }

    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Target<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let removed = if self.created {
            fs::remove_dir_all(self.dir)
        } else {
            fs::read_dir(self.dir).and_then(|entries| {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        fs::remove_dir_all(&path)?;
                    } else {
                        fs::remove_file(&path)?;
                    }
                }
                Ok(())
            })
        };
        if let Err(e) = removed {
            tracing::error!(dir = %self.dir.display(), error = %e, "could not remove an unfinished backup");
        }
    }
}

/// `path` relative to `root`, as the manifest names it.
fn relative(root: &Path, path: &Path) -> Result<String, BackupError> {
    path.strip_prefix(root)
        .ok()
        .and_then(Path::to_str)
        .map(str::to_string)
        .ok_or_else(|| {
            BackupError::Refused(format!("{} has a name that is not UTF-8", path.display()))
        })
}

/// The entry of a file already in place.
pub fn describe(root: &Path, path: &Path) -> Result<Entry, BackupError> {
    fs::set_permissions(path, Permissions::from_mode(0o600))
        .map_err(io(format!("making {} private", path.display())))?;
    let (size, sha256) = digest(path)?;
    Ok(Entry {
        path: relative(root, path)?,
        size,
        sha256,
    })
}

/// Size and SHA-256 of a file.
pub fn digest(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
    pump(&mut file, None, path, path)
}

/// Reads `source` to its end, writing what it reads to `out` when there is one; returns
/// the size and SHA-256 of what was read.
fn pump(
    source: &mut File,
    mut out: Option<&mut File>,
    from: &Path,
    to: &Path,
) -> Result<(u64, String), BackupError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; CHUNK];
    let mut size = 0u64;
    loop {
        let n = source
            .read(&mut buf)
            .map_err(io(format!("reading {}", from.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&buf[..n])
                .map_err(io(format!("writing {}", to.display())))?;
        }
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Copies `from` to the new file `to` (0600, synced), hashing what was read.
pub fn file(root: &Path, from: &Path, to: &Path) -> Result<Entry, BackupError> {
    if let Some(parent) = to.parent() {
        data_dir::create_private_dirs(parent)
            .map_err(io(format!("creating {}", parent.display())))?;
    }
    let mut source = File::open(from).map_err(io(format!("opening {}", from.display())))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io(format!("creating {}", to.display())))?;
    let (size, sha256) = pump(&mut source, Some(&mut out), from, to)?;
    out.sync_all()
        .map_err(io(format!("writing {}", to.display())))?;
    Ok(Entry {
        path: relative(root, to)?,
        size,
        sha256,
    })
}

/// Copies the object store under `from` to `to`, leaving out its scratch space (`tmp/`).
pub fn tree(
    root: &Path,
    from: &Path,
    to: &Path,
    files: &mut Vec<Entry>,
) -> Result<(), BackupError> {
    let mut pending = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((dir, out)) = pending.pop() {
        data_dir::create_private_dirs(&out).map_err(io(format!("creating {}", out.display())))?;
        let listed = match fs::read_dir(&dir) {
            // Gone since its parent was listed (an upload's parts, once it completed).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            listed => listed.map_err(io(format!("reading {}", dir.display())))?,
        };
        let mut entries: Vec<_> = listed
            .collect::<Result<_, _>>()
            .map_err(io(format!("reading {}", dir.display())))?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(io(format!("reading {}", path.display())))?;
            if dir == from && entry.file_name() == "tmp" {
                continue;
            }
            let target = out.join(entry.file_name());
            if kind.is_dir() {
                pending.push((path, target));
            } else if kind.is_file() {
                match file(root, &path, &target) {
                    Ok(copied) => files.push(copied),
                    // Removed since it was listed (an upload finished or was cancelled):
                    // the snapshot does not need it.
                    Err(BackupError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound && !path.exists() =>
                    {
                        let _ = fs::remove_file(&target);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
