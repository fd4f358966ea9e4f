//! Studies as the pages and the API read them: the list with counts and a completeness
//! verdict, and one study with its series, files, problems and the DICOMDIR entries that
//! were never sent. Patient attributes are opened only when the scope allows it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDateTime;

use super::completeness::{self, Entry, Stored};
use super::index::{self, IndexState};
use super::scope::StudyScope;
use crate::app::error::AppError;
use crate::app::uploads::UploadContext;
use crate::app::uploads::model::{ScanStatus, UploadStatus};
use crate::domain::DicomUid;
use crate::infra::db::repo::studies::{self as repo, DirectoryRow, EntryRow, FileRow};
use crate::infra::db::repo::users;
use crate::infra::db::{DbConnection, DbError};
use crate::infra::dicom::PatientAttributes;

mod list;
pub use list::list;

/// One study in the list.
#[derive(Debug, Clone)]
pub struct StudySummary {
    pub study_uid: String,
    pub instances: u64,
    pub series: u64,
    pub bytes: u64,
    /// DICOM DA text (`YYYYMMDD`) as the header gave it.
    pub study_date: Option<String>,
    pub description: Option<String>,
    pub modalities: Vec<String>,
    pub first_upload: Option<NaiveDateTime>,
    pub last_completion: Option<NaiveDateTime>,
    /// Who sent it (emails; the id of an account that is gone).
    pub uploaders: Vec<String>,
    /// DICOMDIR entries of the study that were never stored.
    pub missing: usize,
}

impl StudySummary {
    /// Nothing a DICOMDIR lists is missing (a study sent without one is complete).
    pub fn complete(&self) -> bool {
        self.missing == 0
    }
}

/// One series of a study (counted instances only).
#[derive(Debug, Clone)]
pub struct Series {
    pub series_uid: String,
    pub number: Option<i32>,
    pub description: Option<String>,
    pub modality: Option<String>,
    pub instances: u64,
    pub bytes: u64,
}

/// One DICOM upload that names the study, or an unreadable file from one of its batches.
#[derive(Debug, Clone)]
pub struct StudyFile {
    pub upload_id: String,
    pub filename: String,
    pub relative_path: Option<String>,
    pub size: u64,
    pub sha256: Option<String>,
    pub status: Option<UploadStatus>,
    pub scan: Option<ScanStatus>,
    pub state: Option<IndexState>,
    /// Why it is a problem, written for the uploader.
    pub detail: Option<String>,
    pub series_uid: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    pub sop_instance_uid: Option<String>,
}

impl StudyFile {
    /// Counts in the study: stored (completed) and the first copy of its instance.
    pub fn counted(&self) -> bool {
        self.status == Some(UploadStatus::Completed) && self.state == Some(IndexState::Indexed)
    }

    /// A duplicate, a conflict or an unreadable header.
    pub fn is_problem(&self) -> bool {
        !matches!(self.state, Some(IndexState::Indexed))
    }

    fn from_row(row: FileRow) -> Self {
        Self {
            status: UploadStatus::parse(&row.status),
            scan: row.scan_status.as_deref().and_then(ScanStatus::parse),
            state: IndexState::parse(&row.state),
            size: u64::try_from(row.declared_size).unwrap_or(0),
            upload_id: row.upload_id,
            filename: row.filename,
            relative_path: row.relative_path,
            sha256: row.sha256,
            detail: row.detail,
            series_uid: row.series_uid,
            series_number: row.series_number,
            instance_number: row.instance_number,
            sop_instance_uid: row.sop_instance_uid,
        }
    }
}

/// One study with everything its page shows.
#[derive(Debug, Clone)]
pub struct StudyDetail {
    pub summary: StudySummary,
    pub series: Vec<Series>,
    /// Every file, counted or not, by series and instance number.
    pub files: Vec<StudyFile>,
    /// Paths DICOMDIRs list that were never stored.
    pub missing: Vec<String>,
    /// The DICOMDIRs that concern the study.
    pub directories: Vec<Directory>,
    /// Opened only when the scope allows it.
    pub patient: Option<PatientAttributes>,
}

impl StudyDetail {
    pub fn instances(&self) -> impl Iterator<Item = &StudyFile> {
        self.files.iter().filter(|f| f.counted())
    }

    pub fn problems(&self) -> impl Iterator<Item = &StudyFile> {
        self.files.iter().filter(|f| f.is_problem())
    }
}

/// A completed DICOMDIR upload.
#[derive(Debug, Clone)]
pub struct Directory {
    pub upload_id: String,
    pub filename: String,
    pub relative_path: Option<String>,
}

fn entries_of(
    conn: &mut DbConnection,
    directories: &[DirectoryRow],
) -> Result<Vec<EntryRow>, DbError> {
    let ids: Vec<String> = directories.iter().map(|d| d.upload_id.clone()).collect();
    repo::entries_of(conn, &ids)
}

fn as_entries<'a>(directories: &'a [DirectoryRow], entries: &'a [EntryRow]) -> Vec<Entry<'a>> {
    let batch_of: HashMap<&str, Option<&str>> = directories
        .iter()
        .map(|d| (d.upload_id.as_str(), d.batch_id.as_deref()))
        .collect();
    entries
        .iter()
        .map(|e| Entry {
            batch: batch_of
                .get(e.directory_upload_id.as_str())
                .copied()
                .flatten(),
            study: e.study_uid.as_deref(),
            sop: e.sop_instance_uid.as_deref(),
            path: &e.referenced_path,
        })
        .collect()
}

/// One study in scope, or `NotFound` (also for a study that exists only outside it).
pub async fn detail(
    ctx: &UploadContext,
    scope: &StudyScope,
    uid: &DicomUid,
) -> Result<StudyDetail, AppError> {
    let (scope, uid) = (scope.clone(), uid.clone());
    let open = scope.opens_patient();
    let (mut detail, sealed) = ctx
        .db
        .run(move |conn| {
            let detail = read_detail(conn, &scope, uid.as_str())?.ok_or(AppError::NotFound)?;
            let sealed = if open {
                repo::first_sealed_patient(conn, scope.owner_id(), uid.as_str())?
            } else {
                None
            };
            Ok::<_, AppError>((detail, sealed))
        })
        .await?;
    if let Some((upload_id, sealed)) = sealed {
        detail.patient = Some(index::open_patient(ctx, &upload_id, &sealed)?);
    }
    Ok(detail)
}

/// The study's rows, read in a handful of queries whatever its size.
pub(crate) fn read_detail(
    conn: &mut DbConnection,
    scope: &StudyScope,
    uid: &str,
) -> Result<Option<StudyDetail>, DbError> {
    let owner = scope.owner_id();
    let rows = repo::files(conn, owner, uid)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let batches: Vec<String> = rows
        .iter()
        .filter_map(|r| r.batch_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let unreadable = repo::unreadable_in(conn, owner, &batches)?;
    let directories = repo::directories_for(conn, owner, uid, &batches)?;
    let entries = entries_of(conn, &directories)?;
    let uploader_ids: Vec<&str> = rows
        .iter()
        .filter(|r| counts(r))
        .map(|r| r.user_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let emails = users::emails_by_id(conn, &uploader_ids)?;

    let counted: Vec<&FileRow> = rows.iter().filter(|r| counts(r)).collect();
    let stored: Vec<Stored<'_>> = counted
        .iter()
        .map(|r| Stored {
            study: uid,
            sop: r.sop_instance_uid.as_deref(),
            path: r.relative_path.as_deref(),
            batch: r.batch_id.as_deref(),
        })
        .collect();
    let missing = completeness::missing(&as_entries(&directories, &entries), &stored, Some(uid))
        .remove(uid)
        .unwrap_or_default();
    let summary = summarise(uid, &counted, &emails, missing.len());
    let series = series_of(&counted);
    let mut files: Vec<StudyFile> = rows
        .into_iter()
        .chain(unreadable)
        .map(StudyFile::from_row)
        .collect();
    files.sort_by(|a, b| {
        (
            a.series_number,
            &a.series_uid,
            a.instance_number,
            &a.relative_path,
        )
            .cmp(&(
                b.series_number,
                &b.series_uid,
                b.instance_number,
                &b.relative_path,
            ))
    });
    Ok(Some(StudyDetail {
        summary,
        series,
        files,
        missing,
        directories: directories
            .into_iter()
            .map(|d| Directory {
                upload_id: d.upload_id,
                filename: d.filename,
                relative_path: d.relative_path,
            })
            .collect(),
        patient: None,
    }))
}

/// The rule `repo::studies` applies in SQL, for rows read whole.
fn counts(row: &FileRow) -> bool {
    row.state == IndexState::Indexed.as_str() && row.status == UploadStatus::Completed.as_str()
}

fn summarise(
    uid: &str,
    counted: &[&FileRow],
    emails: &HashMap<String, String>,
    missing: usize,
) -> StudySummary {
    let series: BTreeSet<&str> = counted
        .iter()
        .filter_map(|r| r.series_uid.as_deref())
        .collect();
    let modalities: BTreeSet<String> = counted.iter().filter_map(|r| r.modality.clone()).collect();
    let uploaders: BTreeSet<String> = counted
        .iter()
        .map(|r| {
            emails
                .get(&r.user_id)
                .cloned()
                .unwrap_or_else(|| r.user_id.clone())
        })
        .collect();
    StudySummary {
        study_uid: uid.to_string(),
        instances: counted.len() as u64,
        series: series.len() as u64,
        bytes: counted
            .iter()
            .map(|r| u64::try_from(r.declared_size).unwrap_or(0))
            .sum(),
        study_date: counted.iter().filter_map(|r| r.study_date.clone()).min(),
        description: counted
            .iter()
            .filter_map(|r| r.study_description.clone())
            .max(),
        modalities: modalities.into_iter().collect(),
        first_upload: counted.iter().map(|r| r.created_at).min(),
        last_completion: counted.iter().filter_map(|r| r.completed_at).max(),
        uploaders: uploaders.into_iter().collect(),
        missing,
    }
}

fn series_of(counted: &[&FileRow]) -> Vec<Series> {
    let mut by_uid: BTreeMap<&str, Series> = BTreeMap::new();
    for row in counted {
        let Some(uid) = row.series_uid.as_deref() else {
            continue;
        };
        let s = by_uid.entry(uid).or_insert_with(|| Series {
            series_uid: uid.to_string(),
            number: row.series_number,
            description: row.series_description.clone(),
            modality: row.modality.clone(),
            instances: 0,
            bytes: 0,
        });
        s.instances += 1;
        s.bytes += u64::try_from(row.declared_size).unwrap_or(0);
    }
    let mut out: Vec<Series> = by_uid.into_values().collect();
    out.sort_by(|a, b| (a.number, &a.series_uid).cmp(&(b.number, &b.series_uid)));
    out
}
