//! Done when: a CD written by pydicom (a DICOM library we did not write), sent whole in one
//! batch as a browser sends a dropped folder, is one complete study whose ZIP holds every
//! instance byte for byte.

use std::path::Path;

use super::support::{File, api_json, send_batch, unzip};
use crate::both_backends;
use crate::helpers::dicom::pydicom_cd;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{api_key, sha256_hex};

/// Every file under `dir`, as `CD/<path>`.
fn files_under(dir: &Path) -> Vec<File> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_str().unwrap();
                out.push((format!("CD/{rel}"), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

async fn a_pydicom_cd_sent_in_one_batch_is_one_complete_study_and_its_zip_holds_every_instance(
    backend: Backend,
) {
    let fixtures = tempfile::tempdir().unwrap();
    let manifest = pydicom_cd(fixtures.path());
    let files = files_under(&fixtures.path().join("cd"));
    let instances = manifest["instances"].as_array().unwrap();
    assert_eq!(
        files.len(),
        instances.len() + 1,
        "the instances and the DICOMDIR"
    );

    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    send_batch(&app, &key, &files).await;

    let listed = api_json(&app, "/api/v1/studies", &key).await;
    let studies = listed["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 1, "{listed}");
    let uid = manifest["study_instance_uid"].as_str().unwrap();
    assert_eq!(studies[0]["study_instance_uid"], uid);
    assert_eq!(studies[0]["instances"], instances.len());
    assert_eq!(
        studies[0]["series"],
        manifest["series"].as_array().unwrap().len()
    );
    assert_eq!(studies[0]["complete"], true);
    let one = api_json(&app, &format!("/api/v1/studies/{uid}"), &key).await;
    assert_eq!(one["missing"], serde_json::json!([]));
    for series in manifest["series"].as_array().unwrap() {
        let got = one["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["series_instance_uid"] == series["series_instance_uid"])
            .unwrap_or_else(|| panic!("series {series}"));
        assert_eq!(got["instances"], series["instances"]);
    }

    let res = crate::helpers::api_get(&app, &format!("/api/v1/studies/{uid}/archive"), &key).await;
    assert_eq!(res.status(), 200);
    let entries = unzip(res.bytes().await.unwrap().to_vec()).await;
    for instance in instances {
        let name = format!("CD/{}", instance["relative_path"].as_str().unwrap());
        let data = entries
            .get(&name)
            .unwrap_or_else(|| panic!("{name} in the ZIP"));
        assert_eq!(sha256_hex(data), instance["sha256"], "{name}");
    }
    let dicomdir = entries.get("CD/DICOMDIR").expect("the DICOMDIR in the ZIP");
    assert_eq!(sha256_hex(dicomdir), manifest["dicomdir"]["sha256"]);
    assert_eq!(entries.len(), instances.len() + 1);
}

both_backends!(
    a_pydicom_cd_sent_in_one_batch_is_one_complete_study_and_its_zip_holds_every_instance
);
