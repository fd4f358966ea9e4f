//! The sessions table, as users list and end their own sessions and admins count them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::sessions;
use crate::infra::db::{DbConnection, DbError};

/// Deletes every session of `user_id`, but `keep_hash` if given; returns how many went.
pub fn delete_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    keep_hash: Option<&str>,
) -> Result<usize, DbError> {
    let mine = sessions::table.filter(sessions::user_id.eq(user_id));
    let n = match keep_hash {
        Some(keep) => diesel::delete(mine.filter(sessions::id_hash.ne(keep))).execute(conn)?,
        None => diesel::delete(mine).execute(conn)?,
    };
    Ok(n)
}

/// Sessions alive at `now` whose id hash is not `keep_hash`.
pub fn count_live_except(
    conn: &mut DbConnection,
    keep_hash: &str,
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::id_hash.ne(keep_hash))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)?)
}

/// Deletes every session whose id hash is not `keep_hash`: first those already expired at
/// `now`, then the rest. Returns how many of the rest (the live ones) went.
pub fn delete_all_except(
    conn: &mut DbConnection,
    keep_hash: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let others = sessions::table.filter(sessions::id_hash.ne(keep_hash));
    diesel::delete(others.filter(sessions::expires_at.le(now))).execute(conn)?;
    Ok(diesel::delete(others).execute(conn)?)
}

/// Sessions of `user_id` that have not expired at `now`.
pub fn active_count(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(conn)?)
}

/// A live session as its owner sees it listed.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Listed {
    pub id_hash: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
}

/// `user_id`'s live sessions (expired rows wait for the sweep), most recently used first.
pub fn live_of(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<Vec<Listed>, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .order(sessions::last_seen_at.desc())
        .select(Listed::as_select())
        .load(conn)?)
}

/// Deletes one session of `user_id`; another user's session id matches nothing. Returns
/// whether a row went.
pub fn delete_own(conn: &mut DbConnection, user_id: &str, id_hash: &str) -> Result<bool, DbError> {
    let n = diesel::delete(
        sessions::table
            .filter(sessions::id_hash.eq(id_hash))
            .filter(sessions::user_id.eq(user_id)),
    )
    .execute(conn)?;
    Ok(n == 1)
}
