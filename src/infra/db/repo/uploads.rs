//! The uploads table, as the API lists it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::uploads;
use crate::infra::db::timestamp::{MaybeStamp, Stamp};
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
    #[diesel(deserialize_as = MaybeStamp)]
    pub next_cleanup_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub expires_at: NaiveDateTime,
    #[diesel(deserialize_as = MaybeStamp)]
    pub completed_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    pub batch_id: Option<String>,
    pub relative_path: Option<String>,
    pub request_id: Option<String>,
    pub submission_id: Option<String>,
}

/// One upload by id, whoever owns it.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(uploads::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// Uploads by id, whoever owns them (the caller has already scoped the ids), in no
/// particular order. Read in slices so any number of ids stays within SQLite's limit.
pub fn find_many(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<Row>, DbError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(900) {
        out.extend(
            uploads::table
                .filter(uploads::id.eq_any(chunk))
                .select(Row::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Which rows a listing or a count takes; `None` matches any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    pub owner: Option<&'a str>,
    pub status: Option<&'a str>,
    pub bucket: Option<&'a str>,
    /// One row per batch: of a batch's uploads (that match the status, if one is asked
    /// for) only the first stands in the listing; uploads outside batches all do.
    pub batch_leads: bool,
}

/// The rows `$filter` takes, boxed for the backend of the connection it is loaded from.
macro_rules! filtered {
    ($filter:expr) => {{
        let filter: &Filter<'_> = $filter;
        let mut query = uploads::table.into_boxed();
        if let Some(owner) = filter.owner {
            query = query.filter(uploads::user_id.eq(owner));
        }
        if let Some(status) = filter.status {
            query = query.filter(uploads::status.eq(status));
        }
        if let Some(bucket) = filter.bucket {
            query = query.filter(uploads::bucket_id.eq(bucket));
        }
        if filter.batch_leads {
            query = query.filter(BatchLead {
                status: filter.status,
            });
        }
        query
    }};
}

/// The rows that stand for their batch (see `Filter::batch_leads`): no batch, or the
/// batch's first upload (ids are time-ordered), among those in the status asked for. The
/// subquery is one seek on `uploads_batch_first_idx` per row.
///
/// A fragment of its own rather than `dsl::sql`: Diesel never keeps a prepared statement
/// that holds an SQL literal, so every page view parsed and planned its listing and its
/// count again. This text is fixed, so the statement can be kept.
#[derive(Debug, Clone, Copy)]
struct BatchLead<'a> {
    status: Option<&'a str>,
}

impl BatchLead<'_> {
    const SQL: &'static str = "(uploads.batch_id IS NULL OR uploads.id = (SELECT MIN(b.id) \
        FROM uploads b WHERE b.batch_id = uploads.batch_id";
}

impl diesel::expression::Expression for BatchLead<'_> {
    type SqlType = diesel::sql_types::Bool;
}

impl diesel::expression::AppearsOnTable<uploads::table> for BatchLead<'_> {}

impl diesel::expression::SelectableExpression<uploads::table> for BatchLead<'_> {}

impl diesel::expression::ValidGrouping<()> for BatchLead<'_> {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl diesel::query_builder::QueryId for BatchLead<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for BatchLead<'_>
where
    DB: diesel::backend::Backend + diesel::sql_types::HasSqlType<diesel::sql_types::Text>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql(Self::SQL);
        if let Some(status) = &self.status {
            out.push_sql(" AND b.status = ");
            out.push_bind_param::<diesel::sql_types::Text, _>(*status)?;
        }
        out.push_sql("))");
        Ok(())
    }
}

/// Rows matching `filter`, newest first: at most `limit`, after skipping `offset`.
pub fn list(
    conn: &mut DbConnection,
    filter: &Filter<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Row>, DbError> {
    Ok(super::on_backend!(conn, |c| filtered!(filter)
        .order((uploads::created_at.desc(), uploads::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(Row::as_select())
        .load(c))?)
}

/// How many rows match `filter`, counting no further than `cap`: a page needs to know
/// whether there is more, not to read a whole history each time it is shown.
pub fn count_up_to(conn: &mut DbConnection, filter: &Filter<'_>, cap: i64) -> Result<i64, DbError> {
    // A bound constant, not `dsl::sql("1")`, so that the statement is kept prepared.
    let found: Vec<i32> = super::on_backend!(conn, |c| filtered!(filter)
        .select(1.into_sql::<diesel::sql_types::Integer>())
        .limit(cap)
        .load(c))?;
    Ok(i64::try_from(found.len()).unwrap_or(cap))
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

/// On PostgreSQL, locks bucket `bucket_id`'s row until the transaction ends, so reservations
/// against the bucket's size limit run one at a time. On SQLite the write transaction
/// (`BEGIN IMMEDIATE`) already admits one writer, and this does nothing.
pub fn lock_bucket(conn: &mut DbConnection, bucket_id: &str) -> Result<(), DbError> {
    use crate::infra::db::schema::buckets;
    if let DbConnection::Postgresql(pg) = conn {
        buckets::table
            .find(bucket_id)
            .select(buckets::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    Ok(())
}

/// The declared sizes of the bucket's uploads in any of `statuses`.
pub fn declared_sizes(
    conn: &mut DbConnection,
    bucket_id: &str,
    statuses: &[&str],
) -> Result<Vec<i64>, DbError> {
    Ok(uploads::table
        .filter(uploads::bucket_id.eq(bucket_id))
        .filter(uploads::status.eq_any(statuses))
        .select(uploads::declared_size)
        .load(conn)?)
}

/// The declared sizes of an upload request's uploads in any of `statuses` (what counts
/// against its limits).
pub fn declared_sizes_of_request(
    conn: &mut DbConnection,
    request_id: &str,
    statuses: &[&str],
) -> Result<Vec<i64>, DbError> {
    Ok(uploads::table
        .filter(uploads::request_id.eq(request_id))
        .filter(uploads::status.eq_any(statuses))
        .select(uploads::declared_size)
        .load(conn)?)
}

/// A new upload row. `None` is stored as NULL.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = uploads, treat_none_as_default_value = false)]
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub bucket_id: &'a str,
    pub api_key_id: Option<&'a str>,
    pub filename: &'a str,
    pub content_type: Option<&'a str>,
    pub extension: &'a str,
    pub declared_size: i64,
    pub upload_offset: i64,
    pub part_size: i64,
    pub object_key: &'a str,
    pub status: &'a str,
    pub hash_state: Option<&'a [u8]>,
    pub client_checksum: Option<&'a str>,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub batch_id: Option<&'a str>,
    pub relative_path: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub submission_id: Option<&'a str>,
    pub lease_token: Option<&'a str>,
    pub lease_until: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &NewUpload<'_>) -> Result<(), DbError> {
    diesel::insert_into(uploads::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Records the backend's multipart upload id.
pub fn set_storage_id(conn: &mut DbConnection, id: &str, storage_id: &str) -> Result<(), DbError> {
    diesel::update(uploads::table.find(id))
        .set(uploads::storage_upload_id.eq(storage_id))
        .execute(conn)?;
    Ok(())
}

/// Takes upload `id`'s lease for `token` until `until` if the upload is in `status` and the
/// lease is free or ran out by `now`. `true` when taken.
pub fn take_lease(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    token: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::status.eq(status))
            .filter(
                uploads::lease_until
                    .is_null()
                    .or(uploads::lease_until.lt(now)),
            ),
    )
    .set((
        uploads::lease_token.eq(token),
        uploads::lease_until.eq(until),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Whether someone holds upload `id`'s lease at `now`.
pub fn lease_held(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let n: i64 = uploads::table
        .find(id)
        .filter(uploads::lease_token.is_not_null())
        .filter(uploads::lease_until.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Lets go of upload `id`'s lease if `token` holds it.
pub fn release_lease(conn: &mut DbConnection, id: &str, token: &str) -> Result<(), DbError> {
    diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token)),
    )
    .set((
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Progress made durable: the offset moves from `from` to `to` (and the status from
/// `from_status` to `to_status`), with the digest state covering exactly those bytes.
#[derive(Debug, Clone, Copy)]
pub struct Advance<'a> {
    pub from: i64,
    pub to: i64,
    pub from_status: &'a str,
    pub to_status: &'a str,
    pub hash_state: &'a [u8],
    pub lease_until: NaiveDateTime,
    pub now: NaiveDateTime,
}

/// Applies `step` to upload `id` if `token` holds its lease and it is where `step` starts.
/// `true` when applied.
pub fn advance(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    step: &Advance<'_>,
) -> Result<bool, DbError> {
    let n = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token))
            .filter(uploads::upload_offset.eq(step.from))
            .filter(uploads::status.eq(step.from_status)),
    )
    .set((
        uploads::upload_offset.eq(step.to),
        uploads::status.eq(step.to_status),
        uploads::hash_state.eq(Some(step.hash_state)),
        uploads::lease_until.eq(step.lease_until),
        uploads::updated_at.eq(step.now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Lowers upload `id`'s declared size to `size` if `token` holds its lease and it was not
/// smaller. `true` when set.
pub fn settle_size(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    size: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token))
            .filter(uploads::declared_size.ge(size)),
    )
    .set(uploads::declared_size.eq(size))
    .execute(conn)?;
    Ok(n == 1)
}

/// The stored digest state of upload `id`.
pub fn hash_state(conn: &mut DbConnection, id: &str) -> Result<Option<Vec<u8>>, DbError> {
    Ok(uploads::table
        .find(id)
        .select(uploads::hash_state)
        .first::<Option<Vec<u8>>>(conn)
        .optional()?
        .flatten())
}

/// Moves upload `id` from any of `from` to `to` with `reason`; with a `token`, only if it
/// holds the lease. `true` when the row moved.
pub fn transition(
    conn: &mut DbConnection,
    id: &str,
    token: Option<&str>,
    from: &[&str],
    to: &str,
    reason: Option<&str>,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let target = uploads::table.find(id).filter(uploads::status.eq_any(from));
    let n = match token {
        Some(token) => diesel::update(target.filter(uploads::lease_token.eq(token)))
            .set((
                uploads::status.eq(to),
                uploads::status_reason.eq(reason),
                uploads::updated_at.eq(now),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                uploads::status.eq(to),
                uploads::status_reason.eq(reason),
                uploads::updated_at.eq(now),
            ))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// The end of verification: upload `id` goes from `from` to `to` with `scan_status`, the
/// file's SHA-256 and `completed_at`; the digest state and the lease are cleared. Only if
/// `token` holds the lease. `true` when written.
#[allow(clippy::too_many_arguments)]
pub fn verified(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    from: &str,
    to: &str,
    scan_status: Option<&str>,
    sha256: &str,
    completed_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token))
            .filter(uploads::status.eq(from)),
    )
    .set((
        uploads::status.eq(to),
        uploads::scan_status.eq(scan_status),
        uploads::sha256.eq(sha256),
        uploads::hash_state.eq(None::<Vec<u8>>),
        uploads::completed_at.eq(completed_at),
        uploads::updated_at.eq(now),
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The cleanup worker's due rows that nobody holds: in `expirable` and past `expires_at`, or
/// in `retrying` and due again; oldest first.
macro_rules! due_rows {
    ($expirable:expr, $retrying:expr, $now:expr) => {
        uploads::table.filter(
            uploads::status
                .eq($expirable)
                .and(uploads::expires_at.lt($now))
                .or(uploads::status.eq($retrying).and(
                    uploads::next_cleanup_at
                        .is_null()
                        .or(uploads::next_cleanup_at.le($now)),
                )),
        )
    };
}

macro_rules! due {
    ($expirable:expr, $retrying:expr, $now:expr, $limit:expr) => {
        due_rows!($expirable, $retrying, $now)
            .filter(
                uploads::lease_until
                    .is_null()
                    .or(uploads::lease_until.lt($now)),
            )
            .order((uploads::expires_at.asc(), uploads::id.asc()))
            .limit($limit)
            .select(uploads::id)
    };
}

/// How many uploads are due for cleanup at `now` (the cleanup queue's length).
pub fn count_due_for_cleanup(
    conn: &mut DbConnection,
    expirable: &str,
    retrying: &str,
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    Ok(due_rows!(expirable, retrying, now)
        .count()
        .get_result(conn)?)
}

/// How many uploads wait for the virus scanner.
pub fn count_scan_waiting(conn: &mut DbConnection, scan_status: &str) -> Result<i64, DbError> {
    Ok(uploads::table
        .filter(uploads::scan_status.eq(scan_status))
        .count()
        .get_result(conn)?)
}

/// Ids of up to `limit` uploads due for cleanup at `now` (see `due!`). On PostgreSQL the
/// rows are locked with `SKIP LOCKED`, so concurrent workers take disjoint batches instead
/// of waiting.
pub fn due_for_cleanup(
    conn: &mut DbConnection,
    expirable: &str,
    retrying: &str,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    Ok(match &mut *conn {
        DbConnection::Postgresql(pg) => due!(expirable, retrying, now, limit)
            .for_update()
            .skip_locked()
            .load(pg)?,
        other => due!(expirable, retrying, now, limit).load(other)?,
    })
}

/// Gives `token` the lease on every upload in `ids`, until `until`.
pub fn lease_all(
    conn: &mut DbConnection,
    ids: &[String],
    token: &str,
    until: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(uploads::table.filter(uploads::id.eq_any(ids)))
        .set((
            uploads::lease_token.eq(Some(token)),
            uploads::lease_until.eq(Some(until)),
        ))
        .execute(conn)?;
    Ok(())
}

/// What the cleanup worker reads of an upload.
#[derive(Debug, Clone, Queryable)]
pub struct CleanupRow {
    pub id: String,
    pub bucket_id: String,
    pub object_key: String,
    pub storage_upload_id: Option<String>,
    pub upload_offset: i64,
    pub part_size: i64,
    pub cleanup_attempts: i32,
    pub declared_size: i64,
}

/// The uploads in `ids`, oldest expiry first.
pub fn cleanup_rows(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<CleanupRow>, DbError> {
    Ok(uploads::table
        .filter(uploads::id.eq_any(ids))
        .order((uploads::expires_at.asc(), uploads::id.asc()))
        .select((
            uploads::id,
            uploads::bucket_id,
            uploads::object_key,
            uploads::storage_upload_id,
            uploads::upload_offset,
            uploads::part_size,
            uploads::cleanup_attempts,
            uploads::declared_size,
        ))
        .load(conn)?)
}

/// Moves the end of `token`'s lease on upload `id` to `until`, if the upload is in any of
/// `statuses`. `true` when renewed.
pub fn renew_lease_in(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    statuses: &[&str],
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    let held = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token))
            .filter(uploads::status.eq_any(statuses)),
    )
    .set(uploads::lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(held == 1)
}

/// Lets go of `token`'s leases on the uploads in `ids`.
pub fn release_leases(conn: &mut DbConnection, ids: &[String], token: &str) -> Result<(), DbError> {
    diesel::update(
        uploads::table
            .filter(uploads::id.eq_any(ids))
            .filter(uploads::lease_token.eq(token)),
    )
    .set((
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Cleanup done: upload `id` goes to `status` with `reason`, no retry due, lease released.
/// Only if `token` holds the lease; `true` when written.
pub fn cleaned(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    status: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token)),
    )
    .set((
        uploads::status.eq(status),
        uploads::status_reason.eq(Some(reason)),
        uploads::next_cleanup_at.eq(None::<NaiveDateTime>),
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
        uploads::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Cleanup failed: upload `id` goes to `status` with `reason`, `attempts` counted and the
/// next try due at `retry_at`, lease released. Only if `token` holds the lease; `true` when
/// written.
#[allow(clippy::too_many_arguments)]
pub fn cleanup_failed(
    conn: &mut DbConnection,
    id: &str,
    token: &str,
    status: &str,
    reason: &str,
    attempts: i32,
    retry_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        uploads::table
            .find(id)
            .filter(uploads::lease_token.eq(token)),
    )
    .set((
        uploads::status.eq(status),
        uploads::status_reason.eq(Some(reason)),
        uploads::cleanup_attempts.eq(attempts),
        uploads::next_cleanup_at.eq(Some(retry_at)),
        uploads::lease_token.eq(None::<String>),
        uploads::lease_until.eq(None::<NaiveDateTime>),
        uploads::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}
