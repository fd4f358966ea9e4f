//! Resumable writes: the tail kept in storage, S3 objects byte-identical, one writer at a
//! time, and HEAD waiting for a writer still storing.

use super::*;

async fn a_chunked_upload_resumes_from_the_stored_tail(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
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
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(17 * MIB + 5, 2);
    // One request for the whole file, then a second file in odd-sized chunks.
    let one = tus.upload("report.pdf", &data, None, data.len()).await;
    let odd = tus.upload("odd.pdf", &data, None, 3 * MIB + 7).await;
    for id in [&one, &odd] {
        assert_eq!(status_of(&app, id), "completed");
        assert_eq!(stored_sha256(&app, id), Some(sha256_hex(&data)));
        assert_eq!(stored_bytes(&app, Some(&bucket), id).await, data);
    }
    // No multipart upload and no tail object is left behind.
    let keys = objects_without_open_uploads(&bucket).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(".tail.")), "{keys:?}");
}

/// A file up to one part (8 MiB) is stored whole with one request at its last byte, never
/// through a multipart upload: sent at once, or in pieces that wait in tail objects.
async fn files_that_fit_in_one_part_are_stored_whole_on_s3(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    let cases = [
        (pdf(8 * MIB, 3), 8 * MIB),
        (pdf(8 * MIB, 4), 3 * MIB + 1),
        (pdf(64 * 1024, 5), 64 * 1024),
        (pdf(64 * 1024, 6), 10_000),
    ];
    for (data, chunk) in &cases {
        let id = tus.upload("small.pdf", data, None, *chunk).await;
        assert_eq!(status_of(&app, &id), "completed");
        assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(data)));
        assert_eq!(stored_bytes(&app, Some(&bucket), &id).await, *data);
        let storage_id: Option<String> = uploads::table
            .find(&id)
            .select(uploads::storage_upload_id)
            .first(&mut *app.db.conn().unwrap())
            .unwrap();
        assert_eq!(storage_id, None, "no multipart upload was opened");
    }
    // One byte more than a part goes through a multipart upload of two parts.
    let data = pdf(8 * MIB + 1, 7);
    let id = tus.upload("larger.pdf", &data, None, data.len()).await;
    assert_eq!(stored_bytes(&app, Some(&bucket), &id).await, data);
    let parts: i64 = upload_parts::table
        .filter(upload_parts::upload_id.eq(&id))
        .count()
        .get_result(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(parts, 2);
    let keys = objects_without_open_uploads(&bucket).await;
    assert_eq!(keys.len(), cases.len() + 1, "no tail is left: {keys:?}");
}

/// The bucket's object keys, once it is known to hold no unfinished multipart upload.
async fn objects_without_open_uploads(bucket: &str) -> Vec<String> {
    let pending = s3_client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    let objects = s3_client()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    objects
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

async fn a_second_writer_waits_for_the_lease(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default()).await;
    app.uploader().await;
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
    app.uploader().await;
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
    a_chunked_upload_resumes_from_the_stored_tail,
    uploads_to_s3_are_byte_identical,
    files_that_fit_in_one_part_are_stored_whole_on_s3,
    a_second_writer_waits_for_the_lease,
    head_waits_for_a_writer_still_storing,
);
