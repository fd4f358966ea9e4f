//! Done when: dicomweb-client (PyPI), a DICOMweb client we did not write, finds pydicom's
//! bundled vendor files with QIDO-RS by StudyInstanceUID, PatientID, modality and a date
//! range, and retrieves them with WADO-RS byte for byte, on both databases, with the local
//! store and with S3. The client stores them itself with STOW-RS (`store_instances`); once
//! more, on the local store, they are sent over tus as a browser would, and found the same.

use std::path::Path;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{Tus, sha256_hex, spawn_on_s3};

/// Runs `scripts/dicomweb-client.sh` with `args` (off the async workers, which serve the
/// app meanwhile); returns its standard output, asserting it succeeded.
async fn driver(args: Vec<String>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dicomweb-client.sh");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .output()
            .expect("the driver runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "dicomweb-client driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// How the files reach the server before the client looks for them.
#[derive(PartialEq)]
enum Sent {
    /// By the client itself, with STOW-RS.
    Stow,
    /// Over tus, as a browser batch.
    Tus,
}

async fn dicomweb_client_finds_and_retrieves_vendor_files(app: TestApp, sent: Sent) {
    let listed = driver(vec!["vendor".into()]).await;
    let files: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(files.len(), 5);

    let user = app.create_user(
        "dicomweb-client@example.org",
        "uploader",
        "a long enough password",
    );
    let key = app.create_api_key(&user, "upload,read");
    let tus = Tus::with_key(&app, &key);
    for file in &files {
        let bytes = std::fs::read(file["path"].as_str().unwrap()).unwrap();
        assert_eq!(sha256_hex(&bytes), file["sha256"], "the listed bytes");
        if sent == Sent::Tus {
            let name = file["name"].as_str().unwrap();
            let (status, _, body) = tus.send_in_batch(None, name, &bytes).await;
            assert_eq!(status, 201, "{name}: {body}");
        }
    }

    let manifest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest.path(), &listed).unwrap();
    let mut args: Vec<String> = vec![
        "check".into(),
        "--url".into(),
        app.address.clone(),
        "--key".into(),
        key,
        "--manifest".into(),
        manifest.path().to_str().unwrap().into(),
    ];
    if sent == Sent::Stow {
        args.push("--store".into());
    }
    let summary = driver(args).await;
    let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(summary["retrieved"], 5, "{summary}");
    assert_eq!(summary["metadata"], 5, "{summary}");
    let stored = if sent == Sent::Stow { 5 } else { 0 };
    assert_eq!(summary["stored"], stored, "{summary}");
    if sent == Sent::Stow {
        let stores = app.audit_rows("dicomweb.store");
        assert_eq!(stores.len(), 1, "one store request: {stores:?}");
        assert_eq!(app.audit_rows("upload.complete").len(), 5);
    }
    assert!(summary["searches"].as_u64().unwrap() >= 30, "{summary}");
    // Each instance was retrieved twice (as an instance and as its study), each audited.
    assert_eq!(app.audit_rows("dicomweb.retrieve").len(), 10);
}

async fn dicomweb_client_stores_finds_and_retrieves_on_the_local_store(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    dicomweb_client_finds_and_retrieves_vendor_files(app, Sent::Stow).await;
}

async fn dicomweb_client_stores_finds_and_retrieves_on_s3(backend: Backend) {
    let (app, _) = spawn_on_s3(backend).await;
    dicomweb_client_finds_and_retrieves_vendor_files(app, Sent::Stow).await;
}

async fn dicomweb_client_finds_what_was_sent_over_tus(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    dicomweb_client_finds_and_retrieves_vendor_files(app, Sent::Tus).await;
}

both_backends!(
    dicomweb_client_stores_finds_and_retrieves_on_the_local_store,
    dicomweb_client_stores_finds_and_retrieves_on_s3,
    dicomweb_client_finds_what_was_sent_over_tus,
);
