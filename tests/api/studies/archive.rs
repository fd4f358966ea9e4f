//! A study's ZIP: every stored instance byte for byte under the path it was sent with, the
//! DICOMDIR beside them, one audit event with counts only.

use super::support::{STUDY, api_json, cd, send_batch, unzip, uploader_sends_cd};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, api_get};
use crate::tus_support::api_key;

async fn the_archive_holds_every_instance_byte_for_byte_and_the_dicomdir(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (key, files) = uploader_sends_cd(&app, 2, 3).await;

    let res = app.get(&format!("/studies/{STUDY}/archive")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let entries = unzip(res.bytes().await.unwrap().to_vec()).await;
    let names: Vec<&String> = entries.keys().collect();
    assert_eq!(names.len(), files.len(), "{names:?}");
    for (path, data) in &files {
        assert_eq!(entries.get(path), Some(data), "{path} byte for byte");
    }
    assert!(entries.contains_key("CD/DICOMDIR"));

    let by_api = api_get(&app, &format!("/api/v1/studies/{STUDY}/archive"), &key).await;
    assert_eq!(by_api.status(), 200);
    let by_api = unzip(by_api.bytes().await.unwrap().to_vec()).await;
    assert_eq!(by_api, entries, "the API sends the same ZIP");
}

async fn the_archive_is_audited_once_with_the_instance_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let uploader = app.uploader().await;
    let key = api_key(&app, &["upload", "read"]).await;
    let (mut files, dir) = cd(STUDY, 1, 4);
    files.push(dir);
    send_batch(&app, &key, &files).await;
    let before = app.audit_rows("file.download").len();

    let res = app.get(&format!("/studies/{STUDY}/archive")).await;
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();

    let rows = app.audit_rows("study.download");
    assert_eq!(rows.len(), 1, "one event for the whole study");
    let row = &rows[0];
    assert_eq!(row.outcome, "success");
    assert_eq!(row.actor.as_deref(), Some(uploader.id.as_str()));
    assert_eq!(row.target.as_deref(), Some(STUDY));
    assert_eq!(row.details["instances"], 4);
    assert_eq!(row.details["files"], 5, "the instances and the DICOMDIR");
    let text = row.details.to_string();
    assert!(
        !text.contains("CD/"),
        "no names in the audit details: {text}"
    );
    assert!(!text.contains("SYNTHETIC"), "no patient details: {text}");
    assert_eq!(app.audit_rows("file.download").len(), before);
    let listed = api_json(&app, "/api/v1/studies", &key).await;
    assert_eq!(listed["studies"][0]["instances"], 4);
}

/// An instance whose stored object is gone by the time the ZIP reaches it: the transfer
/// breaks off, so the client never holds a ZIP that merely lacks a file.
async fn a_zip_that_cannot_be_finished_breaks_off(backend: Backend) {
    use diesel::prelude::*;
    use medport::infra::db::schema::uploads;
    use medport::infra::storage::blob::{BlobStore, ObjectKey};
    use medport::infra::storage::local::LocalStore;

    let app = TestApp::spawn(backend).await;
    let (key, files) = uploader_sends_cd(&app, 1, 3).await;
    let second: String = uploads::table
        .filter(uploads::relative_path.eq(&files[1].0))
        .select(uploads::object_key)
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    let store = BlobStore::Local(
        LocalStore::new(
            app.data_dir.join("objects"),
            std::sync::Arc::new(app.master_keyring()),
        )
        .unwrap(),
    );
    store
        .delete(&ObjectKey::parse(&second).unwrap())
        .await
        .unwrap();

    let res = api_get(&app, &format!("/api/v1/studies/{STUDY}/archive"), &key).await;
    assert_eq!(
        res.status(),
        200,
        "the answer starts before the object is reached"
    );
    assert!(res.bytes().await.is_err(), "the body breaks off");
}

both_backends!(
    the_archive_holds_every_instance_byte_for_byte_and_the_dicomdir,
    the_archive_is_audited_once_with_the_instance_count,
    a_zip_that_cannot_be_finished_breaks_off,
);
