//! Changing one's password: the current one is checked (and throttled like sign-in), each
//! rule has its message, other sessions end, and a one-time password must be replaced.

use super::*;

async fn wrong_current_password_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let before = user_state(&app, &id);

    let res = change_password(&app, "not my password at all", NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert_field_error(
        &body,
        "current_password",
        "Your current password is not correct.",
    );
    for secret in ["not my password at all", NEW_PW] {
        assert!(!body.contains(secret), "a password was echoed back");
    }

    assert_eq!(user_state(&app, &id).password_hash, before.password_hash);
    assert!(signed_in(&app, &app.client).await, "still signed in");
    let failures = actions(&app, "password.change");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "failure");
    assert!(!failures[0].1.contains("not my password"), "{failures:?}");
    // It counts toward the sign-in throttle.
    let mut conn = app.db.conn().unwrap();
    let counted: i32 = login_throttles::table
        .select(login_throttles::failures)
        .first(&mut *conn)
        .unwrap();
    assert_eq!(counted, 1);
}

async fn wrong_current_passwords_are_throttled_like_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let before = user_state(&app, &id).password_hash;
    for attempt in 1..=5 {
        let res = change_password(&app, "wrong password again", NEW_PW, NEW_PW).await;
        let expected = if attempt < 5 { 422 } else { 429 };
        assert_eq!(res.status(), expected, "attempt {attempt}");
    }
    // Now even the right password waits, and so does sign-in elsewhere.
    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body = res.text().await.unwrap();
    assert!(body.contains("Too many failed sign-in attempts"), "{body}");
    assert_eq!(user_state(&app, &id).password_hash, before);
    let (other, _) = app.new_browser();
    assert_eq!(
        app.login_with(&other, "clin@example.org", PW)
            .await
            .status(),
        429
    );
    assert_eq!(actions(&app, "login.throttled").len(), 1);

    app.clock.advance(Duration::from_secs(16));
    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert_ne!(user_state(&app, &id).password_hash, before);
}

async fn each_password_rule_has_its_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("dr.jane.doe@clinic.example", "uploader", PW);
    app.sign_in("dr.jane.doe@clinic.example", PW).await;
    let before = user_state(&app, &id).password_hash;

    let common = "1q2w3e4r5t6y7u8i9o0p";
    assert!(
        passwords::is_common(common),
        "the example must be on the bundled list"
    );
    let multibyte = "€".repeat(24); // 24 characters, 72 bytes
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "new_password",
            "too short",
            "too short",
            "must be at least 15 characters long",
        ),
        (
            "new_password",
            common,
            common,
            "is one of the most commonly used passwords",
        ),
        (
            "new_password",
            "Dr.Jane.Doe@clinic.example",
            "Dr.Jane.Doe@clinic.example",
            "must not be your email address",
        ),
        (
            "new_password",
            &multibyte,
            &multibyte,
            "is too long: at most 64 characters",
        ),
        (
            "confirm_password",
            NEW_PW,
            "a brand new passphrase for mE",
            "The two new passwords do not match.",
        ),
    ];
    for (field, new, confirm, message) in cases {
        let res = change_password(&app, PW, new, confirm).await;
        assert_eq!(res.status(), 422, "{message}");
        let body = res.text().await.unwrap();
        assert_field_error(&body, field, message);
        for secret in [PW, new, confirm] {
            assert!(
                !body.contains(&format!("value=\"{secret}\"")),
                "{message}: echoed"
            );
        }
        assert!(!body.contains(PW), "{message}: current password echoed");
    }
    assert_eq!(
        user_state(&app, &id).password_hash,
        before,
        "nothing changed"
    );
    assert!(actions(&app, "password.change").is_empty());
}

async fn password_change_ends_other_sessions_and_renews_this_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    app.sign_in("clin@example.org", PW).await;
    let (laptop, _) = app.new_browser();
    assert_eq!(
        app.login_with(&laptop, "clin@example.org", PW)
            .await
            .status(),
        303
    );
    assert!(signed_in(&app, &laptop).await);
    assert_eq!(session_hashes(&app, &id).len(), 2);
    let cookie_before = session_cookie(&app);

    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account");

    assert_ne!(session_cookie(&app), cookie_before, "a new session id");
    assert!(signed_in(&app, &app.client).await, "this browser continues");
    assert!(
        !signed_in(&app, &laptop).await,
        "the other one is signed out"
    );
    assert_eq!(session_hashes(&app, &id).len(), 1);
    let page = page(&app, "/account").await;
    assert!(page.contains("Your password has been changed."), "{page}");

    let event = actions(&app, "password.change");
    assert_eq!(event.len(), 1);
    assert_eq!(event[0].0, "success");
    assert!(
        event[0].1.contains("\"other_sessions_ended\":1"),
        "{event:?}"
    );
    assert!(!event[0].1.contains(NEW_PW) && !event[0].1.contains(PW));

    let (fresh, _) = app.new_browser();
    assert_eq!(
        app.login_with(&fresh, "clin@example.org", PW)
            .await
            .status(),
        401
    );
    let res = app.login_with(&fresh, "clin@example.org", NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert!(signed_in(&app, &fresh).await);
}

async fn a_one_time_password_must_be_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    {
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::must_change_password.eq(true))
            .execute(&mut *conn)
            .unwrap();
    }
    app.sign_in("clin@example.org", PW).await;
    for path in ["/account", "/account/sessions", "/account/totp"] {
        let res = app.get_html(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(location(&res), "/account/password", "{path}");
    }
    let form = page(&app, "/account/password").await;
    assert!(
        form.contains(
            "Your administrator set a one-time password. Choose your own password to continue."
        ),
        "{form}"
    );

    // The one-time password itself is not accepted as the new one.
    let res = change_password(&app, PW, PW, PW).await;
    assert_eq!(res.status(), 422);
    assert!(user_state(&app, &id).must_change_password);

    let res = change_password(&app, PW, NEW_PW, NEW_PW).await;
    assert_eq!(res.status(), 303);
    assert!(!user_state(&app, &id).must_change_password, "flag cleared");
    assert_eq!(app.get_html("/account").await.status(), 200);
    let event = actions(&app, "password.change");
    assert!(event[0].1.contains("\"was_required\":true"), "{event:?}");
}

both_backends!(
    wrong_current_password_changes_nothing,
    wrong_current_passwords_are_throttled_like_sign_in,
    each_password_rule_has_its_message,
    password_change_ends_other_sessions_and_renews_this_one,
    a_one_time_password_must_be_replaced,
);
