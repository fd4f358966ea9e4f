//! What an upload is checked against: who may write it, the quota, file type and name, and
//! the whole-file checksum.

use super::*;

async fn other_users_uploads_and_buckets_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let alice = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    let data = pdf(1000, 4);
    let id = alice.create_ok("mine.pdf", data.len() as u64, None).await;

    sign_out(&app).await;
    app.uploader().await; // the main browser is now another uploader
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
    app.auditor().await;
    let auditor = Tus::with_session(&app).await;
    assert_eq!(
        auditor.create(10, &[("filename", "x.pdf")]).await.status(),
        403
    );
}

async fn quota_is_enforced_before_any_byte(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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
    app.uploader().await;
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
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    // A two-byte character straddles the 64 KiB the type check reads; the file arrives in
    // one request, so the check sees the whole file's length but only a prefix of it.
    let mut text = "a".repeat(64 * 1024 - 1).into_bytes();
    text.extend_from_slice("é, ü and more text\n".as_bytes());
    let id = tus.upload("notes.txt", &text, None, text.len()).await;
    assert_eq!(status_of(&app, &id), "completed");
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&text)));
}

async fn a_whole_file_checksum_is_compared_at_completion(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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

crate::both_backends!(
    other_users_uploads_and_buckets_are_not_found,
    quota_is_enforced_before_any_byte,
    file_types_are_checked_by_name_and_content,
    long_utf8_text_arriving_whole_is_accepted,
    a_whole_file_checksum_is_compared_at_completion,
);
