//! The upload_tails table: tail objects an upload wrote to storage (see the `upload_tails`
//! migration), by the offset they end at.

use diesel::prelude::*;

use crate::infra::db::schema::upload_tails;
use crate::infra::db::{DbConnection, DbError};

/// Writes down a tail of `upload_id` ending at `offset`, unless it is already there.
pub fn note(conn: &mut DbConnection, upload_id: &str, offset: i64) -> Result<(), DbError> {
    let exists = upload_tails::table
        .find((upload_id, offset))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !exists {
        diesel::insert_into(upload_tails::table)
            .values((
                upload_tails::upload_id.eq(upload_id),
                upload_tails::tail_offset.eq(offset),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Every tail offset written down for `upload_id`, ascending.
pub fn offsets(conn: &mut DbConnection, upload_id: &str) -> Result<Vec<i64>, DbError> {
    Ok(upload_tails::table
        .filter(upload_tails::upload_id.eq(upload_id))
        .order(upload_tails::tail_offset.asc())
        .select(upload_tails::tail_offset)
        .load(conn)?)
}

/// Forgets the tails of `upload_id` at `offsets`.
pub fn forget(conn: &mut DbConnection, upload_id: &str, offsets: &[i64]) -> Result<(), DbError> {
    diesel::delete(
        upload_tails::table
            .filter(upload_tails::upload_id.eq(upload_id))
            .filter(upload_tails::tail_offset.eq_any(offsets)),
    )
    .execute(conn)?;
    Ok(())
}
