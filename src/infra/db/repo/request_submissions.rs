//! The request_submissions table: one sender's visit through a request's link, and the
//! files it sent.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{dicom_instances, request_submissions, uploads};
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = request_submissions, treat_none_as_default_value = false)]
pub struct Row {
    pub id: String,
    pub request_id: String,
    pub receipt_number: String,
    pub sender_sealed: Vec<u8>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    pub receipt_hash: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &Row) -> Result<(), DbError> {
    diesel::insert_into(request_submissions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(request_submissions::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// The request's submissions, newest first.
pub fn of_request(conn: &mut DbConnection, request_id: &str) -> Result<Vec<Row>, DbError> {
    Ok(request_submissions::table
        .filter(request_submissions::request_id.eq(request_id))
        .select(Row::as_select())
        .order((
            request_submissions::started_at.desc(),
            request_submissions::id.desc(),
        ))
        .load(conn)?)
}

/// Every sealed sender record, for key rotation.
pub fn all_sealed(conn: &mut DbConnection) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    Ok(request_submissions::table
        .select((request_submissions::id, request_submissions::sender_sealed))
        .order(request_submissions::id.asc())
        .load(conn)?)
}

pub fn set_sealed(conn: &mut DbConnection, id: &str, sealed: Vec<u8>) -> Result<(), DbError> {
    diesel::update(request_submissions::table.find(id))
        .set(request_submissions::sender_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// Writes the receipt, once; false when the submission was already finished.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    receipt_hash: &str,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        request_submissions::table
            .find(id)
            .filter(request_submissions::finished_at.is_null()),
    )
    .set((
        request_submissions::finished_at.eq(now),
        request_submissions::receipt_hash.eq(receipt_hash),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// One file a submission sent, as its receipt and the owner's page show it.
#[derive(Debug, Clone, Queryable)]
pub struct FileRow {
    pub upload_id: String,
    pub submission_id: Option<String>,
    pub filename: String,
    pub relative_path: Option<String>,
    pub declared_size: i64,
    pub status: String,
    pub sha256: Option<String>,
    pub scan_status: Option<String>,
    pub created_at: NaiveDateTime,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

/// The files sent through a request (or through one of its submissions), oldest first.
pub fn files(
    conn: &mut DbConnection,
    request_id: &str,
    submission_id: Option<&str>,
) -> Result<Vec<FileRow>, DbError> {
    let mut query = uploads::table
        .left_join(dicom_instances::table)
        .filter(uploads::request_id.eq(request_id.to_string()))
        .select((
            uploads::id,
            uploads::submission_id,
            uploads::filename,
            uploads::relative_path,
            uploads::declared_size,
            uploads::status,
            uploads::sha256,
            uploads::scan_status,
            uploads::created_at,
            dicom_instances::study_uid.nullable(),
            dicom_instances::series_uid.nullable(),
            dicom_instances::sop_instance_uid.nullable(),
        ))
        .order((uploads::created_at.asc(), uploads::id.asc()))
        .into_boxed();
    if let Some(submission) = submission_id {
        query = query.filter(uploads::submission_id.eq(submission.to_string()));
    }
    Ok(query.load(conn)?)
}
