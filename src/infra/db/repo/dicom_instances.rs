//! The dicom_instances and dicomdir_entries tables: what the server read from completed
//! DICOM uploads. Written once per upload, at completion; the study pages read them
//! (`repo::studies`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{dicom_instances, dicomdir_entries, uploads};
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Default, Insertable)]
#[diesel(table_name = dicom_instances)]
pub struct NewInstance<'a> {
    pub upload_id: &'a str,
    pub user_id: &'a str,
    pub state: &'a str,
    pub detail: Option<&'a str>,
    pub study_uid: Option<&'a str>,
    pub series_uid: Option<&'a str>,
    pub sop_instance_uid: Option<&'a str>,
    pub sop_class_uid: Option<&'a str>,
    pub transfer_syntax_uid: Option<&'a str>,
    pub modality: Option<&'a str>,
    pub study_date: Option<&'a str>,
    pub study_time: Option<&'a str>,
    pub study_description: Option<&'a str>,
    pub series_description: Option<&'a str>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    pub number_of_frames: Option<i32>,
    pub body_part: Option<&'a str>,
    pub patient_sealed: Option<&'a [u8]>,
    pub indexed_at: NaiveDateTime,
    pub patient_id_blind: Option<&'a str>,
    pub accession_blind: Option<&'a str>,
    pub blind_key_id: Option<&'a str>,
}

/// Writes the row of an upload (the caller has checked it has none: `exists`).
pub fn insert(conn: &mut DbConnection, row: &NewInstance<'_>) -> Result<(), DbError> {
    diesel::insert_into(dicom_instances::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The first stored copy of a SOP instance, to tell a duplicate from a conflict.
#[derive(Debug, Clone, Queryable)]
pub struct IndexedCopy {
    pub upload_id: String,
    pub sha256: Option<String>,
    pub filename: String,
    pub relative_path: Option<String>,
}

/// The first indexed copy of a SOP instance among `user_id`'s uploads.
pub fn indexed_copy(
    conn: &mut DbConnection,
    user_id: &str,
    sop_instance_uid: &str,
) -> Result<Option<IndexedCopy>, DbError> {
    Ok(dicom_instances::table
        .inner_join(uploads::table)
        .filter(dicom_instances::user_id.eq(user_id))
        .filter(dicom_instances::sop_instance_uid.eq(sop_instance_uid))
        .filter(dicom_instances::state.eq("indexed"))
        .order(dicom_instances::indexed_at.asc())
        .select((
            uploads::id,
            uploads::sha256,
            uploads::filename,
            uploads::relative_path,
        ))
        .first(conn)
        .optional()?)
}

/// Whether the upload already has its row.
pub fn exists(conn: &mut DbConnection, upload_id: &str) -> Result<bool, DbError> {
    Ok(dicom_instances::table
        .find(upload_id)
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Completed DICOM uploads with no row yet (their header could not be read back when they
/// completed), oldest first. `extensions` are the stored extensions that mean DICOM.
pub fn unindexed(
    conn: &mut DbConnection,
    extensions: &[&str],
    completed: &str,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(uploads::table
        .left_join(dicom_instances::table)
        .filter(dicom_instances::upload_id.nullable().is_null())
        .filter(uploads::status.eq(completed))
        .filter(uploads::extension.eq_any(extensions))
        .order(uploads::completed_at.asc())
        .limit(limit)
        .select(uploads::id)
        .load(conn)?)
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = dicomdir_entries)]
pub struct NewEntry<'a> {
    pub directory_upload_id: &'a str,
    pub referenced_path: &'a str,
    pub sop_instance_uid: Option<&'a str>,
    pub study_uid: Option<&'a str>,
}

/// Writes a DICOMDIR's entries; a path listed twice is kept once.
pub fn insert_entries(conn: &mut DbConnection, entries: &[NewEntry<'_>]) -> Result<(), DbError> {
    let mut seen = std::collections::HashSet::new();
    for entry in entries.iter().filter(|e| seen.insert(e.referenced_path)) {
        diesel::insert_into(dicomdir_entries::table)
            .values(entry)
            .execute(conn)?;
    }
    Ok(())
}

/// The rows that hold a seal (the queries ask for those only; the column is nullable).
fn sealed_only(rows: Vec<(String, Option<Vec<u8>>)>) -> Vec<(String, Vec<u8>)> {
    rows.into_iter()
        .filter_map(|(id, sealed)| sealed.map(|s| (id, s)))
        .collect()
}

/// Every PHI seal there is, for key rotation.
pub fn sealed_patients(conn: &mut DbConnection) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    let rows: Vec<(String, Option<Vec<u8>>)> = dicom_instances::table
        .filter(dicom_instances::patient_sealed.is_not_null())
        .select((dicom_instances::upload_id, dicom_instances::patient_sealed))
        .load(conn)?;
    Ok(sealed_only(rows))
}

pub fn set_sealed_patient(
    conn: &mut DbConnection,
    upload_id: &str,
    sealed: Vec<u8>,
) -> Result<(), DbError> {
    diesel::update(dicom_instances::table.find(upload_id))
        .set(dicom_instances::patient_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// What the index says about one upload: (state, study, series, SOP instance UIDs).
pub type InstanceUids = (String, Option<String>, Option<String>, Option<String>);

/// The index row of one upload, UIDs only (no patient attributes), if it has one.
pub fn uids_of(conn: &mut DbConnection, upload_id: &str) -> Result<Option<InstanceUids>, DbError> {
    Ok(dicom_instances::table
        .find(upload_id)
        .select((
            dicom_instances::state,
            dicom_instances::study_uid,
            dicom_instances::series_uid,
            dicom_instances::sop_instance_uid,
        ))
        .first(conn)
        .optional()?)
}

/// Sealed patient records whose blind indexes were not computed under `key_id` (written
/// before the columns existed, or under an older master key), at most `limit`.
pub fn stale_blind(
    conn: &mut DbConnection,
    key_id: &str,
    limit: i64,
) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    let rows: Vec<(String, Option<Vec<u8>>)> = dicom_instances::table
        .filter(dicom_instances::patient_sealed.is_not_null())
        .filter(
            dicom_instances::blind_key_id
                .is_null()
                .or(dicom_instances::blind_key_id.ne(key_id)),
        )
        .order(dicom_instances::upload_id.asc())
        .limit(limit)
        .select((dicom_instances::upload_id, dicom_instances::patient_sealed))
        .load(conn)?;
    Ok(sealed_only(rows))
}

/// Writes a row's blind indexes and the key id they were computed under.
pub fn set_blind(
    conn: &mut DbConnection,
    upload_id: &str,
    patient_id: Option<&str>,
    accession: Option<&str>,
    key_id: &str,
) -> Result<(), DbError> {
    diesel::update(dicom_instances::table.find(upload_id))
        .set((
            dicom_instances::patient_id_blind.eq(patient_id),
            dicom_instances::accession_blind.eq(accession),
            dicom_instances::blind_key_id.eq(key_id),
        ))
        .execute(conn)?;
    Ok(())
}
