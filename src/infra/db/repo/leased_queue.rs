//! The claim queries every notification queue shares (`email_outbox`,
//! `webhook_deliveries`): rows waiting in a state until `next_attempt_at`, claimed by one
//! worker at a time through `lease_token` / `lease_until`, as the cleanup worker claims
//! uploads. Each table's module expands [`leased_queue!`] once.

/// The rows of `$table` in `$state`, due at `$now`, whose lease is free or ran out.
macro_rules! free_and_due {
    ($table:ident, $state:expr, $now:expr) => {
        $table::table
            .filter($table::state.eq($state))
            .filter($table::next_attempt_at.le($now))
            .filter(
                $table::lease_until
                    .is_null()
                    .or($table::lease_until.lt($now)),
            )
    };
}

/// Expands to `any_due`, `claim_due` and `count_in` for `$table`, which must
/// have the columns `id`, `state`, `next_attempt_at`, `lease_token` and `lease_until`.
macro_rules! leased_queue {
    ($table:ident) => {
        /// Whether any row in `state` is due at `now` and free: a plain read, so idle
        /// workers look without taking the write lock.
        pub fn any_due(
            conn: &mut DbConnection,
            state: &str,
            now: NaiveDateTime,
        ) -> Result<bool, DbError> {
            let first: Option<String> = free_and_due!($table, state, now)
                .select($table::id)
                .first(conn)
                .optional()?;
            Ok(first.is_some())
        }

        /// Claims up to `limit` due rows for `token` until `until` (inside a write
        /// transaction); their ids.
        pub fn claim_due(
            conn: &mut DbConnection,
            state: &str,
            now: NaiveDateTime,
            limit: i64,
            token: &str,
            until: NaiveDateTime,
        ) -> Result<Vec<String>, DbError> {
            let ids = due(conn, state, now, limit)?;
            if !ids.is_empty() {
                lease_all(conn, &ids, token, until)?;
            }
            Ok(ids)
        }

        /// Ids of up to `limit` rows in `state` that are due at `now` and that nobody holds,
        /// the longest waiting first. On PostgreSQL the rows are locked with `SKIP LOCKED`,
        /// so concurrent workers take disjoint batches instead of waiting.
        fn due(
            conn: &mut DbConnection,
            state: &str,
            now: NaiveDateTime,
            limit: i64,
        ) -> Result<Vec<String>, DbError> {
            let query = free_and_due!($table, state, now)
                .order(($table::next_attempt_at.asc(), $table::id.asc()))
                .limit(limit)
                .select($table::id);
            Ok(match &mut *conn {
                DbConnection::Postgresql(pg) => query.for_update().skip_locked().load(pg)?,
                other => query.load(other)?,
            })
        }

        /// Gives `token` the lease on every row in `ids`, until `until`.
        fn lease_all(
            conn: &mut DbConnection,
            ids: &[String],
            token: &str,
            until: NaiveDateTime,
        ) -> Result<(), DbError> {
            diesel::update($table::table.filter($table::id.eq_any(ids)))
                .set((
                    $table::lease_token.eq(Some(token)),
                    $table::lease_until.eq(Some(until)),
                ))
                .execute(conn)?;
            Ok(())
        }

        /// How many rows are in `state`.
        pub fn count_in(conn: &mut DbConnection, state: &str) -> Result<i64, DbError> {
            Ok($table::table
                .filter($table::state.eq(state))
                .count()
                .get_result(conn)?)
        }
    };
}

pub(crate) use {free_and_due, leased_queue};
