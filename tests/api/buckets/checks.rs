//! Talking to storage: health badges, "test connection" and the security check against the
//! S3 test server and the local store, a closed port reported quickly, the system default
//! bucket following the configuration, and the deletion rules.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use medport::config::{DefaultBucket, SystemS3};
use medport::domain::bucket::{BucketName, Endpoint, EndpointPolicy, Region};
use medport::infra::db::schema::{bucket_grants, buckets, uploads};

use super::{
    SYSTEM_ID, admin_post, create_through_form, new_s3_bucket, s3_client, s3_env, s3_fields,
    s3_fields_sse_s3, spawn_loopback,
};
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, location};

/// The "test connection" results on the page, as (state, step) pairs.
fn steps(page: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(
        r#"<li><span class="badge [a-z-]+">(ok|failed|skipped)</span> <strong>([^<]+)</strong>"#,
    )
    .unwrap();
    re.captures_iter(page)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

async fn test_connection_succeeds_against_the_s3_server(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = s3_env();
    let bucket = new_s3_bucket().await;
    let fields = s3_fields_sse_s3("Imaging", &bucket, &env);
    let id = create_through_form(&app, &fields).await;

    let (status, badge) = app.page(&format!("/admin/buckets/{id}/health")).await;
    assert_eq!(status, 200);
    assert!(
        badge.contains(r#"<span class="badge badge-ok">reachable</span>"#),
        "{badge}"
    );

    let res = admin_post(&app, &format!("/admin/buckets/{id}/test"), &[]).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let results = steps(&page);
    assert_eq!(results.len(), 4, "{page}");
    assert!(
        results.iter().all(|(state, _)| state == "ok"),
        "{results:?}"
    );
    let test = app.audit_rows("bucket.test");
    assert_eq!(test.len(), 1);
    assert_eq!(test[0].outcome, "success");
    assert_eq!(test[0].details["steps"].as_array().unwrap().len(), 4);

    // The probe object is gone.
    let listed = s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(".medport-probe/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count().unwrap_or(0), 0);

    let (status, security) = app.page(&format!("/admin/buckets/{id}/security")).await;
    assert_eq!(status, 200);
    for label in [
        "Default encryption",
        "Public access blocked",
        "Versioning",
        "Lifecycle rule aborting incomplete uploads",
    ] {
        assert!(security.contains(label), "{label}: {security}");
    }
    assert!(security.contains("badge-"), "{security}");
}

async fn a_closed_port_is_reported_unreachable_quickly(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = s3_env();
    let mut fields = s3_fields("Nowhere", "nowhere-bucket", &env);
    fields.retain(|(k, _)| *k != "endpoint");
    fields.push(("endpoint", &endpoint));
    let id = create_through_form(&app, &fields).await;

    let started = Instant::now();
    let (status, badge) = app.page(&format!("/admin/buckets/{id}/health")).await;
    assert_eq!(status, 200);
    assert!(
        badge.contains("badge-bad") && badge.contains("unreachable: "),
        "{badge}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let res = admin_post(&app, &format!("/admin/buckets/{id}/test"), &[]).await;
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let results = steps(&res.text().await.unwrap());
    let states: Vec<&str> = results.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["failed", "skipped", "skipped", "skipped"]);
    assert_eq!(app.audit_rows("bucket.test")[0].outcome, "failure");

    let (_, security) = app.page(&format!("/admin/buckets/{id}/security")).await;
    assert!(security.contains("unknown"), "{security}");
}

async fn the_local_default_bucket_is_checked_like_any_other(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let (_, badge) = app
        .page(&format!("/admin/buckets/{SYSTEM_ID}/health"))
        .await;
    assert!(
        badge.contains("reachable") && !badge.contains("unreachable"),
        "{badge}"
    );
    let res = admin_post(&app, &format!("/admin/buckets/{SYSTEM_ID}/test"), &[]).await;
    let results = steps(&res.text().await.unwrap());
    assert_eq!(results.len(), 4);
    assert!(
        results.iter().all(|(state, _)| state == "ok"),
        "{results:?}"
    );
    let (_, security) = app
        .page(&format!("/admin/buckets/{SYSTEM_ID}/security"))
        .await;
    assert!(
        security.contains("Encrypted at rest") && security.contains("n/a"),
        "{security}"
    );
    assert!(app.data_dir.join("objects/FORMAT").exists());
}

/// The S3 test server as the system default bucket's configuration.
fn system_s3(bucket: &str) -> SystemS3 {
    let env = s3_env();
    SystemS3 {
        endpoint: Some(
            Endpoint::parse(
                &env.endpoint,
                EndpointPolicy {
                    allow_loopback: true,
                },
            )
            .unwrap(),
        ),
        region: Region::parse(&env.region, true).unwrap(),
        bucket: BucketName::parse(bucket).unwrap(),
        path_style: true,
        access_key_id: env.access_key.clone(),
        secret_access_key: env.secret_key.clone().into(),
        encryption: medport::app::buckets::Encryption::SseS3,
    }
}

async fn the_default_bucket_follows_the_configuration(backend: Backend) {
    let env = s3_env();
    let bucket = new_s3_bucket().await;
    let s3 = system_s3(&bucket);
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(move |s| {
                s.allow_loopback_endpoints = true;
                s.default_bucket = DefaultBucket::S3(Box::new(s3));
            }),
            ..Options::default()
        },
    )
    .await;
    let admin = app.sign_in_as("admin").await;
    {
        let mut conn = app.db.conn().unwrap();
        let (backend_name, name, sealed): (String, String, Option<Vec<u8>>) = buckets::table
            .find(SYSTEM_ID)
            .select((
                buckets::backend,
                buckets::bucket_name,
                buckets::secret_key_sealed,
            ))
            .first(&mut *conn)
            .unwrap();
        assert_eq!(
            (backend_name.as_str(), name.as_str()),
            ("s3", bucket.as_str())
        );
        assert!(sealed.is_none(), "the configured secret is not stored");
    }
    let res = admin_post(&app, &format!("/admin/buckets/{SYSTEM_ID}/test"), &[]).await;
    let results = steps(&res.text().await.unwrap());
    assert!(
        results.iter().all(|(state, _)| state == "ok"),
        "{results:?}"
    );
    assert!(
        app.audit_rows("bucket.system_sync").is_empty(),
        "installing is no change"
    );

    // Started again with the local store: the row follows, and the change is audited.
    let local = medport::config::Settings::defaults_for(&app.data_dir);
    let now = chrono::Utc::now().naive_utc();
    let mut conn = app.db.conn().unwrap();
    medport::app::buckets::ensure_system_bucket(&mut conn, &local, now).unwrap();
    medport::app::buckets::ensure_system_bucket(&mut conn, &local, now).unwrap();
    drop(conn);
    let synced = app.audit_rows("bucket.system_sync");
    assert_eq!(
        synced.len(),
        1,
        "an unchanged configuration is not a change"
    );
    let changed = synced[0].details["changed"].as_array().unwrap().clone();
    for field in ["backend", "bucket_name", "endpoint", "encryption"] {
        assert!(
            changed.contains(&serde_json::json!(field)),
            "{field}: {changed:?}"
        );
    }
    let (_, page) = app.page(&format!("/admin/buckets/{SYSTEM_ID}")).await;
    assert!(page.contains("Local (encrypted)"), "{page}");

    // With a file stored, moving the default bucket elsewhere stops the start.
    add_upload(&app, SYSTEM_ID, &admin.id, "completed");
    let mut elsewhere = medport::config::Settings::defaults_for(&app.data_dir);
    elsewhere.default_bucket = DefaultBucket::S3(Box::new(system_s3(&bucket)));
    let mut conn = app.db.conn().unwrap();
    let e = medport::app::buckets::ensure_system_bucket(&mut conn, &elsewhere, now).unwrap_err();
    assert!(e.to_string().contains("1 stored file(s)"), "{e}");
    assert!(!e.to_string().contains(&env.secret_key));
    let backend_name: String = buckets::table
        .find(SYSTEM_ID)
        .select(buckets::backend)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(backend_name, "local", "nothing changed");
}

fn add_upload(app: &TestApp, bucket: &str, user: &str, status: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().naive_utc();
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(uploads::table)
        .values((
            uploads::id.eq(&id),
            uploads::user_id.eq(user),
            uploads::bucket_id.eq(bucket),
            uploads::filename.eq("scan.dcm"),
            uploads::extension.eq("dcm"),
            uploads::declared_size.eq(10_i64),
            uploads::part_size.eq(8_388_608_i64),
            uploads::object_key.eq(format!("uploads/2026/11/{id}")),
            uploads::status.eq(status),
            uploads::expires_at.eq(now),
            uploads::created_at.eq(now),
            uploads::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    id
}

fn set_status(app: &TestApp, upload: &str, status: &str) {
    let mut conn = app.db.conn().unwrap();
    diesel::update(uploads::table.find(upload))
        .set(uploads::status.eq(status))
        .execute(&mut *conn)
        .unwrap();
}

fn exists(app: &TestApp, bucket: &str) -> bool {
    let mut conn = app.db.conn().unwrap();
    let n: i64 = buckets::table
        .find(bucket)
        .count()
        .get_result(&mut *conn)
        .unwrap();
    n == 1
}

async fn deletion_is_refused_while_uploads_refer_to_the_bucket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("admin").await;
    let bucket = super::insert_bucket(&app, "Dermatology");
    let clinician = app.create_user(
        "derm@example.org",
        "uploader",
        "a long enough test password",
    );
    let res = admin_post(
        &app,
        &format!("/admin/buckets/{bucket}/grants"),
        &[("user_id", &clinician)],
    )
    .await;
    assert_eq!(res.status(), 303);
    let upload = add_upload(&app, &bucket, &clinician, "active");
    let delete = format!("/admin/buckets/{bucket}/delete");

    let res = admin_post(&app, &delete, &[("confirm", "Dermatology")]).await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("1 upload(s) to this bucket are still in progress")
    );
    set_status(&app, &upload, "completing");
    assert_eq!(
        admin_post(&app, &delete, &[("confirm", "Dermatology")])
            .await
            .status(),
        409
    );
    set_status(&app, &upload, "completed");
    let res = admin_post(&app, &delete, &[("confirm", "Dermatology")]).await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Archive or move its files first.")
    );
    assert!(exists(&app, &bucket));
    assert!(
        app.audit_rows("bucket.delete")
            .iter()
            .all(|r| r.outcome == "denied")
    );

    {
        let mut conn = app.db.conn().unwrap();
        diesel::delete(uploads::table.find(&upload))
            .execute(&mut *conn)
            .unwrap();
    }
    let res = admin_post(&app, &delete, &[("confirm", "dermatology")]).await;
    assert_eq!(res.status(), 422, "the name must match exactly");
    assert!(res.text().await.unwrap().contains("does not match"));
    assert!(exists(&app, &bucket));

    let res = admin_post(&app, &delete, &[("confirm", "Dermatology")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin/buckets");
    assert!(!exists(&app, &bucket));
    let mut conn = app.db.conn().unwrap();
    let grants: i64 = bucket_grants::table
        .filter(bucket_grants::bucket_id.eq(&bucket))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(grants, 0);
    drop(conn);
    let done = app.audit_rows("bucket.delete");
    let last = done.last().unwrap();
    assert_eq!(last.outcome, "success");
    assert_eq!(last.details["grants_removed"], 1);
    assert_eq!(last.details["display_name"], "Dermatology");
}

both_backends!(
    test_connection_succeeds_against_the_s3_server,
    a_closed_port_is_reported_unreachable_quickly,
    the_local_default_bucket_is_checked_like_any_other,
    the_default_bucket_follows_the_configuration,
    deletion_is_refused_while_uploads_refer_to_the_bucket,
);
