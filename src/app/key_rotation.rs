//! Master key files beyond the current one, and `medport keys rotate`.
//!
//! Rotation, step by step, each step safe to interrupt:
//! 1. a new key is written to `<key file>.next` (0600, fsync), or an existing `.next` from
//!    an interrupted run is reused;
//! 2. every sealed column is re-sealed under it, in ONE database transaction, so rows are
//!    either all moved or none;
//! 3. the old key file is kept as `<key file>.old.<key id>` and `.next` becomes the key file.
//!
//! At start-up the key file, any `.next` and every `.old.*` are loaded: the current key
//! seals, the others only open. So an interruption anywhere leaves every row readable, and
//! data sealed under an old key (such as object data keys written before a rotation) stays
//! readable as long as its old key file is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::app::error::AppError;
use crate::config::MasterKeySource;
use crate::infra::crypto::keys::MasterKey;
use crate::infra::crypto::secrets::{self, Keyring, SealContext};
use crate::infra::db::{DbConnection, DbError, repo, write_tx};

fn key_file(source: &MasterKeySource) -> Option<&Path> {
    match source {
        MasterKeySource::File(p) | MasterKeySource::DataDir(p) => Some(p),
        MasterKeySource::Inline(_) => None,
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Keys that may open older data: a pending `.next` and every `.old.*` beside the key file.
pub fn previous_keys(source: &MasterKeySource) -> Result<Vec<MasterKey>, AppError> {
    previous_key_files(source)
        .into_iter()
        .map(|(path, _)| {
            MasterKey::load_or_create(&MasterKeySource::File(path)).map_err(AppError::internal)
        })
        .collect()
}

/// The files beside the key file that hold older keys (`<name>.old.<id>`) or the next one
/// (`<name>.next`, mid-rotation), each with its name's suffix after `<name>`.
pub fn previous_key_files(source: &MasterKeySource) -> Vec<(PathBuf, String)> {
    let Some(path) = key_file(source) else {
        return Vec::new();
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let old_prefix = format!("{name}.old.");
    let next_name = format!("{name}.next");
    let mut files: Vec<(PathBuf, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_str()?.to_string();
            (file.starts_with(&old_prefix) || file == next_name)
                .then(|| (entry.path(), file[name.len()..].to_string()))
        })
        .collect();
    files.sort();
    files
}

/// The keyring the application uses: the current key plus every key that may still open.
pub fn keyring(current: Arc<MasterKey>, source: &MasterKeySource) -> Result<Keyring, AppError> {
    let mut ring = Keyring::new(current);
    for key in previous_keys(source)? {
        ring = ring.with_previous(Arc::new(key));
    }
    Ok(ring)
}

#[derive(Debug, Default)]
pub struct RotationReport {
    pub new_key_id: String,
    pub totp_seeds: usize,
    pub bucket_secrets: usize,
    pub patient_records: usize,
    pub sender_records: usize,
    pub webhook_secrets: usize,
    pub blind_indexes: usize,
    pub old_key_file: Option<PathBuf>,
}

impl std::fmt::Display for RotationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "re-sealed {} rows under key {} ({} TOTP seeds, {} bucket secrets, {} DICOM patient records, {} upload request senders, {} webhook secrets); recomputed {} DICOM blind indexes",
            self.totp_seeds
                + self.bucket_secrets
                + self.patient_records
                + self.sender_records
                + self.webhook_secrets,
            self.new_key_id,
            self.totp_seeds,
            self.bucket_secrets,
            self.patient_records,
            self.sender_records,
            self.webhook_secrets,
            self.blind_indexes
        )?;
        if let Some(old) = &self.old_key_file {
            write!(
                f,
                "; the previous key is kept as {} to open older data",
                old.display()
            )?;
        }
        Ok(())
    }
}

fn write_key(path: &Path, key: &MasterKey) -> Result<(), AppError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AppError::internal(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(format!("{}\n", hex::encode(key.expose())).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| AppError::internal(format!("cannot write {}: {e}", path.display())))
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Re-seals every sealed column under a new key (see the module doc for the steps).
pub fn rotate(
    conn: &mut DbConnection,
    source: &MasterKeySource,
    current: Arc<MasterKey>,
) -> Result<RotationReport, AppError> {
    let path = key_file(source).ok_or_else(|| {
        AppError::BadRequest(
            "key rotation needs the master key in a file (the data directory's master.key or \
             MEDPORT_MASTER_KEY_FILE), not in MEDPORT_MASTER_KEY"
                .into(),
        )
    })?;
    let next_path = with_suffix(path, ".next");
    let next = if next_path.exists() {
        // An earlier run stopped part-way: finish with the same new key.
        MasterKey::load_or_create(&MasterKeySource::File(next_path.clone()))
            .map_err(AppError::internal)?
    } else {
        let key = MasterKey::generate().map_err(AppError::internal)?;
        write_key(&next_path, &key)?;
        sync_dir(&next_path);
        key
    };
    let next = Arc::new(next);
    let mut ring = Keyring::new(next.clone()).with_previous(current.clone());
    for key in previous_keys(source)? {
        ring = ring.with_previous(Arc::new(key));
    }

    let mut report = write_tx(conn, |conn| reseal_all(conn, &ring))?;
    report.new_key_id = next.id().as_str().to_string();

    if current.id() != next.id() {
        let old_path = with_suffix(path, &format!(".old.{}", current.id().as_str()));
        if path.exists() {
            fs::rename(path, &old_path)
                .map_err(|e| AppError::internal(format!("cannot keep the old key file: {e}")))?;
            report.old_key_file = Some(old_path);
        }
    }
    fs::rename(&next_path, path)
        .map_err(|e| AppError::internal(format!("cannot install the new key file: {e}")))?;
    sync_dir(path);
    Ok(report)
}

fn reseal_all(conn: &mut DbConnection, ring: &Keyring) -> Result<RotationReport, AppError> {
    let totp_seeds = reseal_rows(
        conn,
        ring,
        |conn| {
            Ok(repo::users::sealed_totp_seeds(conn)?
                .into_iter()
                .filter_map(|(id, sealed)| sealed.map(|s| (id, s)))
                .collect())
        },
        |id| SealContext {
            table: "users",
            row_id: id,
            field: "totp_secret",
        },
        repo::users::set_sealed_totp_seed,
        "user",
    )?;
    let bucket_secrets = reseal_rows(
        conn,
        ring,
        repo::buckets::sealed_secrets,
        |id| SealContext {
            table: "buckets",
            row_id: id,
            field: "secret_key",
        },
        repo::buckets::set_sealed_secret,
        "bucket",
    )?;
    let patient_records = reseal_rows(
        conn,
        ring,
        repo::dicom_instances::sealed_patients,
        crate::app::studies::index::seal_context,
        repo::dicom_instances::set_sealed_patient,
        "DICOM instance",
    )?;
    let sender_records = reseal_rows(
        conn,
        ring,
        repo::request_submissions::all_sealed,
        crate::app::requests::receipt::seal_context,
        repo::request_submissions::set_sealed,
        "upload request submission",
    )?;
    let webhook_secrets = reseal_rows(
        conn,
        ring,
        repo::webhooks::sealed_secrets,
        crate::app::notifications::webhooks::seal_context,
        repo::webhooks::set_sealed_secret,
        "webhook",
    )?;
    // The blind index key derives from the master key: recompute them under the new one.
    let blind_indexes = crate::app::studies::blind::refresh_all(conn, ring)?;
    Ok(RotationReport {
        totp_seeds,
        bucket_secrets,
        patient_records,
        sender_records,
        webhook_secrets,
        blind_indexes,
        ..RotationReport::default()
    })
}

/// Rows of one sealed field: the row's id and the sealed value.
type SealedRows = Vec<(String, Vec<u8>)>;

/// Re-seals each `(id, sealed)` that `rows` reads and that is not under the current key yet,
/// and writes it back with `store`; how many were re-sealed. `what` names a row in an error.
fn reseal_rows(
    conn: &mut DbConnection,
    ring: &Keyring,
    rows: fn(&mut DbConnection) -> Result<SealedRows, DbError>,
    context: fn(&str) -> SealContext<'_>,
    store: fn(&mut DbConnection, &str, Vec<u8>) -> Result<(), DbError>,
    what: &str,
) -> Result<usize, AppError> {
    let mut count = 0;
    for (id, sealed) in rows(conn)? {
        if !secrets::needs_reseal(ring, &sealed) {
            continue;
        }
        let fresh = secrets::reseal(ring, &context(&id), &sealed)
            .map_err(|e| AppError::internal(format!("{what} {id}: {e}")))?;
        store(conn, &id, fresh)?;
        count += 1;
    }
    Ok(count)
}

/// Re-wraps the local store's object data keys under the current key file's key (after
/// `rotate` installed it). Returns how many metadata files moved.
pub fn reseal_local_objects(source: &MasterKeySource, root: PathBuf) -> Result<usize, AppError> {
    let current = Arc::new(MasterKey::load_or_create(source).map_err(AppError::internal)?);
    let ring = Arc::new(keyring(current, source)?);
    let store = crate::infra::storage::local::LocalStore::new(root, ring)?;
    let runtime = tokio::runtime::Handle::try_current().map_err(AppError::internal)?;
    Ok(runtime.block_on(store.reseal_data_keys())?)
}
