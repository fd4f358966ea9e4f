//! Recovery codes: shown once, each working once.

use super::*;

async fn recovery_codes_are_shown_once_and_work_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let secret = admin.totp.as_ref().unwrap();
    let before = user_state(&app, &admin.id).recovery_codes;

    // A code already used (the sign-in's) is refused as a replay.
    let used = current_code(&app, secret);
    let res = app
        .post_form("/account/totp/recovery-codes", &[("code", &used)])
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("already been used"));
    assert_eq!(user_state(&app, &admin.id).recovery_codes, before);

    app.clock.advance(Duration::from_secs(30));
    let res = app
        .post_form(
            "/account/totp/recovery-codes",
            &[("code", &current_code(&app, secret))],
        )
        .await;
    assert_eq!(res.status(), 200);
    let shown = res.text().await.unwrap();
    let codes = recovery_codes_on(&shown);
    assert_eq!(codes.len(), 10);
    assert_ne!(user_state(&app, &admin.id).recovery_codes, before);
    assert_eq!(
        actions(&app, "totp.recovery_codes").last().unwrap().0,
        "success"
    );
    for path in ["/account", "/account/totp"] {
        let html = page(&app, path).await;
        assert!(
            codes.iter().all(|c| !html.contains(c.as_str())),
            "{path} shows a code"
        );
    }

    // A new code signs in once.
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login(&admin.email, &admin.password).await),
        "/login/totp"
    );
    assert_eq!(app.submit_totp(&codes[4]).await.status(), 303);
    assert_eq!(recovery_codes_left(&app, &admin.id), 9);
    app.post_form("/logout", &[]).await;
    assert_eq!(
        location(&app.login(&admin.email, &admin.password).await),
        "/login/totp"
    );
    assert_eq!(app.submit_totp(&codes[4]).await.status(), 401);
    assert_eq!(recovery_codes_left(&app, &admin.id), 9);
}

both_backends!(recovery_codes_are_shown_once_and_work_once,);
