//! The plain form upload, through the same pipeline.

use super::*;

async fn the_plain_form_goes_through_the_same_pipeline(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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
    assert_eq!(stored_sha256(&app, &id), Some(sha256_hex(&data)));
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

crate::both_backends!(the_plain_form_goes_through_the_same_pipeline,);
