//! Done when: curl, a client we did not write, sends one hand-built multipart STOW request
//! of files pydicom wrote, and every instance is stored byte for byte, on both databases,
//! in the local store and in an S3 default bucket.

use super::support::uploader_key;
use crate::both_backends;
use crate::helpers::dicom::pydicom_cd;
use crate::helpers::dicomweb::{Stowed, multipart_related, stow_content_type};
use crate::helpers::{Backend, TestApp, api_get};
use crate::tus_support::spawn_on_s3;

async fn curl_stores_pydicom_files_byte_for_byte(app: TestApp, bucket: Option<String>) {
    let fixtures = tempfile::tempdir().unwrap();
    let manifest = pydicom_cd(fixtures.path());
    let instances = manifest["instances"].as_array().unwrap().clone();
    let parts: Vec<Vec<u8>> = instances
        .iter()
        .map(|i| {
            let path = fixtures
                .path()
                .join("cd")
                .join(i["relative_path"].as_str().unwrap());
            std::fs::read(path).unwrap()
        })
        .collect();
    let body_file = fixtures.path().join("stow.body");
    std::fs::write(&body_file, multipart_related(&parts)).unwrap();

    let key = uploader_key(&app, &["upload", "read"]).await;
    let url = app.url("/dicomweb/studies");
    let answer_file = fixtures.path().join("answer.json");
    let (answer, auth) = (answer_file.clone(), format!("Authorization: Bearer {key}"));
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&answer)
            .args(["-w", "%{http_code} %{content_type}", "-H", &auth, "-H"])
            .arg(format!("Content-Type: {}", stow_content_type()))
            .args(["-H", "Accept: application/dicom+json", "--data-binary"])
            .arg(format!("@{}", body_file.display()))
            .arg(&url)
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap();
    assert!(status.status.success(), "{status:?}");
    let written = String::from_utf8(status.stdout).unwrap();
    let res = Stowed {
        status: written[..3].parse().unwrap(),
        content_type: written[4..].to_string(),
        body: serde_json::from_slice(&std::fs::read(&answer_file).unwrap()).unwrap(),
    };
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.content_type, "application/dicom+json");
    let mut stored = res.stored();
    stored.sort();
    let mut sent: Vec<String> = instances
        .iter()
        .map(|i| i["sop_instance_uid"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    assert_eq!(stored, sent);

    let uid = manifest["study_instance_uid"].as_str().unwrap();
    let study: serde_json::Value = api_get(&app, &format!("/api/v1/studies/{uid}"), &key)
        .await
        .json()
        .await
        .unwrap();
    for instance in &instances {
        let row = study["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["sop_instance_uid"] == instance["sop_instance_uid"])
            .unwrap_or_else(|| panic!("{instance} in the study"));
        assert_eq!(row["sha256"], instance["sha256"]);
    }
    let objects = app.objects_left(bucket.as_deref()).await;
    if bucket.is_some() {
        assert_eq!(objects.len(), instances.len());
        assert_eq!(objects, app.completed_object_keys());
    } else {
        // The local store keeps an index file and part files per object.
        let indexes = objects.iter().filter(|p| p.contains("/index/")).count();
        assert_eq!(indexes, instances.len(), "one object per instance");
        assert!(
            !objects.iter().any(|p| p.contains("/multipart/")),
            "no upload left open: {objects:?}"
        );
    }
}

async fn curl_stores_pydicom_files_byte_for_byte_in_the_local_store(backend: Backend) {
    curl_stores_pydicom_files_byte_for_byte(TestApp::spawn(backend).await, None).await;
}

async fn curl_stores_pydicom_files_byte_for_byte_on_s3(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    curl_stores_pydicom_files_byte_for_byte(app, Some(bucket)).await;
}

both_backends!(
    curl_stores_pydicom_files_byte_for_byte_in_the_local_store,
    curl_stores_pydicom_files_byte_for_byte_on_s3,
);
