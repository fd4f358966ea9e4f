//! WADO-RS Accept negotiation (PS3.18 8.7): what we can send is accepted, anything else
//! (another transfer syntax, rendered media, frames, thumbnails) is 406 with a reason.

use super::support::{A, get, owner_with_studies};
use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn instances_are_sent_as_stored_and_nothing_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    let study = format!("/dicomweb/studies/{A}");
    for accept in [
        None,
        Some("*/*"),
        Some(r#"multipart/related; type="application/dicom""#),
        Some(r#"multipart/related; type="application/dicom"; transfer-syntax=*"#),
        Some("multipart/related; type=application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
        Some(r#"image/jpeg, multipart/related; type="application/dicom"; q=0.5"#),
    ] {
        let res = get(&app, &study, &key, accept).await;
        assert_eq!(res.status(), 200, "{accept:?}");
    }
    let series = format!("{study}/series/{A}.1");
    let instance = format!("{series}/instances/{A}.1.1");
    for (path, accept) in [
        (
            study.clone(),
            Some(
                r#"multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50"#,
            ),
        ),
        (study.clone(), Some("application/dicom+json")),
        (study.clone(), Some("image/jpeg")),
        (
            study.clone(),
            Some(r#"multipart/related; type="application/octet-stream""#),
        ),
        (
            study.clone(),
            Some(r#"multipart/related; type="application/dicom"; q=0"#),
        ),
        (
            format!("{study}/metadata"),
            Some(r#"multipart/related; type="application/dicom+xml""#),
        ),
        (format!("{study}/rendered"), None),
        (format!("{study}/thumbnail"), None),
        (format!("{series}/rendered"), None),
        (format!("{instance}/rendered"), Some("image/png")),
        (format!("{instance}/frames/1"), None),
        (format!("{instance}/frames/1,2/rendered"), None),
    ] {
        let res = get(&app, &path, &key, accept).await;
        assert_eq!(res.status(), 406, "{path} {accept:?}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_acceptable", "{path}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    assert!(
        app.audit_rows("dicomweb.retrieve").len() == 6,
        "refusals send nothing and audit no retrieval"
    );
}

both_backends!(instances_are_sent_as_stored_and_nothing_else);
