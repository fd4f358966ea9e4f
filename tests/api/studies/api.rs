//! The studies API: the documented JSON shapes, the key owner's studies only, scope `read`.

use super::support::{STUDY, api_json, cd, send_batch, uploader_sends_cd};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, api_get};
use crate::tus_support::api_key;

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn the_api_lists_and_describes_a_study_in_the_documented_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, files) = uploader_sends_cd(&app, 2, 2).await;

    let listed = api_json(&app, "/api/v1/studies", &key).await;
    let studies = listed["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 1);
    let study = &studies[0];
    assert_eq!(
        keys(study),
        [
            "bytes",
            "complete",
            "description",
            "instances",
            "modalities",
            "series",
            "study_date",
            "study_instance_uid"
        ]
    );
    assert_eq!(study["study_instance_uid"], STUDY);
    assert_eq!(study["instances"], 4);
    assert_eq!(study["series"], 2);
    assert_eq!(study["modalities"], serde_json::json!(["CT", "MR"]));
    let bytes: usize = files[..4].iter().map(|(_, b)| b.len()).sum();
    assert_eq!(study["bytes"], bytes);
    assert_eq!(study["study_date"], "2026-12-01");
    assert_eq!(study["description"], "Synthetic study");
    assert_eq!(study["complete"], true);

    let one = api_json(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    for field in keys(study) {
        match field.as_str() {
            // The lists themselves here; a study this small fits in one window, so their
            // lengths are the list's counts.
            "series" | "instances" => {
                assert_eq!(one[&field].as_array().unwrap().len(), study[&field]);
            }
            _ => assert_eq!(one[&field], study[&field], "{field}"),
        }
    }
    assert_eq!(one["instance_count"], study["instances"]);
    assert_eq!(
        (one["offset"].clone(), one["limit"].clone()),
        (0.into(), 1000.into())
    );
    assert_eq!(
        keys(&one).len(),
        keys(study).len() + 4,
        "the same fields plus instance_count, offset, limit and missing"
    );
    assert_eq!(one["missing"], serde_json::json!([]));
    let series = one["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(
        keys(&series[0]),
        [
            "bytes",
            "description",
            "instances",
            "modality",
            "number",
            "series_instance_uid"
        ]
    );
    assert_eq!(series[0]["series_instance_uid"], format!("{STUDY}.1"));
    assert_eq!(series[0]["number"], 1);
    assert_eq!(series[0]["modality"], "CT");
    assert_eq!(series[0]["instances"], 2);
    let instances = one["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    assert_eq!(
        keys(&instances[0]),
        [
            "instance_number",
            "relative_path",
            "series_instance_uid",
            "sha256",
            "size",
            "sop_instance_uid",
            "upload_id"
        ]
    );
    assert_eq!(instances[0]["upload_id"].as_str().unwrap().len(), 36);
    assert_eq!(instances[0]["sop_instance_uid"], format!("{STUDY}.1.1"));
    assert_eq!(instances[0]["relative_path"], "CD/SE1/IM1");
    assert_eq!(instances[0]["size"], files[0].1.len());
    assert_eq!(
        instances[0]["sha256"],
        crate::tus_support::sha256_hex(&files[0].1)
    );
    let text = serde_json::to_string(&one).unwrap();
    assert!(
        !text.contains("SYNTHETIC"),
        "no patient details over the API"
    );
}

async fn an_api_key_without_read_scope_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload"]).await;
    let (files, _) = cd(STUDY, 1, 1);
    send_batch(&app, &key, &files).await;
    for path in [
        "/api/v1/studies".to_string(),
        format!("/api/v1/studies/{STUDY}"),
        format!("/api/v1/studies/{STUDY}/archive"),
    ] {
        assert_eq!(api_get(&app, &path, &key).await.status(), 403, "{path}");
    }
    let res = app
        .client
        .get(app.url("/api/v1/studies"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a session is not an API key");
}

async fn an_admin_key_sees_only_its_owners_studies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (files, _) = cd(STUDY, 1, 1);
    send_batch(&app, &key, &files).await;
    crate::tus_support::sign_out(&app).await;
    app.admin().await;
    let admin_key = api_key(&app, &["read"]).await;
    let listed = api_json(&app, "/api/v1/studies", &admin_key).await;
    assert_eq!(listed["studies"], serde_json::json!([]));
    let res = api_get(&app, &format!("/api/v1/studies/{STUDY}"), &admin_key).await;
    assert_eq!(res.status(), 404);
}

both_backends!(
    the_api_lists_and_describes_a_study_in_the_documented_shape,
    an_api_key_without_read_scope_is_refused,
    an_admin_key_sees_only_its_owners_studies,
);
