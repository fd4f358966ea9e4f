//! Read queries over DICOM studies: dicom_instances grouped by StudyInstanceUID, with the
//! uploads they came from and the DICOMDIR entries that say what a CD held.
//!
//! An instance counts in a study when its upload is completed and its row is `indexed`
//! (duplicates, conflicts and unreadable files are listed as problems, never counted).
//! Counts come from `study_slices`, which database triggers keep in step with the
//! instances and their uploads; lists of instances come from the instances themselves.
//! `owner` scopes every query: `Some(user)` is that user's rows, `None` everyone's (the
//! caller decides who may ask for that). Aggregates are the portable ones (COUNT, MIN,
//! MAX, SUM cast to BIGINT); lists of values are loaded as distinct pairs and grouped by
//! the caller, so both backends run the same SQL.

use chrono::NaiveDateTime;
use diesel::dsl::{count, count_star, max, min, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::infra::db::schema::{dicom_instances, dicomdir_entries, study_slices, uploads};
use crate::infra::db::{DbConnection, DbError};

const INDEXED: &str = "indexed";
/// Every other state, named so that the study index can be searched for them (a `!=` would
/// read the whole study).
const NOT_COUNTED: [&str; 4] = ["unreadable", "duplicate", "conflict", "directory"];
const UNREADABLE: &str = "unreadable";
const DIRECTORY: &str = "directory";
const COMPLETED: &str = "completed";

/// Most values bound in one `IN (...)` list: SQLite's limit on parameters is far above it,
/// and PostgreSQL takes the list as one array either way.
const IN_CHUNK: usize = 900;

/// Runs `$load` on `$query`, narrowed to `$owner`'s rows when there is an owner: by the
/// instances' owner column, or by the one named first (`study_slices::user_id`).
macro_rules! scoped {
    ($query:expr, $owner:expr, |$q:ident| $load:expr) => {
        scoped!(dicom_instances::user_id => $query, $owner, |$q| $load)
    };
    ($column:path => $query:expr, $owner:expr, |$q:ident| $load:expr) => {
        match $owner {
            Some(owner) => {
                let $q = $query.filter($column.eq(owner));
                $load
            }
            None => {
                let $q = $query;
                $load
            }
        }
    };
}

/// Indexed instances of completed uploads: what counts in a study.
macro_rules! counted {
    () => {
        dicom_instances::table
            .inner_join(uploads::table)
            .filter(dicom_instances::state.eq(INDEXED))
            .filter(uploads::status.eq(COMPLETED))
            .filter(dicom_instances::study_uid.is_not_null())
    };
}

/// One study as the list shows it.
#[derive(Debug, Clone, Queryable)]
pub struct StudyRow {
    pub study_uid: String,
    pub instances: i64,
    pub series: i64,
    pub bytes: i64,
    pub study_date: Option<String>,
    pub description: Option<String>,
    pub first_upload: Option<NaiveDateTime>,
    pub last_completion: Option<NaiveDateTime>,
}

/// How many studies there are in scope.
pub fn study_count(conn: &mut DbConnection, owner: Option<&str>) -> Result<i64, DbError> {
    let n = scoped!(study_slices::user_id => study_slices::table, owner, |q| q
        .select(count(study_slices::study_uid).aggregate_distinct())
        .first(conn))?;
    Ok(n)
}

/// `limit` studies in scope from `offset`, newest first upload first, with their counts
/// summed from their slices.
pub fn list(
    conn: &mut DbConnection,
    owner: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<Vec<StudyRow>, DbError> {
    let (offset, limit) = (bound(offset), bound(limit));
    let rows = scoped!(study_slices::user_id => study_slices::table, owner, |q| q
        .group_by(study_slices::study_uid)
        .select((
            study_slices::study_uid,
            sql::<BigInt>("CAST(SUM(instances) AS BIGINT)"),
            // '' stands for no series (the slices' key cannot hold NULL).
            sql::<BigInt>("COUNT(DISTINCT NULLIF(series_uid, ''))"),
            sql::<BigInt>("CAST(SUM(bytes) AS BIGINT)"),
            min(study_slices::study_date),
            max(study_slices::study_description),
            min(study_slices::first_upload),
            max(study_slices::last_completion),
        ))
        .order((
            min(study_slices::first_upload).desc(),
            study_slices::study_uid.asc(),
        ))
        .limit(limit)
        .offset(offset)
        .load::<StudyRow>(conn))?;
    Ok(rows)
}

/// A count for SQL: one past `i64::MAX` is as good as none.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A (study, modality, uploader id) triple as the facets query returns it.
pub type Facet = (String, Option<String>, String);

/// Distinct (study, modality, uploader) triples of `studies` in scope, for the list's
/// modality and uploader columns, grouped by the caller.
pub fn facets(
    conn: &mut DbConnection,
    owner: Option<&str>,
    studies: &[String],
) -> Result<Vec<Facet>, DbError> {
    let mut out = Vec::new();
    for chunk in studies.chunks(IN_CHUNK) {
        let base = study_slices::table.filter(study_slices::study_uid.eq_any(chunk));
        let rows: Vec<(String, String, String)> = scoped!(study_slices::user_id => base, owner, |q| q
            .select((
                study_slices::study_uid,
                study_slices::modality,
                study_slices::user_id,
            ))
            .distinct()
            .load(conn))?;
        out.extend(
            rows.into_iter()
                .map(|(study, modality, user)| (study, none_if_empty(modality), user)),
        );
    }
    Ok(out)
}

/// The batches the counted instances of `studies` in scope came in.
pub fn batches_of(
    conn: &mut DbConnection,
    owner: Option<&str>,
    studies: &[String],
) -> Result<Vec<String>, DbError> {
    let mut out = Vec::new();
    for chunk in studies.chunks(IN_CHUNK) {
        let base = study_slices::table
            .filter(study_slices::study_uid.eq_any(chunk))
            .filter(study_slices::batch_id.ne(""));
        out.extend(scoped!(study_slices::user_id => base, owner, |q| q
            .select(study_slices::batch_id)
            .distinct()
            .load::<String>(conn))?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The slices' key holds '' where the header had no value.
fn none_if_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// One slice of a study's counted instances: those of one series, uploader, modality and
/// batch, with their counts and the values the study page summarises.
#[derive(Debug, Clone)]
pub struct SliceRow {
    pub series_uid: Option<String>,
    pub user_id: String,
    pub modality: Option<String>,
    pub batch_id: Option<String>,
    pub instances: i64,
    pub bytes: i64,
    pub series_number: Option<i32>,
    pub series_description: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub first_upload: Option<NaiveDateTime>,
    pub last_completion: Option<NaiveDateTime>,
}

type SliceColumns = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

/// The study's counted instances in slices (a handful of rows whatever the study's size,
/// kept by the database as instances come and go): its counts, series, modalities,
/// uploaders and batches.
pub fn slices(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
) -> Result<Vec<SliceRow>, DbError> {
    let base = study_slices::table.filter(study_slices::study_uid.eq(study));
    let rows: Vec<SliceColumns> = scoped!(study_slices::user_id => base, owner, |q| q
        .select((
            study_slices::series_uid,
            study_slices::user_id,
            study_slices::modality,
            study_slices::batch_id,
            study_slices::instances,
            study_slices::bytes,
            study_slices::series_number,
            study_slices::series_description,
            study_slices::study_date,
            study_slices::study_description,
            study_slices::first_upload,
            study_slices::last_completion,
        ))
        .load(conn))?;
    Ok(rows
        .into_iter()
        .map(|r| SliceRow {
            series_uid: none_if_empty(r.0),
            user_id: r.1,
            modality: none_if_empty(r.2),
            batch_id: none_if_empty(r.3),
            instances: r.4,
            bytes: r.5,
            series_number: r.6,
            series_description: r.7,
            study_date: r.8,
            study_description: r.9,
            first_upload: r.10,
            last_completion: r.11,
        })
        .collect())
}

/// How many of the study's index rows are `indexed`, whatever their upload's status (read
/// from the index alone): more than the counted ones means some are not, or not yet, stored.
pub fn indexed_count(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
) -> Result<i64, DbError> {
    let base = dicom_instances::table
        .filter(dicom_instances::study_uid.eq(study))
        .filter(dicom_instances::state.eq(INDEXED));
    let n = scoped!(base, owner, |q| q.select(count_star()).first(conn))?;
    Ok(n)
}

/// One DICOM upload of a study (any state), as the study page lists it.
#[derive(Debug, Clone, Queryable)]
pub struct FileRow {
    pub upload_id: String,
    pub user_id: String,
    pub filename: String,
    pub relative_path: Option<String>,
    pub declared_size: i64,
    pub sha256: Option<String>,
    pub status: String,
    pub scan_status: Option<String>,
    pub batch_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub state: String,
    pub detail: Option<String>,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub modality: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
}

macro_rules! file_columns {
    () => {
        (
            uploads::id,
            uploads::user_id,
            uploads::filename,
            uploads::relative_path,
            uploads::declared_size,
            uploads::sha256,
            uploads::status,
            uploads::scan_status,
            uploads::batch_id,
            uploads::created_at,
            uploads::completed_at,
            dicom_instances::state,
            dicom_instances::detail,
            dicom_instances::study_uid,
            dicom_instances::series_uid,
            dicom_instances::sop_instance_uid,
            dicom_instances::modality,
            dicom_instances::study_date,
            dicom_instances::study_description,
            dicom_instances::series_description,
            dicom_instances::series_number,
            dicom_instances::instance_number,
        )
    };
}

/// By series, then instance number: the order of `dicom_instances_study_order_idx`, so a
/// page of instances is read in order rather than sorted.
macro_rules! file_order {
    () => {
        (
            dicom_instances::series_number.asc(),
            dicom_instances::series_uid.asc(),
            dicom_instances::instance_number.asc(),
            dicom_instances::upload_id.asc(),
        )
    };
}

/// The study's counted instances by series then instance number: `limit` of them from
/// `offset`, or all with no limit.
pub fn instances(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
    offset: u64,
    limit: Option<u64>,
) -> Result<Vec<FileRow>, DbError> {
    let offset = bound(offset);
    // An OFFSET needs a LIMIT on SQLite; i64::MAX stands for none on both backends.
    let limit = limit.map_or(i64::MAX, bound);
    let base = counted!().filter(dicom_instances::study_uid.eq(study));
    let rows = scoped!(base, owner, |q| q
        .order(file_order!())
        .select(file_columns!())
        .limit(limit)
        .offset(offset)
        .load::<FileRow>(conn))?;
    Ok(rows)
}

/// A counted instance as the API lists it: only the columns it answers with.
#[derive(Debug, Clone, Queryable)]
pub struct InstanceRef {
    pub upload_id: String,
    pub sop_instance_uid: Option<String>,
    pub series_uid: Option<String>,
    pub instance_number: Option<i32>,
    pub relative_path: Option<String>,
    pub declared_size: i64,
    pub sha256: Option<String>,
}

/// `limit` counted instances of the study from `offset`, by series then instance number,
/// in a few columns.
pub fn instance_refs(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
    offset: u64,
    limit: u64,
) -> Result<Vec<InstanceRef>, DbError> {
    let (offset, limit) = (bound(offset), bound(limit));
    let base = counted!().filter(dicom_instances::study_uid.eq(study));
    let rows = scoped!(base, owner, |q| q
        .order(file_order!())
        .limit(limit)
        .offset(offset)
        .select((
            uploads::id,
            dicom_instances::sop_instance_uid,
            dicom_instances::series_uid,
            dicom_instances::instance_number,
            uploads::relative_path,
            uploads::declared_size,
            uploads::sha256,
        ))
        .load::<InstanceRef>(conn))?;
    Ok(rows)
}

/// Uploads whose header names `study` but that do not count in it: duplicates and
/// conflicts, and, with `unstored`, indexed files whose upload is not (or not yet) stored
/// (the caller knows from the counts whether there are any: finding them reads every
/// instance's upload).
pub fn uncounted(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
    unstored: bool,
) -> Result<Vec<FileRow>, DbError> {
    let base = dicom_instances::table
        .inner_join(uploads::table)
        .filter(dicom_instances::study_uid.eq(study));
    let mut rows = scoped!(base, owner, |q| q
        .filter(dicom_instances::state.eq_any(NOT_COUNTED))
        .order(file_order!())
        .select(file_columns!())
        .load::<FileRow>(conn))?;
    if unstored {
        rows.extend(scoped!(base, owner, |q| q
            .filter(dicom_instances::state.eq(INDEXED))
            .filter(uploads::status.ne(COMPLETED))
            .order(file_order!())
            .select(file_columns!())
            .load::<FileRow>(conn))?);
    }
    Ok(rows)
}

/// Files of `batches` whose header could not be read (they name no study, so the study
/// page finds them through the batches its instances came in).
pub fn unreadable_in(
    conn: &mut DbConnection,
    owner: Option<&str>,
    batches: &[String],
) -> Result<Vec<FileRow>, DbError> {
    let mut out = Vec::new();
    for chunk in batches.chunks(IN_CHUNK) {
        let base = dicom_instances::table
            .inner_join(uploads::table)
            .filter(dicom_instances::state.eq(UNREADABLE))
            // Matched as an expression, not through the batch index: SQLite, which keeps no
            // statistics here, would otherwise read every upload of the batch to find its
            // few unreadable ones.
            .filter(uploads::batch_id.concat("").eq_any(chunk));
        out.extend(scoped!(base, owner, |q| q
            .order((uploads::relative_path.asc(), uploads::id.asc()))
            .select(file_columns!())
            .load::<FileRow>(conn))?);
    }
    Ok(out)
}

/// The sealed patient attributes of the study's first counted instance in file order, with
/// its upload id (the seal is bound to it). File order is an index's order, so this reads
/// one row where the earliest-indexed instance took a pass over the whole study.
pub fn first_sealed_patient(
    conn: &mut DbConnection,
    owner: Option<&str>,
    study: &str,
) -> Result<Option<(String, Vec<u8>)>, DbError> {
    let base = counted!()
        .filter(dicom_instances::study_uid.eq(study))
        .filter(dicom_instances::patient_sealed.is_not_null());
    let row: Option<(String, Option<Vec<u8>>)> = scoped!(base, owner, |q| q
        .order(file_order!())
        .select((dicom_instances::upload_id, dicom_instances::patient_sealed))
        .first(conn)
        .optional())?;
    Ok(row.and_then(|(id, sealed)| sealed.map(|s| (id, s))))
}

/// A completed DICOMDIR upload.
#[derive(Debug, Clone, Queryable)]
pub struct DirectoryRow {
    pub upload_id: String,
    pub user_id: String,
    pub batch_id: Option<String>,
    pub filename: String,
    pub relative_path: Option<String>,
}

macro_rules! directories {
    () => {
        dicom_instances::table
            .inner_join(uploads::table)
            .filter(dicom_instances::state.eq(DIRECTORY))
            .filter(uploads::status.eq(COMPLETED))
    };
}

macro_rules! directory_columns {
    () => {
        (
            uploads::id,
            uploads::user_id,
            uploads::batch_id,
            uploads::filename,
            uploads::relative_path,
        )
    };
}

/// The completed DICOMDIRs that concern `studies`: those sent in one of `batches` (where
/// their instances came in) and those that list one of the studies.
pub fn directories_for(
    conn: &mut DbConnection,
    owner: Option<&str>,
    studies: &[String],
    batches: &[String],
) -> Result<Vec<DirectoryRow>, DbError> {
    let mut listing: Vec<String> = Vec::new();
    for chunk in studies.chunks(IN_CHUNK) {
        listing.extend(
            dicomdir_entries::table
                .filter(dicomdir_entries::study_uid.eq_any(chunk))
                .select(dicomdir_entries::directory_upload_id)
                .distinct()
                .load::<String>(conn)?,
        );
    }
    let mut out: Vec<DirectoryRow> = Vec::new();
    for chunk in batches.chunks(IN_CHUNK) {
        // As in `unreadable_in`: a batch's few DICOMDIRs, not its every upload.
        let base = directories!().filter(uploads::batch_id.concat("").eq_any(chunk));
        out.extend(scoped!(base, owner, |q| q
            .select(directory_columns!())
            .load::<DirectoryRow>(conn))?);
    }
    for chunk in listing.chunks(IN_CHUNK) {
        let base = directories!().filter(uploads::id.eq_any(chunk));
        out.extend(scoped!(base, owner, |q| q
            .select(directory_columns!())
            .load::<DirectoryRow>(conn))?);
    }
    out.sort_by(|a, b| a.upload_id.cmp(&b.upload_id));
    out.dedup_by(|a, b| a.upload_id == b.upload_id);
    Ok(out)
}

/// One file a DICOMDIR lists.
#[derive(Debug, Clone, Queryable)]
pub struct EntryRow {
    pub directory_upload_id: String,
    pub referenced_path: String,
    pub sop_instance_uid: Option<String>,
    pub study_uid: Option<String>,
}

/// The entries of the given DICOMDIR uploads.
pub fn entries_of(
    conn: &mut DbConnection,
    directories: &[String],
) -> Result<Vec<EntryRow>, DbError> {
    let mut out = Vec::new();
    for chunk in directories.chunks(IN_CHUNK) {
        out.extend(
            dicomdir_entries::table
                .filter(dicomdir_entries::directory_upload_id.eq_any(chunk))
                .order((
                    dicomdir_entries::directory_upload_id.asc(),
                    dicomdir_entries::referenced_path.asc(),
                ))
                .select((
                    dicomdir_entries::directory_upload_id,
                    dicomdir_entries::referenced_path,
                    dicomdir_entries::sop_instance_uid,
                    dicomdir_entries::study_uid,
                ))
                .load::<EntryRow>(conn)?,
        );
    }
    Ok(out)
}

/// A counted instance, as the completeness check matches DICOMDIR entries against it.
#[derive(Debug, Clone, Queryable)]
pub struct StoredRow {
    pub study_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub relative_path: Option<String>,
    pub batch_id: Option<String>,
}

macro_rules! stored_columns {
    () => {
        (
            dicom_instances::study_uid,
            dicom_instances::sop_instance_uid,
            uploads::relative_path,
            uploads::batch_id,
        )
    };
}

/// Counted instances in scope that belong to one of `studies` or came in one of `batches`.
pub fn stored_in(
    conn: &mut DbConnection,
    owner: Option<&str>,
    studies: &[String],
    batches: &[String],
) -> Result<Vec<StoredRow>, DbError> {
    let mut out = Vec::new();
    for chunk in studies.chunks(IN_CHUNK) {
        let base = counted!().filter(dicom_instances::study_uid.eq_any(chunk));
        out.extend(scoped!(base, owner, |q| q
            .select(stored_columns!())
            .load::<StoredRow>(conn))?);
    }
    for chunk in batches.chunks(IN_CHUNK) {
        let base = counted!().filter(uploads::batch_id.eq_any(chunk));
        out.extend(scoped!(base, owner, |q| q
            .select(stored_columns!())
            .load::<StoredRow>(conn))?);
    }
    Ok(out)
}
