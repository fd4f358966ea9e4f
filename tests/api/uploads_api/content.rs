//! `GET /api/v1/uploads/{id}/content`: the stored bytes by the download page's rules and
//! with its audit event; one `Range`; `If-None-Match` on the SHA-256 ETag; 409 with a
//! JSON reason for a file that is not completed and clean.

use super::{completed_pdf, script, set_status, unfinished_pdf};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, api_error, api_get};
use crate::scanning::{infected_text, with_clamd};
use crate::tus_support::{Tus, dicom, pdf, settled_status, sha256_hex, sign_out, spawn_on_s3};

fn content_path(id: &str) -> String {
    format!("/api/v1/uploads/{id}/content")
}

/// GET the content with extra headers.
async fn get_with(
    app: &TestApp,
    id: &str,
    key: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let (client, _) = app.new_browser();
    let mut req = client
        .get(app.url(&content_path(id)))
        .header("Authorization", format!("Bearer {key}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn the_owner_gets_the_bytes_audited_as_the_download_page_does(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (me, key) = script(&app, &["upload", "read"]).await;
    let data = pdf(200_000 + 13, 5);
    let id = completed_pdf(&app, &key, "scan.pdf", &data).await;

    let res = get_with(&app, &id, &key, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/octet-stream");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    assert_eq!(header(&res, "etag"), format!("\"{}\"", sha256_hex(&data)));
    assert!(header(&res, "content-disposition").starts_with("attachment; filename=\"scan.pdf\""));
    assert_eq!(header(&res, "content-length"), data.len().to_string());
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    // The same file from the download page, in the signed-in browser: the same event.
    let page = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.bytes().await.unwrap().as_ref(), data.as_slice());
    let events = app.audit_rows("file.download");
    assert_eq!(events.len(), 2, "one event per download");
    for event in &events {
        assert_eq!(event.actor.as_deref(), Some(me.as_str()));
        assert_eq!(event.target.as_deref(), Some(id.as_str()));
        assert_eq!(event.outcome, "success");
    }
    assert_eq!(events[0].details, events[1].details);
    assert_eq!(events[0].details["size"], data.len());
    assert_eq!(events[0].details["range"], serde_json::Value::Null);
}

async fn one_range_is_206_and_a_range_outside_the_file_is_416(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let data = pdf(300_000, 6);
    let id = completed_pdf(&app, &key, "scan.pdf", &data).await;
    let size = data.len();

    let res = get_with(&app, &id, &key, &[("Range", "bytes=1000-1999")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes 1000-1999/{size}")
    );
    assert_eq!(header(&res, "etag"), format!("\"{}\"", sha256_hex(&data)));
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[1000..2000]);
    let res = get_with(&app, &id, &key, &[("Range", "bytes=-100")]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[size - 100..]);
    let ranges: Vec<_> = app
        .audit_rows("file.download")
        .into_iter()
        .map(|e| e.details["range"].clone())
        .collect();
    assert_eq!(
        ranges,
        [
            serde_json::json!("1000-1999"),
            serde_json::json!(format!("{}-{}", size - 100, size - 1))
        ]
    );

    let res = get_with(&app, &id, &key, &[("Range", &format!("bytes={size}-"))]).await;
    assert_eq!(header(&res, "content-range"), format!("bytes */{size}"));
    let body = api_error(res, 416).await;
    assert_eq!(body["error"], "range_not_satisfiable");
    assert_eq!(
        app.audit_rows("file.download").len(),
        2,
        "nothing sent, nothing audited"
    );
    // Several ranges: the whole file, as HTTP allows.
    let res = get_with(&app, &id, &key, &[("Range", "bytes=0-1,5-6")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), size);
}

async fn a_current_etag_gets_304_without_bytes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let data = pdf(50_000, 7);
    let id = completed_pdf(&app, &key, "scan.pdf", &data).await;
    let etag = header(&get_with(&app, &id, &key, &[]).await, "etag");
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&data)));
    let downloads = app.audit_rows("file.download").len();

    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let res = get_with(&app, &id, &key, &[("If-None-Match", inm)]).await;
        assert_eq!(res.status(), 304, "{inm}");
        assert_eq!(header(&res, "etag"), etag);
        assert!(res.bytes().await.unwrap().is_empty());
    }
    // A current copy wins over a range (RFC 9110 13.2.2).
    let res = get_with(
        &app,
        &id,
        &key,
        &[("If-None-Match", &etag), ("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(res.status(), 304);
    assert_eq!(
        app.audit_rows("file.download").len(),
        downloads,
        "304 sends nothing"
    );

    let res = get_with(&app, &id, &key, &[("If-None-Match", "\"stale\"")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    assert_eq!(app.audit_rows("file.download").len(), downloads + 1);
}

async fn files_not_completed_are_refused_with_a_json_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let half = unfinished_pdf(&app, &key, 50_000).await;
    let body = api_error(api_get(&app, &content_path(&half), &key).await, 409).await;
    assert_eq!(body["error"], "upload_unfinished");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not finished uploading")
    );

    let id = completed_pdf(&app, &key, "scan.pdf", &pdf(4096, 8)).await;
    for (status, code) in [
        ("completing", "upload_verifying"),
        ("rejected", "upload_rejected"),
        ("quarantined", "upload_quarantined"),
    ] {
        set_status(&app, &id, status);
        // Even with the right ETag: a refused file never answers 304.
        let etag = format!("\"{}\"", sha256_hex(&pdf(4096, 8)));
        let res = get_with(&app, &id, &key, &[("If-None-Match", &etag)]).await;
        assert!(res.headers().get("content-disposition").is_none());
        let body = api_error(res, 409).await;
        assert_eq!(body["error"], code, "{status}");
    }
    assert!(
        app.audit_rows("file.download").is_empty(),
        "refusals are not downloads"
    );
}

async fn an_infected_file_is_refused_as_quarantined(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        crate::helpers::Options {
            tweak: Box::new(with_clamd),
            ..Default::default()
        },
    )
    .await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let data = infected_text();
    let id = Tus::with_key(&app, &key)
        .upload("notes.txt", &data, None, 64 * 1024)
        .await;
    assert_eq!(settled_status(&app, &id, 60).await, "quarantined");
    let res = api_get(&app, &content_path(&id), &key).await;
    let body = api_error(res, 409).await;
    assert_eq!(body["error"], "upload_quarantined");
    let text = body.to_string();
    assert!(!text.contains(&crate::scanning::signature()), "{text}");
    assert!(app.audit_rows("file.download").is_empty());
}

async fn other_users_and_keys_without_read_get_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, upload_only) = script(&app, &["upload"]).await;
    let id = completed_pdf(&app, &upload_only, "scan.pdf", &pdf(4096, 9)).await;
    let body = api_error(api_get(&app, &content_path(&id), &upload_only).await, 403).await;
    assert_eq!(body["error"], "forbidden");
    sign_out(&app).await;
    let (_, other) = script(&app, &["upload", "read"]).await;
    api_error(api_get(&app, &content_path(&id), &other).await, 404).await;
    assert!(app.audit_rows("file.download").is_empty());
}

async fn content_from_s3_is_byte_identical(backend: Backend) {
    let (app, _bucket) = spawn_on_s3(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    // More than one part, with a short last one.
    let data = dicom(9 * 1024 * 1024 + 77, 11);
    let id = Tus::with_key(&app, &key)
        .upload("series.dcm", &data, None, 4 * 1024 * 1024)
        .await;
    assert_eq!(settled_status(&app, &id, 60).await, "completed");
    let res = get_with(&app, &id, &key, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(sha256_hex(&res.bytes().await.unwrap()), sha256_hex(&data));
    let from = 8 * 1024 * 1024 - 10;
    let range = format!("bytes={from}-{}", from + 19);
    let res = get_with(&app, &id, &key, &[("Range", &range)]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[from..from + 20]);
}

both_backends!(
    the_owner_gets_the_bytes_audited_as_the_download_page_does,
    one_range_is_206_and_a_range_outside_the_file_is_416,
    a_current_etag_gets_304_without_bytes,
    files_not_completed_are_refused_with_a_json_reason,
    an_infected_file_is_refused_as_quarantined,
    other_users_and_keys_without_read_get_nothing,
    content_from_s3_is_byte_identical,
);
