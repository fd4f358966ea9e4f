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

/// One upload row: every column the app reads (not the hash state or the lease).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = uploads)]
pub struct Row {
    pub id: String,
    pub user_id: String,
    pub bucket_id: String,
    pub api_key_id: Option<String>,
    pub filename: String,
    pub content_type: Option<String>,
    pub extension: String,
    pub declared_size: i64,
    pub upload_offset: i64,
    pub part_size: i64,
    pub object_key: String,
    pub storage_upload_id: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub sha256: Option<String>,
    pub client_checksum: Option<String>,
    pub scan_status: Option<String>,
    pub scan_detail: Option<String>,
    pub cleanup_attempts: i32,
    pub next_cleanup_at: Option<NaiveDateTime>,
    pub expires_at: NaiveDateTime,
    pub completed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// One upload by id, whoever owns it.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(uploads::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Which rows a listing or a count takes; `None` matches any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub owner: Option<&'a str>,
    pub status: Option<&'a str>,
    pub bucket: Option<&'a str>,
}

/// Rows matching `filter`, newest first: at most `limit`, after skipping `offset`.
pub fn list(
    conn: &mut DbConnection,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Row>, DbError> {
    let mut query = uploads::table.into_boxed();
    if let Some(owner) = filter.owner {
        query = query.filter(uploads::user_id.eq(owner.to_string()));
    }
    if let Some(status) = filter.status {
        query = query.filter(uploads::status.eq(status.to_string()));
    }
    if let Some(bucket) = filter.bucket {
        query = query.filter(uploads::bucket_id.eq(bucket.to_string()));
    }
    Ok(query
        .order((uploads::created_at.desc(), uploads::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(Row::as_select())
        .load(conn)?)
}

/// How many rows match `filter`.
pub fn count(conn: &mut DbConnection, filter: &Filter<'_>) -> Result<i64, DbError> {
    let mut query = uploads::table.into_boxed();
    if let Some(owner) = filter.owner {
        query = query.filter(uploads::user_id.eq(owner.to_string()));
    }
    if let Some(status) = filter.status {
        query = query.filter(uploads::status.eq(status.to_string()));
    }
    if let Some(bucket) = filter.bucket {
        query = query.filter(uploads::bucket_id.eq(bucket.to_string()));
    }
    Ok(query.count().get_result(conn)?)
}

/// How many uploads are in `status`.
pub fn count_in_status(conn: &mut DbConnection, status: &str) -> Result<i64, DbError> {
    Ok(uploads::table
        .filter(uploads::status.eq(status))
        .count()
        .get_result(conn)?)
}

/// An upload whose work stopped: how far it got.
#[derive(Debug, Clone, Queryable)]
pub struct Stalled {
    pub id: String,
    pub sha256: Option<String>,
    pub scan_status: Option<String>,
}

/// Up to `limit` uploads in `status` not updated since `updated_before` and whose lease is
/// free or ran out by `now`.
pub fn stalled(
    conn: &mut DbConnection,
    status: &str,
    updated_before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Stalled>, DbError> {
    Ok(uploads::table
        .filter(uploads::status.eq(status))
        .filter(uploads::updated_at.lt(updated_before))
        .filter(
            uploads::lease_until
                .is_null()
                .or(uploads::lease_until.lt(now)),
        )
        .select((uploads::id, uploads::sha256, uploads::scan_status))
        .limit(limit)
        .load(conn)?)
}

/// A status with a scan status: the pair the scanner's writes are guarded by and set.
#[derive(Debug, Clone, Copy)]
pub struct ScanState<'a> {
    pub status: &'a str,
    pub scan_status: &'a str,
}

/// The rows a scan claim may take: `id` in `state`, with a lease that is free (never
/// taken, released, or run out by `now`).
macro_rules! claimable {
    ($id:expr, $state:expr, $now:expr) => {
        uploads::table
            .filter(uploads::id.eq($id))
            .filter(uploads::status.eq($state.status))
            .filter(uploads::scan_status.eq($state.scan_status))
            .filter(
                uploads::lease_token
                    .is_null()
                    .or(uploads::lease_until.is_null())
                    .or(uploads::lease_until.lt($now)),
            )
    };
}

/// Takes the lease (`token`, until `until`) on upload `id` if it is in `state` and its lease
/// is free. `true` when taken.
pub fn claim_for_scan(
    conn: &mut DbConnection,
    id: &str,
    state: ScanState<'_>,
    token: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let taken = diesel::update(claimable!(id, state, now))
        .set((
            uploads::lease_token.eq(Some(token)),
            uploads::lease_until.eq(Some(until)),
        ))
        .execute(conn)?;
    Ok(taken != 0)
}

/// Moves a held lease's end to `until`. `false`: `token` no longer holds it.
pub fn extend_lease(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        uploads::table
            .filter(uploads::id.eq(id))
            .filter(uploads::lease_token.eq(token)),
    )
    .set(uploads::lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(n == 1)
}

/// The columns the scanner's final write sets.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = uploads, treat_none_as_null = true)]
pub struct Settled {
    pub status: &'static str,
    pub scan_status: Option<&'static str>,
    pub scan_detail: Option<String>,
    pub status_reason: Option<String>,
    pub object_key: String,
    pub completed_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub lease_token: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
}

/// Writes `changes` to upload `id` if it is still in `state` under `token`'s lease.
/// `true` when written.
pub fn settle(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    state: ScanState<'_>,
    changes: &Settled,
) -> Result<bool, DbError> {
    let updated = diesel::update(
        uploads::table
            .filter(uploads::id.eq(id))
            .filter(uploads::lease_token.eq(token))
            .filter(uploads::status.eq(state.status))
            .filter(uploads::scan_status.eq(state.scan_status)),
    )
    .set(changes)
    .execute(conn)?;
    Ok(updated != 0)
}

/// Moves upload `id` from `state` (lease free) to `status` without a scan status, completed
/// at `completed_at`, lease released. `true` when it was in `state`.
pub fn complete_unscanned(
    conn: &mut DbConnection,
    id: &str,
    state: ScanState<'_>,
    status: &str,
    completed_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let updated = diesel::update(claimable!(id, state, now))
        .set((
            uploads::status.eq(status),
            uploads::scan_status.eq(None::<String>),
            uploads::completed_at.eq(Some(completed_at)),
            uploads::updated_at.eq(now),
            uploads::lease_token.eq(None::<String>),
            uploads::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

/// Puts upload `id` back in the scanner's queue (`to`, detail, reason and lease cleared),
/// if it is still in `from` with `object_key`. `true` when it was.
pub fn requeue_scan(
    conn: &mut DbConnection,
    id: &str,
    from: ScanState<'_>,
    object_key: &str,
    to: ScanState<'_>,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let updated = diesel::update(
        uploads::table
            .filter(uploads::id.eq(id))
            .filter(uploads::status.eq(from.status))
            .filter(uploads::scan_status.eq(from.scan_status))
            .filter(uploads::object_key.eq(object_key)),
    )
    .set((
        uploads::status.eq(to.status),
        uploads::scan_status.eq(Some(to.scan_status)),
        uploads::scan_detail.eq(None::<String>),
        uploads::status_reason.eq(None::<String>),
        uploads::updated_at.eq(now),
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(updated != 0)
}
