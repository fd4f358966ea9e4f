//! The system default bucket: one row with a fixed id, written from the configuration at
//! every start (the local encrypted store, or the `MEDPORT_S3_*` bucket). Admin pages list
//! it but refuse to edit or delete it. Its S3 secret key stays in the configuration and is
//! never stored in the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::model::Backend;
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::config::{DefaultBucket, Settings};
use crate::domain::bucket::Encryption;
use crate::domain::ids::BucketId;
use crate::infra::db::schema::buckets as b;
use crate::infra::db::{DbConnection, DbError, write_tx};

/// The system default bucket's id, the same on every installation.
pub const SYSTEM_BUCKET_ID: &str = "00000000-0000-7000-8000-000000000001";

const DISPLAY_NAME: &str = "Default bucket";
const LOCAL_BUCKET_NAME: &str = "objects";
const NOTES: &str =
    "Set by the server configuration (MEDPORT_S3_* or the local encrypted store); change it there.";

/// What the configuration says the row must hold.
#[derive(Debug, PartialEq, Eq)]
struct Wanted {
    backend: &'static str,
    bucket_name: String,
    region: Option<String>,
    endpoint: Option<String>,
    path_style: bool,
    access_key_id: Option<String>,
    encryption: &'static str,
    kms_key_id: Option<String>,
    open_to_all: bool,
}

impl Wanted {
    fn from_settings(settings: &Settings) -> Self {
        let open_to_all = settings.default_bucket_open_to_all;
        match &settings.default_bucket {
            DefaultBucket::Local => Self {
                backend: Backend::Local.as_str(),
                bucket_name: LOCAL_BUCKET_NAME.into(),
                region: None,
                endpoint: None,
                path_style: false,
                access_key_id: None,
                encryption: Encryption::None.as_str(),
                kms_key_id: None,
                open_to_all,
            },
            DefaultBucket::S3(s3) => Self {
                backend: Backend::S3.as_str(),
                bucket_name: s3.bucket.as_str().into(),
                region: Some(s3.region.as_str().into()),
                endpoint: s3.endpoint.as_ref().map(|e| e.as_str().to_string()),
                path_style: s3.path_style,
                access_key_id: Some(s3.access_key_id.clone()),
                encryption: s3.encryption.as_str(),
                kms_key_id: s3.encryption.kms_key_id().map(str::to_string),
                open_to_all,
            },
        }
    }
}

type Stored = (
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    String,
    Option<String>,
    bool,
    bool,
);

fn stored(conn: &mut DbConnection) -> Result<Option<(Wanted, bool)>, DbError> {
    let row: Option<Stored> = b::table
        .find(SYSTEM_BUCKET_ID)
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
        .optional()?;
    Ok(row.map(|r| {
        let backend = if r.0 == "s3" { "s3" } else { "local" };
        let encryption = match r.6.as_str() {
            "sse-s3" => "sse-s3",
            "sse-kms" => "sse-kms",
            _ => "none",
        };
        let wanted = Wanted {
            backend,
            bucket_name: r.1,
            region: r.2,
            endpoint: r.3,
            path_style: r.4,
            access_key_id: r.5,
            encryption,
            kms_key_id: r.7,
            open_to_all: r.8,
        };
        (wanted, r.9)
    }))
}

/// Field names that differ, for the audit trail (never values of credentials).
fn changed_fields(old: &Wanted, new: &Wanted) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |differs: bool, name: &'static str| {
        if differs {
            changed.push(name);
        }
    };
    check(old.backend != new.backend, "backend");
    check(old.bucket_name != new.bucket_name, "bucket_name");
    check(old.region != new.region, "region");
    check(old.endpoint != new.endpoint, "endpoint");
    check(old.path_style != new.path_style, "path_style");
    check(old.access_key_id != new.access_key_id, "access_key_id");
    check(old.encryption != new.encryption, "encryption");
    check(old.kms_key_id != new.kms_key_id, "kms_key_id");
    check(old.open_to_all != new.open_to_all, "open_to_all");
    changed
}

#[derive(Debug, thiserror::Error)]
pub enum SystemBucketError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The configuration moves the default bucket away from files it holds.
    #[error(
        "the system default bucket holds {stored} stored file(s) and {in_progress} upload(s) in \
         progress at {from}; moving it to {to} would make them unreachable. Move the files \
         first, or restore the previous MEDPORT_S3_* settings"
    )]
    WouldStrand {
        stored: i64,
        in_progress: i64,
        from: String,
        to: String,
    },
}

impl From<diesel::result::Error> for SystemBucketError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Creates the system default bucket's row, or brings it in line with the configuration.
/// A change to an existing row is audited as `bucket.system_sync` by `system` (with the
/// names of the changed settings). A change of location (backend, bucket, endpoint) is
/// refused while files or uploads in progress are in the bucket: they would become
/// unreachable. Several instances starting at once are fine: a lost insert race is retried
/// as an update.
pub fn ensure_system_bucket(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
) -> Result<(), SystemBucketError> {
    match write_tx(conn, |conn| sync(conn, settings, now)) {
        Err(SystemBucketError::Db(DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )))) => write_tx(conn, |conn| sync(conn, settings, now)),
        other => other,
    }
}

/// Where a configuration puts the objects, for messages.
fn location(w: &Wanted) -> String {
    match (w.backend, &w.endpoint) {
        ("local", _) => "the local store".to_string(),
        (_, Some(endpoint)) => format!("S3 bucket {} at {endpoint}", w.bucket_name),
        (_, None) => format!("S3 bucket {} on AWS", w.bucket_name),
    }
}

fn check_not_stranded(
    conn: &mut DbConnection,
    old: &Wanted,
    new: &Wanted,
) -> Result<(), SystemBucketError> {
    if location(old) == location(new) {
        return Ok(());
    }
    let counts = super::queries::upload_counts(conn, &BucketId::from_db(SYSTEM_BUCKET_ID.into()))?;
    if counts.stored == 0 && counts.in_progress == 0 {
        return Ok(());
    }
    Err(SystemBucketError::WouldStrand {
        stored: counts.stored,
        in_progress: counts.in_progress,
        from: location(old),
        to: location(new),
    })
}

fn sync(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
) -> Result<(), SystemBucketError> {
    let wanted = Wanted::from_settings(settings);
    let values = (
        b::backend.eq(wanted.backend),
        b::bucket_name.eq(&wanted.bucket_name),
        b::region.eq(&wanted.region),
        b::endpoint.eq(&wanted.endpoint),
        b::path_style.eq(wanted.path_style),
        b::access_key_id.eq(&wanted.access_key_id),
        b::encryption.eq(wanted.encryption),
        b::kms_key_id.eq(&wanted.kms_key_id),
        b::open_to_all.eq(wanted.open_to_all),
    );
    let details = match stored(conn)? {
        None => {
            diesel::insert_into(b::table)
                .values((
                    b::id.eq(SYSTEM_BUCKET_ID),
                    b::display_name.eq(DISPLAY_NAME),
                    values,
                    b::secret_key_sealed.eq(None::<Vec<u8>>),
                    b::size_limit_bytes.eq(None::<i64>),
                    b::allowed_extensions.eq(None::<String>),
                    b::notes.eq(NOTES),
                    b::is_system.eq(true),
                    b::created_by.eq(None::<String>),
                    b::created_at.eq(now),
                    b::updated_at.eq(now),
                ))
                .execute(conn)?;
            // Part of installing medport, not a change anyone made: not audited.
            return Ok(());
        }
        Some((old, is_system)) => {
            let changed = changed_fields(&old, &wanted);
            if changed.is_empty() && is_system {
                return Ok(());
            }
            check_not_stranded(conn, &old, &wanted)?;
            diesel::update(b::table.find(SYSTEM_BUCKET_ID))
                .set((
                    values,
                    b::is_system.eq(true),
                    b::secret_key_sealed.eq(None::<Vec<u8>>),
                    b::updated_at.eq(now),
                ))
                .execute(conn)?;
            json!({ "changed": changed })
        }
    };
    let event = Event::new(Actor::system(), "bucket.system_sync", Outcome::Success)
        .target("bucket", SYSTEM_BUCKET_ID)
        .details(details);
    audit::record(conn, &event)?;
    Ok(())
}
