//! Keys that are refused: expired, of a disabled owner, malformed or unknown (with a
//! bearer challenge), and other users' keys (not found).

use super::*;

async fn expired_key_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let (_, key) = create_key(&app, "short lived", &["read"], "1").await;
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    app.clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(api_get(&app, "/api/v1/me", &key).await.status(), 200);
    app.clock.advance(Duration::from_secs(3600 + 1));
    assert_refused(&app, &key).await;
}

async fn disabled_owners_keys_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.uploader().await;
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
    let refused = app.audit_actions_named("api_key.authenticate");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].2.contains("owner account disabled"),
        "{refused:?}"
    );
}

async fn malformed_and_unknown_keys_get_a_bearer_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
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
    let failures = app.audit_actions_named("api_key.authenticate");
    assert_eq!(failures.len(), 1, "only the known prefix is attributable");
    assert_eq!(failures[0].1, "failure");

    // A signed-in browser's cookie is not an API credential.
    let res = app.get("/api/v1/me").await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).starts_with("Bearer"));
}

async fn other_users_keys_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.uploader().await;
    let (_, key) = create_key(&app, "mine", &["read"], "").await;
    let id = key_id(&app, &key);

    assert_eq!(me.post_form("/logout", &[]).await.status(), 303);
    let someone_else = app.uploader().await; // in the same browser
    for action in ["revoke", "rotate"] {
        let res = someone_else
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
    assert!(app.audit_actions_named("api_key.revoke").is_empty());
    assert!(app.audit_actions_named("api_key.rotate").is_empty());
}

both_backends!(
    expired_key_is_refused,
    disabled_owners_keys_are_refused,
    malformed_and_unknown_keys_get_a_bearer_challenge,
    other_users_keys_are_not_found,
);
