//! Who reaches the user pages: unknown and foreign ids are not found, other roles are
//! refused on every route, and no page shows a secret.

use super::*;

async fn unknown_malformed_and_foreign_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    let real = app.create_user("clin@example.org", "uploader", PW);
    // The id of a row in another table is not a user.
    let key_id = uuid::Uuid::now_v7().to_string();
    {
        let mut conn = app.db.conn().unwrap();
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(&key_id),
                api_keys::user_id.eq(&real),
                api_keys::name.eq("script"),
                api_keys::prefix.eq("abcd1234"),
                api_keys::key_hash.eq("0".repeat(64)),
                api_keys::scopes.eq("upload"),
                api_keys::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let simple = real.replace('-', "");
    let ids = [
        unknown.as_str(),
        key_id.as_str(),
        "not-a-uuid",
        simple.as_str(),
        "%7B00000000-0000-0000-0000-000000000000%7D",
        "..%2F..%2Fetc",
    ];
    for id in ids {
        let res = app.get_html(&format!("/admin/users/{id}")).await;
        assert_eq!(res.status(), 404, "GET {id}");
        for action in [
            "role",
            "disable",
            "enable",
            "reset-password",
            "revoke-sessions",
            "reset-totp",
        ] {
            let res = admin_post(
                &app,
                &format!("/admin/users/{id}/{action}"),
                &[("role", "auditor"), ("password", ONE_TIME)],
            )
            .await;
            assert_eq!(res.status(), 404, "POST {action} {id}");
        }
    }
    assert_eq!(
        app.get_html(&format!("/admin/users/{real}")).await.status(),
        200
    );
    let changed = app
        .audit_actions()
        .into_iter()
        .filter(|a| a.0.starts_with("user.") || a.0 == "session.revoke")
        .count();
    assert_eq!(changed, 0);
    assert_eq!(user_facts(&app, &real).role, "uploader");
}

async fn other_roles_are_refused_on_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let target = app.create_user("target@example.org", "uploader", PW);
    app.enrol_totp(&target, "target@example.org");
    let target_two_factor = two_factor_columns(&app, &target);
    let denied = || {
        app.audit_actions()
            .into_iter()
            .filter(|a| a.0 == "access.denied")
            .count()
    };
    let fields = [
        ("email", "made-by-wrong-role@example.org"),
        ("role", "admin"),
        ("password", ONE_TIME),
    ];
    assert!(ROUTES.len() >= 10, "{ROUTES:?}");
    assert!(
        ROUTES
            .iter()
            .any(|r| (r.method, r.path) == ("POST", "/admin/users/{id}/reset-totp")),
        "{ROUTES:?}"
    );

    for role in ["uploader", "auditor"] {
        let email = format!("{role}@example.org");
        let id = app.create_user(&email, role, PW);
        let browser = browser_signed_in(&app, &email, PW).await;
        let token = stored_csrf(&app, &id);
        for route in ROUTES {
            let path = route.path.replace("{id}", &target);
            let before = denied();
            let res = match route.method {
                "GET" => browser.get(app.url(&path)).send().await.unwrap(),
                _ => app.post_with_token(&browser, &path, &fields, &token).await,
            };
            assert_eq!(res.status(), 403, "{role} {} {path}", route.method);
            assert_eq!(
                denied(),
                before + 1,
                "{role} {} {path} audited",
                route.method
            );
        }
    }
    let row = user_facts(&app, &target);
    assert_eq!((row.role.as_str(), row.disabled), ("uploader", false));
    assert_eq!(two_factor_columns(&app, &target), target_two_factor);
    assert!(app.audit_rows("user.totp_reset").is_empty());
    assert_eq!(user_count(&app), 3, "no account was created");

    // The same requests from an administrator get past the role check.
    app.admin().await;
    let token = app.csrf_token_with(&app.client, "/admin/users/new").await;
    for route in ROUTES {
        let path = route.path.replace("{id}", &target);
        let res = match route.method {
            "GET" => app.get_html(&path).await,
            _ => {
                app.post_with_token(&app.client, &path, &fields, &token)
                    .await
            }
        };
        let status = res.status().as_u16();
        assert!(
            status != 403 && status < 500,
            "admin {} {path}: {status}",
            route.method
        );
    }
}

async fn pages_never_show_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, codes) = app.enrol_totp(&id, "clin@example.org");
    let hash = user_facts(&app, &id).password_hash;
    let key_hash = "f".repeat(64);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(uuid::Uuid::now_v7().to_string()),
                api_keys::user_id.eq(&id),
                api_keys::name.eq("script"),
                api_keys::prefix.eq("wxyz9876"),
                api_keys::key_hash.eq(&key_hash),
                api_keys::scopes.eq("upload"),
                api_keys::created_at.eq(chrono::Utc::now().naive_utc()),
            ))
            .execute(&mut *conn)
            .unwrap();
    }
    let stored_codes: String = {
        let mut conn = app.db.conn().unwrap();
        users::table
            .find(&id)
            .select(users::recovery_codes)
            .first::<Option<String>>(&mut *conn)
            .unwrap()
            .unwrap()
    };
    for path in [
        "/admin/users".to_string(),
        format!("/admin/users/{id}"),
        "/admin/users/new".to_string(),
    ] {
        let res = app.get_html(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        let html = body(res).await;
        assert_eq!(h1_count(&html), 1, "{path}");
        assert!(!html.contains(&hash), "{path} shows the password hash");
        assert!(!html.contains(&hash[7..]), "{path} shows the password hash");
        assert!(
            !html.contains(&secret.to_base32()),
            "{path} shows the TOTP seed"
        );
        assert!(!html.contains(&key_hash), "{path} shows an API key hash");
        assert!(!html.contains(&stored_codes), "{path} shows recovery codes");
        for code in &codes {
            assert!(
                !html.contains(code.as_str()),
                "{path} shows a recovery code"
            );
        }
    }
    let detail = body(app.get_html(&format!("/admin/users/{id}")).await).await;
    assert!(detail.contains("Two-factor authentication</th><td>On"));
    // Every form on the page carries the session's CSRF token.
    let token = extract_csrf(&detail).unwrap();
    let forms = detail.matches("<form").count();
    let tokens = detail
        .matches(&format!(r#"name="csrf_token" value="{token}""#))
        .count();
    assert_eq!(forms, tokens);
    assert!(forms >= 5);
}

both_backends!(
    unknown_malformed_and_foreign_ids_are_not_found,
    other_roles_are_refused_on_every_route,
    pages_never_show_secrets,
);
