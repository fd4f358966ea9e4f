//! The tus 1.0 server and the upload pipeline through HTTP: protocol answers, resumable
//! writes with the tail kept in storage, checksums, type and name checks, authorisation,
//! quota, termination and the plain form upload. S3 cases run against the S3 test server.

mod checks;
mod form;
mod protocol;
mod resume;

use diesel::prelude::*;
use medport::infra::db::schema::{upload_parts, uploads};

use crate::helpers::{Backend, Options, TestApp, location};
use crate::tus_support::*;

const MIB: usize = 1024 * 1024;

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
