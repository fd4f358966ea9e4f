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
/// A counted instance as the API lists it.
pub use crate::infra::db::repo::studies::InstanceRef;
use crate::infra::db::repo::studies::{
    self as repo, DirectoryRow, EntryRow, FileRow, SliceRow, StoredRow, StudyRow,
};
use crate::infra::db::repo::users;
use crate::infra::db::{DbConnection, DbError};
use crate::infra::dicom::PatientAttributes;

mod list;
pub use list::{ListPage, StudyList, list};

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

/// Which of a study's counted instances to read: a page of them, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePage {
    pub offset: u64,
    pub limit: Option<u64>,
}

impl FilePage {
    /// Files on one page of the study page.
    pub const SIZE: u64 = 250;

    /// Every instance (the API and the ZIP).
    pub const fn all() -> Self {
        Self {
            offset: 0,
            limit: None,
        }
    }

    /// No instances: the study's counts, series and problems only.
    pub const fn none() -> Self {
        Self {
            offset: 0,
            limit: Some(0),
        }
    }

    /// Page `number` (1-based; 0 counts as 1) of [`Self::SIZE`] files.
    pub fn number(number: u64) -> Self {
        Self {
            offset: number.saturating_sub(1).saturating_mul(Self::SIZE),
            limit: Some(Self::SIZE),
        }
    }
}

/// Whether to read a study's problems (duplicates, conflicts, unreadable and unstored
/// files): the page lists them; the API and the ZIP do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problems {
    Listed,
    Skipped,
}

/// One study with everything its page shows.
#[derive(Debug, Clone)]
pub struct StudyDetail {
    pub summary: StudySummary,
    pub series: Vec<Series>,
    /// The counted instances asked for (`FilePage`), by series and instance number.
    pub files: Vec<StudyFile>,
    /// Which instances `files` holds.
    pub page: FilePage,
    /// Duplicates, conflicts, unreadable files and files not stored, by series and number
    /// (none when they were not asked for).
    pub problems: Vec<StudyFile>,
    /// Paths DICOMDIRs list that were never stored.
    pub missing: Vec<String>,
    /// The DICOMDIRs that concern the study.
    pub directories: Vec<Directory>,
    /// Opened only when the scope allows it.
    pub patient: Option<PatientAttributes>,
}

impl StudyDetail {
    pub fn instances(&self) -> impl Iterator<Item = &StudyFile> {
        self.files.iter()
    }

    pub fn problems(&self) -> impl Iterator<Item = &StudyFile> {
        self.problems.iter()
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

/// Stored rows as the completeness check reads them.
fn as_stored(rows: &[StoredRow]) -> Vec<Stored<'_>> {
    rows.iter()
        .filter_map(|s| {
            Some(Stored {
                study: s.study_uid.as_deref()?,
                sop: s.sop_instance_uid.as_deref(),
                path: s.relative_path.as_deref(),
                batch: s.batch_id.as_deref(),
            })
        })
        .collect()
}

/// One study in scope with `page` of its instances, or `NotFound` (also for a study that
/// exists only outside the scope).
pub async fn detail(
    ctx: &UploadContext,
    scope: &StudyScope,
    uid: &DicomUid,
    page: FilePage,
) -> Result<StudyDetail, AppError> {
    let (scope, uid) = (scope.clone(), uid.clone());
    let open = scope.opens_patient();
    let (mut detail, sealed) = ctx
        .db
        .run(move |conn| {
            let detail = read_detail(conn, &scope, uid.as_str(), page, Problems::Listed)?
                .ok_or(AppError::NotFound)?;
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

/// One study in scope with the window `page` of its counted instances as the API lists
/// them (a few columns per instance, read in one query), or `NotFound`.
pub async fn with_instances(
    ctx: &UploadContext,
    scope: &StudyScope,
    uid: &DicomUid,
    page: ListPage,
) -> Result<(StudyDetail, Vec<InstanceRef>), AppError> {
    let (scope, uid) = (scope.clone(), uid.clone());
    ctx.db
        .run(move |conn| {
            let detail = read_detail(
                conn,
                &scope,
                uid.as_str(),
                FilePage::none(),
                Problems::Skipped,
            )?
            .ok_or(AppError::NotFound)?;
            let instances = repo::instance_refs(
                conn,
                scope.owner_id(),
                uid.as_str(),
                page.offset,
                page.limit,
            )?;
            Ok::<_, AppError>((detail, instances))
        })
        .await
}

/// The study's counts and series from its summary rows, and only the instances `page` asks
/// for: a handful of queries, and rows read in proportion to the page, not the study.
pub(crate) fn read_detail(
    conn: &mut DbConnection,
    scope: &StudyScope,
    uid: &str,
    page: FilePage,
    problems: Problems,
) -> Result<Option<StudyDetail>, DbError> {
    let owner = scope.owner_id();
    let slices = repo::slices(conn, owner, uid)?;
    // A study with nothing counted exists only through its problems, so they are read.
    let uncounted = if problems == Problems::Listed || slices.is_empty() {
        let counted: i64 = slices.iter().map(|s| s.instances).sum();
        let unstored = repo::indexed_count(conn, owner, uid)? > counted;
        repo::uncounted(conn, owner, uid, unstored)?
    } else {
        Vec::new()
    };
    if slices.is_empty() && uncounted.is_empty() {
        return Ok(None);
    }
    let batches: Vec<String> = slices
        .iter()
        .filter_map(|s| s.batch_id.clone())
        .chain(uncounted.iter().filter_map(|r| r.batch_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let unreadable = match problems {
        Problems::Listed => repo::unreadable_in(conn, owner, &batches)?,
        Problems::Skipped => Vec::new(),
    };
    let directories = repo::directories_for(conn, owner, &[uid.to_string()], &batches)?;
    let missing = if directories.is_empty() {
        Vec::new()
    } else {
        let entries = entries_of(conn, &directories)?;
        let stored = repo::stored_in(conn, owner, &[uid.to_string()], &[])?;
        completeness::missing(
            &as_entries(&directories, &entries),
            &as_stored(&stored),
            Some(uid),
        )
        .remove(uid)
        .unwrap_or_default()
    };
    let ids: Vec<&str> = slices
        .iter()
        .map(|s| s.user_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let emails = users::emails_by_id(conn, &ids)?;
    let summary = StudySummary::from_slices(uid, &slices, &emails, missing.len());
    let series = Series::from_slices(&slices);
    let files = repo::instances(conn, owner, uid, page.offset, page.limit)?
        .into_iter()
        .map(StudyFile::from_row)
        .collect();
    let mut problems: Vec<StudyFile> = uncounted
        .into_iter()
        .chain(unreadable)
        .map(StudyFile::from_row)
        .collect();
    problems.sort_by(|a, b| {
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
        page,
        problems,
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

impl StudySummary {
    fn from_row(
        row: StudyRow,
        modalities: impl IntoIterator<Item = String>,
        uploaders: impl IntoIterator<Item = String>,
        missing: usize,
    ) -> Self {
        Self {
            study_uid: row.study_uid,
            instances: u64::try_from(row.instances).unwrap_or(0),
            series: u64::try_from(row.series).unwrap_or(0),
            bytes: u64::try_from(row.bytes).unwrap_or(0),
            study_date: row.study_date,
            description: row.description,
            modalities: modalities.into_iter().collect(),
            first_upload: row.first_upload,
            last_completion: row.last_completion,
            uploaders: uploaders.into_iter().collect(),
            missing,
        }
    }

    /// The study's summary from its slices (none when nothing of it counts: all
    /// duplicates, conflicts or unfinished files).
    fn from_slices(
        uid: &str,
        slices: &[SliceRow],
        emails: &HashMap<String, String>,
        missing: usize,
    ) -> Self {
        let series: BTreeSet<&str> = slices
            .iter()
            .filter_map(|s| s.series_uid.as_deref())
            .collect();
        let modalities: BTreeSet<String> =
            slices.iter().filter_map(|s| s.modality.clone()).collect();
        let uploaders: BTreeSet<String> = slices
            .iter()
            .map(|s| {
                emails
                    .get(&s.user_id)
                    .cloned()
                    .unwrap_or_else(|| s.user_id.clone())
            })
            .collect();
        let size = |v: i64| u64::try_from(v).unwrap_or(0);
        Self {
            study_uid: uid.to_string(),
            instances: slices.iter().map(|s| size(s.instances)).sum(),
            series: series.len() as u64,
            bytes: slices.iter().map(|s| size(s.bytes)).sum(),
            study_date: slices.iter().filter_map(|s| s.study_date.clone()).min(),
            description: slices
                .iter()
                .filter_map(|s| s.study_description.clone())
                .max(),
            modalities: modalities.into_iter().collect(),
            first_upload: slices.iter().filter_map(|s| s.first_upload).min(),
            last_completion: slices.iter().filter_map(|s| s.last_completion).max(),
            uploaders: uploaders.into_iter().collect(),
            missing,
        }
    }
}

impl Series {
    /// The series of the study's slices, by number then UID.
    fn from_slices(slices: &[SliceRow]) -> Vec<Self> {
        let mut by_uid: BTreeMap<&str, Self> = BTreeMap::new();
        for slice in slices {
            let Some(uid) = slice.series_uid.as_deref() else {
                continue;
            };
            let s = by_uid.entry(uid).or_insert_with(|| Self {
                series_uid: uid.to_string(),
                number: slice.series_number,
                description: None,
                modality: None,
                instances: 0,
                bytes: 0,
            });
            s.number = match (s.number, slice.series_number) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.description = s.description.clone().max(slice.series_description.clone());
            s.modality = s.modality.clone().max(slice.modality.clone());
            s.instances += u64::try_from(slice.instances).unwrap_or(0);
            s.bytes += u64::try_from(slice.bytes).unwrap_or(0);
        }
        let mut out: Vec<Self> = by_uid.into_values().collect();
        out.sort_by(|a, b| (a.number, &a.series_uid).cmp(&(b.number, &b.series_uid)));
        out
    }
}
