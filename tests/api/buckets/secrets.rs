//! The S3 secret key is write-only and sealed: after a bucket is created through the form,
//! the secret appears nowhere in the database (tables, SQLite file and WAL), in no page and
//! in no server log line; a sealed value moved to another row does not open.

use std::time::Duration;

use diesel::prelude::*;
use medport::app::accounts::totp;
use medport::infra::crypto::secrets::{self, SealContext, SealError};
use medport::infra::db::schema::{audit_events, buckets};

use super::{create_through_form, new_s3_bucket, s3_env, s3_fields, sealed_secret, spawn_loopback};
use crate::both_backends;
use crate::helpers::{Backend, TestApp, extract_csrf, location};
use crate::tus_support::{Tus, pdf};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every text and binary column of `buckets` and `audit_events`, as bytes.
fn stored_values(app: &TestApp) -> Vec<Vec<u8>> {
    let mut conn = app.db.conn().unwrap();
    type BucketText = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<Vec<u8>>,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<BucketText> = buckets::table
        .select((
            buckets::id,
            buckets::display_name,
            buckets::bucket_name,
            buckets::region,
            buckets::endpoint,
            buckets::access_key_id,
            buckets::secret_key_sealed,
            buckets::encryption,
            buckets::kms_key_id,
            buckets::allowed_extensions,
            buckets::notes,
        ))
        .load(&mut *conn)
        .unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for r in rows {
        out.extend([r.0, r.1, r.2, r.7, r.10].map(String::into_bytes));
        out.extend(
            [r.3, r.4, r.5, r.8, r.9]
                .into_iter()
                .flatten()
                .map(String::into_bytes),
        );
        out.extend(r.6);
    }
    type EventText = (String, String, String, Option<String>, Option<String>);
    let events: Vec<EventText> = audit_events::table
        .select((
            audit_events::actor_label,
            audit_events::action,
            audit_events::details,
            audit_events::target_id,
            audit_events::request_id,
        ))
        .load(&mut *conn)
        .unwrap();
    for e in events {
        out.extend([e.0, e.1, e.2].map(String::into_bytes));
        out.extend([e.3, e.4].into_iter().flatten().map(String::into_bytes));
    }
    out
}

async fn the_secret_is_sealed_and_shown_nowhere(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = s3_env();
    let bucket = new_s3_bucket().await;
    let id = create_through_form(&app, &s3_fields("Imaging", &bucket, &env)).await;
    let secret = env.secret_key.as_bytes();

    // Sealed, bound to this row and field.
    let sealed = sealed_secret(&app, &id).unwrap();
    assert!(sealed.starts_with(b"MPS1"));
    let here = SealContext {
        table: "buckets",
        row_id: &id,
        field: "secret_key",
    };
    let opened = secrets::open(&app.master_keyring(), &here, &sealed).unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&opened).as_slice(),
        secret
    );

    let create = app.audit_rows("bucket.create");
    assert_eq!(create.len(), 1);
    assert_eq!(create[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(create[0].details["bucket_name"], bucket.as_str());

    // Pages: list, bucket page (and its checks), edit form.
    for path in [
        "/admin/buckets".to_string(),
        format!("/admin/buckets/{id}"),
        format!("/admin/buckets/{id}/edit"),
        format!("/admin/buckets/{id}/health"),
        format!("/admin/buckets/{id}/security"),
    ] {
        let (status, page) = app.page(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!contains(page.as_bytes(), secret), "secret on {path}");
    }
    let res = super::admin_post(&app, &format!("/admin/buckets/{id}/test"), &[]).await;
    assert!(!contains(&res.bytes().await.unwrap(), secret));

    for value in stored_values(&app) {
        assert!(!contains(&value, secret), "secret stored in clear");
    }
    if backend == Backend::Sqlite {
        let db = app.sqlite_path();
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        for file in [db, wal.into()] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(!contains(&bytes, secret), "secret in {}", file.display());
            }
        }
    }
}

async fn a_sealed_secret_moved_to_another_row_does_not_open(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = s3_env();
    let s3_bucket = new_s3_bucket().await;
    let first = create_through_form(&app, &s3_fields("First", &s3_bucket, &env)).await;
    let second = create_through_form(&app, &s3_fields("Second", &s3_bucket, &env)).await;
    let (a, b) = (
        sealed_secret(&app, &first).unwrap(),
        sealed_secret(&app, &second).unwrap(),
    );
    {
        let mut conn = app.db.conn().unwrap();
        for (id, value) in [(&first, &b), (&second, &a)] {
            diesel::update(buckets::table.find(id))
                .set(buckets::secret_key_sealed.eq(Some(value)))
                .execute(&mut *conn)
                .unwrap();
        }
    }
    let ctx = SealContext {
        table: "buckets",
        row_id: &first,
        field: "secret_key",
    };
    assert!(matches!(
        secrets::open(&app.master_keyring(), &ctx, &b),
        Err(SealError::Integrity)
    ));

    // The pages say so plainly, without internals, and nothing is sent with a wrong key.
    let (status, badge) = app.page(&format!("/admin/buckets/{first}/health")).await;
    assert_eq!(status, 200);
    assert!(
        badge.contains("unreachable") && badge.contains("integrity check"),
        "{badge}"
    );
    let res = super::admin_post(&app, &format!("/admin/buckets/{second}/test"), &[]).await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("failed its integrity check"), "{page}");
    assert!(!page.contains("MPS1") && !page.contains("SealError") && !page.contains("panic"));
    let tests = app.audit_rows("bucket.test");
    assert_eq!(tests.last().unwrap().outcome, "failure");

    // Entering the secret again repairs the bucket.
    let fields = s3_fields("First", &s3_bucket, &env);
    let res = super::admin_post(&app, &format!("/admin/buckets/{first}"), &fields).await;
    assert_eq!(res.status(), 303);
    let (_, badge) = app.page(&format!("/admin/buckets/{first}/health")).await;
    assert!(
        badge.contains("reachable") && !badge.contains("unreachable"),
        "{badge}"
    );
}

/// The S3 client is kept open from one upload to the next, but never past an edit of the
/// bucket: the next upload after a new secret key uses it, right or wrong. (A file sent
/// with its creation is answered 201 either way; `Upload-Offset` says whether storage took
/// its bytes.)
async fn the_next_upload_after_an_edit_uses_the_new_secret(backend: Backend) {
    let app = spawn_loopback(backend).await;
    app.sign_in_as("admin").await;
    let env = s3_env();
    let s3_bucket = new_s3_bucket().await;
    let right = s3_fields("Edited", &s3_bucket, &env);
    let id = create_through_form(&app, &right).await;
    let tus = Tus::with_session(&app).await;
    let data = pdf(64 * 1024, 7);
    let stored = |name: &'static str| {
        let (tus, id, data) = (tus.clone(), id.clone(), data.clone());
        async move {
            let res = tus
                .create_with_body(
                    data.len() as u64,
                    &[("filename", name), ("bucket", &id)],
                    Some(data),
                )
                .await;
            assert_eq!(res.status(), 201);
            res.headers()["upload-offset"].to_str().unwrap().to_string()
        }
    };
    let whole = data.len().to_string();
    assert_eq!(stored("first.pdf").await, whole);
    assert_eq!(stored("again.pdf").await, whole, "the kept client");

    let mut wrong = right.clone();
    for field in &mut wrong {
        if field.0 == "secret_key" {
            field.1 = "not-the-secret-key-at-all";
        }
    }
    let res = super::admin_post(&app, &format!("/admin/buckets/{id}"), &wrong).await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        stored("wrong.pdf").await,
        "0",
        "storage refused the new, wrong secret"
    );

    let res = super::admin_post(&app, &format!("/admin/buckets/{id}"), &right).await;
    assert_eq!(res.status(), 303);
    assert_eq!(stored("right-again.pdf").await, whole);
}

async fn the_secret_never_reaches_the_server_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "logged-admin@example.org";
    let password = "a long enough test password";
    let user = app.create_user(email, "admin", password);
    let (totp_secret, _) = app.enrol_totp(&user, email);
    let (mut child, base, log) =
        crate::helpers::serve_with_log(&app, &[("MEDPORT_ALLOW_LOOPBACK_ENDPOINTS", "true")]);
    let (browser, _) = app.new_browser();
    let get = |path: String| {
        let browser = browser.clone();
        async move {
            let res = browser
                .get(path)
                .header("Accept", "text/html")
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let post = |path: String, fields: Vec<(&'static str, String)>, token: String| {
        let browser = browser.clone();
        async move {
            let mut all = fields;
            all.push(("csrf_token", token));
            browser
                .post(path)
                .header("Accept", "text/html")
                .form(&all)
                .send()
                .await
                .unwrap()
        }
    };
    let (_, page) = get(format!("{base}/login")).await;
    let token = extract_csrf(&page).unwrap();
    let res = post(
        format!("{base}/login"),
        vec![("email", email.into()), ("password", password.into())],
        token,
    )
    .await;
    assert_eq!(location(&res), "/login/totp");
    let (_, page) = get(format!("{base}/login/totp")).await;
    let now = chrono::Utc::now().timestamp();
    let code = totp::code_for_step(&totp_secret, totp::step_at(now));
    let res = post(
        format!("{base}/login/totp"),
        vec![("code", code)],
        extract_csrf(&page).unwrap(),
    )
    .await;
    assert_eq!(res.status(), 303);

    let env = s3_env();
    let bucket = new_s3_bucket().await;
    let (_, page) = get(format!("{base}/admin/buckets/new")).await;
    let token = extract_csrf(&page).unwrap();
    let fields: Vec<(&'static str, String)> = s3_fields("Logged", &bucket, &env)
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    let res = post(format!("{base}/admin/buckets"), fields, token.clone()).await;
    assert_eq!(res.status(), 303);
    let id = location(&res).rsplit('/').next().unwrap().to_string();
    for path in ["", "/edit", "/health", "/security"] {
        assert_eq!(get(format!("{base}/admin/buckets/{id}{path}")).await.0, 200);
    }
    let res = post(format!("{base}/admin/buckets/{id}/test"), vec![], token).await;
    assert_eq!(res.status(), 200);

    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains(&id),
        "the log captured the bucket requests: {log}"
    );
    assert!(
        !log.contains(&env.secret_key),
        "the secret key reached the log"
    );
}

both_backends!(
    the_secret_is_sealed_and_shown_nowhere,
    a_sealed_secret_moved_to_another_row_does_not_open,
    the_secret_never_reaches_the_server_log,
    the_next_upload_after_an_edit_uses_the_new_secret,
);
