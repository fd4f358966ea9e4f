//! `medport backup`, `backup verify` and `restore`.
//!
//! A backup is a directory laid out like a data directory under `data/`: the SQLite
//! database (a consistent snapshot taken while the server runs), the master key and the
//! older keys beside it, and the local object store. `manifest.json`, written last, lists
//! every file with its size and SHA-256: a directory without it is not a backup.
//!
//! Order matters while uploads go on: the database is copied first, then the object store.
//! Every object a completed upload in that snapshot names is already in the store then,
//! and the store's files are never changed in place (a new version is a new file moved
//! over the old name), so each copy is of one whole version.
//!
//! On PostgreSQL the database is not in the backup (`pg_dump` is the right tool there; the
//! README gives the step); the rest is.

mod copy;
mod manifest;

use std::path::{Path, PathBuf};

use crate::config::{MasterKeySource, Settings};
use crate::infra::data_dir;
use crate::infra::db::{Backend, Database};

pub use manifest::{Entry, Manifest, Problem};

/// The key file's name inside a backup's (and a restored) data directory.
const KEY_NAME: &str = "master.key";
/// The object store's directory in a data directory.
const OBJECTS: &str = "objects";
/// What the backup holds of a data directory.
const DATA: &str = "data";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Refused before anything was written.
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the database snapshot failed: {0}")]
    Database(String),
    /// The backup does not match its manifest.
    #[error("the backup does not match its manifest: {}", describe(.0))]
    Damaged(Vec<Problem>),
}

fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// What a backup holds, for the operator.
#[derive(Debug)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
    pub notes: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files, {}",
            self.files,
            crate::app::buckets::size::human(self.bytes)
        )?;
        for note in &self.notes {
            write!(f, "\nnote: {note}")?;
        }
        Ok(())
    }
}

/// Backs the installation up into `to`, which must be missing or empty. On failure nothing
/// is left that looks like a backup: what was written is removed.
pub fn backup(settings: &Settings, db: &Database, to: &Path) -> Result<Summary, BackupError> {
    let target = copy::Target::create(to)?;
    let summary = write_backup(settings, db, to)?;
    target.keep();
    Ok(summary)
}

fn write_backup(settings: &Settings, db: &Database, to: &Path) -> Result<Summary, BackupError> {
    let data = to.join(DATA);
    data_dir::create_private_dirs(&data).map_err(io(format!("creating {}", data.display())))?;
    let mut files = Vec::new();
    let mut notes = Vec::new();
    let database = match db.backend() {
        Backend::Sqlite => {
            let path = data.join("medport.db");
            db.snapshot_sqlite_to(&path)
                .map_err(|e| BackupError::Database(e.to_string()))?;
            files.push(copy::describe(to, &path)?);
            "sqlite"
        }
        Backend::Postgres => {
            notes.push(
                "the PostgreSQL database is not in this backup: dump it with pg_dump at the same time (README, \"Backups\")".to_string(),
            );
            "postgresql"
        }
    };
    match &settings.master_key {
        MasterKeySource::Inline(_) => notes.push(
            "the master key comes from MEDPORT_MASTER_KEY and is not in this backup: keep it with the backup, apart from it"
                .to_string(),
        ),
        MasterKeySource::File(path) | MasterKeySource::DataDir(path) => {
            files.push(copy::file(to, path, &data.join(KEY_NAME))?);
            for (old, suffix) in
                crate::app::key_rotation::previous_key_files(&settings.master_key)
            {
                files.push(copy::file(to, &old, &data.join(format!("{KEY_NAME}{suffix}")))?);
            }
        }
    }
    let objects = settings.data_dir.join(OBJECTS);
    if objects.is_dir() {
        copy::tree(to, &objects, &data.join(OBJECTS), &mut files)?;
    }
    let manifest = Manifest::new(database, files, notes);
    manifest.write(to)?;
    Ok(manifest.summary())
}

/// Checks a backup against its manifest: every file there, with its size and SHA-256, and
/// nothing else.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let manifest = Manifest::read(dir)?;
    let problems = manifest.check(dir)?;
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(BackupError::Damaged(problems))
    }
}

/// Restores a verified backup into `data_dir`, which must be missing or empty; it becomes
/// a data directory a server starts on. Nothing is written unless the backup verifies.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Summary, BackupError> {
    let manifest = verify(from)?;
    let target = copy::Target::create(data_dir)?;
    let prefix = PathBuf::from(DATA);
    for entry in &manifest.files {
        let relative = Path::new(&entry.path)
            .strip_prefix(&prefix)
            .map_err(|_| BackupError::Refused(format!("{} is outside data/", entry.path)))?;
        let copied = copy::file(data_dir, &from.join(&entry.path), &data_dir.join(relative))?;
        if copied.sha256 != entry.sha256 {
            return Err(BackupError::Damaged(vec![Problem::Changed(
                entry.path.clone(),
            )]));
        }
    }
    target.keep();
    let mut summary = manifest.summary();
    if manifest.database == "postgresql" {
        summary.notes.push(
            "restore the PostgreSQL dump taken with this backup, and point DATABASE_URL at it"
                .to_string(),
        );
    }
    Ok(summary)
}
