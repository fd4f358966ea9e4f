//! Batches over JSON: declare one, send files naming it, look it up, finish it; only the
//! uploader who declared it sees it, and its audit events carry counts, never names.

use diesel::prelude::*;
use medport::infra::db::schema::{bucket_grants, upload_batches};
use serde_json::{Value, json};

use super::{batch_file, upload_count, uploader};
use crate::both_backends;
use crate::buckets::{SYSTEM_ID, insert_bucket};
use crate::helpers::dicom::Instance;
use crate::helpers::{Backend, TestApp, location};
use crate::tus_support::{Tus, api_key, sign_out};

const STUDY: &str = "1.2.826.0.1.3680043.99.2";

fn image(n: i32) -> Vec<u8> {
    Instance::of(STUDY, 1, n).bytes()
}

async fn a_batch_is_declared_listed_and_finished_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let res = tus
        .declare_batch_raw(r#"{"files": 3, "bytes": 12345}"#)
        .await;
    assert_eq!(res.status(), 201);
    let at = location(&res);
    let batch: Value = res.json().await.unwrap();
    let id = batch["id"].as_str().unwrap().to_string();
    assert_eq!(at, format!("/batches/{id}"));
    assert_eq!(batch["bucket"], SYSTEM_ID);
    assert_eq!(batch["declared_files"], 3);
    assert_eq!(batch["declared_bytes"], 12345);
    assert!(batch["started_at"].is_string(), "{batch}");
    assert!(batch["finished_at"].is_null(), "{batch}");
    assert!(batch.get("user_id").is_none(), "{batch}");

    // Sent out of order; listed by path.
    for (path, n) in [
        ("SMITH_FOLDER/SE2/IMG_BETA", 2),
        ("SMITH_FOLDER/SE1/IMG_ALPHA", 1),
    ] {
        let (status, _, body) = tus.send_in_batch(Some(&id), path, &image(n)).await;
        assert_eq!(status, 201, "{path}: {body}");
    }
    let res = tus.batch(&id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let summary: Value = res.json().await.unwrap();
    assert_eq!(summary["id"], id.as_str());
    assert_eq!(
        (
            &summary["stored"],
            &summary["duplicates"],
            &summary["problems"]
        ),
        (&json!(2), &json!(0), &json!(0)),
        "{summary}"
    );
    let paths: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["relative_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["SMITH_FOLDER/SE1/IMG_ALPHA", "SMITH_FOLDER/SE2/IMG_BETA"]
    );
    let alpha = batch_file(&summary, "SMITH_FOLDER/SE1/IMG_ALPHA");
    assert_eq!(alpha["filename"], "IMG_ALPHA");
    assert_eq!(alpha["status"], "completed");
    assert_eq!(alpha["dicom"], "indexed");
    assert_eq!(alpha["size"], image(1).len());
    assert!(alpha["sha256"].is_string() && alpha["problem"].is_null());

    let res = tus.finish_batch(&id, 4).await;
    assert_eq!(res.status(), 200);
    let finished: Value = res.json().await.unwrap();
    assert!(finished["finished_at"].is_string(), "{finished}");
    assert_eq!(finished["stored"], 2);
    // Finishing again changes nothing and audits nothing.
    let again: Value = tus.finish_batch(&id, 9).await.json().await.unwrap();
    assert_eq!(again["finished_at"], finished["finished_at"]);
    assert_eq!(
        tus.batch_status(&id).await["finished_at"],
        finished["finished_at"]
    );

    let created = app.audit_rows("batch.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(created[0].details["files"], 3);
    assert_eq!(created[0].details["bytes"], 12345);
    let closed = app.audit_rows("batch.finish");
    assert_eq!(
        closed.len(),
        1,
        "one batch.finish however often it is finished"
    );
    assert_eq!(closed[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(closed[0].details["stored"], 2);
    assert_eq!(closed[0].details["skipped"], 4);
    assert_eq!(closed[0].details["declared_files"], 3);
    for row in created.iter().chain(&closed) {
        let details = row.details.to_string();
        for name in ["SMITH", "IMG_", "SE1", "SE2"] {
            assert!(!details.contains(name), "{name} in {details}");
        }
    }
}

async fn another_uploaders_batch_is_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = uploader(&app).await;
    let id = alice.open_batch(None, 2).await;
    sign_out(&app).await;
    let bob = uploader(&app).await;

    assert_eq!(bob.batch(&id).await.status(), 404);
    assert_eq!(bob.finish_batch(&id, 0).await.status(), 404);
    let (status, _, body) = bob.send_in_batch(Some(&id), "CD/IM1", &image(1)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(upload_count(&app), 0, "nothing was created for bob");
    // Ids that cannot exist, or do not, look the same.
    for other in ["not-a-batch", "0190a5c4-0000-7000-8000-000000000000"] {
        assert_eq!(bob.batch(other).await.status(), 404, "{other}");
        let (status, _, _) = bob.send_in_batch(Some(other), "CD/IM1", &image(1)).await;
        assert_eq!(status, 404, "{other}");
    }
    assert!(alice.batch_status(&id).await["finished_at"].is_null());
    assert!(app.audit_rows("batch.finish").is_empty());
}

async fn a_finished_batch_takes_no_more_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    let id = tus.open_batch(None, 2).await;
    let (status, _, body) = tus.send_in_batch(Some(&id), "CD/IM1", &image(1)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(tus.finish_batch(&id, 0).await.status(), 200);
    let (status, _, body) = tus.send_in_batch(Some(&id), "CD/IM2", &image(2)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already finished"), "{body}");
    assert_eq!(upload_count(&app), 1);
}

async fn a_file_goes_only_to_the_bucket_of_its_batch(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await.id.clone();
    let tus = Tus::with_key(&app, &api_key(&app, &["upload", "read"]).await);
    let other = insert_bucket(&app, "Radiology");
    diesel::insert_into(bucket_grants::table)
        .values((
            bucket_grants::bucket_id.eq(&other),
            bucket_grants::user_id.eq(&user),
            bucket_grants::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
    // A batch in the other bucket, a file to the default one.
    let elsewhere = tus.open_batch(Some(&other), 1).await;
    let (status, _, body) = tus
        .send_in_batch(Some(&elsewhere), "CD/IM1", &image(1))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bucket of its batch"), "{body}");
    // A batch in the default bucket, a file to the other one.
    let here = tus.open_batch(None, 1).await;
    let data = image(1);
    let res = tus
        .create_with_body(
            data.len() as u64,
            &[
                ("filename", "IM1"),
                ("relativePath", "CD/IM1"),
                ("batch", &here),
                ("bucket", &other),
            ],
            Some(data),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(upload_count(&app), 0);
}

async fn only_uploaders_with_the_upload_right_declare_batches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writer = uploader(&app).await;
    let id = writer.open_batch(None, 1).await;
    let reader = Tus::with_key(&app, &api_key(&app, &["read"]).await);
    let declare = r#"{"files": 1, "bytes": 10}"#;
    assert_eq!(reader.declare_batch_raw(declare).await.status(), 403);
    assert_eq!(reader.finish_batch(&id, 0).await.status(), 403);
    // The browser of the same uploader may, with its CSRF token.
    let browser = Tus::with_session(&app).await;
    assert_eq!(browser.declare_batch_raw(declare).await.status(), 201);

    sign_out(&app).await;
    app.auditor().await;
    let auditor = Tus::with_session(&app).await;
    assert_eq!(auditor.declare_batch_raw(declare).await.status(), 403);
    assert_eq!(app.audit_rows("batch.create").len(), 2);
}

async fn malformed_or_impossible_declarations_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tus = uploader(&app).await;
    for body in [
        "{",
        "[]",
        "",
        r#"{"files": "many", "bytes": 1}"#,
        r#"{"files": 1}"#,
        r#"{"files": -1, "bytes": 1}"#,
        r#"{"files": 1, "bytes": 1, "names": ["IM1"]}"#,
    ] {
        let res = tus.declare_batch_raw(body).await;
        assert_eq!(res.status(), 400, "{body}");
    }
    for files in [0, 100_001] {
        let res = tus
            .declare_batch_raw(&json!({ "files": files, "bytes": 0 }).to_string())
            .await;
        assert_eq!(res.status(), 400, "{files}");
        let text = res.text().await.unwrap();
        assert!(text.contains("between 1 and 100000 files"), "{text}");
    }
    let res = tus
        .declare_batch_raw(&json!({ "bucket": "not-a-bucket", "files": 1, "bytes": 0 }).to_string())
        .await;
    assert_eq!(res.status(), 404);
    let res = tus
        .declare_batch_raw(&json!({ "files": 100_000, "bytes": 0 }).to_string())
        .await;
    assert_eq!(res.status(), 201, "the largest batch there may be");
    let batches: i64 = upload_batches::table
        .count()
        .get_result(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(batches, 1);
    assert_eq!(app.audit_rows("batch.create").len(), 1);
}

both_backends!(
    a_batch_is_declared_listed_and_finished_once,
    another_uploaders_batch_is_not_found,
    a_finished_batch_takes_no_more_files,
    a_file_goes_only_to_the_bucket_of_its_batch,
    only_uploaders_with_the_upload_right_declare_batches,
    malformed_or_impossible_declarations_are_refused,
);
