//! The system default bucket: one row with a fixed id, written from the configuration at
//! every start (the local encrypted store, or the `MEDPORT_S3_*` bucket). Admin pages list
//! it but refuse to edit or delete it. Its S3 secret key stays in the configuration and is
//! never stored in the database.

use chrono::NaiveDateTime;
use serde_json::json;

use super::model::Backend;
use crate::app::audit::{self, Actor, Event, Outcome};
use crate::config::{DefaultBucket, Settings};
use crate::domain::bucket::Encryption;
use crate::domain::ids::BucketId;
use crate::infra::db::repo::buckets;
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

impl Wanted {
    fn columns(&self) -> buckets::SystemConfig<'_> {
        buckets::SystemConfig {
            backend: self.backend,
            bucket_name: &self.bucket_name,
            region: self.region.as_deref(),
            endpoint: self.endpoint.as_deref(),
            path_style: self.path_style,
            access_key_id: self.access_key_id.as_deref(),
            encryption: self.encryption,
            kms_key_id: self.kms_key_id.as_deref(),
            open_to_all: self.open_to_all,
        }
    }
}

fn stored(conn: &mut DbConnection) -> Result<Option<(Wanted, bool)>, DbError> {
    let row = buckets::stored_system(conn, SYSTEM_BUCKET_ID)?;
    Ok(row.map(|r| {
        let backend = if r.backend == "s3" { "s3" } else { "local" };
        let encryption = match r.encryption.as_str() {
            "sse-s3" => "sse-s3",
            "sse-kms" => "sse-kms",
            _ => "none",
        };
        let wanted = Wanted {
            backend,
            bucket_name: r.bucket_name,
            region: r.region,
            endpoint: r.endpoint,
            path_style: r.path_style,
            access_key_id: r.access_key_id,
            encryption,
            kms_key_id: r.kms_key_id,
            open_to_all: r.open_to_all,
        };
        (wanted, r.is_system)
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

/// Files or uploads that a change of location would strand, as `WouldStrand` reports them.
struct Stranded {
    stored: i64,
    in_progress: i64,
    from: String,
    to: String,
}

impl From<Stranded> for SystemBucketError {
    fn from(s: Stranded) -> Self {
        Self::WouldStrand {
            stored: s.stored,
            in_progress: s.in_progress,
            from: s.from,
            to: s.to,
        }
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
    // A refusal has written nothing, so its transaction commits empty.
    let attempt = |conn: &mut DbConnection| write_tx(conn, |conn| sync(conn, settings, now));
    let outcome = match attempt(conn) {
        Err(e) if e.is_unique_violation() => attempt(conn),
        other => other,
    }?;
    outcome.map_err(SystemBucketError::from)
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
) -> Result<Result<(), Stranded>, DbError> {
    if location(old) == location(new) {
        return Ok(Ok(()));
    }
    let counts = super::queries::upload_counts(conn, &BucketId::from_db(SYSTEM_BUCKET_ID.into()))?;
    if counts.stored == 0 && counts.in_progress == 0 {
        return Ok(Ok(()));
    }
    Ok(Err(Stranded {
        stored: counts.stored,
        in_progress: counts.in_progress,
        from: location(old),
        to: location(new),
    }))
}

/// Writes the row; the inner error refuses a change that would strand files.
fn sync(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
) -> Result<Result<(), Stranded>, DbError> {
    let wanted = Wanted::from_settings(settings);
    let details = match stored(conn)? {
        None => {
            buckets::insert_system(
                conn,
                SYSTEM_BUCKET_ID,
                DISPLAY_NAME,
                NOTES,
                &wanted.columns(),
                now,
            )?;
            // Part of installing medport, not a change anyone made: not audited.
            return Ok(Ok(()));
        }
        Some((old, is_system)) => {
            let changed = changed_fields(&old, &wanted);
            if changed.is_empty() && is_system {
                return Ok(Ok(()));
            }
            if let Err(stranded) = check_not_stranded(conn, &old, &wanted)? {
                return Ok(Err(stranded));
            }
            buckets::update_system(conn, SYSTEM_BUCKET_ID, &wanted.columns(), now)?;
            json!({ "changed": changed })
        }
    };
    let event = Event::new(Actor::system(), "bucket.system_sync", Outcome::Success)
        .target("bucket", SYSTEM_BUCKET_ID)
        .details(details);
    audit::record(conn, &event)?;
    Ok(Ok(()))
}
