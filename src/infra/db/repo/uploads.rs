//! The uploads table, as the API lists it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::uploads;
use crate::infra::db::{DbConnection, DbError};

/// One upload as a listing shows it.
#[derive(Debug, Clone, Queryable)]
pub struct Summary {
    pub id: String,
    pub filename: String,
    pub status: String,
    pub declared_size: i64,
    pub created_at: NaiveDateTime,
}

/// `owner`'s own uploads, newest first, at most `limit`.
pub fn summaries_of(
    conn: &mut DbConnection,
    owner: &str,
    limit: i64,
) -> Result<Vec<Summary>, DbError> {
    Ok(uploads::table
        .filter(uploads::user_id.eq(owner))
        .order((uploads::created_at.desc(), uploads::id.desc()))
        .limit(limit)
        .select((
            uploads::id,
            uploads::filename,
            uploads::status,
            uploads::declared_size,
            uploads::created_at,
        ))
        .load(conn)?)
}
