//! The data directory and the files in it belong to the installation alone: the database
//! holds file names, bcrypt hashes and recovery-code hashes, the key files seal every
//! secret. Directories are 0700 and files 0600 by explicit modes, not by trusting the
//! umask; an older installation's looser modes are tightened at start, and a directory
//! others may write to (they could swap the database or the key) is refused.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// Group and world write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
/// Any group or world bit.
const OPEN_TO_OTHERS: u32 = 0o077;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data directory {path}: {source}")]
    Create { path: String, source: io::Error },
    #[error(
        "the data directory {path} is writable by other users (mode {mode:o}); run chmod 700 {path}"
    )]
    WritableByOthers { path: String, mode: u32 },
    #[error("cannot make the data directory {path} private: {source}")]
    Tighten { path: String, source: io::Error },
}

/// Files and directories this process creates are its own, whatever umask the shell or
/// service manager gave it. Called first thing by the binary, before anything is created.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(OPEN_TO_OTHERS));
}

/// Refuses an existing data directory that group or others may write to; changes nothing.
/// A missing directory is fine (`prepare` creates it).
pub fn check(dir: &Path) -> Result<(), DataDirError> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => refuse_if_writable_by_others(dir, mode_bits(&meta)),
        // Not a directory, or unreadable: `prepare` reports it with the cause.
        _ => Ok(()),
    }
}

/// Creates the data directory 0700, or tightens an existing one that group or others may
/// read (an older version made it 0755). One that they may write to is refused instead:
/// its contents can no longer be trusted.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let path = || dir.display().to_string();
    create_private_dirs(dir).map_err(|source| DataDirError::Create {
        path: path(),
        source,
    })?;
    let mode = fs::metadata(dir)
        .map(|meta| mode_bits(&meta))
        .map_err(|source| DataDirError::Create {
            path: path(),
            source,
        })?;
    refuse_if_writable_by_others(dir, mode)?;
    if mode != DIR_MODE {
        fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)).map_err(|source| {
            DataDirError::Tighten {
                path: path(),
                source,
            }
        })?;
        if mode & OPEN_TO_OTHERS != 0 {
            let was = format!("{mode:o}");
            tracing::info!(path = %dir.display(), %was, "made the data directory private (0700)");
        }
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Whether group or others may read, write or enter `mode`'s file.
pub fn open_to_others(mode: u32) -> bool {
    mode & OPEN_TO_OTHERS != 0
}

/// Creates `dir` and any missing parents with mode 0700 (existing ones are left as they are).
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Makes the SQLite database file 0600 before SQLite opens it: SQLite would create it 0644
/// less the umask, and gives its WAL, shared-memory and journal files the database file's
/// mode. A new file is created empty (SQLite treats it as a new database); an existing one
/// and its companions are tightened by path, never opened: closing a descriptor of the file
/// would drop the SQLite locks this process may hold on it.
pub fn private_database_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dirs(dir)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let mut tightened = false;
    for file in std::iter::once(path.to_path_buf()).chain(companions(path)) {
        let meta = match fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_file() && mode_bits(&meta) & OPEN_TO_OTHERS != 0 {
            fs::set_permissions(&file, Permissions::from_mode(FILE_MODE))?;
            tightened = true;
        }
    }
    if tightened {
        tracing::info!(path = %path.display(), "made the database file private (0600)");
    }
    Ok(())
}

/// The files SQLite keeps beside the database.
fn companions(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["-wal", "-shm", "-journal"].into_iter().map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

fn refuse_if_writable_by_others(dir: &Path, mode: u32) -> Result<(), DataDirError> {
    if mode & WRITABLE_BY_OTHERS != 0 {
        return Err(DataDirError::WritableByOthers {
            path: dir.display().to_string(),
            mode,
        });
    }
    Ok(())
}

fn mode_bits(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_data_dir_is_created_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("srv/data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("srv")), 0o700);
    }

    #[test]
    fn an_older_readable_data_dir_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        for old in [0o755, 0o750, 0o711, 0o2755] {
            let dir = root.path().join(format!("data-{old:o}"));
            fs::create_dir(&dir).unwrap();
            chmod(&dir, old);
            check(&dir).unwrap();
            prepare(&dir).unwrap();
            assert_eq!(mode(&dir), 0o700, "{old:o}");
        }
    }

    #[test]
    fn a_data_dir_others_may_write_to_is_refused_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        for open in [0o775, 0o757, 0o777, 0o1777, 0o720] {
            let dir = root.path().join(format!("data-{open:o}"));
            fs::create_dir(&dir).unwrap();
            chmod(&dir, open);
            for err in [check(&dir).unwrap_err(), prepare(&dir).unwrap_err()] {
                let text = err.to_string();
                assert!(
                    matches!(err, DataDirError::WritableByOthers { .. }),
                    "{text}"
                );
                assert!(
                    text.contains(&format!("chmod 700 {}", dir.display())),
                    "{text}"
                );
                assert!(!text.contains('\n'), "{text}");
            }
            assert_eq!(mode(&dir), open, "nothing changed");
        }
    }

    #[test]
    fn a_missing_data_dir_passes_the_check() {
        let root = tempfile::tempdir().unwrap();
        check(&root.path().join("not-yet")).unwrap();
    }

    #[test]
    fn a_new_database_file_is_created_empty_and_private() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("elsewhere/medport.db");
        private_database_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(fs::metadata(&db).unwrap().len(), 0);
        assert_eq!(mode(db.parent().unwrap()), 0o700);
    }

    #[test]
    fn an_older_database_file_and_its_companions_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("medport.db");
        fs::write(&db, b"SQLite format 3\0").unwrap();
        chmod(&db, 0o644);
        let wal = root.path().join("medport.db-wal");
        fs::write(&wal, b"").unwrap();
        chmod(&wal, 0o664);
        private_database_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(
            fs::read(&db).unwrap(),
            b"SQLite format 3\0",
            "contents kept"
        );
    }
}
