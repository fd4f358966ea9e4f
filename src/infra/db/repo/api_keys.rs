//! The api_keys table: a user's keys (hash and prefix, never the key), their revocation,
//! and the lookup by prefix that authenticates a presented key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{api_keys, users};
use crate::infra::db::{DbConnection, DbError};

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: String,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

// Hand-written so the hash never reaches a log line.
impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewKeyRow<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a str,
    pub expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Inserts a key inside a savepoint; `false` when its prefix (or id) is already taken,
/// with the surrounding transaction still usable on PostgreSQL.
pub fn insert(conn: &mut DbConnection, new: &NewKeyRow<'_>) -> Result<bool, DbError> {
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(api_keys::table)
            .values(new)
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `owner`'s keys, newest first.
pub fn of_owner(conn: &mut DbConnection, owner: &str) -> Result<Vec<ApiKeyRow>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::user_id.eq(owner))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKeyRow::as_select())
        .load(conn)?)
}

/// Key `id` if `owner` owns it.
pub fn owned(conn: &mut DbConnection, owner: &str, id: &str) -> Result<Option<ApiKeyRow>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::user_id.eq(owner))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Revokes key `id` of `owner` unless already revoked; `true` when this call revoked it.
pub fn revoke_owned(
    conn: &mut DbConnection,
    owner: &str,
    id: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(owner))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Revokes every key of `owner` not yet revoked; returns how many.
pub fn revoke_all_of(
    conn: &mut DbConnection,
    owner: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        api_keys::table
            .filter(api_keys::user_id.eq(owner))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)?)
}

/// Revokes every key not yet revoked, of every user; returns how many.
pub fn revoke_all(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    Ok(
        diesel::update(api_keys::table.filter(api_keys::revoked_at.is_null()))
            .set(api_keys::revoked_at.eq(now))
            .execute(conn)?,
    )
}

/// A key found by its prefix, with what authentication needs to know of its owner.
#[derive(Debug, Clone)]
pub struct WithOwner {
    pub key: ApiKeyRow,
    pub email: String,
    pub role: String,
    pub disabled: bool,
    pub totp_enabled: bool,
}

/// The key with this prefix and its owner, if any.
pub fn by_prefix_with_owner(
    conn: &mut DbConnection,
    prefix: &str,
) -> Result<Option<WithOwner>, DbError> {
    let found: Option<(ApiKeyRow, String, String, bool, bool)> = api_keys::table
        .inner_join(users::table)
        .filter(api_keys::prefix.eq(prefix))
        .select((
            ApiKeyRow::as_select(),
            users::email,
            users::role,
            users::disabled,
            users::totp_secret_sealed.is_not_null(),
        ))
        .first(conn)
        .optional()?;
    Ok(
        found.map(|(key, email, role, disabled, totp_enabled)| WithOwner {
            key,
            email,
            role,
            disabled,
            totp_enabled,
        }),
    )
}

/// Sets `last_used_at` to `now` unless it is already at or after `stale_before` (a
/// concurrent request may have written it since it was read).
pub fn touch_last_used(
    conn: &mut DbConnection,
    id: &str,
    stale_before: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(stale_before)),
        ),
    )
    .set(api_keys::last_used_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// A user with keys not yet revoked.
#[derive(Debug, Clone, Queryable)]
pub struct KeyHolder {
    pub user_id: String,
    pub email: String,
    pub keys: i64,
}

/// Users with keys not yet revoked, by email.
pub fn holders(conn: &mut DbConnection) -> Result<Vec<KeyHolder>, DbError> {
    Ok(api_keys::table
        .inner_join(users::table)
        .filter(api_keys::revoked_at.is_null())
        .group_by((users::id, users::email))
        .select((users::id, users::email, diesel::dsl::count(api_keys::id)))
        .order(users::email.asc())
        .load(conn)?)
}

/// Keys not yet revoked, of every user.
pub fn count_unrevoked(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}
