//! What a key may do: its scopes, no CSRF token for bearer requests (cookies still need
//! one), and only its owner's uploads.

use super::*;

async fn missing_scope_is_forbidden_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.uploader().await;
    let (_, key) = create_key(&app, "upload only", &["upload"], "").await;
    for path in ["/api/v1/me", "/api/v1/uploads"] {
        let res = api_get(&app, path, &key).await;
        assert_eq!(res.status(), 403, "{path}");
    }
    let denied = app.audit_actions_named("access.denied");
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(denied[0].1, "denied");
    assert!(denied[0].2.contains("scope read") && denied[0].2.contains("/api/v1/me"));
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
    let me = app.uploader().await;
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
    let me = app.uploader().await;
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

both_backends!(
    missing_scope_is_forbidden_and_audited,
    bearer_requests_skip_the_csrf_token_but_cookies_do_not,
    uploads_listing_is_scoped_to_the_key_owner,
);
