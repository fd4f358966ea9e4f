//! Keys issued by `medport apikey create`, and never written to the server log.

use super::*;

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
    let created = app.audit_actions_named("api_key.create");
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

both_backends!(cli_creates_a_working_key, keys_never_reach_the_server_log,);
