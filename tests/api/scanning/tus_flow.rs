//! Real tus uploads end to end: the pipeline hands each completed upload to the scanner;
//! what the uploader can download and what is left in the S3 bucket are checked.

use medport::config::QuarantineAction;

use super::{
    clamd_addr, clean_text, closed_port, count_events, events_for, infected_text, settled,
    with_clamd,
};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, location, s3_client};
use crate::tus_support::{Tus, api_key, spawn_on_s3_with};

const CHUNK: usize = 64 * 1024;

/// Signs in an uploader in the main browser and gives it an API key for tus.
async fn uploader(app: &TestApp) -> Tus {
    app.sign_in_as("uploader").await;
    let key = api_key(app, &["upload", "read"]).await;
    Tus::with_key(app, &key)
}

async fn on_s3(bucket: &str, key: &str) -> bool {
    match s3_client()
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => false,
        Err(e) => panic!("HEAD {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
    }
}

async fn s3_bytes(bucket: &str, key: &str) -> Vec<u8> {
    let object = s3_client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The owner asks for a quarantined file: refused with the reason, and no bytes of it.
async fn assert_download_refused(app: &TestApp, id: &str, data: &[u8]) {
    let res = app.get_html(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 409);
    assert!(res.headers().get("content-disposition").is_none());
    let body = res.text().await.unwrap();
    assert!(body.contains("quarantined"), "{body}");
    assert!(!body.contains(&super::signature()));
    assert!(!body.contains(std::str::from_utf8(&data[..40]).unwrap()));
}

async fn an_infected_upload_is_quarantined_and_moved(backend: Backend) {
    let (app, bucket) = spawn_on_s3_with(backend, with_clamd).await;
    let tus = uploader(&app).await;
    let data = infected_text();
    let id = tus.upload("referral.txt", &data, None, CHUNK).await;
    let row = settled(&app, &id).await;
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    assert!(
        row.status_reason
            .as_deref()
            .unwrap()
            .starts_with("Malware detected (Medport.Test.Marker"),
        "{row:?}"
    );
    assert_download_refused(&app, &id, &data).await;
    let original = row.object_key.strip_prefix("quarantine/").unwrap();
    assert!(!on_s3(&bucket, original).await, "original key removed");
    assert!(on_s3(&bucket, &row.object_key).await);
    assert_eq!(s3_bytes(&bucket, &row.object_key).await, data);
    assert_eq!(count_events(&app, &id, "upload.quarantine"), 1);
    assert!(
        events_for(&app, &id)
            .iter()
            .any(|(a, who, _)| a == "upload.quarantine" && who == "system")
    );
}

async fn with_quarantine_delete_the_infected_object_is_gone(backend: Backend) {
    let (app, bucket) = spawn_on_s3_with(backend, |s| {
        with_clamd(s);
        s.uploads.quarantine = QuarantineAction::Delete;
    })
    .await;
    let tus = uploader(&app).await;
    let data = infected_text();
    let id = tus.upload("referral.txt", &data, None, CHUNK).await;
    let row = settled(&app, &id).await;
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    assert!(!on_s3(&bucket, &row.object_key).await);
    assert!(!on_s3(&bucket, &format!("quarantine/{}", row.object_key)).await);
    assert_download_refused(&app, &id, &data).await;
}

async fn a_clean_upload_is_completed_and_downloadable(backend: Backend) {
    let (app, bucket) = spawn_on_s3_with(backend, with_clamd).await;
    let tus = uploader(&app).await;
    let data = clean_text(300_000);
    let id = tus.upload("notes.txt", &data, None, CHUNK).await;
    let row = settled(&app, &id).await;
    assert_eq!(row.status, "completed");
    assert_eq!(row.scan_status.as_deref(), Some("clean"));
    assert!(on_s3(&bucket, &row.object_key).await);
    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    assert_eq!(count_events(&app, &id, "upload.scan"), 1);
}

/// Accepts connections on `addr` and relays them to clamd: the scanner "comes back".
async fn relay_to_clamd(addr: &str) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut clamd) = tokio::net::TcpStream::connect(clamd_addr()).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut clamd).await;
                }
            });
        }
    })
}

async fn with_the_scanner_down_uploads_wait_in_quarantine_until_rescanned(backend: Backend) {
    let scanner = closed_port();
    let configured = scanner.clone();
    let (app, bucket) = spawn_on_s3_with(backend, move |s| {
        s.uploads.clamd = Some(configured);
    })
    .await;
    let tus = uploader(&app).await;
    let data = clean_text(100_000);
    let id = tus.upload("notes.txt", &data, None, CHUNK).await;
    let row = settled(&app, &id).await;
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("not_scanned"));
    assert_eq!(
        row.status_reason.as_deref(),
        Some("Not scanned: the virus scanner is unavailable")
    );
    assert!(
        on_s3(&bucket, &row.object_key).await,
        "object left in place"
    );
    assert_download_refused(&app, &id, &data).await;
    assert!(
        events_for(&app, &id)
            .iter()
            .any(|(a, _, d)| a == "upload.quarantine" && d.contains("unavailable"))
    );

    // The scanner comes back on its address; an admin rescans.
    let relay = relay_to_clamd(&scanner).await;
    app.post_form("/logout", &[]).await;
    app.sign_in_as("admin").await;
    let res = app
        .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin/uploads/quarantine");
    let row = settled(&app, &id).await;
    relay.abort();
    assert_eq!(row.status, "completed");
    assert_eq!(row.scan_status.as_deref(), Some("clean"));
    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
    assert_eq!(count_events(&app, &id, "upload.rescan"), 1);
}

both_backends!(
    an_infected_upload_is_quarantined_and_moved,
    with_quarantine_delete_the_infected_object_is_gone,
    a_clean_upload_is_completed_and_downloadable,
    with_the_scanner_down_uploads_wait_in_quarantine_until_rescanned,
);
