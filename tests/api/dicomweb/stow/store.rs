//! Stored instances: the PS3.18 store response, the same pipeline as any upload (bytes,
//! SHA-256, the study index), and the audit trail.

use super::support::{STUDY, instance, uploader_key};
use crate::both_backends;
use crate::helpers::dicomweb::{multipart_related, stow_content_type};
use crate::helpers::{Backend, TestApp, api_get};
use crate::tus_support::sha256_hex;

async fn instances_are_stored_indexed_and_answered_in_dicom_json(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload", "read"]).await;
    let sent: Vec<_> = (1..=3).map(|n| instance(STUDY, n)).collect();
    let bytes: Vec<Vec<u8>> = sent.iter().map(|i| i.bytes()).collect();

    let res = app.stow("/dicomweb/studies", &key, &bytes).await;

    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.content_type, "application/dicom+json");
    assert_eq!(
        res.stored(),
        sent.iter().map(|i| i.sop.clone()).collect::<Vec<_>>()
    );
    assert!(res.failed().is_empty());
    assert_eq!(
        res.body["00081190"]["Value"][0],
        app.url(&format!("/dicomweb/studies/{STUDY}"))
    );
    let first = &res.items("00081199")[0];
    assert_eq!(
        first["00081150"]["Value"][0], "1.2.840.10008.5.1.4.1.1.2",
        "ReferencedSOPClassUID"
    );
    assert_eq!(
        first["00081190"]["Value"][0],
        app.url(&format!(
            "/dicomweb/studies/{STUDY}/series/{}/instances/{}",
            sent[0].series, sent[0].sop
        ))
    );

    // The same index as any upload: the study and its instances, byte for byte.
    let study = api_get(&app, &format!("/api/v1/studies/{STUDY}"), &key).await;
    assert_eq!(study.status(), 200);
    let study: serde_json::Value = study.json().await.unwrap();
    let listed = study["instances"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (row, data) in listed.iter().zip(&bytes) {
        assert_eq!(row["sha256"], sha256_hex(data));
        assert_eq!(row["size"], data.len());
    }
    let names: Vec<String> = app.upload_statuses().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["1.dcm", "2.dcm", "3.dcm"]);
    assert!(
        app.upload_statuses().iter().all(|(s, _)| s == "completed"),
        "{:?}",
        app.upload_statuses()
    );
}

async fn each_instance_and_the_request_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload"]).await;
    let bytes: Vec<Vec<u8>> = (1..=2).map(|n| instance(STUDY, n).bytes()).collect();
    let res = app
        .stow(&format!("/dicomweb/studies/{STUDY}"), &key, &bytes)
        .await;
    assert_eq!(res.status, 200, "{:#}", res.body);

    assert_eq!(app.audit_rows("upload.create").len(), 2);
    assert_eq!(app.audit_rows("upload.complete").len(), 2);
    let store = app.audit_rows("dicomweb.store");
    assert_eq!(store.len(), 1);
    assert_eq!(store[0].outcome, "success");
    assert_eq!(store[0].target.as_deref(), Some(STUDY));
    assert_eq!(store[0].details["stored"], 2);
    assert_eq!(store[0].details["failed"], 0);
}

/// PS3.18 lets a store of an instance the server already has succeed; the copy is kept and
/// listed as a duplicate on the study page, as for any upload, and counted once.
async fn an_instance_sent_again_is_stored_again_and_counted_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload", "read"]).await;
    let bytes = vec![instance(STUDY, 1).bytes()];
    assert_eq!(
        app.stow("/dicomweb/studies", &key, &bytes).await.status,
        200
    );
    let again = app.stow("/dicomweb/studies", &key, &bytes).await;
    assert_eq!(again.status, 200, "{:#}", again.body);
    assert_eq!(again.stored(), [instance(STUDY, 1).sop]);
    let study: serde_json::Value = api_get(&app, &format!("/api/v1/studies/{STUDY}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(study["instances"].as_array().unwrap().len(), 1);
}

/// A chunked request says nothing of its length: each part is bounded by the largest file
/// accepted instead, and its size is what arrived.
async fn a_chunked_request_without_a_length_is_stored_part_by_part(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app, &["upload", "read"]).await;
    let sent: Vec<_> = (1..=2).map(|n| instance(STUDY, n)).collect();
    let body = multipart_related(&sent.iter().map(|i| i.bytes()).collect::<Vec<_>>());
    // Small pieces, so the parts and their boundaries arrive split across chunks.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(100).map(|c| Ok(c.to_vec())).collect();
    let (client, _) = app.new_browser();
    let res = client
        .post(app.url("/dicomweb/studies"))
        .bearer_auth(&key)
        .header("Content-Type", stow_content_type())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    let stored: Vec<&str> = answer["00081199"]["Value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["00081155"]["Value"][0].as_str().unwrap())
        .collect();
    assert_eq!(stored, [sent[0].sop.as_str(), sent[1].sop.as_str()]);
    let study: serde_json::Value = api_get(&app, &format!("/api/v1/studies/{STUDY}"), &key)
        .await
        .json()
        .await
        .unwrap();
    let sizes: Vec<u64> = study["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["size"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        sent.iter()
            .map(|i| i.bytes().len() as u64)
            .collect::<Vec<_>>()
    );
}

both_backends!(
    a_chunked_request_without_a_length_is_stored_part_by_part,
    instances_are_stored_indexed_and_answered_in_dicom_json,
    each_instance_and_the_request_are_audited,
    an_instance_sent_again_is_stored_again_and_counted_once,
);
