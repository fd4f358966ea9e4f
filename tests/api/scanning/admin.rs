//! The quarantine list and the rescan button, through HTTP as an admin (and as others).

use medport::app::uploads::scanner::settle;
use medport::config::QuarantineAction;
use medport::domain::ids::UploadId;

use super::{
    clean_text, closed_port, context, count_events, default_store, events_for, infected_text,
    read_object, scan_row, seed, spawn_with_scanner, with_clamd,
};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, location};

const LIST: &str = "/admin/uploads/quarantine";

fn uid(id: &str) -> UploadId {
    UploadId::parse(id).unwrap()
}

/// An upload quarantined as "not scanned" (the scanner was down when it completed).
async fn not_scanned_upload(app: &TestApp, data: &[u8]) -> String {
    let down = closed_port();
    let ctx = context(app, move |s| s.uploads.clamd = Some(down));
    let id = seed(app, &ctx, "ward-notes.txt", data, None).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    assert_eq!(
        scan_row(app, &id).scan_status.as_deref(),
        Some("not_scanned")
    );
    id
}

async fn an_admin_rescans_an_unscanned_upload_and_it_is_released(backend: Backend) {
    let (app, _) = spawn_with_scanner(backend, with_clamd).await;
    let data = clean_text(50_000);
    let id = not_scanned_upload(&app, &data).await;
    let admin = app.sign_in_as("admin").await;

    let (status, html) = app.page(LIST).await;
    assert_eq!(status, 200);
    assert!(html.contains("ward-notes.txt"), "{html}");
    assert!(html.contains("Not scanned: the virus scanner is unavailable"));
    assert!(html.contains("1 upload is quarantined"));
    assert!(html.contains(&format!(r#"action="/admin/uploads/{id}/rescan""#)));

    let res = app
        .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), LIST);
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "completed");
    assert_eq!(row.scan_status.as_deref(), Some("clean"));
    assert_eq!(row.status_reason, None);
    assert_eq!(row.scan_detail, None);

    let events = events_for(&app, &id);
    let rescan = events
        .iter()
        .find(|(a, _, _)| a == "upload.rescan")
        .unwrap();
    assert_eq!(rescan.1, admin.email);
    assert!(rescan.2.contains("not_scanned"), "{}", rescan.2);
    assert_eq!(count_events(&app, &id, "upload.scan"), 1);

    let (_, html) = app.page(LIST).await;
    assert!(
        html.contains("ward-notes.txt was scanned again and is clean"),
        "flash: {html}"
    );
    assert!(
        !html.contains(&format!(r#"href="/uploads/{id}""#)),
        "listed"
    );
    assert!(html.contains("No quarantined uploads"));
    // Released: the owner's download works now.
    let res = app.get(&format!("/files/{id}/download")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), &data[..]);
}

async fn an_infected_file_kept_in_quarantine_stays_there_after_a_rescan(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    let data = infected_text();
    let id = seed(&app, &ctx, "referral.txt", &data, None).await;
    settle(&ctx, &uid(&id)).await.unwrap();
    let key = scan_row(&app, &id).object_key;
    assert!(key.starts_with("quarantine/"));
    app.sign_in_as("admin").await;

    let res = app
        .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
        .await;
    assert_eq!(res.status(), 303);
    let row = scan_row(&app, &id);
    assert_eq!(row.status, "quarantined");
    assert_eq!(row.scan_status.as_deref(), Some("infected"));
    assert_eq!(row.object_key, key, "not moved twice");
    let store = default_store(&ctx).await;
    assert_eq!(read_object(&store, &key).await.as_deref(), Some(&data[..]));
    assert_eq!(count_events(&app, &id, "upload.rescan"), 1);
    assert_eq!(count_events(&app, &id, "upload.quarantine"), 2);
    let (_, html) = app.page(LIST).await;
    assert!(html.contains("still quarantined"), "{html}");
}

async fn rescans_that_cannot_help_are_refused(backend: Backend) {
    let (app, ctx) = spawn_with_scanner(backend, with_clamd).await;
    // Completed and clean.
    let clean = seed(&app, &ctx, "notes.txt", &clean_text(1000), None).await;
    settle(&ctx, &uid(&clean)).await.unwrap();
    // Infected, and deleted from storage.
    let deleting = context(&app, |s| {
        with_clamd(s);
        s.uploads.quarantine = QuarantineAction::Delete;
    });
    let deleted = seed(&app, &deleting, "referral.txt", &infected_text(), None).await;
    settle(&deleting, &uid(&deleted)).await.unwrap();
    app.sign_in_as("admin").await;

    for (id, status) in [(&clean, "completed"), (&deleted, "quarantined")] {
        let res = app
            .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
            .await;
        assert_eq!(res.status(), 303);
        assert_eq!(scan_row(&app, id).status, status);
        assert_eq!(count_events(&app, id, "upload.rescan"), 0);
        let (_, html) = app.page(LIST).await;
        assert!(html.contains("can be rescanned"), "{html}");
    }
    let (_, html) = app.page(LIST).await;
    assert!(
        !html.contains(&format!("/admin/uploads/{deleted}/rescan")),
        "no button for a deleted object"
    );
    let res = app
        .post_form(
            "/admin/uploads/0195f7a4-0000-7000-8000-000000000000/rescan",
            &[],
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app.post_form("/admin/uploads/not-an-id/rescan", &[]).await;
    assert_eq!(res.status(), 404);
}

async fn without_a_scanner_nothing_is_released_by_a_rescan(backend: Backend) {
    let (app, _) = spawn_with_scanner(backend, |_| {}).await;
    let id = not_scanned_upload(&app, &clean_text(1000)).await;
    app.sign_in_as("admin").await;
    let res = app
        .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(scan_row(&app, &id).status, "quarantined");
    assert_eq!(count_events(&app, &id, "upload.rescan"), 0);
    let (_, html) = app.page(LIST).await;
    assert!(html.contains("Virus scanning is not configured"), "{html}");
    assert!(!html.contains(&format!("/admin/uploads/{id}/rescan")));
}

async fn uploaders_neither_see_the_list_nor_rescan(backend: Backend) {
    let (app, _) = spawn_with_scanner(backend, with_clamd).await;
    let id = not_scanned_upload(&app, &clean_text(1000)).await;
    app.sign_in_as("uploader").await;
    assert_eq!(app.page(LIST).await.0, 403);
    let res = app
        .post_form(&format!("/admin/uploads/{id}/rescan"), &[])
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(scan_row(&app, &id).status, "quarantined");
    assert_eq!(count_events(&app, &id, "upload.rescan"), 0);
}

both_backends!(
    an_admin_rescans_an_unscanned_upload_and_it_is_released,
    an_infected_file_kept_in_quarantine_stays_there_after_a_rescan,
    rescans_that_cannot_help_are_refused,
    without_a_scanner_nothing_is_released_by_a_rescan,
    uploaders_neither_see_the_list_nor_rescan,
);
