//! Webhooks: signed deliveries a real receiver verifies, retried after 500s, never following
//! a redirect, a timeout counted as a failure, the endpoint address rules at creation and
//! again at delivery, only admins at the pages, and an upload that never waits for any of
//! it.

use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::notifications::{Answer, Receiver, secret_on, spawn_notifying};
use crate::helpers::{Backend, Stopped, TestApp, wait_until};
use crate::tus_support::{Tus, pdf, sha256_hex};

const SYSTEM: &str = medport::app::buckets::SYSTEM_BUCKET_ID;
const ALL: [&str; 4] = [
    "upload.completed",
    "batch.completed",
    "request.received",
    "upload.quarantined",
];

async fn spawn(backend: Backend, loopback: bool) -> TestApp {
    spawn_notifying(backend, move |s| s.allow_loopback_endpoints = loopback).await
}

/// A server on the data `stopped` left, with loopback targets allowed or not.
async fn restart(stopped: &Stopped, loopback: bool) -> TestApp {
    let reuse = stopped.reuse();
    spawn_notifying(Backend::Sqlite, move |s| {
        reuse(s);
        s.allow_loopback_endpoints = loopback;
    })
    .await
}

/// An admin adds a webhook to the system bucket for `url`; the secret shown once.
async fn add_hook(app: &TestApp, url: &str, events: &[&str]) -> String {
    let res = app.add_webhook(SYSTEM, url, events).await;
    assert_eq!(res.status(), 200);
    secret_on(&res.text().await.unwrap())
}

/// An uploader's script sends one small PDF to the default bucket; its id and bytes.
async fn upload(app: &TestApp, seed: u8) -> (String, Vec<u8>) {
    let user = app.create_user(
        &format!("sender-{}@example.org", uuid::Uuid::now_v7().simple()),
        "uploader",
        "a long enough test password",
    );
    let key = app.create_api_key(&user, "upload,read");
    let data = pdf(3000, seed);
    let id = Tus::with_key(app, &key)
        .upload("Patient Jane Doe scan.pdf", &data, None, data.len())
        .await;
    (id, data)
}

/// (state, attempts, last_status, last_error) of every delivery, oldest first.
fn deliveries(app: &TestApp) -> Vec<(String, i32, Option<i32>, Option<String>)> {
    use diesel::prelude::*;
    use medport::infra::db::schema::webhook_deliveries as d;
    let mut conn = app.db.conn().unwrap();
    d::table
        .order(d::created_at.asc())
        .select((d::state, d::attempts, d::last_status, d::last_error))
        .load(&mut *conn)
        .unwrap()
}

async fn wait_settled(
    app: &TestApp,
    n: usize,
    secs: u64,
) -> Vec<(String, i32, Option<i32>, Option<String>)> {
    let settled = |rows: &Vec<(String, i32, Option<i32>, Option<String>)>| {
        rows.len() >= n && rows.iter().all(|r| r.0 != "pending")
    };
    wait_until(secs, || deliveries(app), settled).await
}

async fn deliveries_are_signed_and_retried_after_500s_until_accepted(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    app.admin().await;
    let secret = add_hook(&app, &receiver.url, &ALL).await;
    receiver.trust(&secret);
    receiver.answer_next(&[Answer::Status(500), Answer::Status(500)]);

    let (id, data) = upload(&app, 1).await;
    let got = receiver.wait_for(3, 20).await;
    assert_eq!(got.len(), 3, "two 500s, then accepted: {got:?}");
    for post in &got {
        assert!(post.signed, "the signature checks out: {post:?}");
        assert_eq!(post.delivery, got[0].delivery, "one delivery, retried");
        assert_eq!(post.event, "upload.completed");
        assert_eq!(post.content_type, "application/json");
        assert!(
            post.user_agent.starts_with("medport-webhooks/"),
            "{}",
            post.user_agent
        );
    }
    let body = &got[0].body;
    assert_eq!(body["type"], "upload.completed");
    assert_eq!(body["id"], got[0].delivery.as_str());
    assert_eq!(body["data"]["upload_id"], id.as_str());
    assert_eq!(body["data"]["bucket_id"], SYSTEM);
    assert_eq!(body["data"]["size"], data.len());
    assert_eq!(body["data"]["sha256"], sha256_hex(&data).as_str());
    assert_eq!(body["data"]["status"], "completed");
    assert!(
        !got[0].raw.contains("Jane") && !got[0].raw.contains(".pdf"),
        "no file name: {}",
        got[0].raw
    );

    let rows = wait_settled(&app, 1, 10).await;
    assert_eq!(rows, vec![("delivered".into(), 3, Some(200), None)]);
    assert_eq!(
        app.audit_rows("webhook.delivered").len(),
        1,
        "the outcome, not each retry"
    );
    assert!(app.audit_rows("webhook.failed").is_empty());

    // The delivery log shows it; the page never shows the secret again.
    let html = app
        .get_html(&format!("/admin/buckets/{SYSTEM}/webhooks"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("delivered") && html.contains("upload.completed"),
        "{html}"
    );
    assert!(!html.contains(&secret));

    // A finished batch is announced too.
    let user = app.create_user(
        "batcher@example.org",
        "uploader",
        "a long enough test password",
    );
    let tus = Tus::with_key(&app, &app.create_api_key(&user, "upload,read"));
    let batch = tus.open_batch(None, 2).await;
    assert_eq!(tus.finish_batch(&batch, 0).await.status(), 200);
    let got = receiver.wait_for(4, 10).await;
    let finished = got.last().unwrap();
    assert!(finished.signed);
    assert_eq!(finished.body["type"], "batch.completed");
    assert_eq!(finished.body["data"]["batch_id"], batch.as_str());
}

async fn a_redirect_is_never_followed_and_is_retried_until_failed(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    receiver.answer_always(Answer::RedirectTo(format!(
        "http://127.0.0.1:{}/steal",
        elsewhere.port
    )));
    app.admin().await;
    add_hook(&app, &receiver.url, &["upload.completed"]).await;

    upload(&app, 2).await;
    let rows = wait_settled(&app, 1, 20).await;
    assert_eq!(rows.len(), 1);
    let (state, attempts, status, error) = &rows[0];
    assert_eq!(
        (state.as_str(), *attempts, *status),
        ("failed", 5, Some(307))
    );
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("never followed")),
        "{error:?}"
    );
    assert_eq!(
        receiver.received().len(),
        5,
        "each attempt reached the target"
    );
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was never followed"
    );
    // Five failed attempts, one audit event.
    let failed = app.audit_rows("webhook.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].details["attempts"], 5);
    assert!(app.audit_rows("webhook.delivered").is_empty());
}

async fn a_target_that_does_not_answer_in_time_counts_as_a_failure(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[Answer::Hang(Duration::from_secs(3))]);
    app.admin().await;
    add_hook(&app, &receiver.url, &["upload.completed"]).await;

    upload(&app, 3).await;
    // The first attempt is cut off after 1 s; the second is answered at once.
    let rows = wait_settled(&app, 1, 20).await;
    assert_eq!(rows[0].0, "delivered", "{rows:?}");
    assert_eq!(rows[0].1, 2, "the timed-out attempt counted: {rows:?}");
    assert_eq!(receiver.received().len(), 2);
}

async fn webhook_targets_follow_the_bucket_endpoint_address_rules(backend: Backend) {
    let app = spawn(backend, false).await;
    app.admin().await;
    let receiver = Receiver::start().await;
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/",
            "cloud metadata service",
        ),
        (
            "https://metadata.google.internal/computeMetadata/v1/",
            "cloud metadata service",
        ),
        (
            "https://[::ffff:169.254.169.254]/",
            "cloud metadata service",
        ),
        ("https://100.100.100.200/", "cloud metadata service"),
        ("https://169.254.1.1/", "link-local"),
        (receiver.url.as_str(), "this server itself"),
        (
            &format!("http://localhost:{}/", receiver.port),
            "this server itself",
        ),
        ("http://hooks.example.org/", "must use https"),
        (
            "https://user:pw@hooks.example.org/",
            "user name or password",
        ),
    ];
    for (url, why) in cases {
        let res = app.add_webhook(SYSTEM, url, &["upload.completed"]).await;
        assert_eq!(res.status(), 422, "{url}");
        let html = res.text().await.unwrap();
        assert!(html.contains(why), "{url}: {html}");
        assert!(html.contains("aria-invalid=\"true\""), "{url}");
    }
    // A name that resolves to this machine is refused by where it points.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = host.trim();
    let loops_back = tokio::net::lookup_host((host, 443))
        .await
        .is_ok_and(|mut a| a.all(|a| a.ip().is_loopback()));
    if loops_back {
        let res = app
            .add_webhook(
                SYSTEM,
                &format!("https://{host}/hook"),
                &["upload.completed"],
            )
            .await;
        assert_eq!(res.status(), 422, "{host}");
        assert!(res.text().await.unwrap().contains("this server itself"));
    }
    // No events chosen.
    let res = app
        .add_webhook(SYSTEM, "https://hooks.example.org/", &[])
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("choose at least one event")
    );
    assert!(deliveries(&app).is_empty());
    assert!(
        app.audit_rows("webhook.create").is_empty(),
        "nothing was created"
    );
    assert!(receiver.received().is_empty());
}

async fn a_target_refused_at_delivery_time_is_never_contacted(backend: Backend) {
    // Saved while this host was allowed, by name...
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    app.admin().await;
    add_hook(
        &app,
        &format!("http://localhost:{}/hook", receiver.port),
        &["upload.completed"],
    )
    .await;
    add_hook(&app, &receiver.url, &["upload.completed"]).await;
    let stopped = app.stop().await;

    // ...then the installation no longer allows it: the name resolves to a refused address
    // when the connection is made, and the literal address is refused before it.
    let app = restart(&stopped, false).await;
    upload(&app, 4).await;
    let rows = wait_settled(&app, 2, 20).await;
    assert_eq!(rows.len(), 2);
    for (state, _, status, error) in &rows {
        assert_eq!((state.as_str(), *status), ("failed", None), "{error:?}");
        let error = error.as_deref().unwrap_or_default();
        assert!(
            error.contains("forbidden address") || error.contains("refused address"),
            "{error}"
        );
    }
    assert!(receiver.received().is_empty(), "never contacted");
    let _ = backend;
}

async fn a_webhook_target_that_is_down_never_holds_up_an_upload(backend: Backend) {
    let app = spawn(backend, true).await;
    app.admin().await;
    let down = format!("http://{}/hook", crate::helpers::closed_port());
    add_hook(&app, &down, &ALL).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Hang(Duration::from_secs(5)));
    add_hook(&app, &receiver.url, &ALL).await;

    let started = Instant::now();
    let (id, _) = upload(&app, 5).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(crate::tus_support::status_of(&app, &id), "completed");
    let rows = wait_settled(&app, 2, 30).await;
    assert!(rows.iter().all(|r| r.0 == "failed"), "{rows:?}");
}

async fn only_admins_manage_webhooks_and_see_the_outbox(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    for role in ["uploader", "auditor"] {
        let (browser, _) = app.new_browser();
        let user = app.create_user(
            &format!("{role}-{}@example.org", uuid::Uuid::now_v7().simple()),
            role,
            "a long enough test password",
        );
        let email: String = {
            use diesel::prelude::*;
            use medport::infra::db::schema::users;
            let mut conn = app.db.conn().unwrap();
            users::table
                .find(&user)
                .select(users::email)
                .first(&mut *conn)
                .unwrap()
        };
        assert_eq!(
            app.login_with(&browser, &email, "a long enough test password")
                .await
                .status(),
            303
        );
        for path in [
            "/admin/notifications".to_string(),
            format!("/admin/buckets/{SYSTEM}/webhooks"),
        ] {
            let res = browser
                .get(app.url(&path))
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{role} GET {path}");
        }
        let res = app
            .post_form_with(
                &browser,
                &format!("/admin/buckets/{SYSTEM}/webhooks"),
                &[
                    ("url", receiver.url.as_str()),
                    ("events", "upload.completed"),
                ],
            )
            .await;
        assert_eq!(res.status(), 403, "{role} POST");
    }
    assert!(app.audit_rows("webhook.create").is_empty());
    let denied = app.audit_rows("access.denied").len();
    assert!(denied >= 6, "each refusal is audited: {denied}");
}

both_backends!(
    deliveries_are_signed_and_retried_after_500s_until_accepted,
    a_redirect_is_never_followed_and_is_retried_until_failed,
    a_target_that_does_not_answer_in_time_counts_as_a_failure,
    webhook_targets_follow_the_bucket_endpoint_address_rules,
    a_target_refused_at_delivery_time_is_never_contacted,
    a_webhook_target_that_is_down_never_holds_up_an_upload,
    only_admins_manage_webhooks_and_see_the_outbox,
);

async fn key_rotation_reseals_webhook_secrets_and_deliveries_stay_verifiable(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    app.admin().await;
    let secret = add_hook(&app, &receiver.url, &["upload.completed"]).await;
    receiver.trust(&secret);

    let (code, out) = crate::keys::rotate(&app);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 webhook secrets"), "{out}");
    let sealed: Vec<u8> = {
        use diesel::prelude::*;
        use medport::infra::db::schema::webhooks as w;
        let mut conn = app.db.conn().unwrap();
        w::table.select(w::secret_sealed).first(&mut *conn).unwrap()
    };
    let current = app.master_keyring();
    assert_eq!(
        medport::infra::crypto::secrets::sealed_key_id(&sealed).as_deref(),
        Some(current.current().id().as_str()),
        "sealed under the new key"
    );
    assert!(!String::from_utf8_lossy(&sealed).contains(&secret));

    // A server started on the rotated key signs with the same secret.
    let stopped = app.stop().await;
    let app = restart(&stopped, true).await;
    upload(&app, 6).await;
    let got = receiver.wait_for(1, 20).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].signed,
        "verified with the secret shown before the rotation"
    );
    let _ = backend;
}

both_backends!(key_rotation_reseals_webhook_secrets_and_deliveries_stay_verifiable);

async fn the_webhook_and_outbox_pages_only_read(backend: Backend) {
    let app = spawn(backend, true).await;
    let receiver = Receiver::start().await;
    app.admin().await;
    add_hook(&app, &receiver.url, &["upload.completed"]).await;
    let pages = [
        "/admin/notifications".to_string(),
        format!("/admin/buckets/{SYSTEM}/webhooks"),
    ];
    // The first views settle what a page view may write (the session's last-seen stamp).
    for path in &pages {
        assert_eq!(app.get_html(path).await.status(), 200, "{path}");
    }
    let mut watch = app.watch_writes();
    for _ in 0..10 {
        for path in &pages {
            assert_eq!(app.get_html(path).await.status(), 200, "{path}");
        }
    }
    assert_eq!(watch.written(), Vec::<String>::new());
}

both_backends!(the_webhook_and_outbox_pages_only_read);

async fn with_a_scanner_a_clean_file_is_completed_and_an_infected_one_quarantined(
    backend: Backend,
) {
    let app = spawn_notifying(backend, |s| {
        s.allow_loopback_endpoints = true;
        crate::scanning::with_clamd(s);
    })
    .await;
    let receiver = Receiver::start().await;
    app.admin().await;
    let secret = add_hook(&app, &receiver.url, &ALL).await;
    receiver.trust(&secret);

    let user = app.create_user(
        "scanned@example.org",
        "uploader",
        "a long enough test password",
    );
    let tus = Tus::with_key(&app, &app.create_api_key(&user, "upload,read"));
    let clean = crate::scanning::clean_text(2000);
    let clean_id = tus.upload("notes.txt", &clean, None, clean.len()).await;
    let infected = crate::scanning::infected_text();
    let infected_id = tus
        .upload("referral.txt", &infected, None, infected.len())
        .await;

    let got = receiver.wait_for(2, 30).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let of = |id: &str| {
        got.iter()
            .find(|r| r.body["data"]["upload_id"] == id)
            .unwrap_or_else(|| panic!("no delivery for {id}: {got:?}"))
    };
    let completed = of(&clean_id);
    assert!(completed.signed);
    assert_eq!(completed.body["type"], "upload.completed");
    assert_eq!(completed.body["data"]["scan"], "clean");
    assert_eq!(
        completed.body["data"]["sha256"],
        sha256_hex(&clean).as_str()
    );
    let quarantined = of(&infected_id);
    assert!(quarantined.signed);
    assert_eq!(quarantined.body["type"], "upload.quarantined");
    assert_eq!(quarantined.body["data"]["status"], "quarantined");
    assert_eq!(quarantined.body["data"]["scan"], "infected");
    // The signature name and the object's key stay in medport.
    assert!(!quarantined.raw.contains("Medport.Test") && !quarantined.raw.contains("quarantine/"));
}

both_backends!(with_a_scanner_a_clean_file_is_completed_and_an_infected_one_quarantined);
