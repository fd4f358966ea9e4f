//! The tus 1.0 server and the upload pipeline through HTTP: protocol answers, resumable
//! writes with the tail kept in storage, checksums, type and name checks, authorisation,
//! quota, termination and the plain form upload. S3 cases run against the S3 test server.

use diesel::prelude::*;
use medport::infra::db::schema::{upload_parts, uploads};

use crate::helpers::{Backend, Options, TestApp, location};
use crate::tus_support::*;

const MIB: usize = 1024 * 1024;

fn column_sha256(app: &TestApp, id: &str) -> Option<String> {
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select(uploads::sha256)
        .first(&mut *conn)
        .unwrap()
}

fn part_rows(app: &TestApp, id: &str) -> Vec<(i32, i64)> {
    let mut conn = app.db.conn().unwrap();
    upload_parts::table
        .filter(upload_parts::upload_id.eq(id))
        .order(upload_parts::part_number.asc())
        .select((upload_parts::part_number, upload_parts::size))
        .load(&mut *conn)
        .unwrap()
}

fn object_key(app: &TestApp, id: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select(uploads::object_key)
        .first(&mut *conn)
        .unwrap()
}

/// The stored object's bytes, read back through the bucket's own backend.
async fn stored_bytes(app: &TestApp, s3_bucket: Option<&str>, id: &str) -> Vec<u8> {
    let key = object_key(app, id);
    match s3_bucket {
        Some(bucket) => s3_client()
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec(),
        None => {
            use futures_util::StreamExt as _;
            let store = medport::infra::storage::local::LocalStore::new(
                app.data_dir.join("objects"),
                std::sync::Arc::new(app.master_keyring()),
            )
            .unwrap();
            let key = medport::infra::storage::blob::ObjectKey::parse(&key).unwrap();
            let (_, mut stream) = store.get(&key, None).await.unwrap();
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            out
        }
    }
}

use crate::helpers::s3_client;

async fn options_describe_the_server(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/tus/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["tus-version"], "1.0.0");
    assert_eq!(h["tus-resumable"], "1.0.0");
    let ext = h["tus-extension"].to_str().unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{ext}");
    }
    assert_eq!(h["tus-max-size"], (50u64 << 30).to_string());
    assert_eq!(h["tus-checksum-algorithm"], "sha1,sha256");
}

async fn a_chunked_upload_resumes_from_the_stored_tail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let key = api_key(&app, &["upload", "read"]).await;
    let tus = Tus::with_key(&app, &key);
    let data = dicom(20 * MIB + 123, 1);
    let id = tus.create_ok("study.dcm", data.len() as u64, None).await;
    let head = tus.head(&id).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["upload-offset"], "0");
    assert_eq!(head.headers()["upload-length"], data.len().to_string());
    assert!(head.headers().contains_key("upload-expires"));
    assert_eq!(head.headers()["cache-control"], "no-store");

    // 5 MiB chunks against 8 MiB parts: every request ends inside a part, so the tail is
    // kept in storage and read back by the next one.
    tus.send_from(&id, &data, 0, 5 * MIB).await;
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(column_sha256(&app, &id), Some(sha256_hex(&data)));
    assert_eq!(
        part_rows(&app, &id),
        vec![
            (1, 8 * MIB as i64),
            (2, 8 * MIB as i64),
            (3, (4 * MIB + 123) as i64)
        ]
    );
    assert_eq!(stored_bytes(&app, None, &id).await, data);
    // After completion the upload is finished: HEAD says so, PATCH finds nothing.
    assert_eq!(tus.offset(&id).await, data.len() as u64);
    assert_eq!(
        tus.patch(&id, data.len() as u64, vec![1]).await.status(),
        404
    );
    let actions: Vec<String> = app.audit_actions().into_iter().map(|a| a.0).collect();
    assert!(
        actions.contains(&"upload.create".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"upload.complete".to_string()),
        "{actions:?}"
    );
}

async fn uploads_to_s3_are_byte_identical(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(17 * MIB + 5, 2);
    // One request for the whole file, then a second file in odd-sized chunks.
    let one = tus.upload("report.pdf", &data, None, data.len()).await;
    let odd = tus.upload("odd.pdf", &data, None, 3 * MIB + 7).await;
    for id in [&one, &odd] {
        assert_eq!(status_of(&app, id), "completed");
        assert_eq!(column_sha256(&app, id), Some(sha256_hex(&data)));
        assert_eq!(stored_bytes(&app, Some(&bucket), id).await, data);
    }
    // No multipart upload and no tail object is left behind.
    let pending = s3_client()
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    let objects = s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(".tail.")), "{keys:?}");
}

async fn creation_with_upload_stores_the_first_chunk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    let data = b"patient,value\n1,2\n".to_vec();
    let res = tus
        .create_with_body(
            data.len() as u64,
            &[("filename", "notes.csv")],
            Some(data.clone()),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["upload-offset"], data.len().to_string());
    let id = id_from_location(res.headers()["location"].to_str().unwrap());
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("http://")
    );
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(column_sha256(&app, &id), Some(sha256_hex(&data)));
}

async fn protocol_errors_get_their_statuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let key = api_key(&app, &["upload"]).await;
    let tus = Tus::with_key(&app, &key);
    let data = dicom(MIB, 3);
    let id = tus.create_ok("a.dcm", data.len() as u64, None).await;
    tus.send_from(&id, &data[..1000], 0, 1000).await;

    // Wrong offset: 409, nothing changes.
    let res = tus.patch(&id, 10, data[10..20].to_vec()).await;
    assert_eq!(res.status(), 409);
    assert_eq!(res.headers()["tus-resumable"], "1.0.0");
    assert_eq!(tus.offset(&id).await, 1000);

    // Checksum mismatch: 460, offset unchanged, the stored tail intact.
    let bad = format!("sha256 {}", b64(&[0u8; 32]));
    let res = tus
        .patch_with(&id, 1000, data[1000..5000].to_vec(), Some(bad))
        .await;
    assert_eq!(res.status(), 460);
    assert_eq!(tus.offset(&id).await, 1000);
    // The right checksum (sha1 this time) is accepted.
    use sha1::Digest as _;
    let good = format!("sha1 {}", b64(&sha1::Sha1::digest(&data[1000..5000])));
    let res = tus
        .patch_with(&id, 1000, data[1000..5000].to_vec(), Some(good))
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(tus.offset(&id).await, 5000);
    let unknown = tus
        .patch_with(&id, 5000, vec![1], Some("md5 AAAA".into()))
        .await;
    assert_eq!(unknown.status(), 400);

    // Wrong version: 412 with Tus-Version; wrong content type: 415.
    let res = app
        .client
        .head(app.url(&format!("/tus/{id}")))
        .header("Authorization", format!("Bearer {key}"))
        .header("Tus-Resumable", "0.2.2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    assert_eq!(res.headers()["tus-version"], "1.0.0");
    let res = app
        .new_browser()
        .0
        .patch(app.url(&format!("/tus/{id}")))
        .header("Authorization", format!("Bearer {key}"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "5000")
        .header("Content-Type", "application/octet-stream")
        .body(vec![1u8])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // More bytes than declared: 413.
    let res = tus.patch(&id, 5000, vec![0; MIB]).await;
    assert_eq!(res.status(), 413);
    assert_eq!(tus.offset(&id).await, 5000);
    // No credentials: 401; an id that is not one: 404.
    let anon = app
        .new_browser()
        .0
        .head(app.url(&format!("/tus/{id}")))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(tus.head("not-an-id").await.status(), 404);
}

async fn other_users_uploads_and_buckets_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let alice = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    let data = pdf(1000, 4);
    let id = alice.create_ok("mine.pdf", data.len() as u64, None).await;

    sign_out(&app).await;
    app.sign_in_as("uploader").await; // the main browser is now another uploader
    let bob = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    assert_eq!(bob.head(&id).await.status(), 404);
    assert_eq!(bob.patch(&id, 0, data.clone()).await.status(), 404);
    assert_eq!(bob.delete(&id).await.status(), 404);
    assert_eq!(alice.offset(&id).await, 0, "nothing was written by bob");

    // A bucket bob was not granted is answered like one that does not exist.
    let other = crate::buckets::insert_bucket(&app, "Radiology");
    let res = bob
        .create(10, &[("filename", "x.pdf"), ("bucket", other.as_str())])
        .await;
    assert_eq!(res.status(), 404);
    let res = bob
        .create(
            10,
            &[
                ("filename", "x.pdf"),
                ("bucket", "0190a5c4-0000-7000-8000-000000000000"),
            ],
        )
        .await;
    assert_eq!(res.status(), 404);
    // A key without the upload scope is refused (403) and the refusal audited.
    let reader = Tus::with_key(&app, &api_key(&app, &["read"]).await);
    assert_eq!(
        reader.create(10, &[("filename", "x.pdf")]).await.status(),
        403
    );
    // Auditors do not upload.
    sign_out(&app).await;
    app.sign_in_as("auditor").await;
    let auditor = Tus::with_session(&app).await;
    assert_eq!(
        auditor.create(10, &[("filename", "x.pdf")]).await.status(),
        403
    );
}

async fn quota_is_enforced_before_any_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(medport::infra::db::schema::buckets::table.find(crate::buckets::SYSTEM_ID))
            .set(medport::infra::db::schema::buckets::size_limit_bytes.eq(Some(10_000i64)))
            .execute(&mut *conn)
            .unwrap();
    }
    let tus = Tus::with_session(&app).await;
    // In-progress uploads hold their space.
    let first = tus.create_ok("a.pdf", 6000, None).await;
    let res = tus.create(5000, &[("filename", "b.pdf")]).await;
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("free"));
    let mut conn = app.db.conn().unwrap();
    let rows: i64 = uploads::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(rows, 1, "the refused upload left no row");
    drop(conn);
    // Cancelling the first frees its space.
    assert_eq!(tus.delete(&first).await.status(), 204);
    assert_eq!(status_of(&app, &first), "aborted");
    assert_eq!(
        tus.create(5000, &[("filename", "b.pdf")]).await.status(),
        201
    );
    // Over the global maximum: 413 before anything is created.
    let res = tus.create(51 << 30, &[("filename", "huge.pdf")]).await;
    assert_eq!(res.status(), 413);
    let actions: Vec<String> = app.audit_actions().into_iter().map(|a| a.0).collect();
    assert!(actions.contains(&"upload.reject".to_string()));
    assert!(actions.contains(&"upload.abort".to_string()));
}

async fn file_types_are_checked_by_name_and_content(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    // Refused by name before anything is created.
    for name in [
        "evil.exe",
        "evil.pdf.exe",
        "a/../evil.exe",
        "scan\u{202E}fdp.exe",
    ] {
        let res = tus.create(100, &[("filename", name)]).await;
        assert_eq!(res.status(), 415, "{name}");
    }
    // Refused by content: 415 with the reason, upload rejected, storage aborted.
    let mut not_dicom = dicom(4096, 5);
    not_dicom[128..132].copy_from_slice(b"XXXX");
    let mut mz = dicom(4096, 6);
    mz[..2].copy_from_slice(b"MZ");
    let png_as_pdf = {
        let mut d = bytes(4096, 7);
        d[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
        d
    };
    let nul_text = b"hello\0world".to_vec();
    for (name, data) in [
        ("a.dcm", not_dicom),
        ("b.dcm", mz),
        ("c.pdf", png_as_pdf),
        ("d.txt", nul_text),
    ] {
        let id = tus.create_ok(name, data.len() as u64, None).await;
        let res = tus.patch(&id, 0, data).await;
        assert_eq!(res.status(), 415, "{name}");
        let text = res.text().await.unwrap();
        assert!(text.contains("refused"), "{name}: {text}");
        assert_eq!(status_of(&app, &id), "rejected");
        assert_eq!(tus.head(&id).await.status(), 404);
    }
    let pending = s3_client()
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        pending.uploads().is_empty(),
        "rejected uploads are aborted in storage"
    );
    // NUL and control characters are removed from names, which stay usable.
    let id = tus.create_ok("sc\u{0}an\u{7}.pdf", 10, None).await;
    let mut conn = app.db.conn().unwrap();
    let name: String = uploads::table
        .find(&id)
        .select(uploads::filename)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(name, "scan.pdf");
}

async fn long_utf8_text_arriving_whole_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    // A two-byte character straddles the 64 KiB the type check reads; the file arrives in
    // one request, so the check sees the whole file's length but only a prefix of it.
    let mut text = "a".repeat(64 * 1024 - 1).into_bytes();
    text.extend_from_slice("é, ü and more text\n".as_bytes());
    let id = tus.upload("notes.txt", &text, None, text.len()).await;
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(column_sha256(&app, &id), Some(sha256_hex(&text)));
}

async fn a_whole_file_checksum_is_compared_at_completion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(2000, 8);
    let good = sha256_hex(&data);
    let res = tus
        .create(
            2000,
            &[
                ("filename", "ok.pdf"),
                ("checksum", &format!("sha256:{good}")),
            ],
        )
        .await;
    let id = id_from_location(&location(&res));
    tus.send_from(&id, &data, 0, 2000).await;
    assert_eq!(status_of(&app, &id), "completed");

    let wrong = "0".repeat(64);
    let res = tus
        .create(2000, &[("filename", "bad.pdf"), ("checksum", &wrong)])
        .await;
    let id = id_from_location(&location(&res));
    let res = tus.patch(&id, 0, data).await;
    assert_eq!(res.status(), 460);
    assert_eq!(status_of(&app, &id), "rejected");
}

async fn the_plain_form_goes_through_the_same_pipeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let csrf = app.session_csrf(&app.client).await;
    let data = pdf(9 * MIB + 11, 9);
    let form = reqwest::multipart::Form::new()
        .text("bucket", crate::buckets::SYSTEM_ID)
        .part(
            "file",
            reqwest::multipart::Part::bytes(data.clone()).file_name("form <b>.pdf"),
        );
    let res = app
        .client
        .post(app.url(&format!("/uploads?csrf_token={csrf}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let id = location(&res).trim_start_matches("/uploads/").to_string();
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(column_sha256(&app, &id), Some(sha256_hex(&data)));
    let mut conn = app.db.conn().unwrap();
    let size: i64 = uploads::table
        .find(&id)
        .select(uploads::declared_size)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(size, data.len() as i64, "the size is what arrived");
    drop(conn);
    assert_eq!(stored_bytes(&app, None, &id).await, data);

    // Without the token: refused. A disguised file: 415 and nothing kept.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"MZ\x90\x00".to_vec()).file_name("x.pdf"),
    );
    let res = app
        .client
        .post(app.url("/uploads"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"MZ\x90\x00 not a pdf".to_vec()).file_name("x.pdf"),
    );
    let res = app
        .client
        .post(app.url(&format!("/uploads?csrf_token={csrf}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

async fn a_second_writer_waits_for_the_lease(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default()).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(3 * MIB, 10);
    let id = tus.create_ok("x.pdf", data.len() as u64, None).await;
    // Simulate a request in flight on another instance: its lease is in the row.
    {
        let mut conn = app.db.conn().unwrap();
        let until = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(30);
        diesel::update(uploads::table.find(&id))
            .set((
                uploads::lease_token.eq(Some("other-instance")),
                uploads::lease_until.eq(Some(until)),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_eq!(tus.patch(&id, 0, data[..100].to_vec()).await.status(), 423);
    assert_eq!(tus.delete(&id).await.status(), 423);
    // Once that lease runs out, the upload continues.
    app.clock.advance(std::time::Duration::from_secs(61));
    tus.send_from(&id, &data, 0, data.len()).await;
    assert_eq!(status_of(&app, &id), "completed");
}

/// After a reload the browser's cut-off PATCH is still being stored for a moment. A HEAD
/// then waits for that writer and answers the offset it leaves, so the resuming client's
/// next PATCH is accepted at once (instead of meeting 423 with its body on the wire).
async fn head_waits_for_a_writer_still_storing(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default()).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_session(&app).await;
    let id = tus.create_ok("x.pdf", 3 * MIB as u64, None).await;
    let set_lease = |token: Option<&str>, offset: i64| {
        let mut conn = app.db.conn().unwrap();
        let until = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(30);
        diesel::update(uploads::table.find(&id))
            .set((
                uploads::lease_token.eq(token),
                uploads::lease_until.eq(token.map(|_| until)),
                uploads::upload_offset.eq(offset),
            ))
            .execute(&mut *conn)
            .unwrap();
    };
    // A writer holds the lease at offset 0 ...
    set_lease(Some("cut-off-request"), 0);
    let db = app.db.clone();
    let writer_id = id.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // ... and finishes: its bytes are recorded, the lease released.
        let mut conn = db.conn().unwrap();
        diesel::update(uploads::table.find(&writer_id))
            .set((
                uploads::lease_token.eq(None::<String>),
                uploads::lease_until.eq(None::<chrono::NaiveDateTime>),
                uploads::upload_offset.eq(4000_i64),
            ))
            .execute(&mut *conn)
            .unwrap();
    });
    let res = tus.head(&id).await;
    writer.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["upload-offset"],
        "4000",
        "the offset the writer left"
    );
}

crate::both_backends!(
    head_waits_for_a_writer_still_storing,
    options_describe_the_server,
    a_chunked_upload_resumes_from_the_stored_tail,
    uploads_to_s3_are_byte_identical,
    creation_with_upload_stores_the_first_chunk,
    protocol_errors_get_their_statuses,
    other_users_uploads_and_buckets_are_not_found,
    quota_is_enforced_before_any_byte,
    file_types_are_checked_by_name_and_content,
    a_whole_file_checksum_is_compared_at_completion,
    long_utf8_text_arriving_whole_is_accepted,
    the_plain_form_goes_through_the_same_pipeline,
    a_second_writer_waits_for_the_lease,
);
