//! The webhooks table: where a bucket's events are posted, and the sealed signing secret.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::webhooks;
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = webhooks)]
pub struct Row {
    pub id: String,
    pub bucket_id: String,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub events: String,
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &Row) -> Result<(), DbError> {
    diesel::insert_into(webhooks::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(webhooks::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// A bucket's webhooks, oldest first.
pub fn of_bucket(conn: &mut DbConnection, bucket_id: &str) -> Result<Vec<Row>, DbError> {
    Ok(webhooks::table
        .filter(webhooks::bucket_id.eq(bucket_id))
        .order((webhooks::created_at.asc(), webhooks::id.asc()))
        .select(Row::as_select())
        .load(conn)?)
}

/// The enabled webhooks of a bucket: id and subscribed events. Read on every event, so it
/// reads no secret and uses the bucket index.
pub fn enabled_of_bucket(
    conn: &mut DbConnection,
    bucket_id: &str,
) -> Result<Vec<(String, String)>, DbError> {
    Ok(webhooks::table
        .filter(webhooks::bucket_id.eq(bucket_id))
        .filter(webhooks::enabled.eq(true))
        .select((webhooks::id, webhooks::events))
        .load(conn)?)
}

/// Switches a webhook of `bucket_id` on or off; false when there is no such webhook.
pub fn set_enabled(
    conn: &mut DbConnection,
    id: &str,
    bucket_id: &str,
    enabled: bool,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        webhooks::table
            .find(id)
            .filter(webhooks::bucket_id.eq(bucket_id)),
    )
    .set((webhooks::enabled.eq(enabled), webhooks::updated_at.eq(now)))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Deletes a webhook of `bucket_id` (its deliveries go with it); false when there was none.
pub fn delete(conn: &mut DbConnection, id: &str, bucket_id: &str) -> Result<bool, DbError> {
    let changed = diesel::delete(
        webhooks::table
            .find(id)
            .filter(webhooks::bucket_id.eq(bucket_id)),
    )
    .execute(conn)?;
    Ok(changed == 1)
}

/// Every sealed secret, for key rotation.
pub fn sealed_secrets(conn: &mut DbConnection) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    Ok(webhooks::table
        .select((webhooks::id, webhooks::secret_sealed))
        .load(conn)?)
}

pub fn set_sealed_secret(
    conn: &mut DbConnection,
    id: &str,
    sealed: Vec<u8>,
) -> Result<(), DbError> {
    diesel::update(webhooks::table.find(id))
        .set(webhooks::secret_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}
