//! Enrolling in two-factor authentication, which administrators must do first.

use super::*;

async fn totp_enrolment_end_to_end(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    // A session opened with the password alone, before enrolment.
    let (earlier, _) = app.new_browser();
    app.login_with(&earlier, "clin@example.org", PW).await;
    assert!(
        page(&app, "/account")
            .await
            .contains("Turn on two-factor authentication")
    );

    let enrol = page(&app, "/account/totp").await;
    assert!(enrol.contains("alt=\"QR code for your authenticator app\""));
    assert!(enrol.contains("src=\"data:image/svg+xml;base64,"));
    let (base32, secret) = secret_from_page(&enrol);
    // Reloading shows the same key until it is confirmed.
    assert_eq!(
        secret_from_page(&page(&app, "/account/totp").await).0,
        base32
    );

    // The pending seed is in the session only sealed.
    let states = all_session_states(&app);
    assert!(
        states.iter().any(|s| s.contains("pending_totp")),
        "{states:?}"
    );
    assert_no_seed_in_sessions(&app, &base32, &secret);

    // A wrong code stores nothing.
    let res = app
        .post_form("/account/totp", &[("code", &wrong_code(&app, &secret))])
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "code",
        "That code is not right.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_none());

    let cookie_before = session_cookie(&app);
    let step = totp::step_at(app.clock.unix());
    let code = current_code(&app, &secret);
    let res = app.post_form("/account/totp", &[("code", &code)]).await;
    assert_eq!(res.status(), 200);
    let shown = res.text().await.unwrap();
    let codes = recovery_codes_on(&shown);
    assert_eq!(codes.len(), 10, "{shown}");
    assert!(shown.contains("only time they are shown"));
    assert_ne!(session_cookie(&app), cookie_before, "a new session id");

    let state = user_state(&app, &id);
    let sealed = state.totp_secret_sealed.clone().expect("seed stored");
    assert!(
        !sealed.windows(20).any(|w| w == secret.expose()),
        "seed stored sealed"
    );
    assert_eq!(state.totp_last_step, Some(step));
    assert_eq!(recovery_codes_left(&app, &id), 10);
    assert_eq!(actions(&app, "totp.enrol").last().unwrap().0, "success");
    assert_no_seed_in_sessions(&app, &base32, &secret);
    assert!(
        !all_session_states(&app)
            .iter()
            .any(|s| s.contains("pending_totp"))
    );
    assert!(
        !signed_in(&app, &earlier).await,
        "password-only session ended"
    );

    // Shown once: not on the pages that follow.
    let manage = page(&app, "/account/totp").await;
    assert!(manage.contains("Turn off two-factor authentication"));
    assert!(recovery_codes_on(&manage).is_empty());
    assert!(!manage.contains(&codes[0]));

    // Sign out; signing in now needs a code, and the enrolment code is a replay.
    app.post_form("/logout", &[]).await;
    let res = app.login("clin@example.org", PW).await;
    assert_eq!(location(&res), "/login/totp");
    let res = app.submit_totp(&code).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("already been used"));
    app.clock.advance(Duration::from_secs(30));
    let res = app.submit_totp(&current_code(&app, &secret)).await;
    assert_eq!(res.status(), 303);
    assert!(signed_in(&app, &app.client).await);
}

fn assert_no_seed_in_sessions(app: &TestApp, base32: &str, secret: &totp::TotpSecret) {
    let seed = secret.expose();
    let forms = [
        base32.to_string(),
        base32.to_lowercase(),
        hex::encode(seed),
        BASE64.encode(seed),
        BASE64URL_NOPAD.encode(seed),
    ];
    for state in all_session_states(app) {
        for form in &forms {
            assert!(
                !state.contains(form.as_str()),
                "seed found in a session: {form}"
            );
        }
        assert!(!state.as_bytes().windows(seed.len()).any(|w| w == seed));
    }
}

async fn admins_without_two_factor_are_sent_to_enrol(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("boss@example.org", "admin", PW);
    app.sign_in("boss@example.org", PW).await;

    let res = app.get_html("/admin/users").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/totp");
    let enrol = page(&app, "/account/totp").await;
    assert!(
        enrol.contains("Administrators must turn on two-factor authentication"),
        "{enrol}"
    );

    let (_, secret) = secret_from_page(&enrol);
    let res = app
        .post_form("/account/totp", &[("code", &current_code(&app, &secret))])
        .await;
    assert_eq!(res.status(), 200);
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());
    let res = app.get_html("/admin/users").await;
    assert_ne!(
        location(&res),
        "/account/totp",
        "admin pages open after enrolment"
    );
    assert_eq!(res.status(), 200);
}

both_backends!(
    totp_enrolment_end_to_end,
    admins_without_two_factor_are_sent_to_enrol,
);
