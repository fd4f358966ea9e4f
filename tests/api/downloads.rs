//! Downloads: the owner and administrators get back exactly the bytes that were uploaded
//! (local store and S3), as an attachment that can never render as a page, audited before
//! streaming; everyone else gets 404, and files that are not completed are refused.

use diesel::prelude::*;
use medport::infra::db::schema::{audit_events, uploads};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::tus_support::{Tus, dicom, pdf, settled_status, sha256_hex, spawn_on_s3};
use crate::upload_pages::{sign_out, upload_done};

/// (actor user id, target id, details) of every `file.download` event.
fn downloads_audited(app: &TestApp) -> Vec<(Option<String>, Option<String>, serde_json::Value)> {
    let mut conn = app.db.conn().unwrap();
    let rows: Vec<(Option<String>, Option<String>, String)> = audit_events::table
        .filter(audit_events::action.eq("file.download"))
        .order(audit_events::id.asc())
        .select((
            audit_events::actor_user_id,
            audit_events::target_id,
            audit_events::details,
        ))
        .load(&mut *conn)
        .unwrap();
    rows.into_iter()
        .map(|(actor, target, details)| (actor, target, serde_json::from_str(&details).unwrap()))
        .collect()
}

fn bucket_of(app: &TestApp, id: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    uploads::table
        .find(id)
        .select(uploads::bucket_id)
        .first(&mut *conn)
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Downloads and checks the headers every download must carry; returns the bytes.
async fn fetch(app: &TestApp, id: &str) -> Vec<u8> {
    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/octet-stream");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "cache-control"), "no-store");
    assert!(header(&res, "content-disposition").starts_with("attachment; filename=\""));
    let length: usize = header(&res, "content-length").parse().unwrap();
    let body = res.bytes().await.unwrap().to_vec();
    assert_eq!(body.len(), length);
    body
}

async fn the_owner_downloads_the_same_bytes_as_an_audited_attachment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("uploader").await;
    let data = pdf(300 * 1024 + 17, 7);
    let id = upload_done(&app, "Befund Müller \"final\".pdf", &data).await;

    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(
        header(&res, "content-disposition"),
        "attachment; filename=\"Befund M_ller _final_.pdf\"; \
         filename*=UTF-8''Befund%20M%C3%BCller%20%22final%22.pdf"
    );
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    drop(res);
    let body = fetch(&app, &id).await;
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    let audited = downloads_audited(&app);
    assert_eq!(audited.len(), 2, "one event per download");
    let (actor, target, details) = &audited[0];
    assert_eq!(actor.as_deref(), Some(me.id.as_str()));
    assert_eq!(target.as_deref(), Some(id.as_str()));
    assert_eq!(details["bucket"], bucket_of(&app, &id).as_str());
    assert_eq!(details["size"], data.len() as u64);

    // One range: 206 with exactly those bytes; past the end: 416 with the size.
    let res = app
        .client
        .get(app.url(&format!("/files/{id}/download")))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes 1000-1999/{}", data.len())
    );
    assert_eq!(header(&res, "content-type"), "application/octet-stream");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[1000..2000]);
    let res = app
        .client
        .get(app.url(&format!("/files/{id}/download")))
        .header("Range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(
        header(&res, "content-range"),
        format!("bytes */{}", data.len())
    );
}
both_backends!(the_owner_downloads_the_same_bytes_as_an_audited_attachment);

async fn the_declared_type_is_never_sent_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let data = pdf(4096, 8);
    let tus = Tus::with_session(&app).await;
    let res = tus
        .create(
            data.len() as u64,
            &[("filename", "page.pdf"), ("filetype", "text/html")],
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = crate::tus_support::id_from_location(&header(&res, "location"));
    tus.send_from(&id, &data, 0, 4096).await;
    assert_eq!(settled_status(&app, &id, 30).await, "completed");
    assert_eq!(fetch(&app, &id).await, data);
}
both_backends!(the_declared_type_is_never_sent_back);

async fn others_get_404_and_unfinished_files_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let data = dicom(64 * 1024, 9);
    let done = upload_done(&app, "ct.dcm", &data).await;
    let tus = Tus::with_session(&app).await;
    let unfinished = tus.create_ok("half.dcm", data.len() as u64, None).await;
    tus.send_from(&unfinished, &data[..4096], 0, 4096).await;

    let res = app.get_html(&format!("/files/{unfinished}/download")).await;
    assert_eq!(res.status(), 409);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("has not finished uploading yet")
    );
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(uploads::table.find(&done))
            .set(uploads::status.eq("quarantined"))
            .execute(&mut *conn)
            .unwrap();
    }
    let res = app.get_html(&format!("/files/{done}/download")).await;
    assert_eq!(res.status(), 409);
    assert!(res.text().await.unwrap().contains("quarantined"));
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(uploads::table.find(&done))
            .set(uploads::status.eq("completed"))
            .execute(&mut *conn)
            .unwrap();
    }
    assert!(
        downloads_audited(&app).is_empty(),
        "refusals are not downloads"
    );

    sign_out(&app).await;
    app.sign_in_as("uploader").await;
    for id in [&done, &unfinished] {
        assert_eq!(
            app.get(&format!("/files/{id}/download")).await.status(),
            404
        );
    }
    assert_eq!(app.get("/files/not-an-id/download").await.status(), 404);

    sign_out(&app).await;
    let admin = app.sign_in_as("admin").await;
    assert_eq!(fetch(&app, &done).await, data);
    let audited = downloads_audited(&app);
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0.as_deref(), Some(admin.id.as_str()));

    sign_out(&app).await;
    let (client, _) = app.new_browser();
    let res = client
        .get(app.url(&format!("/files/{done}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "signed out: sign in first");
}
both_backends!(others_get_404_and_unfinished_files_are_refused);

async fn downloads_from_s3_are_byte_identical(backend: Backend) {
    let (app, _bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    // More than two parts, with a short last one.
    let data = dicom(17 * 1024 * 1024 + 321, 10);
    let tus = Tus::with_session(&app).await;
    let id = tus.upload("series.dcm", &data, None, 4 * 1024 * 1024).await;
    assert_eq!(settled_status(&app, &id, 60).await, "completed");
    let body = fetch(&app, &id).await;
    assert_eq!(sha256_hex(&body), sha256_hex(&data));

    let res = app
        .client
        .get(app.url(&format!("/files/{id}/download")))
        .header("Range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        &data[data.len() - 100..]
    );
    assert_eq!(downloads_audited(&app).len(), 2);
}
both_backends!(downloads_from_s3_are_byte_identical);
