//! The buckets table: the rows pages and services read (never the sealed secret, except
//! through `sealed_secret`), the admins' changes, and the system default bucket's row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::infra::db::schema::{bucket_grants as g, buckets as b, uploads};
use crate::infra::db::{DbConnection, DbError};

/// The columns pages and services read: never the sealed secret itself.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = b)]
pub struct Row {
    pub id: String,
    pub display_name: String,
    pub bucket_name: String,
    pub backend: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    #[diesel(select_expression = b::secret_key_sealed.is_not_null())]
    #[diesel(select_expression_type = diesel::dsl::IsNotNull<b::secret_key_sealed>)]
    pub has_secret: bool,
    pub encryption: String,
    pub kms_key_id: Option<String>,
    pub size_limit_bytes: Option<i64>,
    pub allowed_extensions: Option<String>,
    pub notes: String,
    pub is_system: bool,
    pub open_to_all: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Every bucket, the system default first, then by display name.
pub fn all(conn: &mut DbConnection) -> Result<Vec<Row>, DbError> {
    Ok(super::on_backend!(conn, |c| b::table
        .select(Row::as_select())
        .order((b::is_system.desc(), b::display_name.asc(), b::id.asc()))
        .load(c))?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Row>, DbError> {
    Ok(b::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?)
}

/// The buckets granted to `user_id`, plus the system default bucket when it is open to all,
/// the system default first, then by display name.
pub fn granted_or_open(conn: &mut DbConnection, user_id: &str) -> Result<Vec<Row>, DbError> {
    let granted = g::table.filter(g::user_id.eq(user_id)).select(g::bucket_id);
    Ok(b::table
        .filter(
            b::id
                .eq_any(granted)
                .or(b::is_system.eq(true).and(b::open_to_all.eq(true))),
        )
        .select(Row::as_select())
        .order((b::is_system.desc(), b::display_name.asc(), b::id.asc()))
        .load(conn)?)
}

/// The sealed secret key of one bucket (for opening its backend only).
pub fn sealed_secret(conn: &mut DbConnection, id: &str) -> Result<Option<Vec<u8>>, DbError> {
    Ok(b::table
        .find(id)
        .select(b::secret_key_sealed)
        .first::<Option<Vec<u8>>>(conn)
        .optional()?
        .flatten())
}

/// Every bucket's id and display name.
pub fn display_names(conn: &mut DbConnection) -> Result<Vec<(String, String)>, DbError> {
    Ok(b::table.select((b::id, b::display_name)).load(conn)?)
}

/// How many uploads refer to the bucket, per upload status.
pub fn upload_status_counts(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(uploads::table
        .filter(uploads::bucket_id.eq(id))
        .group_by(uploads::status)
        .select((uploads::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Locks the bucket's row until the transaction ends on PostgreSQL (SQLite's `BEGIN
/// IMMEDIATE` already admits one writer, so there it does nothing).
pub fn lock(conn: &mut DbConnection, id: &str) -> Result<(), DbError> {
    if let DbConnection::Postgresql(pg) = conn {
        b::table
            .find(id)
            .select(b::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    Ok(())
}

/// The settings an administrator gives an S3 bucket.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub display_name: &'a str,
    pub bucket_name: &'a str,
    pub region: &'a str,
    pub endpoint: Option<&'a str>,
    pub path_style: bool,
    pub access_key_id: &'a str,
    pub encryption: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub size_limit_bytes: Option<i64>,
    pub allowed_extensions: Option<&'a str>,
    pub notes: &'a str,
}

/// Inserts an S3 bucket made by an administrator (not the system one, not open to all).
pub fn insert_s3(
    conn: &mut DbConnection,
    id: &str,
    s: &Settings<'_>,
    sealed_secret: &[u8],
    created_by: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(b::table)
        .values((
            b::id.eq(id),
            b::display_name.eq(s.display_name),
            b::bucket_name.eq(s.bucket_name),
            b::backend.eq("s3"),
            b::region.eq(Some(s.region)),
            b::endpoint.eq(s.endpoint),
            b::path_style.eq(s.path_style),
            b::access_key_id.eq(Some(s.access_key_id)),
            b::secret_key_sealed.eq(Some(sealed_secret)),
            b::encryption.eq(s.encryption),
            b::kms_key_id.eq(s.kms_key_id),
            b::size_limit_bytes.eq(s.size_limit_bytes),
            b::allowed_extensions.eq(s.allowed_extensions),
            b::notes.eq(s.notes),
            b::is_system.eq(false),
            b::open_to_all.eq(false),
            b::created_by.eq(Some(created_by)),
            b::created_at.eq(now),
            b::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes an administrator's settings to a bucket; a new sealed secret replaces the stored
/// one, `None` keeps it.
pub fn update_settings(
    conn: &mut DbConnection,
    id: &str,
    s: &Settings<'_>,
    sealed_secret: Option<&[u8]>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let row = b::table.find(id);
    diesel::update(row)
        .set((
            b::display_name.eq(s.display_name),
            b::bucket_name.eq(s.bucket_name),
            b::region.eq(Some(s.region)),
            b::endpoint.eq(s.endpoint),
            b::path_style.eq(s.path_style),
            b::access_key_id.eq(Some(s.access_key_id)),
            b::encryption.eq(s.encryption),
            b::kms_key_id.eq(s.kms_key_id),
            b::size_limit_bytes.eq(s.size_limit_bytes),
            b::allowed_extensions.eq(s.allowed_extensions),
            b::notes.eq(s.notes),
            b::updated_at.eq(now),
        ))
        .execute(conn)?;
    if let Some(sealed) = sealed_secret {
        diesel::update(row)
            .set(b::secret_key_sealed.eq(Some(sealed)))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes the bucket's row. An upload that still refers to it fails this with a foreign key
/// violation ([`DbError::is_foreign_key_violation`]).
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(b::table.find(id)).execute(conn)?)
}

/// What the configuration writes to the system default bucket's row.
#[derive(Debug, Clone, Copy)]
pub struct SystemConfig<'a> {
    pub backend: &'a str,
    pub bucket_name: &'a str,
    pub region: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub path_style: bool,
    pub access_key_id: Option<&'a str>,
    pub encryption: &'a str,
    pub kms_key_id: Option<&'a str>,
    pub open_to_all: bool,
}

/// The system default bucket's row as stored, in the configuration's terms.
#[derive(Debug, Clone, Queryable)]
pub struct StoredSystem {
    pub backend: String,
    pub bucket_name: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub encryption: String,
    pub kms_key_id: Option<String>,
    pub open_to_all: bool,
    pub is_system: bool,
}

/// The configuration columns of the row with id `id` (the system default bucket's).
pub fn stored_system(conn: &mut DbConnection, id: &str) -> Result<Option<StoredSystem>, DbError> {
    Ok(b::table
        .find(id)
        .select((
            b::backend,
            b::bucket_name,
            b::region,
            b::endpoint,
            b::path_style,
            b::access_key_id,
            b::encryption,
            b::kms_key_id,
            b::open_to_all,
            b::is_system,
        ))
        .first(conn)
        .optional()?)
}

/// Inserts the system default bucket's row, without a secret key, limits or creator.
pub fn insert_system(
    conn: &mut DbConnection,
    id: &str,
    display_name: &str,
    notes: &str,
    c: &SystemConfig<'_>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::insert_into(b::table)
        .values((
            b::id.eq(id),
            b::display_name.eq(display_name),
            (
                b::backend.eq(c.backend),
                b::bucket_name.eq(c.bucket_name),
                b::region.eq(c.region),
                b::endpoint.eq(c.endpoint),
                b::path_style.eq(c.path_style),
                b::access_key_id.eq(c.access_key_id),
                b::encryption.eq(c.encryption),
                b::kms_key_id.eq(c.kms_key_id),
                b::open_to_all.eq(c.open_to_all),
            ),
            b::secret_key_sealed.eq(None::<Vec<u8>>),
            b::size_limit_bytes.eq(None::<i64>),
            b::allowed_extensions.eq(None::<String>),
            b::notes.eq(notes),
            b::is_system.eq(true),
            b::created_by.eq(None::<String>),
            b::created_at.eq(now),
            b::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Brings the system default bucket's row in line with the configuration, marks it as the
/// system one and clears any stored secret key.
pub fn update_system(
    conn: &mut DbConnection,
    id: &str,
    c: &SystemConfig<'_>,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(b::table.find(id))
        .set((
            (
                b::backend.eq(c.backend),
                b::bucket_name.eq(c.bucket_name),
                b::region.eq(c.region),
                b::endpoint.eq(c.endpoint),
                b::path_style.eq(c.path_style),
                b::access_key_id.eq(c.access_key_id),
                b::encryption.eq(c.encryption),
                b::kms_key_id.eq(c.kms_key_id),
                b::open_to_all.eq(c.open_to_all),
            ),
            b::is_system.eq(true),
            b::secret_key_sealed.eq(None::<Vec<u8>>),
            b::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Every bucket's sealed secret key, for re-sealing under a new master key.
pub fn sealed_secrets(conn: &mut DbConnection) -> Result<Vec<(String, Vec<u8>)>, DbError> {
    let rows: Vec<(String, Option<Vec<u8>>)> = b::table
        .select((b::id, b::secret_key_sealed))
        .filter(b::secret_key_sealed.is_not_null())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, sealed)| sealed.map(|s| (id, s)))
        .collect())
}

/// Replaces a bucket's sealed secret key (re-sealed, same plaintext).
pub fn set_sealed_secret(
    conn: &mut DbConnection,
    id: &str,
    sealed: Vec<u8>,
) -> Result<(), DbError> {
    diesel::update(b::table.find(id))
        .set(b::secret_key_sealed.eq(Some(sealed)))
        .execute(conn)?;
    Ok(())
}
