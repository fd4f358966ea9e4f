//! DICOM files as clinicians send them: recognised by content whatever their name, read
//! on the server, grouped in batches, with patient attributes sealed at rest.

mod bad_inputs;
mod batches;
mod phi;
mod recognition;

use diesel::prelude::*;
use medport::infra::db::schema::{dicom_instances, uploads};

use crate::helpers::TestApp;
use crate::tus_support::{Tus, api_key};

/// A new uploader, signed in in the main browser, sending with an API key of their own.
async fn uploader(app: &TestApp) -> Tus {
    app.uploader().await;
    Tus::with_key(app, &api_key(app, &["upload", "read"]).await)
}

/// What indexing recorded for an upload: its state and detail, if it has a row.
fn index_row(app: &TestApp, id: &str) -> Option<(String, Option<String>)> {
    dicom_instances::table
        .find(id)
        .select((dicom_instances::state, dicom_instances::detail))
        .first(&mut *app.db.conn().unwrap())
        .optional()
        .unwrap()
}

/// The state indexing recorded for an upload.
fn index_state(app: &TestApp, id: &str) -> String {
    index_row(app, id)
        .unwrap_or_else(|| panic!("upload {id} was not indexed"))
        .0
}

/// An upload's row as stored.
#[derive(Debug)]
struct UploadRow {
    status: String,
    status_reason: Option<String>,
    relative_path: Option<String>,
    object_key: String,
}

fn upload_row(app: &TestApp, id: &str) -> UploadRow {
    let (status, status_reason, relative_path, object_key) = uploads::table
        .find(id)
        .select((
            uploads::status,
            uploads::status_reason,
            uploads::relative_path,
            uploads::object_key,
        ))
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    UploadRow {
        status,
        status_reason,
        relative_path,
        object_key,
    }
}

fn upload_count(app: &TestApp) -> i64 {
    uploads::table
        .count()
        .get_result(&mut *app.db.conn().unwrap())
        .unwrap()
}

/// The file of a batch summary at `relative_path`.
fn batch_file<'a>(summary: &'a serde_json::Value, relative_path: &str) -> &'a serde_json::Value {
    summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["relative_path"] == relative_path)
        .unwrap_or_else(|| panic!("{relative_path} not in the batch: {summary}"))
}

/// The newest upload called `filename` (a refused creation-with-upload answers without a
/// `Location`).
fn upload_named(app: &TestApp, filename: &str) -> String {
    uploads::table
        .filter(uploads::filename.eq(filename))
        .order(uploads::created_at.desc())
        .select(uploads::id)
        .first(&mut *app.db.conn().unwrap())
        .unwrap_or_else(|_| panic!("no upload called {filename}"))
}

/// The problem the batch summary shows for the file at `relative_path`.
fn problem_of<'a>(summary: &'a serde_json::Value, relative_path: &str) -> &'a str {
    batch_file(summary, relative_path)["problem"]
        .as_str()
        .unwrap_or_else(|| panic!("no problem shown for {relative_path}: {summary}"))
}
