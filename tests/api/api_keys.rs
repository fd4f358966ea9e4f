//! API keys: created on the account page or the command line, shown once, stored only as a
//! hash, accepted only as `Authorization: Bearer`, limited by scope, revocable and
//! rotatable by their owner alone.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use diesel::prelude::*;
use medport::infra::db::schema::{api_keys, audit_events, buckets, sessions, uploads};
use medport::web::api_principal::ApiPrincipal;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp, api_get, location, medport};

const KEY_PATTERN: &str = r"mp_[a-z0-9]{8}_[A-Za-z0-9]{40}";

fn find_key(html: &str) -> Option<String> {
    regex::Regex::new(KEY_PATTERN)
        .unwrap()
        .find(html)
        .map(|m| m.as_str().to_string())
}

/// Creates a key on the account page (as the main browser's user); returns the page and key.
async fn create_key(app: &TestApp, name: &str, scopes: &[&str], expires: &str) -> (String, String) {
    let mut fields = vec![("name", name), ("expires_days", expires)];
    fields.extend(scopes.iter().map(|s| ("scopes", *s)));
    let res = app.post_form("/account/api-keys", &fields).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "the key page is never cached"
    );
    let html = res.text().await.unwrap();
    let key = find_key(&html).unwrap_or_else(|| panic!("no key on the result page: {html}"));
    (html, key)
}

fn prefix_of(key: &str) -> &str {
    &key[3..11]
}

pub(crate) fn key_id(app: &TestApp, key: &str) -> String {
    let mut conn = app.db.conn().unwrap();
    api_keys::table
        .filter(api_keys::prefix.eq(prefix_of(key)))
        .select(api_keys::id)
        .first(&mut *conn)
        .unwrap()
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub(crate) async fn assert_refused(app: &TestApp, key: &str) {
    let res = api_get(app, "/api/v1/me", key).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).starts_with("Bearer"), "{:?}", res.headers());
}

fn actions_named(app: &TestApp, name: &str) -> Vec<(String, String, String)> {
    app.audit_actions()
        .into_iter()
        .filter(|a| a.0 == name)
        .collect()
}

async fn key_is_shown_once_and_works_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("uploader").await;
    let (page, key) = create_key(&app, "ward scanner", &["upload", "read"], "30").await;
    assert!(page.contains("will not be shown again"), "{page}");
    assert_eq!(page.matches(&key).count(), 1, "the key appears once");

    let list = app
        .get_html("/account/api-keys")
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&key), "the list never shows the key again");
    assert!(find_key(&list).is_none());
    assert!(
        list.contains(&format!("mp_{}_…", prefix_of(&key))),
        "{list}"
    );
    assert!(list.contains("ward scanner") && list.contains("Active"));

    let res = api_get(&app, "/api/v1/me", &key).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"email": me.email, "role": "uploader", "scopes": ["upload", "read"]})
    );
    let used: Option<chrono::NaiveDateTime> = {
        let mut conn = app.db.conn().unwrap();
        api_keys::table
            .filter(api_keys::prefix.eq(prefix_of(&key)))
            .select(api_keys::last_used_at)
            .first(&mut *conn)
            .unwrap()
    };
    assert!(used.is_some(), "last use is recorded");

    let created = actions_named(&app, "api_key.create");
    assert_eq!(created.len(), 1);
    assert!(created[0].2.contains(prefix_of(&key)), "{created:?}");
    let calls_before = app.audit_actions().len();
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    assert_eq!(
        app.audit_actions().len(),
        calls_before,
        "successful API calls are not audited one by one"
    );

    let id = key_id(&app, &key);
    let res = app
        .post_form(&format!("/account/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/api-keys");
    assert_refused(&app, &key).await;
    let revoked = actions_named(&app, "api_key.revoke");
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].2.contains(prefix_of(&key)));
    let refused = actions_named(&app, "api_key.authenticate");
    assert_eq!(refused.len(), 1, "use of a revoked key is recorded");
    assert!(refused[0].2.contains("key revoked"), "{refused:?}");
    let list = app
        .get_html("/account/api-keys")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("Revoked") && list.contains("is revoked"),
        "{list}"
    );
}

async fn expired_key_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "short lived", &["read"], "1").await;
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    app.clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    app.clock.advance(Duration::from_secs(3600 + 1));
    assert_refused(&app, &key).await;
}

async fn disabled_owners_keys_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "script", &["read"], "").await;
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(medport::infra::db::schema::users::table.find(&me.id))
            .set(medport::infra::db::schema::users::disabled.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    assert_refused(&app, &key).await;
    let refused = actions_named(&app, "api_key.authenticate");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].2.contains("owner account disabled"),
        "{refused:?}"
    );
}

async fn missing_scope_is_forbidden_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "upload only", &["upload"], "").await;
    for path in ["/api/v1/me", "/api/v1/uploads"] {
        let res = api_get(&app, path, &key).await;
        assert_eq!(res.status(), 403, "{path}");
    }
    let denied = actions_named(&app, "access.denied");
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(denied[0].1, "denied");
    assert!(denied[0].2.contains("scope read") && denied[0].2.contains("/api/v1/me"));
}

async fn malformed_and_unknown_keys_get_a_bearer_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "real", &["read"], "").await;
    let (client, _) = app.new_browser();

    let res = client.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), 401, "no header");
    assert!(challenge(&res).starts_with("Bearer"));

    let unknown = medport::domain::api_key::ApiKeySecret::generate().unwrap();
    let wrong_secret = format!("{}{}", &key[..12], &unknown.expose()[12..]);
    for bad in [
        "Bearer",
        "Bearer ",
        "Bearer not-a-key",
        &format!("Bearer {key}x"),
        &format!("Bearer {}", key.to_uppercase()),
        &format!("Basic {key}"),
        &format!("Bearer {}", unknown.expose()),
        &format!("Bearer {wrong_secret}"),
    ] {
        let res = client
            .get(app.url("/api/v1/me"))
            .header("Authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{bad}");
        assert!(challenge(&res).starts_with("Bearer"), "{bad}");
    }
    let failures = actions_named(&app, "api_key.authenticate");
    assert_eq!(failures.len(), 1, "only the known prefix is attributable");
    assert_eq!(failures[0].1, "failure");

    // A signed-in browser's cookie is not an API credential.
    let res = app.get("/api/v1/me").await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).starts_with("Bearer"));
}

async fn rotation_replaces_the_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, old) = create_key(&app, "nightly", &["read", "upload"], "10").await;
    let id = key_id(&app, &old);
    let res = app
        .post_form(&format!("/account/api-keys/{id}/rotate"), &[])
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    let new = find_key(&page).unwrap();
    assert_ne!(new, old);
    assert!(page.contains("will not be shown again"));
    assert_refused(&app, &old).await;
    let body: Value = api_get(&app, "/api/v1/me", &new)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scopes"], serde_json::json!(["upload", "read"]));

    let mut conn = app.db.conn().unwrap();
    type Row = (
        String,
        String,
        Option<chrono::NaiveDateTime>,
        chrono::NaiveDateTime,
    );
    let new_row: Row = api_keys::table
        .filter(api_keys::prefix.eq(prefix_of(&new)))
        .select((
            api_keys::name,
            api_keys::scopes,
            api_keys::expires_at,
            api_keys::created_at,
        ))
        .first(&mut *conn)
        .unwrap();
    drop(conn);
    assert_eq!(new_row.0, "nightly");
    assert_eq!(new_row.1, "read,upload");
    assert_eq!(
        new_row.2.unwrap() - new_row.3,
        chrono::TimeDelta::days(10),
        "same lifetime, counted from the rotation"
    );
    let rotated = actions_named(&app, "api_key.rotate");
    assert_eq!(rotated.len(), 1);
    assert!(rotated[0].2.contains(prefix_of(&old)) && rotated[0].2.contains(prefix_of(&new)));

    // A revoked key cannot be rotated back to life.
    let res = app
        .post_form(&format!("/account/api-keys/{id}/rotate"), &[])
        .await;
    assert_eq!(res.status(), 303);
    assert_refused(&app, &old).await;
}

async fn other_users_keys_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "mine", &["read"], "").await;
    let id = key_id(&app, &key);

    assert_eq!(app.post_form("/logout", &[]).await.status(), 303);
    app.sign_in_as("uploader").await; // someone else, in the same browser
    for action in ["revoke", "rotate"] {
        let res = app
            .post_form(&format!("/account/api-keys/{id}/{action}"), &[])
            .await;
        assert_eq!(res.status(), 404, "{action}");
    }
    let list = app
        .get_html("/account/api-keys")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !list.contains(prefix_of(&key)),
        "other users' keys are not listed"
    );
    let res = app
        .post_form("/account/api-keys/not-an-id/revoke", &[])
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    assert!(actions_named(&app, "api_key.revoke").is_empty());
    assert!(actions_named(&app, "api_key.rotate").is_empty());
}

async fn invalid_form_is_shown_again_with_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let res = app
        .post_form(
            "/account/api-keys",
            &[("name", "  "), ("expires_days", "400"), ("scopes", "admin")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    for msg in [
        "Name is required",
        "Expiry must be a whole number of days from 1 to 365",
        "unknown scope &#34;admin&#34;",
    ] {
        assert!(html.contains(msg), "{msg}: {html}");
    }
    let res = app
        .post_form("/account/api-keys", &[("name", "no scopes")])
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("at least one scope"));
    let mut conn = app.db.conn().unwrap();
    let count: i64 = api_keys::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(count, 0);
}

/// Every text value in the tables a key could leak into.
fn stored_text(app: &TestApp) -> Vec<String> {
    let mut conn = app.db.conn().unwrap();
    let mut all = Vec::new();
    let keys: Vec<(String, String, String, String, String, String)> = api_keys::table
        .select((
            api_keys::id,
            api_keys::user_id,
            api_keys::name,
            api_keys::prefix,
            api_keys::key_hash,
            api_keys::scopes,
        ))
        .load(&mut *conn)
        .unwrap();
    for k in keys {
        all.extend([k.0, k.1, k.2, k.3, k.4, k.5]);
    }
    type AuditText = (
        Option<String>,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        String,
        String,
    );
    let events: Vec<AuditText> = audit_events::table
        .select((
            audit_events::actor_user_id,
            audit_events::actor_label,
            audit_events::action,
            audit_events::outcome,
            audit_events::target_type,
            audit_events::target_id,
            audit_events::ip,
            audit_events::request_id,
            audit_events::details,
            audit_events::prev_hash,
            audit_events::hash,
        ))
        .load(&mut *conn)
        .unwrap();
    for e in events {
        all.extend([e.0, e.4, e.5, e.6, e.7].into_iter().flatten());
        all.extend([e.1, e.2, e.3, e.8, e.9, e.10]);
    }
    let states: Vec<String> = sessions::table
        .select(sessions::state)
        .load(&mut *conn)
        .unwrap();
    all.extend(states);
    all
}

/// The secret part of a key (everything after the public prefix).
fn secret_part(key: &str) -> &str {
    &key[12..]
}

async fn keys_are_never_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.sign_in_as("uploader").await;
    let (_, first) = create_key(&app, "first", &["read"], "5").await;
    assert_eq!(api_get(&app, "/api/v1/me", &first).await.status(), 200);
    let id = key_id(&app, &first);
    let page = app
        .post_form(&format!("/account/api-keys/{id}/rotate"), &[])
        .await
        .text()
        .await
        .unwrap();
    let second = find_key(&page).unwrap();
    assert_refused(&app, &first).await;
    assert_eq!(api_get(&app, "/api/v1/me", &second).await.status(), 200);

    let text = stored_text(&app);
    assert!(text.len() > 10);
    for key in [&first, &second] {
        let hash = medport::domain::api_key::ApiKeySecret::parse(key)
            .unwrap()
            .sha256_hex();
        assert!(text.contains(&hash), "the hash is what is stored");
        for value in &text {
            assert!(
                !value.contains(secret_part(key)),
                "key found in the database: {value}"
            );
        }
    }
    if backend == Backend::Sqlite {
        let path = app.sqlite_path();
        let mut files = vec![std::fs::read(&path).unwrap()];
        files.push(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(files.iter().map(Vec::len).sum::<usize>() > 0);
        for key in [&first, &second] {
            let needle = secret_part(key).as_bytes();
            for bytes in &files {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "key bytes found in the SQLite files"
                );
            }
        }
    }
}

async fn echo(principal: ApiPrincipal) -> HttpResponse {
    HttpResponse::Ok().body(principal.email)
}

fn test_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/test-echo", web::post().to(echo));
}

async fn bearer_requests_skip_the_csrf_token_but_cookies_do_not(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            hook: test_routes,
            ..Options::default()
        },
    )
    .await;
    let me = app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "poster", &["upload"], "").await;

    let (script, _) = app.new_browser();
    let res = script
        .post(app.url("/api/v1/test-echo"))
        .header("Authorization", format!("Bearer {key}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "no CSRF token needed with a bearer key");
    assert_eq!(res.text().await.unwrap(), me.email);

    // The signed-in browser without a token: refused by the CSRF check, nothing created.
    let res = app
        .client
        .post(app.url("/account/api-keys"))
        .form(&[("name", "sneaky"), ("scopes", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url("/api/v1/test-echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "cookie-only POST without a token");
    let mut conn = app.db.conn().unwrap();
    let count: i64 = api_keys::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(count, 1);
}

async fn uploads_listing_is_scoped_to_the_key_owner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = app.create_user("other@example.org", "uploader", "another long password");
    let me = app.sign_in_as("uploader").await;
    let (_, key) = create_key(&app, "reader", &["read"], "").await;
    let body: Value = api_get(&app, "/api/v1/uploads", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"uploads": []}));

    let now = chrono::Utc::now().naive_utc();
    let bucket = uuid::Uuid::now_v7().to_string();
    let mut conn = app.db.conn().unwrap();
    diesel::insert_into(buckets::table)
        .values((
            buckets::id.eq(&bucket),
            buckets::display_name.eq("Default"),
            buckets::bucket_name.eq("default"),
            buckets::backend.eq("local"),
            buckets::created_at.eq(now),
            buckets::updated_at.eq(now),
        ))
        .execute(&mut *conn)
        .unwrap();
    for (owner, name) in [(&me.id, "scan-1.pdf"), (&other, "theirs.pdf")] {
        diesel::insert_into(uploads::table)
            .values((
                uploads::id.eq(uuid::Uuid::now_v7().to_string()),
                uploads::user_id.eq(owner),
                uploads::bucket_id.eq(&bucket),
                uploads::filename.eq(name),
                uploads::extension.eq("pdf"),
                uploads::declared_size.eq(1234_i64),
                uploads::part_size.eq(5_242_880_i64),
                uploads::object_key.eq(uuid::Uuid::now_v7().to_string()),
                uploads::status.eq("completed"),
                uploads::expires_at.eq(now),
                uploads::created_at.eq(now),
                uploads::updated_at.eq(now),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    drop(conn);
    let body: Value = api_get(&app, "/api/v1/uploads", &key)
        .await
        .json()
        .await
        .unwrap();
    let list = body["uploads"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["filename"], "scan-1.pdf");
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["declared_size"], 1234);
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));
}

async fn cli_creates_a_working_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user(
        "robot@example.org",
        "uploader",
        "a long enough test password",
    );
    let out = medport(
        &app,
        &[
            "apikey",
            "create",
            "--email",
            "Robot@Example.org",
            "--scope",
            "upload,read",
            "--name",
            "lab importer",
            "--expires-days",
            "30",
        ],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = stdout.trim_end_matches('\n');
    assert!(
        regex::Regex::new(&format!("^{KEY_PATTERN}$"))
            .unwrap()
            .is_match(key),
        "stdout is the key and nothing else: {stdout:?}"
    );
    let body: Value = api_get(&app, "/api/v1/me", key).await.json().await.unwrap();
    assert_eq!(body["email"], "robot@example.org");
    assert_eq!(body["scopes"], serde_json::json!(["upload", "read"]));
    let created = actions_named(&app, "api_key.create");
    assert_eq!(created.len(), 1);
    assert!(created[0].2.contains("command line") && created[0].2.contains(prefix_of(key)));
    let mut conn = app.db.conn().unwrap();
    let actor: String = audit_events::table
        .filter(audit_events::action.eq("api_key.create"))
        .select(audit_events::actor_label)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(actor, "system");
    drop(conn);

    for bad in [
        vec!["--email", "robot@example.org", "--scope", "admin"],
        vec!["--email", "nobody@example.org", "--scope", "read"],
        vec![
            "--email",
            "robot@example.org",
            "--scope",
            "read",
            "--expires-days",
            "0",
        ],
    ] {
        let mut args = vec!["apikey", "create"];
        args.extend(bad.iter());
        let out = medport(&app, &args);
        assert!(!out.status.success(), "{bad:?}");
        assert!(out.stdout.is_empty(), "{bad:?}");
    }
}

async fn keys_never_reach_the_server_log(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let email = "logged@example.org";
    let password = "a long enough test password";
    app.create_user(email, "uploader", password);
    let (mut child, base, log) = crate::helpers::serve_with_log(&app, &[]);

    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .unwrap();
    let token = |html: &str| crate::helpers::extract_csrf(html).unwrap();
    let html = browser
        .get(format!("{base}/login"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = browser
        .post(format!("{base}/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token(&html)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let list = browser
        .get(format!("{base}/account/api-keys"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = token(&list);
    let page = browser
        .post(format!("{base}/account/api-keys"))
        .form(&[
            ("name", "logged"),
            ("scopes", "upload"),
            ("expires_days", ""),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = find_key(&page).unwrap();
    let script = reqwest::Client::new();
    let wrong = format!("{}{}", &key[..12], "A".repeat(40));
    for (credential, expected) in [(&key, 403), (&wrong, 401)] {
        let res = script
            .get(format!("{base}/api/v1/me"))
            .header("Authorization", format!("Bearer {credential}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected);
    }
    let id = key_id(&app, &key);
    let res = browser
        .post(format!("{base}/account/api-keys/{id}/revoke"))
        .form(&[("csrf_token", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = script
        .get(format!("{base}/api/v1/uploads"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("request refused"),
        "the log captured request handling: {log}"
    );
    assert!(
        !log.contains(secret_part(&key)),
        "the key reached the log: {log}"
    );
}

both_backends!(
    key_is_shown_once_and_works_until_revoked,
    expired_key_is_refused,
    disabled_owners_keys_are_refused,
    missing_scope_is_forbidden_and_audited,
    malformed_and_unknown_keys_get_a_bearer_challenge,
    rotation_replaces_the_key,
    other_users_keys_are_not_found,
    invalid_form_is_shown_again_with_messages,
    keys_are_never_stored,
    bearer_requests_skip_the_csrf_token_but_cookies_do_not,
    uploads_listing_is_scoped_to_the_key_owner,
    cli_creates_a_working_key,
    keys_never_reach_the_server_log,
);
