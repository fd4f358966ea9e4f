//! Bucket administration through HTTP: the forms and their validation (SSRF included),
//! sealed write-only secrets, the system default bucket, grants and what uploaders see,
//! deletion rules, health, "test connection" and the security check against the real S3
//! test server (`scripts/test-services.sh s3`).

mod access;
mod checks;
mod forms;
mod secrets;

use diesel::prelude::*;
use medport::infra::db::schema::buckets;

use crate::helpers::{Options, TestApp, location};

pub const SYSTEM_ID: &str = medport::app::buckets::SYSTEM_BUCKET_ID;

pub use crate::helpers::{S3Env, s3_client, s3_env};

/// A fresh bucket on the S3 test server.
pub async fn new_s3_bucket() -> String {
    let name = format!("medport-b-{}", uuid::Uuid::now_v7().simple());
    s3_client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the S3 test server must answer at MEDPORT_TEST_S3_ENDPOINT (run \
                 scripts/test-services.sh s3): {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    name
}

/// An app whose bucket endpoints may be on loopback (the S3 test server is).
pub async fn spawn_loopback(backend: crate::helpers::Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.allow_loopback_endpoints = true),
            ..Options::default()
        },
    )
    .await
}

/// POST a form from the main (admin) browser with the token the admin pages show.
pub async fn admin_post(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post_form_from("/admin/buckets/new", path, fields).await
}

/// The form fields of a valid S3 bucket on the test server.
pub fn s3_fields<'a>(
    name: &'a str,
    bucket: &'a str,
    env: &'a S3Env,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("display_name", name),
        ("bucket_name", bucket),
        ("region", env.region.as_str()),
        ("endpoint", env.endpoint.as_str()),
        ("path_style", "on"),
        ("access_key_id", env.access_key.as_str()),
        ("secret_key", env.secret_key.as_str()),
        ("encryption", "none"),
        ("size_limit", ""),
        ("notes", ""),
    ]
}

/// The form fields of a valid S3 bucket on the test server that asks for SSE-S3.
pub fn s3_fields_sse_s3<'a>(
    name: &'a str,
    bucket: &'a str,
    env: &'a S3Env,
) -> Vec<(&'static str, &'a str)> {
    let mut fields = s3_fields(name, bucket, env);
    fields.retain(|(k, _)| *k != "encryption");
    fields.push(("encryption", "sse-s3"));
    fields
}

/// Creates a bucket through the form and returns its id (from the redirect).
pub async fn create_through_form(app: &TestApp, fields: &[(&str, &str)]) -> String {
    let res = admin_post(app, "/admin/buckets", fields).await;
    let status = res.status();
    let to = location(&res);
    assert_eq!(status, 303, "{}", res.text().await.unwrap());
    to.strip_prefix("/admin/buckets/").unwrap().to_string()
}

/// A bucket row written directly (for tests about what happens around existing buckets).
pub fn insert_bucket(app: &TestApp, display_name: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().naive_utc();
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(buckets::table)
        .values((
            buckets::id.eq(&id),
            buckets::display_name.eq(display_name),
            buckets::bucket_name.eq("medport-direct"),
            buckets::backend.eq("s3"),
            buckets::region.eq(Some("eu-central-1")),
            buckets::access_key_id.eq(Some("AKIATEST")),
            buckets::encryption.eq("sse-s3"),
            buckets::notes.eq(""),
            buckets::created_at.eq(now),
            buckets::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    id
}

pub fn bucket_count(app: &TestApp) -> i64 {
    let mut conn = app.db.conn().unwrap();
    buckets::table.count().get_result(&mut *conn).unwrap()
}

pub fn sealed_secret(app: &TestApp, id: &str) -> Option<Vec<u8>> {
    let mut conn = app.db.conn().unwrap();
    buckets::table
        .find(id)
        .select(buckets::secret_key_sealed)
        .first(&mut *conn)
        .unwrap()
}
