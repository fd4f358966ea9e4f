//! A key owner with studies to search: instances sent over tus as a script does, then
//! DICOMweb requests with the key, and multipart answers taken apart.

use crate::helpers::TestApp;
pub use crate::helpers::api_get_accepting as get;
use crate::helpers::dicom::Instance;
use crate::tus_support::Tus;

/// Three studies of one owner, each with its own patient, accession, date and modalities.
pub const A: &str = "1.2.826.0.1.3680043.99.81";
pub const B: &str = "1.2.826.0.1.3680043.99.82";
pub const C: &str = "1.2.826.0.1.3680043.99.83";

/// The instances the owner sends: A has a CT and an MR series of two instances each (so
/// four instances), B one CT instance, C one MR instance (series 2).
pub fn instances() -> Vec<Instance> {
    let with = |study: &str, series: i32, n: i32, pid, acc, date| Instance {
        patient_id: pid,
        accession: acc,
        date,
        ..Instance::of(study, series, n)
    };
    vec![
        with(A, 1, 1, "PID-ALPHA", "ACC-A", "20260115"),
        with(A, 1, 2, "PID-ALPHA", "ACC-A", "20260115"),
        with(A, 2, 1, "PID-ALPHA", "ACC-A", "20260115"),
        with(A, 2, 2, "PID-ALPHA", "ACC-A", "20260115"),
        with(B, 1, 1, "PID-BRAVO", "ACC-B", "20260601"),
        with(C, 2, 1, "PID-ALPHA", "ACC-C", "20261201"),
    ]
}

/// A user and their key (scopes `upload` and `read`).
pub fn owner(app: &TestApp, email: &str) -> String {
    let user = app.create_user(email, "uploader", "a long enough password");
    app.create_api_key(&user, "upload,read")
}

/// `owner` sends each of `instances` over tus; returns the bytes sent, by SOP UID.
pub async fn send(app: &TestApp, key: &str, instances: &[Instance]) -> Vec<(String, Vec<u8>)> {
    let tus = Tus::with_key(app, key);
    let mut sent = Vec::new();
    for (i, instance) in instances.iter().enumerate() {
        let bytes = instance.bytes();
        let (status, _, body) = tus.send_in_batch(None, &format!("IM{i}.dcm"), &bytes).await;
        assert_eq!(status, 201, "{body}");
        sent.push((instance.sop.clone(), bytes));
    }
    sent
}

/// A new owner with the three studies; their key and what they sent.
pub async fn owner_with_studies(app: &TestApp) -> (String, Vec<(String, Vec<u8>)>) {
    let key = owner(app, "dicomweb-owner@example.org");
    let sent = send(app, &key, &instances()).await;
    (key, sent)
}

/// A search's data sets (asserting 200 and the DICOM JSON media type).
pub async fn search(app: &TestApp, path: &str, key: &str) -> Vec<serde_json::Value> {
    let res = get(app, path, key, Some("application/dicom+json")).await;
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/dicom+json",
        "{path}"
    );
    res.json().await.unwrap()
}

/// The first value of `tag` in a data set, as text.
pub fn text(ds: &serde_json::Value, tag: &str) -> String {
    match &ds[tag]["Value"][0] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(pn) => pn["Alphabetic"].as_str().unwrap().to_string(),
        other => other.to_string(),
    }
}

/// The study (or other) UIDs of a search's data sets, in answer order.
pub fn uids(sets: &[serde_json::Value], tag: &str) -> Vec<String> {
    sets.iter().map(|ds| text(ds, tag)).collect()
}

pub const STUDY_UID: &str = "0020000D";
pub const SERIES_UID: &str = "0020000E";
pub const SOP_UID: &str = "00080018";

/// One part of a multipart body: its headers (lower-case names) and its bytes.
pub type Part = (Vec<(String, String)>, Vec<u8>);

/// The parts of a `multipart/related` body: each part's headers (lower-case names) and
/// its bytes. Checks the framing strictly (RFC 2046): every delimiter, the closing one.
pub fn parts(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let closing = format!("--{boundary}--\r\n");
    assert!(
        body.ends_with(closing.as_bytes()),
        "ends with the closing delimiter"
    );
    let mut rest = &body[..body.len() - closing.len()];
    let mut out = Vec::new();
    while !rest.is_empty() {
        assert!(
            rest.starts_with(delimiter.as_bytes()),
            "a part starts with the delimiter"
        );
        rest = &rest[delimiter.len() + 2..];
        let end = find(rest, b"\r\n\r\n").expect("part headers end");
        let headers: Vec<(String, String)> = std::str::from_utf8(&rest[..end])
            .unwrap()
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        rest = &rest[end + 4..];
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("each part says its length");
        out.push((headers, rest[..length].to_vec()));
        assert_eq!(&rest[length..length + 2], b"\r\n");
        rest = &rest[length + 2..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
