//! Who sees a study: its uploader and administrators, with patient details; auditors list
//! it without them; every other uploader finds nothing, on the page, the ZIP and the API.

use super::support::{STUDY, cd, page, send_batch, uploader_sends_cd};
use crate::both_backends;
use crate::helpers::dicom::PATIENT;
use crate::helpers::{Backend, TestApp, api_get};
use crate::tus_support::{api_key, sign_out};

/// The patient name as the page prints it.
fn patient_on_page() -> String {
    PATIENT.replace('^', " ")
}

/// The email of the uploader who sent the study, signed out again.
async fn sent_by_an_uploader(app: &TestApp) -> String {
    let (key, _) = uploader_sends_cd(app, 1, 2).await;
    let me: serde_json::Value = api_get(app, "/api/v1/me", &key).await.json().await.unwrap();
    sign_out(app).await;
    me["email"].as_str().unwrap().to_string()
}

async fn another_uploader_gets_404_on_the_page_the_archive_and_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    sent_by_an_uploader(&app).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    for path in [
        format!("/studies/{STUDY}"),
        format!("/studies/{STUDY}/archive"),
    ] {
        let (status, _) = page(&app, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (_, html) = page(&app, "/studies").await;
    assert!(!html.contains(STUDY), "not in their list");
    for path in [
        format!("/api/v1/studies/{STUDY}"),
        format!("/api/v1/studies/{STUDY}/archive"),
    ] {
        assert_eq!(api_get(&app, &path, &key).await.status(), 404, "{path}");
    }
    let listed: serde_json::Value = api_get(&app, "/api/v1/studies", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["studies"], serde_json::json!([]));
    assert!(app.audit_rows("study.download").is_empty());
}

async fn an_auditor_lists_the_study_but_sees_no_patient_details_and_no_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = sent_by_an_uploader(&app).await;
    app.auditor().await;
    let (status, html) = page(&app, "/studies").await;
    assert_eq!(status, 200);
    assert!(html.contains(STUDY), "auditors list every study");
    assert!(html.contains(&owner), "with who sent it");
    let (status, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert_eq!(status, 200);
    assert!(!html.contains(&patient_on_page()), "no patient name");
    assert!(!html.contains("SYNTH-PID-1"), "no patient id");
    assert!(!html.contains("ACC-SYNTH-1"), "no accession number");
    assert!(!html.contains("/archive"), "no ZIP link");
    let (status, _) = page(&app, &format!("/studies/{STUDY}/archive")).await;
    assert_eq!(status, 404, "as for file downloads");
}

async fn the_owner_and_an_admin_see_the_patient_details(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (files, _) = cd(STUDY, 1, 1);
    send_batch(&app, &key, &files).await;
    let (_, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert!(html.contains(&patient_on_page()), "the owner sees it");
    sign_out(&app).await;

    app.admin().await;
    let (status, html) = page(&app, &format!("/studies/{STUDY}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&patient_on_page()));
    assert!(html.contains("SYNTH-PID-1"));
    assert!(html.contains("ACC-SYNTH-1"));
    let res = app.get(&format!("/studies/{STUDY}/archive")).await;
    assert_eq!(res.status(), 200, "admins may fetch it, as any file");
}

both_backends!(
    another_uploader_gets_404_on_the_page_the_archive_and_the_api,
    an_auditor_lists_the_study_but_sees_no_patient_details_and_no_files,
    the_owner_and_an_admin_see_the_patient_details,
);
