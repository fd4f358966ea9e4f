//! `manifest.json`: what a backup holds, file by file. Written last and atomically, so its
//! presence means the backup is whole.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::{BackupError, DATA, Summary, io};

const NAME: &str = "manifest.json";
const FORMAT: &str = "medport-backup 1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the backup, under `data/`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_at: String,
    pub medport_version: String,
    /// `sqlite` (the database is in the backup) or `postgresql` (it is not).
    pub database: String,
    pub files: Vec<Entry>,
    pub notes: Vec<String>,
}

/// A way a backup differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing(String),
    Changed(String),
    Unlisted(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(path) => write!(f, "{path} is missing"),
            Self::Changed(path) => write!(f, "{path} differs from the manifest (size or SHA-256)"),
            Self::Unlisted(path) => write!(f, "{path} is not in the manifest"),
        }
    }
}

impl Manifest {
    pub fn new(database: &str, files: Vec<Entry>, notes: Vec<String>) -> Self {
        Self {
            format: FORMAT.to_string(),
            created_at: chrono::Utc::now().to_rfc3339(),
            medport_version: env!("CARGO_PKG_VERSION").to_string(),
            database: database.to_string(),
            files,
            notes,
        }
    }

    pub fn summary(&self) -> Summary {
        Summary {
            files: self.files.len(),
            bytes: self.files.iter().map(|e| e.size).sum(),
            notes: self.notes.clone(),
        }
    }

    /// Written beside the files, under a temporary name first, then renamed: a backup
    /// cut short has no manifest.
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| io("encoding the manifest")(std::io::Error::other(e)))?;
        let tmp = dir.join(format!("{NAME}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(format!("creating {}", tmp.display())))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io(format!("writing {}", tmp.display())))?;
        fs::rename(&tmp, dir.join(NAME)).map_err(io("naming the manifest"))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))
    }

    pub fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(NAME);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::Refused(format!(
                    "{} has no {NAME}: it is not a backup, or one that did not finish",
                    dir.display()
                )));
            }
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        let manifest: Self = serde_json::from_slice(&text).map_err(|e| {
            BackupError::Refused(format!("{} is not a backup manifest ({e})", path.display()))
        })?;
        if manifest.format != FORMAT {
            return Err(BackupError::Refused(format!(
                "{} is in format {:?}, this medport reads {FORMAT:?}",
                path.display(),
                manifest.format
            )));
        }
        // A manifest names files under data/ only: restore never writes outside its target.
        if let Some(bad) = manifest.files.iter().find(|e| !is_inside_data(&e.path)) {
            return Err(BackupError::Refused(format!(
                "the manifest names {:?}, outside data/",
                bad.path
            )));
        }
        Ok(manifest)
    }

    /// Every listed file present with its size and SHA-256, and no other file.
    pub fn check(&self, dir: &Path) -> Result<Vec<Problem>, BackupError> {
        let mut problems = Vec::new();
        for entry in &self.files {
            let path = dir.join(&entry.path);
            match fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(Problem::Missing(entry.path.clone()));
                }
                Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
                Ok(meta) if meta.len() != entry.size => {
                    problems.push(Problem::Changed(entry.path.clone()));
                }
                Ok(_) => {
                    if super::copy::digest(&path)?.1 != entry.sha256 {
                        problems.push(Problem::Changed(entry.path.clone()));
                    }
                }
            }
        }
        let listed: BTreeSet<&str> = self.files.iter().map(|e| e.path.as_str()).collect();
        for found in files_under(dir, &dir.join(DATA))? {
            if !listed.contains(found.as_str()) {
                problems.push(Problem::Unlisted(found));
            }
        }
        Ok(problems)
    }
}

fn is_inside_data(path: &str) -> bool {
    let mut parts = Path::new(path).components();
    parts.next() == Some(Component::Normal(DATA.as_ref()))
        && parts.clone().next().is_some()
        && parts.all(|c| matches!(c, Component::Normal(_)))
}

/// Every file below `dir`, relative to `root`.
fn files_under(root: &Path, dir: &Path) -> Result<Vec<String>, BackupError> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            entries => entries.map_err(io(format!("reading {}", dir.display())))?,
        };
        for entry in entries {
            let path = entry
                .map_err(io(format!("reading {}", dir.display())))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(
                    path.strip_prefix(root)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::is_inside_data;

    #[test]
    fn a_manifest_names_files_under_data_only() {
        assert!(is_inside_data("data/medport.db"));
        assert!(is_inside_data("data/objects/blobs/ab/x/part-00001"));
        for outside in [
            "data",
            "medport.db",
            "/etc/passwd",
            "data/../../etc/passwd",
            "../data/x",
        ] {
            assert!(!is_inside_data(outside), "{outside}");
        }
    }
}
