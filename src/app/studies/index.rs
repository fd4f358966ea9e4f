//! Indexing a completed DICOM upload: read its header back from storage (streamed, up to
//! Pixel Data), then write what it says, once. Patient attributes are sealed before they
//! touch the database. A file that does not parse is recorded as unreadable and stays
//! listed; a second copy of an instance is recorded as a duplicate (same bytes) or a
//! conflict (other bytes), and only the first copy counts in its study.

use bytes::Bytes;
use futures_util::TryStreamExt;
use secrecy::ExposeSecret;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::app::buckets::{ALLOWED_EXTENSIONS, UNNAMED_DICOM};
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::cleanup::Stores;
use crate::app::uploads::model::{self, Upload, UploadStatus};
use crate::app::uploads::sniff::FileKind;
use crate::domain::ids::UploadId;
use crate::infra::crypto::secrets::{self, SealContext};
use crate::infra::db::DbConnection;
use crate::infra::db::repo::dicom_instances::{self as repo, NewEntry, NewInstance};
use crate::infra::dicom::{self, InstanceHeader, Parsed, PatientAttributes, Unreadable};
use crate::infra::storage::blob::BlobStore;

/// What indexing made of an upload (the row's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    Indexed,
    Unreadable,
    Duplicate,
    Conflict,
    Directory,
}

impl IndexState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Indexed => "indexed",
            Self::Unreadable => "unreadable",
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
            Self::Directory => "directory",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "indexed" => Self::Indexed,
            "unreadable" => Self::Unreadable,
            "duplicate" => Self::Duplicate,
            "conflict" => Self::Conflict,
            "directory" => Self::Directory,
            _ => return None,
        })
    }

    /// For the batch summary and the study page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Indexed => "DICOM instance",
            Self::Unreadable => "DICOM header unreadable",
            Self::Duplicate => "Duplicate instance",
            Self::Conflict => "Conflicting instance",
            Self::Directory => "DICOMDIR",
        }
    }
}

/// The seal's place: PHI opens only as this row's `patient` field.
pub fn seal_context(upload_id: &str) -> SealContext<'_> {
    SealContext {
        table: "dicom_instances",
        row_id: upload_id,
        field: "patient",
    }
}

/// What was read from one upload, ready to be written in the caller's transaction.
pub struct Prepared {
    upload: Upload,
    sha256: String,
    parsed: Result<Parsed, Unreadable>,
    sealed: Option<Vec<u8>>,
}

/// Reads `upload`'s header (up to Pixel Data) from `held`, the file's bytes when the caller
/// still has them, or else back from storage, streamed; then seals its patient attributes.
/// A storage error is returned; a file that does not parse is not an error but an
/// `unreadable` row to write.
pub async fn prepare(
    ctx: &UploadContext,
    store: &BlobStore,
    upload: &Upload,
    sha256: &str,
    held: Option<Bytes>,
) -> Result<Prepared, AppError> {
    let parsed = match held {
        Some(bytes) => {
            tokio::task::spawn_blocking(move || dicom::read(std::io::Cursor::new(bytes)))
        }
        None => {
            let (_, stream) = store.get(&upload.object_key, None).await?;
            let reader = StreamReader::new(stream.map_err(std::io::Error::other));
            let bridge = SyncIoBridge::new(reader);
            tokio::task::spawn_blocking(move || dicom::read(std::io::BufReader::new(bridge)))
        }
    }
    .await
    .map_err(|e| AppError::internal(format!("DICOM reader stopped: {e}")))?;
    let sealed = match &parsed {
        Ok(Parsed::Instance(header)) if !header.patient.is_empty() => {
            Some(seal_patient(ctx, upload.id.as_str(), &header.patient)?)
        }
        _ => None,
    };
    Ok(Prepared {
        upload: upload.clone(),
        sha256: sha256.to_string(),
        parsed,
        sealed,
    })
}

impl Prepared {
    /// Writes the row once (a retried completion finds it there), inside the caller's
    /// transaction: completion writes it with the upload's verdict, in one commit.
    pub fn record(
        &self,
        conn: &mut DbConnection,
        now: chrono::NaiveDateTime,
    ) -> Result<IndexState, AppError> {
        record(
            conn,
            &self.upload,
            &self.sha256,
            &self.parsed,
            self.sealed.as_deref(),
            now,
        )
    }
}

/// Indexes `upload` (completed, with its SHA-256) once, in its own transaction.
pub async fn index(
    ctx: &UploadContext,
    store: &BlobStore,
    upload: &Upload,
    sha256: &str,
) -> Result<IndexState, AppError> {
    let prepared = prepare(ctx, store, upload, sha256, None).await?;
    let now = ctx.clock.now_naive();
    ctx.db
        .run(move |conn| crate::infra::db::write_tx(conn, |conn| prepared.record(conn, now)))
        .await
}

/// Indexes completed DICOM uploads that have no row (storage could not be read when they
/// completed); the cleanup worker calls this on every pass. Returns how many it indexed.
pub async fn index_missing(
    ctx: &UploadContext,
    stores: &mut Stores<'_>,
) -> Result<usize, AppError> {
    const BATCH: i64 = 50;
    // The stored extensions the sniffer takes as DICOM, from the one allow-list.
    let dicom: Vec<&'static str> = std::iter::once(UNNAMED_DICOM)
        .chain(ALLOWED_EXTENSIONS.iter().copied())
        .filter(|ext| FileKind::from_extension(ext) == Some(FileKind::Dicom))
        .collect();
    let ids = ctx
        .db
        .run(move |conn| repo::unindexed(conn, &dicom, UploadStatus::Completed.as_str(), BATCH))
        .await?;
    let mut done = 0;
    for id in ids {
        let lookup = UploadId::from_db(id);
        let Some(upload) = ctx.db.run(move |conn| model::find(conn, &lookup)).await? else {
            continue;
        };
        let Some(sha256) = upload.sha256.clone() else {
            continue;
        };
        // A bucket that cannot be opened is skipped for this pass, not the others.
        let Ok(store) = stores.open(&upload.bucket_id).await? else {
            continue;
        };
        match index(ctx, &store, &upload, &sha256).await {
            Ok(_) => done += 1,
            Err(e) => {
                tracing::warn!(upload = %upload.id, error = %e, "DICOM header still not indexed");
            }
        }
    }
    Ok(done)
}

fn seal_patient(
    ctx: &UploadContext,
    upload_id: &str,
    patient: &PatientAttributes,
) -> Result<Vec<u8>, AppError> {
    let plain = serde_json::to_vec(patient).map_err(AppError::internal)?;
    secrets::seal(&ctx.keyring, &seal_context(upload_id), &plain).map_err(AppError::internal)
}

/// Opens an instance's sealed patient attributes (for the owner and admins only; the
/// caller decides).
pub fn open_patient(
    ctx: &UploadContext,
    upload_id: &str,
    sealed: &[u8],
) -> Result<PatientAttributes, AppError> {
    let plain = secrets::open(&ctx.keyring, &seal_context(upload_id), sealed)
        .map_err(AppError::internal)?;
    serde_json::from_slice(plain.expose_secret()).map_err(AppError::internal)
}

fn record(
    conn: &mut DbConnection,
    upload: &Upload,
    sha256: &str,
    parsed: &Result<Parsed, Unreadable>,
    sealed: Option<&[u8]>,
    now: chrono::NaiveDateTime,
) -> Result<IndexState, AppError> {
    if repo::exists(conn, upload.id.as_str())? {
        return Ok(IndexState::Indexed);
    }
    let base = NewInstance {
        upload_id: upload.id.as_str(),
        user_id: upload.user_id.as_str(),
        state: IndexState::Unreadable.as_str(),
        indexed_at: now,
        ..NewInstance::default()
    };
    match parsed {
        Err(why) => {
            let detail = why.to_string();
            repo::insert(
                conn,
                &NewInstance {
                    detail: Some(&detail),
                    ..base
                },
            )?;
            Ok(IndexState::Unreadable)
        }
        Ok(Parsed::Directory(entries)) => {
            let folder = upload
                .relative_path
                .as_ref()
                .map(|p| p.parent().to_string())
                .unwrap_or_default();
            let paths: Vec<String> = entries
                .iter()
                .map(|e| {
                    if folder.is_empty() {
                        e.path.clone()
                    } else {
                        format!("{folder}/{}", e.path)
                    }
                })
                .collect();
            let rows: Vec<NewEntry<'_>> = entries
                .iter()
                .zip(&paths)
                .map(|(e, path)| NewEntry {
                    directory_upload_id: upload.id.as_str(),
                    referenced_path: path,
                    sop_instance_uid: e.sop_instance_uid.as_deref(),
                    study_uid: e.study_uid.as_deref(),
                })
                .collect();
            let detail = format!("lists {} files", paths.len());
            repo::insert(
                conn,
                &NewInstance {
                    state: IndexState::Directory.as_str(),
                    detail: Some(&detail),
                    ..base
                },
            )?;
            repo::insert_entries(conn, &rows)?;
            Ok(IndexState::Directory)
        }
        Ok(Parsed::Instance(header)) => {
            let (state, detail) = match repo::indexed_copy(
                conn,
                upload.user_id.as_str(),
                &header.sop_instance_uid,
            )? {
                None => (IndexState::Indexed, None),
                Some(copy) => {
                    let first = copy.relative_path.unwrap_or(copy.filename);
                    if copy.sha256.as_deref() == Some(sha256) {
                        (
                            IndexState::Duplicate,
                            Some(format!("the same instance, byte for byte, as {first}")),
                        )
                    } else {
                        (
                            IndexState::Conflict,
                            Some(format!(
                                "its SOP Instance UID is already stored with different content ({first}); both are kept"
                            )),
                        )
                    }
                }
            };
            repo::insert(
                conn,
                &instance_row(base, header, state, detail.as_deref(), sealed),
            )?;
            Ok(state)
        }
    }
}

fn instance_row<'a>(
    base: NewInstance<'a>,
    header: &'a InstanceHeader,
    state: IndexState,
    detail: Option<&'a str>,
    sealed: Option<&'a [u8]>,
) -> NewInstance<'a> {
    NewInstance {
        state: state.as_str(),
        detail,
        study_uid: Some(&header.study_uid),
        series_uid: Some(&header.series_uid),
        sop_instance_uid: Some(&header.sop_instance_uid),
        sop_class_uid: header.sop_class_uid.as_deref(),
        transfer_syntax_uid: header.transfer_syntax_uid.as_deref(),
        modality: header.modality.as_deref(),
        study_date: header.study_date.as_deref(),
        study_time: header.study_time.as_deref(),
        study_description: header.study_description.as_deref(),
        series_description: header.series_description.as_deref(),
        series_number: header.series_number,
        instance_number: header.instance_number,
        number_of_frames: header.number_of_frames,
        body_part: header.body_part.as_deref(),
        patient_sealed: sealed,
        ..base
    }
}
