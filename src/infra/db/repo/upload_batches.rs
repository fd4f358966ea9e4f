//! The upload_batches table: one folder or CD sent at once, and the uploads that name it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{dicom_instances, upload_batches, uploads};
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = upload_batches)]
pub struct Row {
    pub id: String,
    pub user_id: String,
    pub bucket_id: String,
    pub declared_files: i64,
    pub declared_bytes: i64,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    /// Set for a batch a sender declared through an upload request.
    pub submission_id: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &Row) -> Result<(), DbError> {
    diesel::insert_into(upload_batches::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// How many batches a sender's visit has declared.
pub fn count_of_submission(conn: &mut DbConnection, submission: &str) -> Result<i64, DbError> {
    Ok(upload_batches::table
        .filter(upload_batches::submission_id.eq(submission))
        .count()
        .get_result(conn)?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(upload_batches::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Marks the batch finished, once; false when it already was.
pub fn finish(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let changed = diesel::update(
        upload_batches::table
            .find(id)
            .filter(upload_batches::finished_at.is_null()),
    )
    .set(upload_batches::finished_at.eq(now))
    .execute(conn)?;
    Ok(changed == 1)
}

/// One file of a batch, as its summary shows it.
#[derive(Debug, Clone, Queryable)]
pub struct FileRow {
    pub upload_id: String,
    pub filename: String,
    pub relative_path: Option<String>,
    pub declared_size: i64,
    pub status: String,
    pub status_reason: Option<String>,
    pub sha256: Option<String>,
    pub scan_status: Option<String>,
    pub dicom_state: Option<String>,
    pub dicom_detail: Option<String>,
}

macro_rules! file_columns {
    () => {
        (
            uploads::id,
            uploads::filename,
            uploads::relative_path,
            uploads::declared_size,
            uploads::status,
            uploads::status_reason,
            uploads::sha256,
            uploads::scan_status,
            dicom_instances::state.nullable(),
            dicom_instances::detail.nullable(),
        )
    };
}

/// Every upload that names the batch, by path then age (the newest attempt last).
pub fn files(conn: &mut DbConnection, batch_id: &str) -> Result<Vec<FileRow>, DbError> {
    Ok(uploads::table
        .left_join(dicom_instances::table)
        .filter(uploads::batch_id.eq(batch_id))
        .order((uploads::relative_path.asc(), uploads::created_at.asc()))
        .select(file_columns!())
        .load(conn)?)
}

/// The files of several batches at once (one page of the history), each with its batch id,
/// in the same order as `files`.
pub fn files_of(
    conn: &mut DbConnection,
    batch_ids: &[String],
) -> Result<Vec<(Option<String>, FileRow)>, DbError> {
    Ok(super::on_backend!(conn, |c| uploads::table
        .left_join(dicom_instances::table)
        .filter(uploads::batch_id.eq_any(batch_ids))
        .order((uploads::relative_path.asc(), uploads::created_at.asc()))
        .select((uploads::batch_id, file_columns!()))
        .load(c))?)
}

/// The batch ids among `ids` (the history page's batches), with their declared counts.
pub fn by_ids(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<Row>, DbError> {
    Ok(super::on_backend!(conn, |c| upload_batches::table
        .filter(upload_batches::id.eq_any(ids))
        .select(Row::as_select())
        .load(c))?)
}
