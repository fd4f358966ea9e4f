//! The upload_parts table: the parts of an upload stored so far, one row each, with the
//! backend's ETag and the part's digest (the upload pipeline's `part_digest`: it names the
//! part's bytes and every byte before them).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::upload_parts;
use crate::infra::db::{DbConnection, DbError};

/// The recorded digest of part `number` of upload `upload_id`, if that part is recorded.
pub fn digest_of(
    conn: &mut DbConnection,
    upload_id: &str,
    number: i32,
) -> Result<Option<String>, DbError> {
    Ok(upload_parts::table
        .find((upload_id, number))
        .select(upload_parts::digest)
        .first(conn)
        .optional()?)
}

/// A part to record.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = upload_parts)]
pub struct NewPart<'a> {
    pub upload_id: &'a str,
    pub part_number: i32,
    pub size: i64,
    pub etag: &'a str,
    pub digest: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, part: &NewPart<'_>) -> Result<(), DbError> {
    diesel::insert_into(upload_parts::table)
        .values(part)
        .execute(conn)?;
    Ok(())
}

/// A recorded part, as the completion request lists it.
#[derive(Debug, Clone, Queryable)]
pub struct Recorded {
    pub part_number: i32,
    pub size: i64,
    pub etag: String,
}

/// The parts recorded for `upload_id`, by part number.
pub fn of(conn: &mut DbConnection, upload_id: &str) -> Result<Vec<Recorded>, DbError> {
    Ok(upload_parts::table
        .filter(upload_parts::upload_id.eq(upload_id))
        .order(upload_parts::part_number.asc())
        .select((
            upload_parts::part_number,
            upload_parts::size,
            upload_parts::etag,
        ))
        .load(conn)?)
}
