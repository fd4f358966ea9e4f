//! Resetting two-factor authentication: it clears the secret and the codes, ends the
//! sessions, makes an admin enrol again, and is never allowed on oneself.

use super::*;

async fn reset_two_factor_clears_it_and_ends_the_users_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let (secret, codes) = app.enrol_totp(&id, "clin@example.org");
    let clinician = SignedIn {
        id: id.clone(),
        email: "clin@example.org".into(),
        password: PW.into(),
        totp: Some(secret),
    };
    // Two browsers through the TOTP step: the last used step is stored.
    let first = app.admin_browser(&clinician).await;
    let second = app.admin_browser(&clinician).await;
    assert_eq!(session_count(&app, &id), 2);
    let (seed, last_step, stored_codes) = two_factor_columns(&app, &id);
    assert!(seed.is_some() && last_step.is_some() && stored_codes.is_some());

    // The button, with its explanation, on the page of a user who has two-factor on.
    let page = format!("/admin/users/{id}");
    let action = format!(r#"action="/admin/users/{id}/reset-totp""#);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains(&action), "{html}");
    assert!(html.contains("Reset two-factor"));
    assert!(html.contains("lost their authenticator"));

    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), page);
    assert_eq!(two_factor_columns(&app, &id), (None, None, None));
    assert_eq!(session_count(&app, &id), 0);
    assert_eq!(home(&app, &first).await, "/login", "signed out at once");
    assert_eq!(home(&app, &second).await, "/login", "signed out at once");

    let resets = app.audit_rows("user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].outcome, "success");
    assert_eq!(resets[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(resets[0].details["sessions_ended"], 2);
    assert_eq!(resets[0].details["role"], "uploader");
    let details = resets[0].details.to_string();
    assert!(codes.iter().all(|code| !details.contains(code.as_str())));

    // The page says so, and the button is gone with the second factor.
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("Two-factor authentication is reset for clin@example.org"));
    assert!(html.contains("Two-factor authentication</th><td>Off"));
    assert!(!html.contains(&action));
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "the admin stays signed in"
    );

    // The next sign-in has no TOTP step, and the password (which may be as short as two-
    // factor allowed) must be replaced first.
    let fresh = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &fresh).await, "/account/password");

    // Again: nothing to reset, nothing audited.
    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("clin@example.org does not use two-factor authentication."));
    assert_eq!(app.audit_rows("user.totp_reset").len(), 1);
    assert_eq!(session_count(&app, &id), 1, "their new session is kept");
}

async fn an_admin_whose_two_factor_was_reset_must_enrol_again(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    let email = "other-admin@example.org";
    let id = app.create_user(email, "admin", PW);
    let (secret, _) = app.enrol_totp(&id, email);
    let other = SignedIn {
        id: id.clone(),
        email: email.into(),
        password: PW.into(),
        totp: Some(secret),
    };
    let browser = app.admin_browser(&other).await;
    let res = browser.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = admin_post(&app, &format!("/admin/users/{id}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(home(&app, &browser).await, "/login");
    let row = user_facts(&app, &id);
    assert_eq!((row.role.as_str(), row.disabled), ("admin", false));
    assert_eq!(active_admins(&app), 2);

    // Password alone signs them in; first they must replace the password (it may be as
    // short as two-factor allowed), then the admin pages send them to enrolment.
    let fresh = browser_signed_in(&app, email, PW).await;
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
    {
        use diesel::prelude::*;
        use medport::infra::db::schema::users;
        let mut conn = app.db.conn().unwrap();
        diesel::update(users::table.find(&id))
            .set(users::must_change_password.eq(false))
            .execute(&mut *conn)
            .unwrap();
    }
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/totp");
    let resets = app.audit_rows("user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].details["role"], "admin");
    assert_eq!(resets[0].details["sessions_ended"], 1);
}

async fn admins_cannot_reset_their_own_two_factor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.admin().await;
    let before = two_factor_columns(&app, &me.id);
    assert!(before.0.is_some());

    // Their own page explains it and offers no button.
    let page = format!("/admin/users/{}", me.id);
    let html = body(app.get_html(&page).await).await;
    assert!(html.contains("ask another administrator"), "{html}");
    assert!(!html.contains("/reset-totp"));

    let res = admin_post(&app, &format!("{page}/reset-totp"), &[]).await;
    assert_eq!(res.status(), 409);
    let html = body(res).await;
    assert!(
        html.contains(&format!(
            r#"<div class="flash flash-error" role="alert">{OWN_TWO_FACTOR}</div>"#
        )),
        "{html}"
    );
    assert_eq!(h1_count(&html), 1);
    assert_eq!(two_factor_columns(&app, &me.id), before);
    assert_eq!(session_count(&app, &me.id), 1);
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "still signed in"
    );

    let resets = app.audit_rows("user.totp_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].outcome, "denied");
    assert_eq!(resets[0].actor.as_deref(), Some(me.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(me.id.as_str()));
    assert_eq!(resets[0].details["reason"], "own two-factor authentication");
}

both_backends!(
    reset_two_factor_clears_it_and_ends_the_users_sessions,
    an_admin_whose_two_factor_was_reset_must_enrol_again,
    admins_cannot_reset_their_own_two_factor,
);
