//! Upload requests: an owner makes a link; a sender with no account opens it, sends files
//! and gets a receipt; the link opens nothing else, and stops at its expiry, when closed or
//! revoked, and when full. Every test runs on SQLite and on PostgreSQL.

mod notices;

use diesel::prelude::*;
use medport::infra::db::schema::{audit_events, upload_requests, users};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::requests::{MadeRequest, Sender, request_form};
use crate::helpers::{Backend, Options, TestApp, location};
use crate::tus_support::{pdf, settled_status, sha256_hex, sign_out, stored_sha256};

const SENDER: &[(&str, &str)] = &[
    ("name", "Dr <b>Who</b>"),
    ("email", "who@example.org"),
    ("patient_reference", "PATREF-7731"),
];

async fn owner_with_request(app: &TestApp, changes: &[(&'static str, &str)]) -> MadeRequest {
    app.uploader().await;
    let mut form = request_form();
    for (key, value) in changes {
        form.retain(|(k, _)| k != key);
        form.push((key, value.to_string()));
    }
    app.make_request(&form).await
}

/// The "not valid" page: its body, so tests can compare one refusal with another.
async fn invalid_page(app: &TestApp, path: &str) -> String {
    let (client, _) = app.new_browser();
    let res = client
        .get(app.url(path))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "{path}");
    let html = res.text().await.unwrap();
    assert!(html.contains("This link is not valid"), "{html}");
    // The CSRF token differs per browser; the rest must not.
    regex::Regex::new(r#"(content|value)="[A-Za-z0-9_-]{43}""#)
        .unwrap()
        .replace_all(&html, "")
        .into_owned()
}

async fn send_file(app: &TestApp, sender: &Sender, name: &str, data: &[u8]) -> String {
    let id = sender.tus(app).upload(name, data, None, 64 * 1024).await;
    assert_eq!(settled_status(app, &id, 20).await, "completed");
    id
}

async fn the_link_is_stored_only_as_its_hash_and_shown_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    assert_eq!(made.token.len(), 43);
    assert!(
        !app.database_contains(&made.token),
        "the token itself is stored"
    );
    let stored: String = upload_requests::table
        .find(&made.id)
        .select(upload_requests::token_hash)
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(stored, hex::encode(Sha256::digest(made.token.as_bytes())));
    // Its page and the list never show it again.
    for page in ["/requests".to_string(), format!("/requests/{}", made.id)] {
        let (status, html) = app.page(&page).await;
        assert_eq!(status, 200);
        assert!(!html.contains(&made.token), "{page} shows the token");
        assert!(html.contains("CD from St Mary"), "{page}");
    }
    let created = app.audit_rows("request.create");
    assert_eq!(created.len(), 1);
    assert!(!created[0].details.to_string().contains(&made.token));
}

async fn a_sender_sends_files_and_gets_a_receipt_that_proves_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    let (status, html) = {
        let (client, _) = app.new_browser();
        let res = client.get(app.url(&made.path)).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(html.contains("The whole CD, please."));

    let sender = app.sender(&made.path, SENDER).await;
    let first = pdf(150_000, 1);
    let second = pdf(2_000, 2);
    let a = send_file(&app, &sender, "report.pdf", &first).await;
    let b = send_file(&app, &sender, "letter.pdf", &second).await;

    let res = sender.post(&app, "/send/finish").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/send/receipt");
    let receipt = sender.get(&app, "/send/receipt").await;
    assert_eq!(receipt.status(), 200);
    let html = receipt.text().await.unwrap();
    for (id, data) in [(&a, &first), (&b, &second)] {
        let sha = sha256_hex(data);
        assert_eq!(stored_sha256(&app, id).as_deref(), Some(sha.as_str()));
        assert!(html.contains(&sha), "the receipt lists {sha}");
    }
    // The receipt's hash is the audit event that lists the files and their digests.
    let (hash, details): (String, String) = audit_events::table
        .filter(audit_events::action.eq("request.received"))
        .select((audit_events::hash, audit_events::details))
        .first(&mut *app.db.conn().unwrap())
        .unwrap();
    assert!(html.contains(&hash));
    assert!(details.contains(&sha256_hex(&first)) && details.contains(&sha256_hex(&second)));
    // Markup in the sender's name is shown as text.
    assert!(html.contains("Dr &lt;b&gt;Who&lt;/b&gt;") || html.contains("Dr &#60;b&#62;Who"));
    assert!(!html.contains("<b>Who</b>"));

    let text = sender.get(&app, "/send/receipt.txt").await;
    assert_eq!(text.status(), 200);
    assert!(
        text.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = text.text().await.unwrap();
    assert!(text.contains(&sha256_hex(&first)) && text.contains(&hash));

    // The owner sees the files: in the history, and on the request's page with the sender.
    let (_, history) = app.page("/uploads").await;
    assert!(history.contains("report.pdf") && history.contains("letter.pdf"));
    let (_, page) = app.page(&format!("/requests/{}", made.id)).await;
    assert!(page.contains("who@example.org") && page.contains(&sha256_hex(&second)));
    assert!(!page.contains("<b>Who</b>"));
    assert!(page.contains("PATREF-7731"));
    // The sender's details are sealed at rest: they may name a patient.
    assert!(!app.database_contains("PATREF-7731"));
    assert!(!app.database_contains("Dr <b>Who</b>"));
}

async fn a_sender_reaches_nothing_beyond_their_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    // The owner's own upload, which the sender must not reach by id.
    let owners = crate::tus_support::Tus::with_session(&app).await;
    let theirs = owners.upload("own.pdf", &pdf(1000, 9), None, 4096).await;

    let sender = app.sender(&made.path, SENDER).await;
    let mine = send_file(&app, &sender, "mine.pdf", &pdf(1000, 3)).await;
    let tus = sender.tus(&app);
    assert_eq!(tus.head(&mine).await.status(), 200);
    assert_eq!(tus.head(&theirs).await.status(), 404);
    assert_eq!(tus.delete(&theirs).await.status(), 404);
    // The signed-in routes do not take a sender's session.
    let signed_in = tus.clone().at("/tus/");
    assert_eq!(signed_in.head(&mine).await.status(), 401);
    assert_eq!(
        signed_in
            .create(10, &[("filename", "x.pdf")])
            .await
            .status(),
        401
    );
    for path in [
        "/uploads".to_string(),
        format!("/uploads/{mine}"),
        format!("/files/{mine}/download"),
        format!("/requests/{}", made.id),
        "/studies".to_string(),
        "/account".to_string(),
    ] {
        let res = sender.get(&app, &path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert!(location(&res).starts_with("/login"), "{path}");
    }
    let api = sender.get(&app, "/api/v1/uploads").await;
    assert_eq!(api.status(), 401);

    // After finishing: no more uploads, not even a look at its own.
    assert_eq!(sender.post(&app, "/send/finish").await.status(), 303);
    assert_eq!(tus.head(&mine).await.status(), 404);
    assert_eq!(
        tus.create(10, &[("filename", "late.pdf")]).await.status(),
        404
    );
    let page = sender.get(&app, "/send").await;
    assert_eq!(location(&page), "/send/receipt");
    // Another browser sees no receipt.
    invalid_page(&app, "/send/receipt").await;
    invalid_page(&app, "/send/receipt.txt").await;
}

async fn every_link_that_is_not_valid_gets_one_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let unknown = invalid_page(&app, &format!("/r/{}", "A".repeat(43))).await;
    assert_eq!(invalid_page(&app, "/r/not-a-token").await, unknown);

    let owner = app.uploader().await.user;
    let revoked = app.make_request(&request_form()).await;
    let sender = app.sender(&revoked.path, SENDER).await;
    let res = app
        .post_form_from(
            &format!("/requests/{}", revoked.id),
            &format!("/requests/{}/revoke", revoked.id),
            &[],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(invalid_page(&app, &revoked.path).await, unknown);
    // A sender already in is stopped at once.
    let res = sender.tus(&app).create(10, &[("filename", "a.pdf")]).await;
    assert_eq!(res.status(), 404);
    assert_eq!(app.audit_rows("request.revoke").len(), 1);

    let closed = app.make_request(&request_form()).await;
    app.post_form_from(
        &format!("/requests/{}", closed.id),
        &format!("/requests/{}/close", closed.id),
        &[],
    )
    .await;
    assert_eq!(invalid_page(&app, &closed.path).await, unknown);

    let expiring = app.make_request(&request_form()).await;
    app.clock
        .advance(std::time::Duration::from_secs(7 * 24 * 3600 + 60));
    assert_eq!(invalid_page(&app, &expiring.path).await, unknown);
    // The owner's own session has ended by now too.
    app.sign_in_existing(&owner.email, &owner.password, None)
        .await;
    // Extended, it opens again; a revoked one cannot be extended.
    for (made, opens) in [(&expiring, true), (&revoked, false)] {
        app.post_form_from(
            &format!("/requests/{}", made.id),
            &format!("/requests/{}/extend", made.id),
            &[("expires_days", "3")],
        )
        .await;
        let (client, _) = app.new_browser();
        let status = client
            .get(app.url(&made.path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status == 200, opens, "{}", made.path);
    }
    // An owner who can no longer sign in takes their links with them.
    diesel::update(users::table.filter(users::email.eq(&owner.email)))
        .set(users::disabled.eq(true))
        .execute(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(invalid_page(&app, &expiring.path).await, unknown);
}

async fn a_wrong_passphrase_is_throttled_per_link_and_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[("passphrase", "blue heron 42")]).await;
    let mut fields = SENDER.to_vec();
    fields.push(("passphrase", "not the one"));
    for _ in 0..5 {
        let (_, res) = app.open_link(&made.path, &fields).await;
        assert_eq!(res.status(), 422);
        assert!(
            res.text()
                .await
                .unwrap()
                .contains("passphrase is not right")
        );
    }
    let failures = app.audit_rows("request.passphrase").len();
    assert_eq!(failures, 5);
    assert_eq!(app.audit_rows("request.throttled").len(), 1);
    // Now even the right one waits, and guessing writes nothing more.
    let mut right = SENDER.to_vec();
    right.push(("passphrase", "blue heron 42"));
    let bytes = app.audit_bytes();
    for _ in 0..20 {
        let (_, res) = app.open_link(&made.path, &fields).await;
        assert_eq!(res.status(), 429);
    }
    let (_, res) = app.open_link(&made.path, &right).await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("Please wait"));
    assert_eq!(
        app.audit_bytes(),
        bytes,
        "throttled guesses are not recorded"
    );
    // The same address is throttled at another link too.
    let other = app
        .make_request(&{
            let mut f = request_form();
            f.push(("passphrase", "green heron 7".into()));
            f
        })
        .await;
    let mut other_fields = SENDER.to_vec();
    other_fields.push(("passphrase", "green heron 7"));
    let (_, res) = app.open_link(&other.path, &other_fields).await;
    assert_eq!(res.status(), 429);
    // It passes with time: a delay, never a lockout.
    app.clock.advance(std::time::Duration::from_secs(16));
    app.sender(&made.path, &right).await;
}

async fn a_full_request_refuses_more_with_a_clear_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[("max_files", "2"), ("max_megabytes", "1")]).await;
    let sender = app.sender(&made.path, SENDER).await;
    let tus = sender.tus(&app);
    // Too many bytes for what is left.
    let res = tus.create(1_000_001, &[("filename", "big.pdf")]).await;
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("This request can take"));
    // A folder that cannot fit is refused before its files.
    let res = tus
        .declare_batch_raw(r#"{"files": 3, "bytes": 3000}"#)
        .await;
    assert_eq!(res.status(), 413);
    send_file(&app, &sender, "one.pdf", &pdf(1000, 1)).await;
    send_file(&app, &sender, "two.pdf", &pdf(1000, 2)).await;
    let res = tus.create(1000, &[("filename", "three.pdf")]).await;
    assert_eq!(res.status(), 413);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("all the files it can take")
    );
    let rejected = app.audit_rows("upload.reject");
    assert!(
        rejected
            .iter()
            .any(|r| r.details["reason"] == "request file limit")
    );
    // A new sender sees it is full.
    let (client, _) = app.new_browser();
    let res = client.get(app.url(&made.path)).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("This request is full"));
}

async fn a_senders_folder_is_a_batch_of_the_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    let sender = app.sender(&made.path, SENDER).await;
    let tus = sender.tus(&app);
    let batch = tus.open_batch(None, 2).await;
    for (i, name) in ["CD/A.pdf", "CD/B.pdf"].into_iter().enumerate() {
        let (status, _, body) = tus
            .send_in_batch(Some(&batch), name, &pdf(900, i as u8))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let res = tus
        .request(
            reqwest::Method::POST,
            &format!("/batches/send/{batch}/finish"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The owner's own batch ids mean nothing to the sender.
    let owners = crate::tus_support::Tus::with_session(&app).await;
    let theirs = owners.open_batch(None, 1).await;
    let res = tus
        .request(reqwest::Method::GET, &format!("/batches/send/{theirs}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Files of a sender's batch are sent through the request.
    let (_, page) = app.page(&format!("/requests/{}", made.id)).await;
    assert!(page.contains("CD/A.pdf") && page.contains("CD/B.pdf"));
}

async fn only_uploaders_and_admins_make_requests_and_owners_see_their_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    // Another uploader: not theirs, so not there.
    sign_out(&app).await;
    app.uploader().await;
    assert_eq!(app.page(&format!("/requests/{}", made.id)).await.0, 404);
    let res = app
        .post_form_from("/requests", &format!("/requests/{}/revoke", made.id), &[])
        .await;
    assert_eq!(res.status(), 404);
    assert!(!app.page("/requests").await.1.contains("CD from St Mary"));
    // An auditor can make none.
    sign_out(&app).await;
    app.auditor().await;
    assert_eq!(app.page("/requests/new").await.0, 403);
    let res = app
        .post_form_from("/uploads", "/requests", &[("title", "x")])
        .await;
    assert_eq!(res.status(), 403);
    // An admin sees every request.
    sign_out(&app).await;
    app.admin().await;
    let (status, html) = app.page("/requests").await;
    assert_eq!(status, 200);
    assert!(html.contains("CD from St Mary"));
    assert_eq!(app.page(&format!("/requests/{}", made.id)).await.0, 200);
}

async fn bad_request_forms_are_answered_field_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let res = app
        .post_form_from(
            "/requests/new",
            "/requests",
            &[
                ("title", ""),
                ("expires_days", "91"),
                ("max_files", "0"),
                ("max_megabytes", "x"),
                ("passphrase", "short"),
                ("bucket", "not-a-bucket"),
                ("required", "password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for message in [
        "Title is required",
        "from 1 to 90",
        "Most files must be",
        "Megabytes must be",
        "Passphrase must be 8 to 64",
        "choose a bucket",
        "cannot fill in",
    ] {
        assert!(html.contains(message), "{message}");
    }
    assert_eq!(
        upload_requests::table
            .count()
            .get_result::<i64>(&mut *app.db.conn().unwrap())
            .unwrap(),
        0
    );
    // A sender's form: required fields and a valid address.
    let made = app.make_request(&request_form()).await;
    let (_, res) = app
        .open_link(&made.path, &[("name", ""), ("email", "nope")])
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("Your name is required") && html.contains("not a valid e-mail"));
}

async fn starting_visits_is_rate_limited_like_sign_in(backend: Backend) {
    let app = TestApp::spawn_with(backend, Options::default_rate_limits()).await;
    let made = owner_with_request(&app, &[]).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (_, res) = app.open_link(&made.path, SENDER).await;
        statuses.push(res.status().as_u16());
    }
    // The owner's sign-in took one of the five.
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        4,
        "{statuses:?}"
    );
    assert!(statuses.ends_with(&[429, 429]), "{statuses:?}");
    // So a link cannot be used to fill the audit trail with visits.
    assert_eq!(app.audit_rows("request.open").len(), 4);
}

async fn a_sender_without_javascript_sends_through_the_plain_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[]).await;
    let sender = app.sender(&made.path, SENDER).await;
    let page = sender.get(&app, "/send").await.text().await.unwrap();
    let action = format!("/send/files?csrf_token={}", sender.csrf);
    assert!(page.contains(&action), "the page's form posts to {action}");
    let data = pdf(5000, 4);
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(data.clone()).file_name("scan.pdf"),
        )
    };
    let res = sender
        .client
        .post(app.url(&action))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/send");
    let html = sender.get(&app, "/send").await.text().await.unwrap();
    assert!(html.contains("scan.pdf\u{201d} was received"), "{html}");
    let (_, page) = app.page(&format!("/requests/{}", made.id)).await;
    assert!(page.contains(&sha256_hex(&data)));
    // Without the token, or from a browser that is no sender: refused.
    let res = sender
        .client
        .post(app.url("/send/files"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (stranger, _) = app.new_browser();
    let token = app.csrf_token_with(&stranger, &made.path).await;
    let res = stranger
        .post(app.url(&format!("/send/files?csrf_token={token}")))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn empty_folders_cannot_flood_the_owner_or_the_audit_trail(backend: Backend) {
    use medport::infra::db::schema::email_outbox;
    let app = TestApp::spawn(backend).await;
    let made = owner_with_request(&app, &[("max_files", "3")]).await;
    let sender = app.sender(&made.path, SENDER).await;
    let tus = sender.tus(&app);
    for _ in 0..3 {
        let batch = tus.open_batch(None, 1).await;
        assert_eq!(tus.finish_batch(&batch, 0).await.status(), 200);
    }
    // As many folders as the request takes files, then no more.
    let res = tus.declare_batch_raw(r#"{"files": 1, "bytes": 10}"#).await;
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("as many folders"));
    assert_eq!(app.audit_rows("batch.create").len(), 3);
    // A folder with nothing stored tells the owner nothing.
    let folder_notices: i64 = email_outbox::table
        .filter(email_outbox::kind.eq("request.folder"))
        .count()
        .get_result(&mut *app.db.conn().unwrap())
        .unwrap();
    assert_eq!(folder_notices, 0);
}

both_backends!(
    empty_folders_cannot_flood_the_owner_or_the_audit_trail,
    a_sender_without_javascript_sends_through_the_plain_form,
    starting_visits_is_rate_limited_like_sign_in,
    the_link_is_stored_only_as_its_hash_and_shown_once,
    a_sender_sends_files_and_gets_a_receipt_that_proves_them,
    a_sender_reaches_nothing_beyond_their_request,
    every_link_that_is_not_valid_gets_one_answer,
    a_wrong_passphrase_is_throttled_per_link_and_address,
    a_full_request_refuses_more_with_a_clear_message,
    a_senders_folder_is_a_batch_of_the_request,
    only_uploaders_and_admins_make_requests_and_owners_see_their_own,
    bad_request_forms_are_answered_field_by_field,
);
