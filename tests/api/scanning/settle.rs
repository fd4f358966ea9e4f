//! `settle` on uploads seeded as the pipeline leaves them (object stored, row `completing` /
//! `pending` with its SHA-256), against the real clamd and the local encrypted store.

use std::time::Duration;

use diesel::prelude::*;
use medport::app::uploads::scanner::settle;
use medport::config::QuarantineAction;
use medport::domain::ids::UploadId;
use medport::infra::db::schema::uploads;

use super::{
    clean_text, closed_port, count_events, default_store, events_for, infected_text, read_object,
    scan_row, seed, spawn_with_scanner, with_clamd,
};
use crate::both_backends;
use crate::helpers::Backend;

fn uid(id: &str) -> UploadId {
    UploadId::parse(id).unwrap()
}

async fn a_clean_file_is_completed(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let data = clean_text(300_000);
    let id = seed(&app, &ctx, "notes.txt", &data, None).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "completed");
    assert_eq!(row.scan_status.as_deref(), Some("clean"));
    assert_eq!(row.status_reason, None);
    assert_eq!(row.lease_token, None, "the lease is released");
    assert!(row.completed_at.is_some());
    let events = events_for(&app, &id);
    let scan = events.iter().find(|(a, _, _)| a == "upload.scan").unwrap();
    assert_eq!(scan.1, "system");
    assert!(scan.2.contains(r#""scan":"clean""#), "{}", scan.2);
}

async fn an_infected_file_is_moved_to_quarantine(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let data = infected_text();
    let id = seed(&app, &ctx, "referral.txt", &data, None).await;
    let original = scan_row(&app, &id).object_key;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    let signature = row.scan_detail.clone().unwrap();
    assert!(signature.contains("Medport.Test.Marker"), "{signature}");
    assert_eq!(
        row.status_reason.as_deref(),
        Some(format!("Malware detected ({signature})").as_str())
    );
    assert_eq!(row.object_key, format!("quarantine/{original}"));
    let store = default_store(&ctx).await;
    assert_eq!(
        read_object(&store, &original).await,
        None,
        "original removed"
    );
    assert_eq!(
        read_object(&store, &row.object_key).await.as_deref(),
        Some(&data[..]),
        "the quarantined copy is byte for byte the upload"
    );
    let events = events_for(&app, &id);
    let q = events
        .iter()
        .find(|(a, _, _)| a == "upload.quarantine")
        .unwrap();
    assert_eq!(q.1, "system");
    assert!(q.2.contains(r#""object":"moved""#), "{}", q.2);
    assert!(q.2.contains("Medport.Test.Marker"), "{}", q.2);
}

async fn with_quarantine_delete_an_infected_object_is_deleted(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, |s| {
        with_clamd(s);
        s.uploads.quarantine = QuarantineAction::Delete;
    })
    .await;
    let id = seed(&app, &ctx, "referral.txt", &infected_text(), None).await;
    let original = scan_row(&app, &id).object_key;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    assert_eq!(row.object_key, original);
    let store = default_store(&ctx).await;
    assert_eq!(read_object(&store, &original).await, None);
    assert_eq!(
        read_object(&store, &format!("quarantine/{original}")).await,
        None
    );
    let events = events_for(&app, &id);
    assert!(
        events
            .iter()
            .any(|(a, _, d)| a == "upload.quarantine" && d.contains(r#""object":"deleted""#)),
        "{events:?}"
    );
}

async fn with_the_scanner_down_the_file_is_quarantined_unscanned(backend: Backend) {
    let down = closed_port();
    let (app, ctx) = spawn_with_scanner(backend, move |s| {
        s.uploads.clamd = Some(down.clone());
    })
    .await;
    let data = clean_text(10_000);
    let id = seed(&app, &ctx, "notes.txt", &data, None).await;
    let started = std::time::Instant::now();
    settle(&ctx, &uid(&id)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("not_scanned"));
    assert_eq!(
        row.status_reason.as_deref(),
        Some("Not scanned: the virus scanner is unavailable")
    );
    let store = default_store(&ctx).await;
    assert_eq!(
        read_object(&store, &row.object_key).await.as_deref(),
        Some(&data[..]),
        "the object stays in place"
    );
    let events = events_for(&app, &id);
    assert!(
        events.iter().any(|(a, who, d)| a == "upload.quarantine"
            && who == "system"
            && d.contains("the virus scanner is unavailable")),
        "{events:?}"
    );
}

async fn files_over_the_scan_limit_are_not_sent_to_the_scanner(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, |s| {
        with_clamd(s);
        s.uploads.scan_max_size = 4096;
    })
    .await;
    let id = seed(&app, &ctx, "big.txt", &infected_text().repeat(100), None).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("not_scanned"));
    assert_eq!(
        row.status_reason.as_deref(),
        Some("Not scanned: the file is larger than the scanning limit of 4 KiB")
    );
}

async fn stored_bytes_that_differ_from_the_checksum_are_quarantined(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let wrong = crate::tus_support::sha256_hex(b"something else");
    let id = seed(&app, &ctx, "notes.txt", &clean_text(5000), Some(wrong)).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("not_scanned"));
    assert!(
        row.status_reason
            .as_deref()
            .unwrap()
            .contains("stored bytes do not match the uploaded file's checksum"),
        "{row:?}"
    );
}

async fn without_a_scanner_settle_completes_the_upload(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, |_| {}).await;
    let id = seed(&app, &ctx, "notes.txt", &infected_text(), None).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "completed");
    assert_eq!(row.scan_status, None);
}

async fn settling_twice_at_once_scans_once(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let id = seed(&app, &ctx, "notes.txt", &clean_text(2_000_000), None).await;
    let upload = uid(&id);
    let (a, b) = tokio::join!(settle(&ctx, &upload), settle(&ctx, &upload));
    a.unwrap();
    b.unwrap();
    assert_eq!(scan_row(&app, &id).status, "completed");
    assert_eq!(count_events(&app, &id, "upload.scan"), 1);
    // Called again later (a retry after a crash): nothing changes.
    let before = events_for(&app, &id).len();
    settle(&ctx, &uid(&id)).await.unwrap();
    assert_eq!(events_for(&app, &id).len(), before);
    assert_eq!(scan_row(&app, &id).status, "completed");
}

fn set_lease(app: &crate::helpers::TestApp, id: &str, until: chrono::NaiveDateTime) {
    let mut conn = app.db.conn().unwrap();
    diesel::update(uploads::table.find(id))
        .set((
            uploads::lease_token.eq(Some("held-elsewhere")),
            uploads::lease_until.eq(Some(until)),
        ))
        .execute(&mut *conn)
        .unwrap();
}

async fn a_held_lease_is_waited_for_and_a_stale_one_taken_over(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let now = app.clock.now_naive();

    // Held (the pipeline has not let go yet): the scan waits, then runs once it is released.
    let held = seed(&app, &ctx, "notes.txt", &clean_text(1000), None).await;
    set_lease(&app, &held, now + chrono::TimeDelta::seconds(60));
    let task = {
        let (ctx, id) = (ctx.clone(), uid(&held));
        tokio::spawn(async move { settle(&ctx, &id).await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let row = scan_row(&app, &held);
    assert_eq!(
        row.status, "completing",
        "nothing happens under another's lease"
    );
    assert_eq!(row.lease_token.as_deref(), Some("held-elsewhere"));
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(uploads::table.find(&held))
            .set((
                uploads::lease_token.eq(None::<String>),
                uploads::lease_until.eq(None::<chrono::NaiveDateTime>),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    task.await.unwrap().unwrap();
    assert_eq!(scan_row(&app, &held).status, "completed");

    // Run out (its holder crashed): taken over at once.
    let stale = seed(&app, &ctx, "notes.txt", &clean_text(1000), None).await;
    set_lease(&app, &stale, now - chrono::TimeDelta::seconds(1));
    settle(&ctx, &uid(&stale)).await.unwrap();
    let row = scan_row(&app, &stale);
    assert_eq!(row.status, "completed");
    assert_eq!(row.lease_token, None);
}

async fn a_large_infected_file_is_copied_to_quarantine_part_by_part_on_s3(backend: Backend) {
    let bucket = crate::tus_support::new_s3_bucket().await;
    let name = bucket.clone();
    let (app, ctx) = spawn_with_scanner(backend, move |s| {
        crate::tus_support::default_bucket_on_s3(s, &name);
        with_clamd(s);
    })
    .await;
    // 20 MiB with the signature at the end: three 8 MiB parts (the last one short).
    let mut data = clean_text(20 * 1024 * 1024 - 200);
    data.extend(infected_text());
    let id = seed(&app, &ctx, "scan.txt", &data, None).await;
    let original = scan_row(&app, &id).object_key;
    settle(&ctx, &uid(&id)).await.unwrap();
    let row = scan_row(&app, &id);
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    assert_eq!(row.object_key, format!("quarantine/{original}"));
    let store = default_store(&ctx).await;
    assert_eq!(read_object(&store, &original).await, None);
    let copy = read_object(&store, &row.object_key).await.unwrap();
    assert!(copy == data, "the copy differs from the upload");
}

both_backends!(
    a_large_infected_file_is_copied_to_quarantine_part_by_part_on_s3,
    a_clean_file_is_completed,
    an_infected_file_is_moved_to_quarantine,
    with_quarantine_delete_an_infected_object_is_deleted,
    with_the_scanner_down_the_file_is_quarantined_unscanned,
    files_over_the_scan_limit_are_not_sent_to_the_scanner,
    stored_bytes_that_differ_from_the_checksum_are_quarantined,
    without_a_scanner_settle_completes_the_upload,
    settling_twice_at_once_scans_once,
    a_held_lease_is_waited_for_and_a_stale_one_taken_over,
);
