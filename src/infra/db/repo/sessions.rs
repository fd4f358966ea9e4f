//! The sessions table, as users list and end their own sessions and admins count them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::sessions;
use crate::infra::db::timestamp::Stamp;
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

/// Deletes every session that expired before `now` (the store's periodic sweep).
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.lt(now))).execute(conn)?)
}

/// A new session row, as the session store writes it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: Option<String>,
    pub state: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, new: NewSession) -> Result<usize, DbError> {
    Ok(diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(&new.id_hash),
            sessions::user_id.eq(new.user_id),
            sessions::state.eq(new.state),
            sessions::ip.eq(new.ip),
            sessions::user_agent.eq(new.user_agent),
            sessions::created_at.eq(new.created_at),
            sessions::last_seen_at.eq(new.last_seen_at),
            sessions::expires_at.eq(new.expires_at),
        ))
        .execute(conn)?)
}

/// The stored state (JSON) of one session; a missing row is an error.
pub fn state_of(conn: &mut DbConnection, id_hash: &str) -> Result<String, DbError> {
    Ok(sessions::table
        .find(id_hash)
        .select(sessions::state)
        .first::<String>(conn)?)
}

/// What the session store reads to load a session and judge its expiry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Stored {
    pub state: String,
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = Stamp)]
    pub last_seen_at: NaiveDateTime,
}

pub fn find_stored(conn: &mut DbConnection, id_hash: &str) -> Result<Option<Stored>, DbError> {
    Ok(super::on_backend!(conn, |c| sessions::table
        .find(id_hash)
        .select(Stored::as_select())
        .first(c)
        .optional())?)
}

/// Records activity on a session: when it was last seen and when it now expires. Only ever
/// moves forward, so writes made in the background may land in any order.
pub fn touch(
    conn: &mut DbConnection,
    id_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        sessions::table
            .find(id_hash)
            .filter(sessions::last_seen_at.lt(now)),
    )
    .set((
        sessions::last_seen_at.eq(now),
        sessions::expires_at.eq(expires_at),
    ))
    .execute(conn)?)
}

/// Writes a session's state and the columns copied from it; returns how many rows changed
/// (0 when the session was removed meanwhile).
pub fn update_state(
    conn: &mut DbConnection,
    id_hash: &str,
    state: String,
    user_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<usize, DbError> {
    Ok(diesel::update(sessions::table.find(id_hash))
        .set((
            sessions::state.eq(state),
            sessions::user_id.eq(user_id),
            sessions::ip.eq(ip),
            sessions::user_agent.eq(user_agent),
        ))
        .execute(conn)?)
}

/// Deletes one session by its id hash, whoever owns it.
pub fn delete(conn: &mut DbConnection, id_hash: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.find(id_hash)).execute(conn)?)
}
