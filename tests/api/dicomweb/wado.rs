//! WADO-RS: stored instances come back byte for byte as multipart/related parts, at each
//! level, audited once per retrieval with counts; metadata in DICOM JSON.

use std::collections::BTreeSet;

use super::support::{A, B, SOP_UID, get, owner_with_studies, parts, text};
use crate::both_backends;
use crate::helpers::dicom::PATIENT;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::sha256_hex;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// The SHA-256 of each instance a retrieval sends, checking each part's headers.
async fn retrieve(app: &TestApp, path: &str, key: &str) -> BTreeSet<String> {
    let res = get(app, path, key, None).await;
    assert_eq!(res.status(), 200, "{path}");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with(r#"multipart/related; type="application/dicom"; boundary="#),
        "{content_type}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = res.bytes().await.unwrap();
    let mut out = BTreeSet::new();
    for (headers, bytes) in parts(&content_type, &body) {
        assert!(headers.contains(&(
            "content-type".to_string(),
            format!("application/dicom; transfer-syntax={EXPLICIT_LE}")
        )));
        assert!(out.insert(sha256_hex(&bytes)), "each instance once");
    }
    out
}

async fn instances_come_back_byte_identical_at_every_level(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, sent) = owner_with_studies(&app).await;
    // What was sent under a SOP UID prefix, as SHA-256s: equal sets are equal bytes.
    let of = |prefix: &str| -> BTreeSet<String> {
        sent.iter()
            .filter(|(sop, _)| sop.starts_with(prefix))
            .map(|(_, bytes)| sha256_hex(bytes))
            .collect()
    };

    let study = retrieve(&app, &format!("/dicomweb/studies/{A}"), &key).await;
    assert_eq!(study, of(&format!("{A}.")));
    assert_eq!(study.len(), 4);
    let series = retrieve(&app, &format!("/dicomweb/studies/{A}/series/{A}.2"), &key).await;
    assert_eq!(series, of(&format!("{A}.2.")));
    let path = format!("/dicomweb/studies/{B}/series/{B}.1/instances/{B}.1.1");
    let one = retrieve(&app, &path, &key).await;
    assert_eq!(one, of(&format!("{B}.1.1")));

    let rows = app.audit_rows("dicomweb.retrieve");
    assert_eq!(rows.len(), 3, "one event per retrieval");
    assert_eq!(rows[0].target.as_deref(), Some(A));
    assert_eq!(rows[0].details["instances"], 4);
    assert_eq!(rows[0].details["level"], "study");
    assert_eq!(rows[1].details["level"], "series");
    assert_eq!(rows[1].details["instances"], 2);
    assert_eq!(rows[2].target.as_deref(), Some(format!("{B}.1.1").as_str()));
    assert_eq!(rows[2].outcome, "success");
    let text_of_log = format!("{:?}", rows);
    assert!(
        !text_of_log.contains("PID-"),
        "counts only, no patient in the audit"
    );
}

async fn metadata_describes_each_instance_of_the_level(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, _) = owner_with_studies(&app).await;
    for (path, expected) in [
        (format!("/dicomweb/studies/{A}/metadata"), 4),
        (format!("/dicomweb/studies/{A}/series/{A}.1/metadata"), 2),
        (
            format!("/dicomweb/studies/{A}/series/{A}.1/instances/{A}.1.2/metadata"),
            1,
        ),
    ] {
        let res = get(&app, &path, &key, None).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "application/dicom+json");
        let sets: Vec<serde_json::Value> = res.json().await.unwrap();
        assert_eq!(sets.len(), expected, "{path}");
        let last = sets.last().unwrap();
        assert_eq!(text(last, "00100010"), PATIENT);
        assert_eq!(text(last, "00100020"), "PID-ALPHA");
        assert_eq!(
            text(last, "00080060"),
            if expected == 4 { "MR" } else { "CT" }
        );
        assert_eq!(text(last, "00081030"), "Synthetic study");
        assert!(text(last, SOP_UID).starts_with(A));
    }
    let rows = app.audit_rows("dicomweb.metadata");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].details["instances"], 4);
}

both_backends!(
    instances_come_back_byte_identical_at_every_level,
    metadata_describes_each_instance_of_the_level,
);
