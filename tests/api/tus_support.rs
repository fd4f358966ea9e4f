//! A small tus 1.0 client for the tests, speaking the protocol over HTTP exactly as any tus
//! client does (the real third-party client is exercised in `tus_js_client`), plus apps whose
//! default bucket is on the S3 test server.
#![allow(dead_code)]

use medport::config::{DefaultBucket, SystemS3};
use medport::domain::bucket::{BucketName, Endpoint, EndpointPolicy, Region};
use secrecy::SecretString;
use sha2::Digest as _;

use crate::helpers::{Backend, Options, TestApp, s3_env};

/// Creates a fresh bucket on the S3 test server and returns its name.
pub async fn new_s3_bucket() -> String {
    crate::buckets::new_s3_bucket().await
}

/// Settings tweak: the system default bucket is `bucket` on the S3 test server.
pub fn default_bucket_on_s3(settings: &mut medport::config::Settings, bucket: &str) {
    let env = s3_env();
    let policy = EndpointPolicy {
        allow_loopback: true,
    };
    settings.allow_loopback_endpoints = true;
    settings.default_bucket = DefaultBucket::S3(Box::new(SystemS3 {
        endpoint: Some(Endpoint::parse(&env.endpoint, policy).unwrap()),
        region: Region::parse(&env.region, true).unwrap(),
        bucket: BucketName::parse(bucket).unwrap(),
        path_style: true,
        access_key_id: env.access_key.clone(),
        secret_access_key: SecretString::from(env.secret_key.clone()),
        encryption: medport::app::buckets::Encryption::None,
    }));
}

/// An app whose default bucket is a fresh bucket on the S3 test server; returns the bucket.
pub async fn spawn_on_s3(backend: Backend) -> (TestApp, String) {
    spawn_on_s3_with(backend, |_| {}).await
}

pub async fn spawn_on_s3_with(
    backend: Backend,
    more: impl FnOnce(&mut medport::config::Settings) + Send + 'static,
) -> (TestApp, String) {
    let bucket = new_s3_bucket().await;
    let name = bucket.clone();
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(move |s| {
                default_bucket_on_s3(s, &name);
                more(s);
            }),
            ..Options::default()
        },
    )
    .await;
    (app, bucket)
}

/// Creates an API key for the main browser's signed-in user through the account page.
pub async fn api_key(app: &TestApp, scopes: &[&str]) -> String {
    let mut fields = vec![("name", "tus test"), ("expires_days", "30")];
    fields.extend(scopes.iter().map(|s| ("scopes", *s)));
    let res = app.post_form("/account/api-keys", &fields).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    regex::Regex::new(r"mp_[a-z0-9]{8}_[A-Za-z0-9]{40}")
        .unwrap()
        .find(&html)
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| panic!("no key on the page: {html}"))
}

/// Signs the main browser out, so it can sign in as someone else.
pub async fn sign_out(app: &TestApp) {
    let res = app.post_form("/logout", &[]).await;
    assert_eq!(res.status(), 303);
}

/// Deterministic test bytes of `len`, different per `seed`.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A file that passes the DICOM magic-byte check: 128-byte preamble of zeros, `DICM`, data.
pub fn dicom(len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 132);
    let mut data = bytes(len, seed);
    data[..128].fill(0);
    data[128..132].copy_from_slice(b"DICM");
    data
}

/// A minimal PDF of `len` bytes.
pub fn pdf(len: usize, seed: u8) -> Vec<u8> {
    assert!(len >= 8);
    let mut data = bytes(len, seed);
    data[..8].copy_from_slice(b"%PDF-1.7");
    data
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

pub fn b64(s: &[u8]) -> String {
    data_encoding::BASE64.encode(s)
}

/// How the client proves who it is.
#[derive(Clone)]
pub enum TusAuth {
    /// A script: `Authorization: Bearer`, no cookies.
    Key(String),
    /// A browser: the session cookie in `client` plus the page's CSRF token.
    Session {
        client: reqwest::Client,
        csrf: String,
    },
}

#[derive(Clone)]
pub struct Tus {
    pub base: String,
    /// `/tus/`, or `/tus/send/` for a sender through an upload request.
    pub endpoint: String,
    client: reqwest::Client,
    auth: TusAuth,
}

impl Tus {
    pub fn with_key(app: &TestApp, key: &str) -> Self {
        let (client, _) = app.new_browser();
        Self {
            base: app.address.clone(),
            endpoint: "/tus/".into(),
            client,
            auth: TusAuth::Key(key.to_string()),
        }
    }

    /// As the main browser (already signed in).
    pub async fn with_session(app: &TestApp) -> Self {
        let csrf = app.session_csrf(&app.client).await;
        Self::with_browser(app, app.client.clone(), csrf)
    }

    /// As `client`, a browser whose session's CSRF token is `csrf`.
    pub fn with_browser(app: &TestApp, client: reqwest::Client, csrf: String) -> Self {
        Self {
            base: app.address.clone(),
            endpoint: "/tus/".into(),
            client: client.clone(),
            auth: TusAuth::Session { client, csrf },
        }
    }

    /// The batch API beside this tus endpoint.
    pub fn batches(&self) -> &'static str {
        if self.endpoint.starts_with("/tus/send/") {
            "/batches/send"
        } else {
            "/batches"
        }
    }

    /// The same client at another endpoint (`/tus/send/`).
    pub fn at(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.to_string();
        self
    }

    /// A request with this client's credentials (and `Tus-Resumable`, harmless elsewhere).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let rb = self
            .client
            .request(method, url)
            .header("Tus-Resumable", "1.0.0");
        match &self.auth {
            TusAuth::Key(key) => rb.header("Authorization", format!("Bearer {key}")),
            TusAuth::Session { csrf, .. } => rb.header("X-CSRF-Token", csrf),
        }
    }

    pub async fn options(&self) -> reqwest::Response {
        self.request(reqwest::Method::OPTIONS, &self.endpoint)
            .send()
            .await
            .unwrap()
    }

    /// POST /tus/ with `Upload-Length` and metadata pairs (values are base64-encoded here).
    pub async fn create(&self, length: u64, metadata: &[(&str, &str)]) -> reqwest::Response {
        self.create_with_body(length, metadata, None).await
    }

    /// POST /tus/ with a first chunk in the body (creation-with-upload).
    pub async fn create_with_body(
        &self,
        length: u64,
        metadata: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let meta = metadata
            .iter()
            .map(|(k, v)| format!("{k} {}", b64(v.as_bytes())))
            .collect::<Vec<_>>()
            .join(",");
        let mut rb = self
            .request(reqwest::Method::POST, &self.endpoint)
            .header("Upload-Length", length.to_string());
        if !meta.is_empty() {
            rb = rb.header("Upload-Metadata", meta);
        }
        if let Some(body) = body {
            rb = rb
                .header("Content-Type", "application/offset+octet-stream")
                .body(body);
        }
        rb.send().await.unwrap()
    }

    /// Creates an upload and returns its id (the last segment of `Location`).
    pub async fn create_ok(&self, filename: &str, length: u64, bucket: Option<&str>) -> String {
        let mut meta = vec![("filename", filename)];
        if let Some(b) = bucket {
            meta.push(("bucket", b));
        }
        let res = self.create(length, &meta).await;
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(status, 201, "create: {}", res.text().await.unwrap());
        id_from_location(&location.unwrap())
    }

    pub async fn head(&self, id: &str) -> reqwest::Response {
        self.request(reqwest::Method::HEAD, &format!("{}{id}", self.endpoint))
            .send()
            .await
            .unwrap()
    }

    /// The server's offset, from HEAD.
    pub async fn offset(&self, id: &str) -> u64 {
        let res = self.head(id).await;
        assert_eq!(res.status(), 200, "HEAD {id}");
        res.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub async fn patch(&self, id: &str, offset: u64, chunk: Vec<u8>) -> reqwest::Response {
        self.patch_with(id, offset, chunk, None).await
    }

    /// PATCH with an optional `Upload-Checksum` header value.
    pub async fn patch_with(
        &self,
        id: &str,
        offset: u64,
        chunk: Vec<u8>,
        checksum: Option<String>,
    ) -> reqwest::Response {
        let mut rb = self
            .request(reqwest::Method::PATCH, &format!("{}{id}", self.endpoint))
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream");
        if let Some(c) = checksum {
            rb = rb.header("Upload-Checksum", c);
        }
        rb.body(chunk).send().await.unwrap()
    }

    pub async fn delete(&self, id: &str) -> reqwest::Response {
        self.request(reqwest::Method::DELETE, &format!("{}{id}", self.endpoint))
            .send()
            .await
            .unwrap()
    }

    /// Sends `data` from `from` in chunks of `chunk` bytes, asserting 204 and the new offset
    /// each time.
    pub async fn send_from(&self, id: &str, data: &[u8], from: usize, chunk: usize) {
        let mut offset = from;
        while offset < data.len() {
            let end = (offset + chunk).min(data.len());
            let res = self
                .patch(id, offset as u64, data[offset..end].to_vec())
                .await;
            let status = res.status();
            let got = res
                .headers()
                .get("upload-offset")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                status,
                204,
                "PATCH at {offset}: {}",
                res.text().await.unwrap()
            );
            assert_eq!(got.as_deref(), Some(end.to_string().as_str()));
            offset = end;
        }
    }

    /// The whole upload: create, then PATCH in `chunk`-byte pieces. Returns the upload id.
    pub async fn upload(
        &self,
        filename: &str,
        data: &[u8],
        bucket: Option<&str>,
        chunk: usize,
    ) -> String {
        let id = self.create_ok(filename, data.len() as u64, bucket).await;
        self.send_from(&id, data, 0, chunk).await;
        id
    }
}

pub fn id_from_location(location: &str) -> String {
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// The upload's status column, read directly.
pub fn status_of(app: &TestApp, id: &str) -> String {
    use diesel::prelude::*;
    use medport::infra::db::schema::uploads;
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select(uploads::status)
        .first(&mut *conn)
        .unwrap()
}

/// Waits (up to `secs`) until the upload leaves `active`/`completing`; returns the status.
pub async fn settled_status(app: &TestApp, id: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let status = status_of(app, id);
        if !matches!(status.as_str(), "active" | "completing")
            || std::time::Instant::now() > deadline
        {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The SHA-256 the upload's row records (set when the upload completes).
pub fn stored_sha256(app: &TestApp, id: &str) -> Option<String> {
    use diesel::prelude::*;
    use medport::infra::db::schema::uploads;
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select(uploads::sha256)
        .first(&mut *conn)
        .unwrap()
}
