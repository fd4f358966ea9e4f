//! Scanning completed uploads against the real clamd (`MEDPORT_TEST_CLAMD`, with the test
//! signature in `MEDPORT_TEST_CLAMD_SIGNATURE`), the real S3 test server and both databases:
//! - `settle`: the scanner's states, leases and idempotency, on uploads seeded directly in
//!   storage and the database (as the pipeline leaves them);
//! - `tus_flow`: the same through real tus uploads, downloads and the stored objects;
//! - `admin`: the quarantine list and the rescan button.

mod admin;
mod settle;
mod tus_flow;

use std::sync::Arc;

use actix_web::web::Bytes;
use chrono::TimeDelta;
use diesel::prelude::*;
use medport::app::buckets::SYSTEM_BUCKET_ID;
use medport::app::buckets::queries as bucket_queries;
use medport::app::uploads::UploadContext;
use medport::config::Settings;
use medport::domain::ids::{BucketId, UploadId};
use medport::infra::db::schema::{audit_events, uploads};
use medport::infra::storage::blob::{BlobStore, ObjectKey, PartNumber};

use crate::helpers::{Backend, Options, TestApp};

pub fn clamd_addr() -> String {
    std::env::var("MEDPORT_TEST_CLAMD").unwrap_or_else(|_| "127.0.0.1:3310".into())
}

pub fn signature() -> String {
    std::env::var("MEDPORT_TEST_CLAMD_SIGNATURE")
        .unwrap_or_else(|_| "MEDPORT-TEST-MALWARE-SIGNATURE-7f3a".into())
}

/// Plain text that passes the type check and carries the test signature.
pub fn infected_text() -> Vec<u8> {
    format!("Referral notes, page 1.\n{}\nEnd of notes.\n", signature()).into_bytes()
}

/// Plain text with nothing in it.
pub fn clean_text(len: usize) -> Vec<u8> {
    let line = b"Blood pressure 120/80, pulse 64, no findings.\n";
    line.iter().copied().cycle().take(len).collect()
}

pub use crate::helpers::closed_port;

pub fn with_clamd(settings: &mut Settings) {
    settings.uploads.clamd = Some(clamd_addr());
}

/// The context the app's own scanner uses: same database, data directory, master key and
/// clock; `tweak` sets the scanner settings for direct `settle` calls.
pub fn context(app: &TestApp, tweak: impl FnOnce(&mut Settings)) -> UploadContext {
    let mut settings = Settings::defaults_for(app.data_dir.clone());
    tweak(&mut settings);
    UploadContext::new(
        app.db.clone(),
        Arc::new(settings),
        Arc::new(app.master_keyring()),
        app.clock.clone(),
    )
}

/// An app and a context with the same scanner settings (so the app's own background work
/// treats seeded uploads as the test's direct calls do).
pub async fn spawn_with_scanner(
    backend: Backend,
    tweak: impl Fn(&mut Settings) + Clone + Send + 'static,
) -> (TestApp, UploadContext) {
    let for_app = tweak.clone();
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(move |s| for_app(s)),
            ..Options::default()
        },
    )
    .await;
    let ctx = context(&app, tweak);
    (app, ctx)
}

/// The system default bucket's store, as `ctx` opens it.
pub async fn default_store(ctx: &UploadContext) -> BlobStore {
    let bucket = ctx
        .db
        .run(|conn| bucket_queries::get(conn, &BucketId::from_db(SYSTEM_BUCKET_ID.into())))
        .await
        .unwrap();
    ctx.store_for(&bucket).await.unwrap()
}

/// Stores `data` in the default bucket and inserts the row the pipeline leaves for the
/// scanner: `completing` / `pending`, with `sha256` (the real digest unless `sha256` says
/// otherwise). Returns the upload id.
pub async fn seed(
    app: &TestApp,
    ctx: &UploadContext,
    filename: &str,
    data: &[u8],
    sha256: Option<String>,
) -> String {
    let owner = app.create_user(
        &format!("owner-{}@example.org", uuid::Uuid::now_v7().simple()),
        "uploader",
        "a long enough test password",
    );
    let id = UploadId::new().into_string();
    let key = ObjectKey::for_upload("", &id).unwrap();
    put_object(&default_store(ctx).await, &key, data).await;
    let now = app.clock.now_naive();
    let sha = sha256.unwrap_or_else(|| crate::tus_support::sha256_hex(data));
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(uploads::table)
        .values((
            uploads::id.eq(&id),
            uploads::user_id.eq(&owner),
            uploads::bucket_id.eq(SYSTEM_BUCKET_ID),
            uploads::filename.eq(filename),
            uploads::extension.eq("txt"),
            uploads::declared_size.eq(data.len() as i64),
            uploads::upload_offset.eq(data.len() as i64),
            uploads::part_size.eq(8 * 1024 * 1024_i64),
            uploads::object_key.eq(key.as_str()),
            uploads::status.eq("completing"),
            uploads::sha256.eq(Some(sha)),
            uploads::scan_status.eq(Some("pending")),
            uploads::expires_at.eq(now + TimeDelta::days(7)),
            uploads::created_at.eq(now),
            uploads::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    id
}

pub async fn put_object(store: &BlobStore, key: &ObjectKey, data: &[u8]) {
    let multipart = store.create_multipart(key).await.unwrap();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    let part = store
        .upload_part(
            key,
            &multipart,
            PartNumber::new(1).unwrap(),
            body,
            data.len() as u64,
        )
        .await
        .unwrap();
    store.complete(key, &multipart, &[part]).await.unwrap();
}

pub async fn read_object(store: &BlobStore, key: &str) -> Option<Vec<u8>> {
    use futures_util::TryStreamExt;
    let key = ObjectKey::parse(key).unwrap();
    match store.get(&key, None).await {
        Ok((_, stream)) => {
            let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
            Some(chunks.concat())
        }
        Err(medport::infra::storage::blob::StorageError::NotFound) => None,
        Err(e) => panic!("reading {key}: {e}"),
    }
}

/// The scanner's columns of one upload.
#[derive(Debug, Queryable)]
pub struct ScanRow {
    pub status: String,
    pub scan_status: Option<String>,
    pub scan_detail: Option<String>,
    pub status_reason: Option<String>,
    pub object_key: String,
    pub lease_token: Option<String>,
    pub completed_at: Option<chrono::NaiveDateTime>,
}

pub fn scan_row(app: &TestApp, id: &str) -> ScanRow {
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select((
            uploads::status,
            uploads::scan_status,
            uploads::scan_detail,
            uploads::status_reason,
            uploads::object_key,
            uploads::lease_token,
            uploads::completed_at,
        ))
        .first(&mut *conn)
        .unwrap()
}

/// The audit events about one upload: (action, actor label, details).
pub fn events_for(app: &TestApp, id: &str) -> Vec<(String, String, String)> {
    let mut conn = app.db.conn().unwrap();
    audit_events::table
        .filter(audit_events::target_id.eq(id))
        .order(audit_events::id.asc())
        .select((
            audit_events::action,
            audit_events::actor_label,
            audit_events::details,
        ))
        .load(&mut *conn)
        .unwrap()
}

pub fn count_events(app: &TestApp, id: &str, action: &str) -> usize {
    events_for(app, id)
        .iter()
        .filter(|(a, _, _)| a == action)
        .count()
}

/// Waits until the upload is neither `active` nor `completing`; returns its row.
pub async fn settled(app: &TestApp, id: &str) -> ScanRow {
    let status = crate::tus_support::settled_status(app, id, 60).await;
    assert!(
        !matches!(status.as_str(), "active" | "completing"),
        "upload {id} did not settle: {status}"
    );
    scan_row(app, id)
}
