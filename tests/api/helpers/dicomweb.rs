//! STOW-RS requests as a script sends them: a `multipart/related; type="application/dicom"`
//! body built by hand, sent with an API key, and what is left in storage afterwards.

use super::TestApp;

/// The boundary the built bodies use.
pub const BOUNDARY: &str = "medport-stow-test-boundary";

/// The Content-Type of a STOW request with [`BOUNDARY`].
pub fn stow_content_type() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// A multipart/related body of `parts`, each `application/dicom`, closed.
pub fn multipart_related(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = open_multipart(parts);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The same body without its closing boundary: it ends after the last part's bytes.
pub fn open_multipart(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(part);
    }
    if !parts.is_empty() {
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// What a STOW request answered: status, Content-Type and the body as JSON (a JSON string
/// when the answer is not JSON).
#[derive(Debug)]
pub struct Stowed {
    pub status: u16,
    pub content_type: String,
    pub body: serde_json::Value,
}

impl Stowed {
    /// ReferencedSOPSequence's SOP Instance UIDs, in order.
    pub fn stored(&self) -> Vec<String> {
        self.items("00081199")
            .iter()
            .map(|i| i["00081155"]["Value"][0].as_str().unwrap().to_string())
            .collect()
    }

    /// FailedSOPSequence as (SOP Instance UID if given, FailureReason), in order.
    pub fn failed(&self) -> Vec<(Option<String>, u64)> {
        self.items("00081198")
            .iter()
            .map(|i| {
                (
                    i["00081155"]["Value"][0].as_str().map(str::to_string),
                    i["00081197"]["Value"][0].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn items(&self, tag: &str) -> Vec<serde_json::Value> {
        self.body[tag]["Value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl TestApp {
    /// POSTs `body` to `path` (`/dicomweb/studies...`) with `key` and `content_type`.
    pub async fn stow_raw(
        &self,
        path: &str,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Stowed {
        // A client without the browser's cookies: a Bearer request with a session cookie
        // would need the CSRF token.
        let (client, _) = self.new_browser();
        let res = client
            .post(self.url(path))
            .bearer_auth(key)
            .header("Content-Type", content_type)
            .header("Accept", "application/dicom+json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = res.text().await.unwrap();
        // Refusals before the handler (401 from the key check) are plain text.
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Stowed {
            status,
            content_type,
            body,
        }
    }

    /// Stores `instances` in one STOW request to `path`.
    pub async fn stow(&self, path: &str, key: &str, instances: &[Vec<u8>]) -> Stowed {
        self.stow_raw(
            path,
            key,
            &stow_content_type(),
            multipart_related(instances),
        )
        .await
    }

    /// Every object and unfinished multipart upload the default bucket holds: file paths
    /// under the local store, or keys on the S3 test server (`s3_bucket`).
    pub async fn objects_left(&self, s3_bucket: Option<&str>) -> Vec<String> {
        match s3_bucket {
            Some(bucket) => {
                let s3 = super::s3_client();
                let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
                let mut keys: Vec<String> = listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string))
                    .collect();
                let open = s3
                    .list_multipart_uploads()
                    .bucket(bucket)
                    .send()
                    .await
                    .unwrap();
                keys.extend(
                    open.uploads()
                        .iter()
                        .filter_map(|u| u.key().map(|k| format!("multipart:{k}"))),
                );
                keys.sort();
                keys
            }
            None => {
                let root = self.data_dir.join("objects");
                // The store's own format marker is not an object.
                let marker = root.join("FORMAT");
                let mut out = Vec::new();
                let mut todo = vec![root];
                while let Some(dir) = todo.pop() {
                    let Ok(entries) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for entry in entries {
                        let path = entry.unwrap().path();
                        if path.is_dir() {
                            todo.push(path);
                        } else if path != marker {
                            out.push(path.display().to_string());
                        }
                    }
                }
                out.sort();
                out
            }
        }
    }

    /// The uploads' (status, filename) rows, oldest first.
    pub fn upload_statuses(&self) -> Vec<(String, String)> {
        use diesel::prelude::*;
        use medport::infra::db::schema::uploads;
        let mut conn = self.db.conn().unwrap();
        uploads::table
            .order(uploads::created_at.asc())
            .select((uploads::status, uploads::filename))
            .load(&mut *conn)
            .unwrap()
    }

    /// Object keys of the completed uploads, sorted: all a bucket may hold once every
    /// failed part is cleaned up.
    pub fn completed_object_keys(&self) -> Vec<String> {
        use diesel::prelude::*;
        use medport::infra::db::schema::uploads;
        let mut conn = self.db.conn().unwrap();
        let mut keys: Vec<String> = uploads::table
            .filter(uploads::status.eq("completed"))
            .select(uploads::object_key)
            .load(&mut *conn)
            .unwrap();
        keys.sort();
        keys
    }

    /// The uploads' ids, oldest first.
    pub fn upload_ids(&self) -> Vec<String> {
        use diesel::prelude::*;
        use medport::infra::db::schema::uploads;
        let mut conn = self.db.conn().unwrap();
        uploads::table
            .order(uploads::created_at.asc())
            .select(uploads::id)
            .load(&mut *conn)
            .unwrap()
    }
}
