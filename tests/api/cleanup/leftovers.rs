//! What a crash leaves that no row names: a tail stored whose offset never moved (written
//! down first, in `upload_tails`), and a tail's own multipart upload cut off mid-way (under
//! the upload's key). Expiry removes all of it, and so does completion. Checked on the S3
//! test server's own listings.

use diesel::prelude::*;
use medport::app::uploads::cleanup::run_once;
use medport::app::uploads::layout::tail_key;
use medport::domain::ids::UploadId;
use medport::infra::db::schema::upload_tails;
use medport::infra::storage::blob::ObjectKey;

use super::support::*;
use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use crate::scanning::put_object;
use crate::tus_support::{Tus, api_key, dicom, spawn_on_s3};

both_backends!(
    crash_leftovers_are_swept_when_the_upload_expires,
    crash_leftovers_are_swept_when_the_upload_completes,
);

fn recorded_tails(app: &TestApp, id: &str) -> Vec<i64> {
    let mut conn = app.db.conn().unwrap();
    upload_tails::table
        .filter(upload_tails::upload_id.eq(id))
        .select(upload_tails::tail_offset)
        .order(upload_tails::tail_offset.asc())
        .load(&mut *conn)
        .unwrap()
}

/// An upload with 4000 bytes received (its tail at 4000), plus what a crash leaves: a tail
/// at 9000 that was stored and written down but never became the offset, and a multipart
/// upload of a tail at 12000 that never finished. Returns the upload id and its key.
async fn crashed_upload(
    app: &TestApp,
    bucket: &str,
    tus: &Tus,
    data: &[u8],
) -> (String, ObjectKey) {
    let id = tus.create_ok("scan.dcm", data.len() as u64, None).await;
    assert_eq!(tus.patch(&id, 0, data[..4000].to_vec()).await.status(), 204);
    assert_eq!(
        recorded_tails(app, &id),
        vec![4000],
        "a tail is written down before it is stored"
    );
    let ctx = context(app, Some(bucket));
    let store = default_store(&ctx).await;
    let key = {
        let id = UploadId::parse(&id).unwrap();
        ctx.db
            .run(move |conn| medport::app::uploads::model::find(conn, &id))
            .await
            .unwrap()
            .unwrap()
            .object_key
    };
    diesel::insert_into(upload_tails::table)
        .values((
            upload_tails::upload_id.eq(&id),
            upload_tails::tail_offset.eq(9000_i64),
        ))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
    put_object(&store, &tail_key(&key, 9000).unwrap(), &data[..9000]).await;
    store
        .create_multipart(&tail_key(&key, 12000).unwrap())
        .await
        .unwrap();
    let mut objects = s3_objects_under(bucket, key.as_str()).await;
    objects.sort();
    assert_eq!(objects.len(), 2, "{objects:?}");
    (id, key)
}

async fn multipart_uploads_under(bucket: &str, key: &ObjectKey) -> usize {
    let mut n = s3_multipart_uploads(bucket, key).await;
    for offset in [4000, 9000, 12000] {
        n += s3_multipart_uploads(bucket, &tail_key(key, offset).unwrap()).await;
    }
    n
}

async fn crash_leftovers_are_swept_when_the_upload_expires(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    let data = dicom(300_000, 5);
    let (id, key) = crashed_upload(&app, &bucket, &tus, &data).await;
    // The orphaned multipart upload of the tail at 12000 (a file this small opens none of
    // its own: it is stored whole at its last byte).
    assert_eq!(multipart_uploads_under(&bucket, &key).await, 1);

    past_expiry(&app);
    let ctx = context(&app, Some(&bucket));
    assert_eq!(run_once(&ctx).await.unwrap().expired, 1);
    assert_eq!(row(&app, &id).status, "expired");
    assert_eq!(multipart_uploads_under(&bucket, &key).await, 0);
    assert_eq!(
        s3_objects_under(&bucket, key.as_str()).await,
        Vec::<String>::new()
    );
    assert_eq!(recorded_tails(&app, &id), Vec::<i64>::new());
}

async fn crash_leftovers_are_swept_when_the_upload_completes(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    let data = dicom(300_000, 5);
    let (id, key) = crashed_upload(&app, &bucket, &tus, &data).await;

    // The client resumes from the offset the server has (4000) and finishes.
    assert_eq!(
        tus.patch(&id, 4000, data[4000..].to_vec()).await.status(),
        204
    );
    assert_eq!(row(&app, &id).status, "completed");
    assert_eq!(multipart_uploads_under(&bucket, &key).await, 0);
    assert_eq!(
        s3_objects_under(&bucket, key.as_str()).await,
        vec![key.as_str().to_string()],
        "only the file itself is left"
    );
    assert_eq!(recorded_tails(&app, &id), Vec::<i64>::new());
}
