//! `GET /api/v1/uploads/{id}`: one upload's details in the documented shape, with its UIDs
//! when it is DICOM and never its patient; the key owner's uploads only; scope `read`.

use medport::app::buckets::SYSTEM_BUCKET_ID;

use super::{completed_pdf, script, unfinished_pdf};
use crate::both_backends;
use crate::helpers::dicom::{Instance, PATIENT};
use crate::helpers::{Backend, TestApp, api_error, api_get};
use crate::tus_support::{Tus, api_key, pdf, sha256_hex, sign_out};

async fn details(app: &TestApp, id: &str, key: &str) -> serde_json::Value {
    let res = api_get(app, &format!("/api/v1/uploads/{id}"), key).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

async fn an_upload_is_described_in_the_documented_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let data = pdf(100_000, 1);
    let id = completed_pdf(&app, &key, "report.pdf", &data).await;

    let one = details(&app, &id, &key).await;
    assert_eq!(
        keys(&one),
        [
            "bucket_id",
            "completed_at",
            "created_at",
            "declared_size",
            "dicom",
            "filename",
            "id",
            "relative_path",
            "scan_status",
            "sha256",
            "status",
            "status_reason",
            "stored_size"
        ]
    );
    assert_eq!(one["id"], id.as_str());
    assert_eq!(one["filename"], "report.pdf");
    assert_eq!(one["relative_path"], serde_json::Value::Null);
    assert_eq!(one["bucket_id"], SYSTEM_BUCKET_ID);
    assert_eq!(one["status"], "completed");
    assert_eq!(one["declared_size"], data.len());
    assert_eq!(one["stored_size"], data.len());
    assert_eq!(one["sha256"], sha256_hex(&data));
    assert_eq!(
        one["scan_status"],
        serde_json::Value::Null,
        "no scanner here"
    );
    assert_eq!(one["dicom"], serde_json::Value::Null);
    let created = one["created_at"].as_str().unwrap();
    let completed = one["completed_at"].as_str().unwrap();
    for at in [created, completed] {
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
    assert!(created <= completed);

    // The list and the one-upload answer agree.
    let res = api_get(&app, "/api/v1/uploads", &key).await;
    let listed: serde_json::Value = res.json().await.unwrap();
    let row = &listed["uploads"][0];
    for field in ["id", "filename", "status", "declared_size", "created_at"] {
        assert_eq!(row[field], one[field], "{field}");
    }

    let half = unfinished_pdf(&app, &key, 50_000).await;
    let one = details(&app, &half, &key).await;
    assert_eq!(one["status"], "active");
    assert_eq!(one["declared_size"], 50_000);
    assert_eq!(one["stored_size"], 4096);
    assert_eq!(one["sha256"], serde_json::Value::Null);
    assert_eq!(one["completed_at"], serde_json::Value::Null);
}

async fn a_dicom_upload_shows_its_uids_and_never_its_patient(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let study = "1.2.826.0.1.3680043.99.151";
    let instance = Instance::of(study, 2, 7);
    let (status, id, body) = Tus::with_key(&app, &key)
        .send_in_batch(None, "CD/SE2/IM7", &instance.bytes())
        .await;
    assert_eq!(status, 201, "{body}");
    let id = id.unwrap();
    assert_eq!(
        crate::tus_support::settled_status(&app, &id, 30).await,
        "completed"
    );

    let one = details(&app, &id, &key).await;
    assert_eq!(one["relative_path"], "CD/SE2/IM7");
    assert_eq!(
        one["dicom"],
        serde_json::json!({
            "state": "indexed",
            "study_instance_uid": study,
            "series_instance_uid": format!("{study}.2"),
            "sop_instance_uid": format!("{study}.2.7"),
        })
    );
    let text = one.to_string();
    assert!(
        !text.contains("SYNTHETIC") && !text.contains(PATIENT),
        "{text}"
    );
    assert!(!text.contains("SYNTH-PID"), "{text}");
}

async fn other_users_uploads_answer_404_as_unknown_ids_do(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, owner_key) = script(&app, &["upload", "read"]).await;
    let id = completed_pdf(&app, &owner_key, "mine.pdf", &pdf(4096, 2)).await;
    sign_out(&app).await;
    let (_, other_key) = script(&app, &["upload", "read"]).await;
    sign_out(&app).await;
    app.admin().await;
    let admin_key = api_key(&app, &["upload", "read"]).await;

    let unknown = api_error(
        api_get(
            &app,
            "/api/v1/uploads/0195f7a4-0000-7000-8000-000000000000",
            &other_key,
        )
        .await,
        404,
    )
    .await;
    assert_eq!(unknown["error"], "not_found");
    for key in [&other_key, &admin_key] {
        let body = api_error(
            api_get(&app, &format!("/api/v1/uploads/{id}"), key).await,
            404,
        )
        .await;
        assert_eq!(
            body, unknown,
            "nothing tells a foreign id from an unknown one"
        );
    }
    let body = api_error(
        api_get(&app, "/api/v1/uploads/not-an-id", &other_key).await,
        404,
    )
    .await;
    assert_eq!(body, unknown);
    // The owner still sees it.
    details(&app, &id, &owner_key).await;
}

async fn a_key_without_read_gets_403_and_the_refusal_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload"]).await;
    let id = completed_pdf(&app, &key, "mine.pdf", &pdf(4096, 4)).await;
    let before = app.audit_rows("access.denied").len();
    let body = api_error(
        api_get(&app, &format!("/api/v1/uploads/{id}"), &key).await,
        403,
    )
    .await;
    assert_eq!(body["error"], "forbidden");
    assert_eq!(app.audit_rows("access.denied").len(), before + 1);
}

both_backends!(
    an_upload_is_described_in_the_documented_shape,
    a_dicom_upload_shows_its_uids_and_never_its_patient,
    other_users_uploads_answer_404_as_unknown_ids_do,
    a_key_without_read_gets_403_and_the_refusal_is_audited,
);
