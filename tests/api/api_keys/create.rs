//! Creating a key on the account page: shown once, working until revoked, the form shown
//! again with its messages, and never stored in the clear.

use super::*;

async fn key_is_shown_once_and_works_until_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.uploader().await;
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

    let created = app.audit_actions_named("api_key.create");
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
    let revoked = app.audit_actions_named("api_key.revoke");
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].2.contains(prefix_of(&key)));
    let refused = app.audit_actions_named("api_key.authenticate");
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

async fn invalid_form_is_shown_again_with_messages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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

async fn keys_are_never_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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

both_backends!(
    key_is_shown_once_and_works_until_revoked,
    invalid_form_is_shown_again_with_messages,
    keys_are_never_stored,
);
