//! What the cleanup tests share: an `UploadContext` over a test app, uploads seeded straight
//! into the database with real storage behind them, and looks at rows, audit and storage.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use medport::app::buckets::{SYSTEM_BUCKET_ID, queries};
use medport::app::uploads::{UploadContext, layout};
use medport::config::Settings;
use medport::domain::ids::{BucketId, UploadId};
use medport::infra::db::schema::{audit_events, uploads};
use medport::infra::storage::blob::{BlobStore, MultipartId, ObjectKey, PartNumber};

use crate::helpers::{TestApp, s3_client};
use crate::tus_support::default_bucket_on_s3;

pub const PART_SIZE: i64 = 8 * 1024 * 1024;
/// Bytes "received" by a seeded upload: less than a part, so they sit in a tail object.
pub const OFFSET: i64 = 1000;

/// The context the server builds, over the test app's database, data directory, master key
/// and clock; `s3_bucket` when the app's default bucket is on the S3 test server.
pub fn context(app: &TestApp, s3_bucket: Option<&str>) -> UploadContext {
    let mut settings = Settings::defaults_for(app.data_dir.clone());
    if let Some(bucket) = s3_bucket {
        default_bucket_on_s3(&mut settings, bucket);
    }
    UploadContext::new(
        app.db.clone(),
        Arc::new(settings),
        Arc::new(app.master_keyring()),
        app.clock.clone(),
    )
}

/// Moves the app's clock past the default expiry (7 days) of uploads created before.
pub fn past_expiry(app: &TestApp) {
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 60));
}

pub async fn default_store(ctx: &UploadContext) -> BlobStore {
    let conn_db = ctx.db.clone();
    let bucket = conn_db
        .run(|conn| queries::get(conn, &BucketId::from_db(SYSTEM_BUCKET_ID.into())))
        .await
        .unwrap();
    ctx.store_for(&bucket).await.unwrap()
}

/// An upload as the pipeline leaves it mid-way, seeded directly.
pub struct Seeded {
    pub id: String,
    pub key: ObjectKey,
    pub tail: ObjectKey,
}

/// An upload in `status`, expiring `expires_in` from the app's now, owned by a new user, in
/// the default bucket: a multipart upload with one small part, and its tail object.
pub async fn seed(
    app: &TestApp,
    ctx: &UploadContext,
    status: &str,
    expires_in: TimeDelta,
) -> Seeded {
    let store = default_store(ctx).await;
    let id = UploadId::new().into_string();
    let key = ObjectKey::for_upload("", &id).unwrap();
    let multipart = store.create_multipart(&key).await.unwrap();
    put_part(&store, &key, &multipart, b"first bytes of a part").await;
    let tail = layout::tail_key(&key, OFFSET as u64).unwrap();
    let tail_upload = store.create_multipart(&tail).await.unwrap();
    let part = put_part(&store, &tail, &tail_upload, &[7u8; OFFSET as usize]).await;
    store.complete(&tail, &tail_upload, &[part]).await.unwrap();

    let email = format!("owner-{}@example.org", uuid::Uuid::now_v7().simple());
    let user = app.create_user(&email, "uploader", "a long enough test password");
    let now = app.clock.now_naive();
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(uploads::table)
        .values((
            uploads::id.eq(&id),
            uploads::user_id.eq(&user),
            uploads::bucket_id.eq(SYSTEM_BUCKET_ID),
            uploads::filename.eq("scan.dcm"),
            uploads::extension.eq("dcm"),
            uploads::declared_size.eq(50_000_i64),
            uploads::upload_offset.eq(OFFSET),
            uploads::part_size.eq(PART_SIZE),
            uploads::object_key.eq(key.as_str()),
            uploads::storage_upload_id.eq(Some(multipart.as_str())),
            uploads::status.eq(status),
            uploads::expires_at.eq(now + expires_in),
            uploads::created_at.eq(now),
            uploads::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    Seeded { id, key, tail }
}

async fn put_part(
    store: &BlobStore,
    key: &ObjectKey,
    upload: &MultipartId,
    data: &[u8],
) -> medport::infra::storage::blob::PartInfo {
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    store
        .upload_part(
            key,
            upload,
            PartNumber::new(1).unwrap(),
            body,
            data.len() as u64,
        )
        .await
        .unwrap()
}

/// The columns cleanup writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub status: String,
    pub reason: Option<String>,
    pub attempts: i32,
    pub next_cleanup_at: Option<NaiveDateTime>,
    pub lease_token: Option<String>,
}

pub fn row(app: &TestApp, id: &str) -> Row {
    let mut conn = app.db.conn().unwrap();
    let (status, reason, attempts, next_cleanup_at, lease_token) = uploads::table
        .find(id)
        .select((
            uploads::status,
            uploads::status_reason,
            uploads::cleanup_attempts,
            uploads::next_cleanup_at,
            uploads::lease_token,
        ))
        .first(&mut *conn)
        .unwrap();
    Row {
        status,
        reason,
        attempts,
        next_cleanup_at,
        lease_token,
    }
}

/// Audit events with `action` about upload `id`: (actor label, outcome, details).
pub fn audit_for(app: &TestApp, action: &str, id: &str) -> Vec<(String, String, String)> {
    let mut conn = app.db.conn().unwrap();
    audit_events::table
        .filter(audit_events::action.eq(action))
        .filter(audit_events::target_type.eq("upload"))
        .filter(audit_events::target_id.eq(id))
        .select((
            audit_events::actor_label,
            audit_events::outcome,
            audit_events::details,
        ))
        .order(audit_events::id.asc())
        .load(&mut *conn)
        .unwrap()
}

/// Whether the backend still lists a multipart upload for `key`.
pub async fn multipart_left(store: &BlobStore, key: &ObjectKey) -> bool {
    store
        .list_multipart_uploads()
        .await
        .unwrap()
        .iter()
        .any(|(k, _)| k == key)
}

/// Multipart uploads the S3 test server itself lists for `key` in `bucket`.
pub async fn s3_multipart_uploads(bucket: &str, key: &ObjectKey) -> usize {
    let listed = s3_client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .uploads()
        .iter()
        .filter(|u| u.key() == Some(key.as_str()))
        .count()
}

/// Objects stored under `prefix` in `bucket` on the S3 test server (tails included).
pub async fn s3_objects_under(bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3_client()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Points the default bucket's row at `endpoint` (a closed port makes storage unreachable).
pub fn set_endpoint(app: &TestApp, endpoint: &str) {
    use medport::infra::db::schema::buckets;
    let mut conn = app.db.conn().unwrap();
    diesel::update(buckets::table.find(SYSTEM_BUCKET_ID))
        .set(buckets::endpoint.eq(Some(endpoint)))
        .execute(&mut *conn)
        .unwrap();
}

/// A loopback address where nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
