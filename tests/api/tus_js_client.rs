//! The tus server driven by a real third-party client: the npm package `tus-js-client` run by
//! `tests/tus-js/upload.mjs` under Node.js, with an API key, against an app whose default
//! bucket is on the S3 test server. The stored bytes are checked three ways: the row's
//! SHA-256, the object read back from S3, and the owner's download.
//!
//! Needs Node.js (18+) and `npm ci --prefix tests/tus-js`; without them these tests fail
//! with the command to run, never skip.
//!
//! `instances` holds the restart and several-instances tests (any instance continues any
//! upload), with the protocol-level client.

mod instances;

use std::path::{Path, PathBuf};

use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, s3_client};
use crate::tus_support::{
    Tus, api_key, dicom, id_from_location, settled_status, sha256_hex, spawn_on_s3,
};

const MIB: usize = 1024 * 1024;

/// What one run of the client printed.
#[derive(Debug, serde::Deserialize)]
pub struct ClientRun {
    pub url: String,
    pub bytes: u64,
    pub aborted: bool,
}

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus-js")
}

/// Runs `node tests/tus-js/upload.mjs` with `args`; Ok with what it printed, or Err with its
/// error output.
pub async fn run_client(args: Vec<String>) -> Result<ClientRun, String> {
    let dir = client_dir();
    let installed = dir.join("node_modules/tus-js-client/package.json");
    assert!(
        installed.is_file(),
        "tus-js-client is not installed: run `npm ci --prefix tests/tus-js` (needs Node.js 18+ \
         and npm, Debian packages nodejs and npm)"
    );
    let node = std::env::var("MEDPORT_TEST_NODE").unwrap_or_else(|_| "node".into());
    // A blocking child on a blocking thread (the test runtime has no process driver).
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&node)
            .arg("upload.mjs")
            .args(&args)
            .current_dir(&dir)
            .output()
            .map_err(|e| (node, e))
    })
    .await
    .unwrap()
    .unwrap_or_else(|(node, e)| {
        panic!(
            "cannot run `{node}` ({e}): the tus-js-client tests need Node.js 18+ on PATH \
             (Debian package nodejs; or set MEDPORT_TEST_NODE), then \
             `npm ci --prefix tests/tus-js`"
        )
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{}: {}{stdout}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_str(stdout.trim()).map_err(|e| format!("unexpected output {stdout:?}: {e}"))
}

/// The client's arguments for uploading `file` to `app` with `key` in `chunk`-byte PATCHes.
pub fn client_args(address: &str, key: &str, file: &Path, chunk: usize) -> Vec<String> {
    vec![
        "--endpoint".into(),
        format!("{address}/tus/"),
        "--key".into(),
        key.into(),
        "--file".into(),
        file.display().to_string(),
        "--chunk-size".into(),
        chunk.to_string(),
        "--filetype".into(),
        "application/dicom".into(),
    ]
}

/// The upload row's (status, sha256, object_key, upload_offset), read directly.
pub fn upload_row(app: &TestApp, id: &str) -> (String, Option<String>, String, i64) {
    use medport::infra::db::schema::uploads;
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select((
            uploads::status,
            uploads::sha256,
            uploads::object_key,
            uploads::upload_offset,
        ))
        .first(&mut *conn)
        .unwrap()
}

/// The whole object at `key` in `bucket` on the S3 test server.
pub async fn s3_object(bucket: &str, key: &str) -> Vec<u8> {
    let object = s3_client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "object {key} in {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The file as its owner downloads it with the main (signed-in) browser.
pub async fn download(app: &TestApp, id: &str) -> Vec<u8> {
    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 200, "download of {id}");
    res.bytes().await.unwrap().to_vec()
}

/// Asserts the finished upload `id` holds exactly `data`: status `completed`, the row's
/// SHA-256, the object in `bucket` (when on S3) and the owner's download.
pub async fn assert_stored(app: &TestApp, id: &str, data: &[u8], bucket: Option<&str>) {
    let expected = sha256_hex(data);
    assert_eq!(
        settled_status(app, id, 60).await,
        "completed",
        "upload {id}"
    );
    let (_, sha256, object_key, offset) = upload_row(app, id);
    assert_eq!(sha256.as_deref(), Some(expected.as_str()), "row sha256");
    assert_eq!(offset, data.len() as i64, "row offset");
    if let Some(bucket) = bucket {
        let stored = s3_object(bucket, &object_key).await;
        assert_eq!(stored.len(), data.len(), "object size in S3");
        assert_eq!(sha256_hex(&stored), expected, "object bytes in S3");
    }
    let downloaded = download(app, id).await;
    assert_eq!(downloaded.len(), data.len(), "downloaded size");
    assert_eq!(sha256_hex(&downloaded), expected, "downloaded bytes");
}

/// A signed-in uploader's app on S3 with an upload+read key, and a 20 MiB DICOM on disk.
struct Setup {
    app: TestApp,
    bucket: String,
    key: String,
    data: Vec<u8>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(backend: Backend) -> Setup {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let key = api_key(&app, &["upload", "read"]).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dicom(20 * MIB, 7);
    let file = dir.path().join("study.dcm");
    std::fs::write(&file, &data).unwrap();
    Setup {
        app,
        bucket,
        key,
        data,
        file,
        _dir: dir,
    }
}

async fn the_real_client_uploads_a_file_in_chunks(backend: Backend) {
    let s = setup(backend).await;
    let run = run_client(client_args(&s.app.address, &s.key, &s.file, 5 * MIB))
        .await
        .unwrap_or_else(|e| panic!("tus-js-client upload failed: {e}"));
    assert!(!run.aborted);
    assert_eq!(run.bytes, s.data.len() as u64);
    let id = id_from_location(&run.url);
    assert_eq!(run.url, format!("{}/tus/{id}", s.app.address));
    assert_stored(&s.app, &id, &s.data, Some(&s.bucket)).await;
}

async fn the_real_client_resumes_an_aborted_upload(backend: Backend) {
    let s = setup(backend).await;
    let chunk = 5 * MIB;
    let mut first = client_args(&s.app.address, &s.key, &s.file, chunk);
    first.extend(["--stop-after".into(), (2 * chunk).to_string()]);
    let run = run_client(first)
        .await
        .unwrap_or_else(|e| panic!("first run failed: {e}"));
    assert!(run.aborted, "the first run stops after two chunks");
    assert_eq!(run.bytes, 2 * chunk as u64);
    let id = id_from_location(&run.url);

    // What the server holds durably: whole chunks only, exactly what it acknowledged.
    let offset = Tus::with_key(&s.app, &s.key).offset(&id).await;
    assert_eq!(offset % chunk as u64, 0, "offset {offset}");
    assert_eq!(offset, run.bytes);
    let (status, sha256, _, _) = upload_row(&s.app, &id);
    assert_eq!((status.as_str(), sha256), ("active", None));

    let mut second = client_args(&s.app.address, &s.key, &s.file, chunk);
    second.extend(["--upload-url".into(), run.url.clone()]);
    let done = run_client(second)
        .await
        .unwrap_or_else(|e| panic!("resumed run failed: {e}"));
    assert!(!done.aborted);
    assert_eq!(done.url, run.url);
    assert_eq!(done.bytes, s.data.len() as u64);
    assert_stored(&s.app, &id, &s.data, Some(&s.bucket)).await;
}

both_backends!(
    the_real_client_uploads_a_file_in_chunks,
    the_real_client_resumes_an_aborted_upload,
);
