//! The tus protocol's answers: OPTIONS, creation (with its first chunk), and the status of
//! each protocol error.

use super::*;

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

async fn creation_with_upload_stores_the_first_chunk(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
    assert_eq!(
        crate::scanning::scan_row(&app, &id).lease_token,
        None,
        "the verdict lets go of a finished upload"
    );
}

/// The request that creates an upload and sends part of it lets go of the upload when it
/// ends, so the next request continues at once.
async fn creation_with_part_of_the_upload_leaves_it_free_for_the_next_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(3 * MIB, 11);
    let res = tus
        .create_with_body(
            data.len() as u64,
            &[("filename", "b.pdf")],
            Some(data[..MIB].to_vec()),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["upload-offset"], MIB.to_string());
    let open = id_from_location(res.headers()["location"].to_str().unwrap());
    assert_eq!(
        crate::scanning::scan_row(&app, &open).lease_token,
        None,
        "an unfinished upload is free for its next request"
    );
    tus.send_from(&open, &data, MIB, data.len()).await;
    assert_eq!(status_of(&app, &open), "completed");
    assert_eq!(stored_sha256(&app, &open), Some(sha256_hex(&data)));
}

async fn protocol_errors_get_their_statuses(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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

crate::both_backends!(
    options_describe_the_server,
    creation_with_upload_stores_the_first_chunk,
    creation_with_part_of_the_upload_leaves_it_free_for_the_next_request,
    protocol_errors_get_their_statuses,
);
