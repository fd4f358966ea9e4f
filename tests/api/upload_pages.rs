//! The upload pages: the new-upload page (buckets, scripts, the plain form), the history
//! (own uploads for uploaders, everyone's for admins and auditors, filters), the detail
//! page and the htmx progress fragment. Uploads are made through the tus protocol.

use chrono::Utc;
use diesel::prelude::*;
use medport::infra::db::schema::bucket_grants;

use crate::both_backends;
use crate::buckets::insert_bucket;
use crate::helpers::{Backend, TestApp, location};
use crate::tus_support::{Tus, api_key, pdf, settled_status, sha256_hex};

/// A name full of markup without a path separator (the part after a `/` is all that is
/// kept), so it reaches the pages whole.
pub const MARKUP_NAME: &str = r#""><script>alert(1)<script>.pdf"#;
const MARKUP_ESCAPED: &str = "&#34;&#62;&#60;script&#62;alert(1)&#60;script&#62;.pdf";

/// Uploads `data` as the main browser's signed-in user and waits until it completes.
pub async fn upload_done(app: &TestApp, name: &str, data: &[u8]) -> String {
    let tus = Tus::with_session(app).await;
    let id = tus.upload(name, data, None, 64 * 1024).await;
    assert_eq!(settled_status(app, &id, 30).await, "completed");
    id
}

/// Uploads through a fresh API key of the main browser's signed-in user (so several users
/// can own uploads in one test without juggling browsers).
async fn upload_as_current(app: &TestApp, name: &str, seed: u8) -> String {
    let key = api_key(app, &["upload"]).await;
    let id = Tus::with_key(app, &key)
        .upload(name, &pdf(4096, seed), None, 4096)
        .await;
    assert_eq!(settled_status(app, &id, 30).await, "completed");
    id
}

/// Ends the main browser's session, so the next `sign_in_as` starts fresh.
pub async fn sign_out(app: &TestApp) {
    let res = app.post_form("/logout", &[]).await;
    assert_eq!(res.status(), 303);
}

fn grant(app: &TestApp, bucket: &str, user: &str) {
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(bucket_grants::table)
        .values((
            bucket_grants::bucket_id.eq(bucket),
            bucket_grants::user_id.eq(user),
            bucket_grants::created_at.eq(Utc::now().naive_utc()),
        ))
        .execute(&mut *conn)
        .unwrap();
}

/// Every `<script>` loads a file; no element carries an inline event handler.
fn assert_no_inline_script(html: &str) {
    let scripts = regex::Regex::new(r"<script\b[^>]*>").unwrap();
    for tag in scripts.find_iter(html) {
        assert!(
            tag.as_str().contains(" src=\"/static/"),
            "inline script: {}",
            tag.as_str()
        );
    }
    let handlers = regex::Regex::new(r#"<[^>]+\son[a-z]+\s*="#).unwrap();
    assert!(!handlers.is_match(html), "inline event handler in the page");
}

async fn new_upload_page_offers_visible_buckets_and_loads_the_upload_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let granted = insert_bucket(&app, "Cardiology ward");
    let other = insert_bucket(&app, "Oncology ward");
    let me = app.sign_in_as("uploader").await;
    grant(&app, &granted, &me.id);

    let (status, html) = app.page("/uploads/new").await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!(
        r#"<option value="{granted}">Cardiology ward</option>"#
    )));
    assert!(html.contains(&format!(
        r#"<option value="{}" selected>"#,
        crate::buckets::SYSTEM_ID
    )));
    assert!(!html.contains("Oncology ward") && !html.contains(&other));
    assert!(
        html.contains(".dcm, .dicom, .pdf"),
        "allowed types are listed"
    );

    let token = app.session_csrf(&app.client).await;
    assert!(html.contains(&format!(r#"<meta name="csrf-token" content="{token}">"#)));
    assert!(html.contains(&format!(
        r#"<form id="upload-form" class="form" method="post" action="/uploads?csrf_token={token}" enctype="multipart/form-data""#
    )));
    assert!(html.contains(r#"name="bucket""#) && html.contains(r#"name="file" type="file""#));
    assert!(html.contains(r#"<script src="/static/vendor/tus-js-client.min.js" defer></script>"#));
    assert!(html.contains(r#"<script src="/static/js/upload.js" defer></script>"#));
    assert_no_inline_script(&html);

    let nav = regex::Regex::new(r#"<a href="/uploads" aria-current="page">Uploads</a>"#).unwrap();
    assert!(nav.is_match(&html), "the Uploads link leads the navigation");
}
both_backends!(new_upload_page_offers_visible_buckets_and_loads_the_upload_client);

async fn the_upload_scripts_are_served_as_javascript_and_match_the_pinned_hash(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sums = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/vendor/SHA256SUMS"),
    )
    .unwrap();
    let pinned = sums
        .lines()
        .find_map(|l| l.strip_suffix("  tus-js-client.min.js"))
        .expect("tus-js-client is pinned in SHA256SUMS");
    for (path, hash) in [
        ("/static/vendor/tus-js-client.min.js", Some(pinned)),
        ("/static/js/upload.js", None),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{path}"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let body = res.bytes().await.unwrap();
        if let Some(hash) = hash {
            assert_eq!(sha256_hex(&body), hash, "{path} is the pinned file");
        } else {
            let text = String::from_utf8(body.to_vec()).unwrap();
            assert!(text.contains("new tus.Upload(") && text.contains("X-CSRF-Token"));
        }
    }
}
both_backends!(the_upload_scripts_are_served_as_javascript_and_match_the_pinned_hash);

async fn signed_in_users_land_on_their_uploads_and_see_an_empty_state(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get_html("/uploads").await;
    assert_eq!(res.status(), 303, "signed out");
    assert!(location(&res).starts_with("/login"), "{}", location(&res));

    app.sign_in_as("uploader").await;
    assert_eq!(location(&app.get("/").await), "/uploads");
    let (status, html) = app.page("/uploads").await;
    assert_eq!(status, 200);
    assert!(html.contains("No uploads yet."), "{html}");
    assert!(html.contains(r#"href="/uploads/new""#));
    assert!(
        !html.contains(r#"id="user""#),
        "uploaders get no user filter"
    );

    // Auditors read the history but are not offered uploading.
    sign_out(&app).await;
    app.sign_in_as("auditor").await;
    let (status, html) = app.page("/uploads/new").await;
    assert_eq!(status, 200);
    assert!(html.contains("cannot add files") && !html.contains("upload-form"));
    let (_, html) = app.page("/uploads").await;
    assert!(!html.contains(r#"href="/uploads/new""#) && html.contains(r#"id="user""#));

    let (status, _) = app.page("/uploads?status=done").await;
    assert_eq!(status, 400, "an unknown status filter is refused");
}
both_backends!(signed_in_users_land_on_their_uploads_and_see_an_empty_state);

async fn history_shows_uploaders_their_own_and_admins_everyones(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.sign_in_as("uploader").await;
    let alices = upload_as_current(&app, "alice-scan.pdf", 1).await;
    sign_out(&app).await;
    let bob = app.sign_in_as("uploader").await;
    let bobs = upload_as_current(&app, "bob-report.pdf", 2).await;

    // Bob (signed in now) sees his upload only, with its details.
    let (_, html) = app.page("/uploads").await;
    assert!(html.contains("bob-report.pdf") && !html.contains("alice-scan.pdf"));
    assert!(html.contains(&format!(r#"href="/files/{bobs}/download""#)));
    assert!(html.contains("Completed") && html.contains("4 KiB"));
    let sha = sha256_hex(&pdf(4096, 2));
    assert!(
        html.contains(&format!(r#"title="{sha}""#)),
        "full hash in the title"
    );
    assert!(html.contains(&format!("<code>{}…</code>", &sha[..12])));
    for path in [
        format!("/uploads/{alices}"),
        format!("/uploads/{alices}/progress"),
        format!("/uploads/{alices}/progress?view=status"),
        format!("/files/{alices}/download"),
    ] {
        assert_eq!(app.page(&path).await.0, 404, "{path} of someone else");
    }
    let (status, html) = app.page(&format!("/uploads/{bobs}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!(r#"<code class="upload-sha">{sha}</code>"#)));
    assert!(html.contains("An API key"));
    // The user filter is not Bob's to use.
    let (_, html) = app.page(&format!("/uploads?user={}", alice.email)).await;
    assert!(html.contains("bob-report.pdf") && !html.contains("alice-scan.pdf"));

    sign_out(&app).await;
    app.sign_in_as("admin").await;
    let (_, html) = app.page("/uploads").await;
    assert!(html.contains("alice-scan.pdf") && html.contains("bob-report.pdf"));
    assert!(
        html.contains(&alice.email) && html.contains(&bob.email),
        "owner column"
    );
    let (_, html) = app.page(&format!("/uploads?user={}", alice.email)).await;
    assert!(html.contains("alice-scan.pdf") && !html.contains("bob-report.pdf"));
    let (_, html) = app.page(&format!("/uploads?user={}", bob.id)).await;
    assert!(html.contains("bob-report.pdf") && !html.contains("alice-scan.pdf"));
    let (_, html) = app.page("/uploads?user=nobody%40example.org").await;
    assert!(html.contains("No account has that email address."));
    let (_, html) = app.page("/uploads?status=active").await;
    assert!(!html.contains("alice-scan.pdf") && html.contains("No uploads match"));
    let (_, html) = app.page("/uploads?status=completed").await;
    assert!(html.contains("alice-scan.pdf") && html.contains("bob-report.pdf"));
    let (status, html) = app.page(&format!("/uploads/{alices}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&alice.email));

    sign_out(&app).await;
    app.sign_in_as("auditor").await;
    let (_, html) = app.page("/uploads").await;
    assert!(html.contains("alice-scan.pdf") && html.contains("bob-report.pdf"));
    assert!(
        !html.contains("/download\""),
        "auditors are not offered downloads"
    );
    assert_eq!(app.page(&format!("/uploads/{alices}")).await.0, 200);
    assert_eq!(
        app.get(&format!("/files/{alices}/download")).await.status(),
        404,
        "auditors never read file contents"
    );
}
both_backends!(history_shows_uploaders_their_own_and_admins_everyones);

async fn a_long_history_is_counted_only_as_far_as_the_page_needs(backend: Backend) {
    use medport::web::routes::{
        HISTORY_COUNT_AT_MOST as COUNT_AT_MOST, HISTORY_PAGE_SIZE as PAGE_SIZE,
    };
    let app = TestApp::spawn(backend).await;
    let user = app.uploader().await;
    let stored = COUNT_AT_MOST + 2 * PAGE_SIZE + 1;
    {
        let mut pooled = app.db.conn().unwrap();
        let conn: &mut medport::infra::db::DbConnection = &mut pooled;
        let now = Utc::now().naive_utc();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for i in 0..stored {
                let id = uuid::Uuid::now_v7().to_string();
                crate::studies::support::write_upload(
                    conn,
                    &id,
                    &user.id,
                    None,
                    &format!("scan-{i}.dcm"),
                    "completed",
                    now,
                )?;
            }
            Ok(())
        })
        .unwrap();
    }
    let older = |html: &str| html.contains(r#"rel="next""#);

    // The first page counts a little past the cap, not the whole history.
    let (_, html) = app.page("/uploads").await;
    assert!(
        html.contains(&format!("More than {COUNT_AT_MOST} uploads. Page 1.")),
        "{html}"
    );
    assert!(older(&html));

    // Further in, the count reaches the end of the page asked for.
    let last = u32::try_from((stored + PAGE_SIZE - 1) / PAGE_SIZE).unwrap();
    let (_, html) = app.page(&format!("/uploads?page={}", last - 1)).await;
    assert!(html.contains("More than "), "{html}");
    assert!(older(&html), "the last page is still to come");

    // The last page has the whole count.
    let (_, html) = app.page(&format!("/uploads?page={last}")).await;
    assert!(
        html.contains(&format!("{stored} uploads. Page {last} of {last}.")),
        "{html}"
    );
    assert!(!older(&html));
}
both_backends!(a_long_history_is_counted_only_as_far_as_the_page_needs);

async fn file_names_with_markup_are_escaped_on_every_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let id = upload_done(&app, MARKUP_NAME, &pdf(2048, 3)).await;
    for path in [
        "/uploads".to_string(),
        format!("/uploads/{id}"),
        format!("/uploads/{id}/progress"),
        format!("/uploads/{id}/progress?view=status"),
    ] {
        let (status, html) = app.page(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("<script>alert(1)"), "raw markup on {path}");
        assert!(!html.contains(r#""><script"#), "raw markup on {path}");
        assert!(
            html.contains(MARKUP_ESCAPED),
            "escaped name on {path}: {html}"
        );
    }
}
both_backends!(file_names_with_markup_are_escaped_on_every_page);

async fn the_progress_fragment_shows_the_offset_and_stops_polling_when_complete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let data = pdf(300 * 1024, 4);
    let tus = Tus::with_session(&app).await;
    let id = tus
        .create_ok("half-done.pdf", data.len() as u64, None)
        .await;
    tus.send_from(&id, &data[..100 * 1024], 0, 50 * 1024).await;

    let row = format!("/uploads/{id}/progress");
    let status = format!("/uploads/{id}/progress?view=status");
    let (code, html) = app.page(&row).await;
    assert_eq!(code, 200);
    assert!(
        html.starts_with(&format!(
            r#"<tr id="upload-{id}" hx-get="{row}" hx-trigger="every 2s" hx-swap="outerHTML">"#
        )),
        "{html}"
    );
    assert!(
        html.contains(r#"data-offset="102400""#)
            && html.contains("<progress max=\"100\" value=\"33\"")
    );
    assert!(html.contains("100 KiB of 300 KiB"));
    let (_, html) = app.page(&status).await;
    assert!(
        html.contains(&format!(r#"hx-get="{status}" hx-trigger="every 2s""#)),
        "{html}"
    );
    let (_, html) = app.page("/uploads").await;
    assert!(
        html.contains(&format!(r#"hx-get="{row}" hx-trigger="every 2s""#)),
        "the history row polls"
    );

    // Nothing for minutes: the row rests instead of keeping the session busy.
    app.clock.advance(std::time::Duration::from_secs(180));
    let (_, html) = app.page(&row).await;
    assert!(
        !html.contains("hx-trigger") && html.contains("Paused"),
        "{html}"
    );

    tus.send_from(&id, &data, 100 * 1024, 100 * 1024).await;
    assert_eq!(settled_status(&app, &id, 30).await, "completed");
    for path in [&row, &status] {
        let (_, html) = app.page(path).await;
        assert!(
            !html.contains("hx-trigger") && !html.contains("hx-get"),
            "{path}: {html}"
        );
        assert!(
            html.contains("Completed") && !html.contains("<progress"),
            "{path}"
        );
        assert!(
            html.contains(&format!(r#"href="/files/{id}/download""#)),
            "{path}"
        );
    }
}
both_backends!(the_progress_fragment_shows_the_offset_and_stops_polling_when_complete);

async fn the_page_form_uploads_without_javascript(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, html) = app.page("/uploads/new").await;
    // Submit exactly what the page's form says: its action, its fields, in page order.
    let action = regex::Regex::new(r#"<form id="upload-form"[^>]* action="([^"]+)""#)
        .unwrap()
        .captures(&html)
        .map(|c| c[1].replace("&amp;", "&"))
        .expect("the upload form");
    let bucket = regex::Regex::new(r#"<option value="([^"]+)" selected>"#)
        .unwrap()
        .captures(&html)
        .map(|c| c[1].to_string())
        .expect("a preselected bucket");
    let data = pdf(20 * 1024, 11);
    let form = reqwest::multipart::Form::new().text("bucket", bucket).part(
        "file",
        reqwest::multipart::Part::bytes(data.clone())
            .file_name("referral.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url(&action))
        .header("Accept", "text/html")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let to = location(&res);
    let id = to
        .strip_prefix("/uploads/")
        .expect("the upload's page")
        .to_string();
    assert_eq!(settled_status(&app, &id, 30).await, "completed");
    let (status, html) = app.page(&to).await;
    assert_eq!(status, 200);
    assert!(html.contains("referral.pdf") && html.contains(&sha256_hex(&data)));
}
both_backends!(the_page_form_uploads_without_javascript);
