//! Turning two-factor authentication off: never for admins; for others with password and
//! code, and a short password must then be replaced.

use super::*;

async fn admins_cannot_turn_two_factor_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let secret = admin.totp.as_ref().unwrap();
    let before = user_state(&app, &admin.id);

    let manage = page(&app, "/account/totp").await;
    assert!(manage.contains("Administrators must use two-factor authentication"));
    assert!(!manage.contains("action=\"/account/totp/disable\""));

    app.clock.advance(Duration::from_secs(30));
    let code = current_code(&app, secret);
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", &admin.password), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Administrators must keep two-factor authentication on")
    );
    let after = user_state(&app, &admin.id);
    assert_eq!(after.totp_secret_sealed, before.totp_secret_sealed);
    assert_eq!(after.recovery_codes, before.recovery_codes);
    let denied = actions(&app, "totp.disable");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].0, "denied");
}

async fn uploaders_can_turn_two_factor_off_with_password_and_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, _) = app.enrol_totp(&id, "clin@example.org");
    app.sign_in_existing("clin@example.org", PW, Some(&secret))
        .await;
    app.clock.advance(Duration::from_secs(30));
    let code = current_code(&app, &secret);

    // Wrong password: nothing changes, even with a right code.
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", "not my password at all"), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "disable_password",
        "Your password is not correct.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());

    // Wrong code: nothing changes.
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", PW), ("code", &wrong_code(&app, &secret))],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_field_error(
        &res.text().await.unwrap(),
        "disable_code",
        "That code is not right.",
    );
    assert!(user_state(&app, &id).totp_secret_sealed.is_some());

    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", PW), ("code", &code)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");
    let state = user_state(&app, &id);
    assert!(state.totp_secret_sealed.is_none());
    assert!(state.totp_last_step.is_none() && state.recovery_codes.is_none());
    assert!(
        !state.must_change_password,
        "a 28-character password stays valid"
    );
    let events: Vec<String> = actions(&app, "totp.disable")
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(events, ["failure", "failure", "success"]);

    // Signing in no longer asks for a code.
    app.post_form("/logout", &[]).await;
    app.sign_in("clin@example.org", PW).await;
}

async fn turning_two_factor_off_with_a_short_password_requires_a_new_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Eight characters: enough with two-factor on, too short without it.
    let short = "tulip-42";
    let id = app.create_user("clin@example.org", "uploader", short);
    let (secret, _) = app.enrol_totp(&id, "clin@example.org");
    app.sign_in_existing("clin@example.org", short, Some(&secret))
        .await;
    app.clock.advance(Duration::from_secs(30));
    let res = app
        .post_form(
            "/account/totp/disable",
            &[("password", short), ("code", &current_code(&app, &secret))],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
    let state = user_state(&app, &id);
    assert!(state.totp_secret_sealed.is_none());
    assert!(state.must_change_password, "a new password is required");
    assert_eq!(
        location(&app.get_html("/account").await),
        "/account/password"
    );
    let form = page(&app, "/account/password").await;
    assert!(form.contains("at least 15 characters"), "{form}");
    let event = actions(&app, "totp.disable");
    assert!(
        event[0].1.contains("\"password_change_required\":true"),
        "{event:?}"
    );
}

both_backends!(
    admins_cannot_turn_two_factor_off,
    uploaders_can_turn_two_factor_off_with_password_and_code,
    turning_two_factor_off_with_a_short_password_requires_a_new_one,
);
