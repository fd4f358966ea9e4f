//! The cleanup worker: unfinished uploads past their expiry are aborted in storage (multipart
//! upload and tail object) and marked `expired`; storage failures become `cleanup_failed`
//! and are retried with backoff until they succeed; nothing due is left alone, and nothing
//! a request holds is touched. Storage is checked on the real S3 test server.

mod cli;
mod leftovers;
pub mod support;

use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use medport::app::uploads::cleanup::{CleanupReport, run_once};
use medport::infra::db::schema::uploads;

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};
use crate::tus_support::{Tus, api_key, dicom, spawn_on_s3};
use support::*;

const WEEK: TimeDelta = TimeDelta::days(7);

fn report(expired: u64, failed: u64) -> CleanupReport {
    CleanupReport {
        expired,
        failed,
        skipped: 0,
    }
}

both_backends!(
    an_expired_tus_upload_is_aborted_in_s3_and_marked_expired,
    an_expired_small_upload_leaves_nothing_in_s3,
    a_failed_abort_is_retried_with_backoff_until_it_succeeds,
    uploads_not_due_or_held_by_a_request_are_left_alone,
    two_workers_never_clean_the_same_upload,
    the_server_runs_the_worker_on_its_own,
);

async fn an_expired_tus_upload_is_aborted_in_s3_and_marked_expired(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    // Larger than a part, so it has a multipart upload; less than a part sent, so the
    // bytes wait in a tail object beside it.
    let data = dicom(9 * 1024 * 1024, 5);
    let id = tus.create_ok("scan.dcm", data.len() as u64, None).await;
    let res = tus.patch(&id, 0, data[..4000].to_vec()).await;
    assert_eq!(res.status(), 204);
    let ctx = context(&app, Some(&bucket));
    let upload = upload_of(&ctx, &id).await;
    let key = upload.object_key.clone();
    assert_eq!(s3_multipart_uploads(&bucket, &key).await, 1);
    assert!(!s3_objects_under(&bucket, key.as_str()).await.is_empty());

    // Not expired yet: nothing happens.
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 0));
    assert_eq!(row(&app, &id).status, "active");

    past_expiry(&app);
    assert_eq!(run_once(&ctx).await.unwrap(), report(1, 0));
    let after = row(&app, &id);
    assert_eq!(after.status, "expired");
    assert_eq!(after.reason.as_deref(), Some("Not finished in time"));
    assert_eq!(after.lease_token, None);
    assert_eq!(s3_multipart_uploads(&bucket, &key).await, 0);
    assert_eq!(
        s3_objects_under(&bucket, key.as_str()).await,
        Vec::<String>::new()
    );
    let events = audit_for(&app, "upload.expire", &id);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("system", "success")
    );
    // The client cannot resume an expired upload.
    assert_eq!(
        tus.patch(&id, 4000, data[4000..8000].to_vec())
            .await
            .status(),
        410
    );
    // A second pass finds nothing more to do.
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 0));
}

/// A file that fits in one part has no multipart upload: until its last byte its bytes wait
/// in a tail object, and it is stored whole in one request. Expiry removes the tail and an
/// object a request stored whole just before a crash kept its offset from moving.
async fn an_expired_small_upload_leaves_nothing_in_s3(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    app.sign_in_as("uploader").await;
    let tus = Tus::with_key(&app, &api_key(&app, &["upload"]).await);
    let data = dicom(300_000, 5);
    let id = tus.create_ok("scan.dcm", data.len() as u64, None).await;
    assert_eq!(tus.patch(&id, 0, data[..4000].to_vec()).await.status(), 204);
    let ctx = context(&app, Some(&bucket));
    let upload = upload_of(&ctx, &id).await;
    assert_eq!(upload.storage_upload_id, None, "no multipart upload");
    let key = upload.object_key.clone();
    assert_eq!(s3_multipart_uploads(&bucket, &key).await, 0);
    // What a crash between storing the whole file and moving the offset leaves.
    crate::scanning::put_object(&default_store(&ctx).await, &key, &data).await;
    assert_eq!(s3_objects_under(&bucket, key.as_str()).await.len(), 2);

    past_expiry(&app);
    assert_eq!(run_once(&ctx).await.unwrap(), report(1, 0));
    assert_eq!(row(&app, &id).status, "expired");
    assert_eq!(
        s3_objects_under(&bucket, key.as_str()).await,
        Vec::<String>::new()
    );
}

/// The upload row, typed.
async fn upload_of(
    ctx: &medport::app::uploads::UploadContext,
    id: &str,
) -> medport::app::uploads::model::Upload {
    let id = medport::domain::ids::UploadId::parse(id).unwrap();
    ctx.db
        .run(move |conn| medport::app::uploads::model::find(conn, &id))
        .await
        .unwrap()
        .unwrap()
}

async fn a_failed_abort_is_retried_with_backoff_until_it_succeeds(backend: Backend) {
    let (app, bucket) = spawn_on_s3(backend).await;
    let ctx = context(&app, Some(&bucket));
    let up = seed(&app, &ctx, "active", WEEK).await;
    past_expiry(&app);
    let endpoint = crate::helpers::s3_env().endpoint;
    set_endpoint(&app, &closed_port_url());

    let before = app.clock.now_naive();
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 1));
    let failed = row(&app, &up.id);
    assert_eq!(failed.status, "cleanup_failed");
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.lease_token, None);
    let retry_at = failed.next_cleanup_at.unwrap();
    let after = app.clock.now_naive();
    assert!(
        retry_at >= before + TimeDelta::minutes(1) && retry_at <= after + TimeDelta::minutes(1)
    );
    let events = audit_for(&app, "upload.cleanup_failed", &up.id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "failure");
    assert!(events[0].2.contains("\"attempt\":1"), "{}", events[0].2);
    // Nothing was lost or half-removed: the upload is still there to abort later.
    assert_eq!(s3_multipart_uploads(&bucket, &up.key).await, 1);

    // Not due again before the backoff.
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 0));
    assert_eq!(row(&app, &up.id).attempts, 1);

    // Due again, still unreachable: the wait doubles.
    app.clock.advance(Duration::from_secs(61));
    let now = app.clock.now_naive();
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 1));
    let again = row(&app, &up.id);
    assert_eq!(
        (again.status.as_str(), again.attempts),
        ("cleanup_failed", 2)
    );
    let wait = again.next_cleanup_at.unwrap() - now;
    assert!(
        wait >= TimeDelta::minutes(2) && wait < TimeDelta::minutes(3),
        "{wait}"
    );

    // Storage answers again; once the retry is due the upload is cleaned and expired.
    set_endpoint(&app, &endpoint);
    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 0));
    app.clock.advance(Duration::from_secs(121));
    assert_eq!(run_once(&ctx).await.unwrap(), report(1, 0));
    let done = row(&app, &up.id);
    assert_eq!(done.status, "expired");
    assert_eq!(done.next_cleanup_at, None);
    assert_eq!(done.attempts, 2);
    assert_eq!(s3_multipart_uploads(&bucket, &up.key).await, 0);
    assert!(s3_objects_under(&bucket, up.key.as_str()).await.is_empty());
    assert_eq!(audit_for(&app, "upload.expire", &up.id).len(), 1);
    assert_eq!(audit_for(&app, "upload.cleanup_failed", &up.id).len(), 2);
}

async fn uploads_not_due_or_held_by_a_request_are_left_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ctx = context(&app, None);
    let store = default_store(&ctx).await;
    let fresh = seed(&app, &ctx, "active", WEEK + TimeDelta::days(1)).await;
    let completed = seed(&app, &ctx, "completed", WEEK).await;
    let held = seed(&app, &ctx, "active", WEEK).await;
    let waiting = seed(&app, &ctx, "cleanup_failed", WEEK).await;
    past_expiry(&app);
    let now = app.clock.now_naive();
    {
        let mut conn = app.db.conn().unwrap();
        // A PATCH in flight holds this one's lease.
        diesel::update(uploads::table.find(&held.id))
            .set((
                uploads::lease_token.eq(Some("a-request-in-flight")),
                uploads::lease_until.eq(Some(now + TimeDelta::seconds(30))),
            ))
            .execute(&mut *conn)
            .unwrap();
        // This one failed before; its retry is not due yet.
        diesel::update(uploads::table.find(&waiting.id))
            .set((
                uploads::cleanup_attempts.eq(3),
                uploads::next_cleanup_at.eq(Some(now + TimeDelta::minutes(4))),
            ))
            .execute(&mut *conn)
            .unwrap();
    }

    assert_eq!(run_once(&ctx).await.unwrap(), report(0, 0));
    for (up, status) in [
        (&fresh, "active"),
        (&completed, "completed"),
        (&held, "active"),
        (&waiting, "cleanup_failed"),
    ] {
        assert_eq!(row(&app, &up.id).status, status);
        assert!(
            multipart_left(&store, &up.key).await,
            "{status} upload was aborted"
        );
        assert!(store.head(&up.tail).await.unwrap().is_some());
        assert!(audit_for(&app, "upload.expire", &up.id).is_empty());
    }
    assert_eq!(
        row(&app, &held.id).lease_token.as_deref(),
        Some("a-request-in-flight")
    );

    // The request's lease runs out (it died): now the upload is cleaned, tail included.
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(run_once(&ctx).await.unwrap(), report(1, 0));
    assert_eq!(row(&app, &held.id).status, "expired");
    assert!(!multipart_left(&store, &held.key).await);
    assert!(store.head(&held.tail).await.unwrap().is_none());
    // The earlier failure's retry comes due and succeeds; its attempt count is kept.
    app.clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(run_once(&ctx).await.unwrap(), report(1, 0));
    let retried = row(&app, &waiting.id);
    assert_eq!((retried.status.as_str(), retried.attempts), ("expired", 3));
    assert!(!multipart_left(&store, &waiting.key).await);
    assert_eq!(row(&app, &completed.id).status, "completed");
    assert_eq!(row(&app, &fresh.id).status, "active");
}

async fn two_workers_never_clean_the_same_upload(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ctx = context(&app, None);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(seed(&app, &ctx, "active", WEEK).await.id);
    }
    past_expiry(&app);
    let (a, b) = (ctx.clone(), ctx.clone());
    let (one, two) = tokio::join!(
        tokio::spawn(async move { run_once(&a).await.unwrap() }),
        tokio::spawn(async move { run_once(&b).await.unwrap() }),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.expired + two.expired, 6, "{one} / {two}");
    assert_eq!(one.failed + two.failed, 0);
    for id in &ids {
        assert_eq!(row(&app, id).status, "expired");
        assert_eq!(audit_for(&app, "upload.expire", id).len(), 1);
    }
}

async fn the_server_runs_the_worker_on_its_own(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            tweak: Box::new(|s| s.uploads.cleanup_interval = Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let ctx = context(&app, None);
    let store = default_store(&ctx).await;
    let up = seed(&app, &ctx, "active", WEEK).await;
    past_expiry(&app);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while row(&app, &up.id).status != "expired" {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!multipart_left(&store, &up.key).await);
    assert_eq!(audit_for(&app, "upload.expire", &up.id).len(), 1);
}
