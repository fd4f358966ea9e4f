//! The webhook_deliveries table: one event for one webhook, its attempts, and the delivery
//! log the admin page shows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::leased_queue::{free_and_due, leased_queue};
use crate::infra::db::schema::{webhook_deliveries, webhooks};
use crate::infra::db::{DbConnection, DbError};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewRow<'a> {
    pub id: &'a str,
    pub webhook_id: &'a str,
    pub event: &'a str,
    pub payload: &'a str,
    pub state: &'a str,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &NewRow<'_>) -> Result<(), DbError> {
    diesel::insert_into(webhook_deliveries::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

leased_queue!(webhook_deliveries);

/// A claimed delivery with what sending it needs from its webhook.
#[derive(Debug, Clone, Queryable)]
pub struct Claimed {
    pub id: String,
    pub webhook_id: String,
    pub bucket_id: String,
    pub event: String,
    pub payload: String,
    pub attempts: i32,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub enabled: bool,
}

/// The deliveries in `ids` that `token` holds.
pub fn claimed(
    conn: &mut DbConnection,
    ids: &[String],
    token: &str,
) -> Result<Vec<Claimed>, DbError> {
    Ok(webhook_deliveries::table
        .inner_join(webhooks::table)
        .filter(webhook_deliveries::id.eq_any(ids))
        .filter(webhook_deliveries::lease_token.eq(token))
        .order(webhook_deliveries::id.asc())
        .select((
            webhook_deliveries::id,
            webhook_deliveries::webhook_id,
            webhooks::bucket_id,
            webhook_deliveries::event,
            webhook_deliveries::payload,
            webhook_deliveries::attempts,
            webhooks::url,
            webhooks::secret_sealed,
            webhooks::enabled,
        ))
        .load(conn)?)
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub state: &'a str,
    pub attempts: i32,
    pub next_at: NaiveDateTime,
    pub status: Option<i32>,
    pub error: Option<&'a str>,
    pub delivered_at: Option<NaiveDateTime>,
}

/// Records an attempt and releases the lease. Only while `token` holds the lease; `true`
/// when written.
pub fn record(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    attempt: &Attempt<'_>,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        webhook_deliveries::table
            .find(id)
            .filter(webhook_deliveries::lease_token.eq(token)),
    )
    .set((
        webhook_deliveries::state.eq(attempt.state),
        webhook_deliveries::attempts.eq(attempt.attempts),
        webhook_deliveries::next_attempt_at.eq(attempt.next_at),
        webhook_deliveries::last_status.eq(attempt.status),
        webhook_deliveries::last_error.eq(attempt.error),
        webhook_deliveries::delivered_at.eq(attempt.delivered_at),
        webhook_deliveries::lease_token.eq(None::<String>),
        webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// One line of the delivery log.
#[derive(Debug, Clone, Queryable)]
pub struct Listed {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The newest `limit` deliveries of a bucket's webhooks.
pub fn latest_of_bucket(
    conn: &mut DbConnection,
    bucket_id: &str,
    limit: i64,
) -> Result<Vec<Listed>, DbError> {
    Ok(webhook_deliveries::table
        .inner_join(webhooks::table)
        .filter(webhooks::bucket_id.eq(bucket_id))
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .limit(limit)
        .select((
            webhook_deliveries::id,
            webhook_deliveries::webhook_id,
            webhook_deliveries::event,
            webhook_deliveries::state,
            webhook_deliveries::attempts,
            webhook_deliveries::next_attempt_at,
            webhook_deliveries::last_status,
            webhook_deliveries::last_error,
            webhook_deliveries::created_at,
            webhook_deliveries::delivered_at,
        ))
        .load(conn)?)
}
