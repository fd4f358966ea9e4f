//! Any instance continues any upload: no upload state lives only in one process. Each test
//! runs a second server as a real `medport serve` process on the test app's database, data
//! directory (master key, local objects) and default bucket, so what it knows it can only
//! have read from the database and the store.

use std::sync::{Arc, Mutex};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, s3_env, serve_with_log};
use crate::tus_support::{Tus, api_key, dicom, spawn_on_s3};

use super::assert_stored;

const MIB: usize = 1024 * 1024;

/// A `medport serve` process, killed (SIGKILL) when dropped.
struct Instance {
    child: std::process::Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Instance {
    /// Starts a server on `app`'s database and data directory; with `bucket`, its default
    /// bucket is that bucket on the S3 test server (as the test app's is).
    fn start(app: &TestApp, bucket: Option<&str>) -> Self {
        let env = s3_env();
        let mut vars: Vec<(&str, String)> = Vec::new();
        if let Some(bucket) = bucket {
            vars.extend([
                ("MEDPORT_S3_ENDPOINT", env.endpoint),
                ("MEDPORT_S3_REGION", env.region),
                ("MEDPORT_S3_BUCKET", bucket.to_string()),
                ("MEDPORT_S3_ACCESS_KEY_ID", env.access_key),
                ("MEDPORT_S3_SECRET_ACCESS_KEY", env.secret_key),
                ("MEDPORT_S3_PATH_STYLE", "true".into()),
                ("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "true".into()),
            ]);
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (child, address, log) = serve_with_log(app, &vars);
        Self {
            child,
            address,
            log,
        }
    }

    /// A tus client with `key` talking to this instance.
    fn tus(&self, app: &TestApp, key: &str) -> Tus {
        let mut tus = Tus::with_key(app, key);
        tus.base = self.address.clone();
        tus
    }

    /// Ends the process at once, as a crash or `kill -9` would: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PATCHes `data[from..to]` in `chunk`-byte requests, asserting each is acknowledged.
async fn send_range(tus: &Tus, id: &str, data: &[u8], from: usize, to: usize, chunk: usize) {
    let mut offset = from;
    while offset < to {
        let end = (offset + chunk).min(to);
        let res = tus
            .patch(id, offset as u64, data[offset..end].to_vec())
            .await;
        let status = res.status();
        let acknowledged = res
            .headers()
            .get("upload-offset")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            status,
            204,
            "PATCH at {offset} to {}: {}",
            tus.base,
            res.text().await.unwrap()
        );
        assert_eq!(acknowledged, Some(end.to_string()));
        offset = end;
    }
}

/// A signed-in uploader with an upload+read key.
async fn uploader_key(app: &TestApp) -> String {
    app.sign_in_as("uploader").await;
    api_key(app, &["upload", "read"]).await
}

async fn an_upload_resumes_on_a_restarted_server(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let key = uploader_key(&app).await;
    // Two parts of 8 MiB and a tail; the restart falls inside the second part, so the bytes
    // past the first part live in the tail object.
    let data = dicom(20 * MIB + 4321, 11);
    let half = 10 * MIB + 12_345;

    let first = Instance::start(&app, Some(&bucket));
    let tus = first.tus(&app, &key);
    let id = tus.create_ok("restart.dcm", data.len() as u64, None).await;
    send_range(&tus, &id, &data, 0, half, 3 * MIB).await;
    first.kill();

    let second = Instance::start(&app, Some(&bucket));
    let tus = second.tus(&app, &key);
    assert_eq!(
        tus.offset(&id).await,
        half as u64,
        "durable offset after restart"
    );
    send_range(&tus, &id, &data, half, data.len(), 4 * MIB).await;
    assert_stored(&app, &id, &data, Some(&bucket)).await;
    drop(second);
}

/// Alternates the PATCHes of one upload between two servers running at the same time.
async fn alternate(a: &Tus, b: &Tus, data: &[u8]) -> String {
    let id = a.create_ok("shared.dcm", data.len() as u64, None).await;
    let chunk = 3 * MIB + 1;
    let mut offset = 0;
    for (i, tus) in [a, b].iter().cycle().enumerate() {
        if offset == data.len() {
            break;
        }
        let end = (offset + chunk).min(data.len());
        send_range(tus, &id, data, offset, end, chunk).await;
        // Both servers report the same durable offset at every step.
        let other = if i % 2 == 0 { b } else { a };
        assert_eq!(other.offset(&id).await, end as u64);
        offset = end;
    }
    id
}

async fn two_servers_on_one_database_and_s3_share_an_upload(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let key = uploader_key(&app).await;
    let other = Instance::start(&app, Some(&bucket));
    let data = dicom(17 * MIB + 99, 12);
    let id = alternate(&Tus::with_key(&app, &key), &other.tus(&app, &key), &data).await;
    assert_stored(&app, &id, &data, Some(&bucket)).await;
    let log = other.log.lock().unwrap().clone();
    assert!(
        !log.contains(" ERROR "),
        "second server logged errors:\n{log}"
    );
}

async fn two_servers_on_one_data_directory_share_an_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = uploader_key(&app).await;
    let other = Instance::start(&app, None);
    let data = dicom(17 * MIB + 99, 13);
    let id = alternate(&other.tus(&app, &key), &Tus::with_key(&app, &key), &data).await;
    assert_stored(&app, &id, &data, None).await;
}

both_backends!(
    an_upload_resumes_on_a_restarted_server,
    two_servers_on_one_database_and_s3_share_an_upload,
    two_servers_on_one_data_directory_share_an_upload,
);
