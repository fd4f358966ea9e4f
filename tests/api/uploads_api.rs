//! The uploads API (`/api/v1/uploads/{id}`, its content and cancelling it), JSON errors
//! under `/api/` and the OpenAPI description. One file per endpoint.

mod content;
mod delete;
mod errors;
mod openapi;
mod show;

use crate::helpers::TestApp;
use crate::tus_support::{Tus, api_key, pdf, settled_status};

/// A new uploader, signed in in the main browser, and a key of theirs with `scopes`.
async fn script(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let me = app.uploader().await;
    let key = api_key(app, scopes).await;
    (me.id.clone(), key)
}

/// A completed PDF of `len` bytes sent with `key`; its id.
async fn completed_pdf(app: &TestApp, key: &str, name: &str, data: &[u8]) -> String {
    let id = Tus::with_key(app, key)
        .upload(name, data, None, 64 * 1024)
        .await;
    assert_eq!(settled_status(app, &id, 30).await, "completed");
    id
}

/// An upload of `len` declared bytes of which only the first 4 KiB were sent; its id.
async fn unfinished_pdf(app: &TestApp, key: &str, len: usize) -> String {
    let data = pdf(len, 3);
    let tus = Tus::with_key(app, key);
    let id = tus.create_ok("half.pdf", len as u64, None).await;
    tus.send_from(&id, &data[..4096], 0, 4096).await;
    id
}

/// Sets an upload's status straight in the database (states a test cannot wait for).
fn set_status(app: &TestApp, id: &str, status: &str) {
    use diesel::prelude::*;
    use medport::infra::db::schema::uploads;
    let mut conn = app.db.conn().unwrap();
    diesel::update(uploads::table.find(id))
        .set(uploads::status.eq(status))
        .execute(&mut *conn)
        .unwrap();
}
