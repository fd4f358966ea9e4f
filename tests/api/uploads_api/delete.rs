//! `DELETE /api/v1/uploads/{id}`: cancels an unfinished upload the way tus termination
//! does (its stored parts are gone, the row stays as `aborted`, `upload.abort` is audited);
//! a finished upload gets 409 with a JSON reason; scope `upload`; the owner's only.

use diesel::prelude::*;
use medport::infra::db::schema::uploads;

use super::{completed_pdf, script, set_status, unfinished_pdf};
use crate::both_backends;
use crate::cleanup::support::{s3_multipart_uploads, s3_objects_under};
use crate::helpers::{Backend, TestApp, api_error, api_get, api_send};
use crate::tus_support::{Tus, dicom, pdf, sign_out, spawn_on_s3, status_of};

fn object_key(app: &TestApp, id: &str) -> medport::infra::storage::blob::ObjectKey {
    let mut conn = app.db.conn().unwrap();
    let key: String = uploads::table
        .find(id)
        .select(uploads::object_key)
        .first(&mut *conn)
        .unwrap();
    medport::infra::storage::blob::ObjectKey::parse(&key).unwrap()
}

async fn delete(app: &TestApp, id: &str, key: &str) -> reqwest::Response {
    api_send(app, "DELETE", &format!("/api/v1/uploads/{id}"), key).await
}

async fn cancelling_an_unfinished_upload_removes_its_stored_bytes(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let (me, key) = script(&app, &["upload", "read"]).await;
    // One whole 8 MiB part in the multipart upload and a short tail beside it.
    let data = dicom(20 * 1024 * 1024, 12);
    let tus = Tus::with_key(&app, &key);
    let id = tus.create_ok("series.dcm", data.len() as u64, None).await;
    tus.send_from(&id, &data[..8 * 1024 * 1024 + 1000], 0, 4 * 1024 * 1024)
        .await;
    let object = object_key(&app, &id);
    assert_eq!(s3_multipart_uploads(&bucket, &object).await, 1);
    assert!(!s3_objects_under(&bucket, object.as_str()).await.is_empty());

    let res = delete(&app, &id, &key).await;
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    assert_eq!(status_of(&app, &id), "aborted");
    assert_eq!(s3_multipart_uploads(&bucket, &object).await, 0);
    assert_eq!(
        s3_objects_under(&bucket, object.as_str()).await,
        Vec::<String>::new()
    );
    let aborts = app.audit_rows("upload.abort");
    assert_eq!(aborts.len(), 1);
    assert_eq!(aborts[0].actor.as_deref(), Some(me.as_str()));
    assert_eq!(aborts[0].target.as_deref(), Some(id.as_str()));

    // Cancelled is finished: a second DELETE is a conflict, and tus sees nothing to resume.
    let body = api_error(delete(&app, &id, &key).await, 409).await;
    assert_eq!(body["error"], "upload_finished");
    assert_eq!(tus.head(&id).await.status(), 404);
    assert_eq!(app.audit_rows("upload.abort").len(), 1);
}

async fn a_finished_upload_is_not_cancelled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let data = pdf(4096, 13);
    let id = completed_pdf(&app, &key, "done.pdf", &data).await;
    let body = api_error(delete(&app, &id, &key).await, 409).await;
    assert_eq!(body["error"], "upload_finished");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
    assert_eq!(status_of(&app, &id), "completed");
    let res = api_get(&app, &format!("/api/v1/uploads/{id}/content"), &key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

    set_status(&app, &id, "completing");
    let body = api_error(delete(&app, &id, &key).await, 409).await;
    assert_eq!(body["error"], "upload_verifying");
    assert!(app.audit_rows("upload.abort").is_empty());
}

async fn only_the_owner_with_the_upload_scope_cancels(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let read_only = crate::tus_support::api_key(&app, &["read"]).await;
    let id = unfinished_pdf(&app, &key, 50_000).await;

    let denied = app.audit_rows("access.denied").len();
    let body = api_error(delete(&app, &id, &read_only).await, 403).await;
    assert_eq!(body["error"], "forbidden");
    assert_eq!(app.audit_rows("access.denied").len(), denied + 1);
    sign_out(&app).await;
    let (_, other) = script(&app, &["upload", "read"]).await;
    api_error(delete(&app, &id, &other).await, 404).await;
    api_error(delete(&app, "not-an-id", &other).await, 404).await;
    assert_eq!(status_of(&app, &id), "active");
    assert_eq!(delete(&app, &id, &key).await.status(), 204);
}

async fn a_signed_in_browser_cannot_cancel_through_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, key) = script(&app, &["upload", "read"]).await;
    let id = unfinished_pdf(&app, &key, 50_000).await;
    let url = app.url(&format!("/api/v1/uploads/{id}"));
    // The browser's session cookie without the CSRF token: refused by the CSRF layer.
    let res = app.client.delete(&url).send().await.unwrap();
    api_error(res, 403).await;
    // With the token: still no key, and the API never takes the cookie.
    let token = app.session_csrf(&app.client).await;
    let res = app
        .client
        .delete(&url)
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    api_error(res, 401).await;
    assert_eq!(status_of(&app, &id), "active");
}

both_backends!(
    a_signed_in_browser_cannot_cancel_through_the_api,
    cancelling_an_unfinished_upload_removes_its_stored_bytes,
    a_finished_upload_is_not_cancelled,
    only_the_owner_with_the_upload_scope_cancels,
);
