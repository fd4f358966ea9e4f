//! Changing roles: it ends the user's sessions, and the last active administrator can be
//! neither demoted nor disabled, even by two admins at once.

use super::*;

async fn role_change_ends_the_users_sessions_and_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let path = format!("/admin/users/{id}/role");
    let res = admin_post(&app, &path, &[("role", "auditor")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), format!("/admin/users/{id}"));
    assert_eq!(user_facts(&app, &id).role, "auditor");
    assert_eq!(session_count(&app, &id), 0);
    assert_eq!(home(&app, &clinician).await, "/login", "signed out at once");

    let changes = app.audit_rows("user.role_change");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].outcome, "success");
    assert_eq!(changes[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(changes[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(changes[0].details["from"], "uploader");
    assert_eq!(changes[0].details["to"], "auditor");
    assert_eq!(changes[0].details["sessions_ended"], 1);
    let page = body(app.get_html(&format!("/admin/users/{id}")).await).await;
    assert!(page.contains("clin@example.org is now Auditor."));

    // An unknown role is refused on the page; nothing changes.
    let res = admin_post(&app, &path, &[("role", "superuser")]).await;
    assert_eq!(res.status(), 422);
    assert!(body(res).await.contains("Role must be one of"));
    assert_eq!(user_facts(&app, &id).role, "auditor");
    assert_eq!(app.audit_rows("user.role_change").len(), 1);
}

async fn the_last_active_admin_can_be_neither_demoted_nor_disabled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.admin().await;
    let other = app.create_user("other-admin@example.org", "admin", PW);

    // Two active admins: demoting one works.
    let res = admin_post(
        &app,
        &format!("/admin/users/{other}/role"),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(user_facts(&app, &other).role, "uploader");
    assert_eq!(active_admins(&app), 1);

    // Now the remaining one cannot be demoted or disabled.
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "auditor")],
    )
    .await;
    assert_eq!(res.status(), 409);
    let html = body(res).await;
    assert!(html.contains(LAST_ADMIN), "{html}");
    assert!(html.contains(r#"<div class="field has-error">"#));
    let res = admin_post(&app, &format!("/admin/users/{}/disable", me.id), &[]).await;
    assert_eq!(res.status(), 409);
    assert!(body(res).await.contains(LAST_ADMIN));
    let row = user_facts(&app, &me.id);
    assert_eq!(row.role, "admin");
    assert!(!row.disabled);
    assert_eq!(
        app.get_html("/admin/users").await.status(),
        200,
        "still signed in"
    );

    // The refusals are audited; the successful change once.
    let changes = app.audit_rows("user.role_change");
    assert_eq!(
        changes
            .iter()
            .map(|c| c.outcome.as_str())
            .collect::<Vec<_>>(),
        ["success", "denied"]
    );
    assert_eq!(changes[1].details["reason"], "last active administrator");
    let disables = app.audit_rows("user.disable");
    assert_eq!(disables.len(), 1);
    assert_eq!(disables[0].outcome, "denied");
    assert_eq!(disables[0].target.as_deref(), Some(me.id.as_str()));

    // A disabled admin does not count; an enabled one does, and then self-demotion works
    // and ends the demoted admin's own session.
    let third = app.create_user("third-admin@example.org", "admin", PW);
    assert_eq!(
        admin_post(&app, &format!("/admin/users/{third}/disable"), &[])
            .await
            .status(),
        303
    );
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        admin_post(&app, &format!("/admin/users/{third}/enable"), &[])
            .await
            .status(),
        303
    );
    let res = admin_post(
        &app,
        &format!("/admin/users/{}/role", me.id),
        &[("role", "uploader")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(user_facts(&app, &me.id).role, "uploader");
    assert_eq!(session_count(&app, &me.id), 0);
    assert_eq!(active_admins(&app), 1);
}

async fn admins_demoting_each_other_at_once_leave_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut admins = Vec::new();
    for name in ["first", "second"] {
        let email = format!("{name}@example.org");
        let id = app.create_user(&email, "admin", PW);
        let (secret, _) = app.enrol_totp(&id, &email);
        admins.push(SignedIn {
            id,
            email,
            password: PW.into(),
            totp: Some(secret),
        });
    }
    // A few rounds, as a lost race only shows when both requests overlap.
    for round in 0..3 {
        {
            let mut conn = app.db.conn().unwrap();
            diesel::update(users::table)
                .set(users::role.eq("admin"))
                .execute(&mut *conn)
                .unwrap();
        }
        let first = app.admin_browser(&admins[0]).await;
        let second = app.admin_browser(&admins[1]).await;
        let first_token = app.csrf_token_with(&first, "/admin/users/new").await;
        let second_token = app.csrf_token_with(&second, "/admin/users/new").await;
        let demote_second = format!("/admin/users/{}/role", admins[1].id);
        let demote_first = format!("/admin/users/{}/role", admins[0].id);
        let (a, b) = tokio::join!(
            app.post_with_token(
                &first,
                &demote_second,
                &[("role", "uploader")],
                &first_token
            ),
            app.post_with_token(
                &second,
                &demote_first,
                &[("role", "uploader")],
                &second_token
            ),
        );
        // The loser is refused by the rule (409), or finds its session already ended (a
        // redirect to sign in, or a CSRF refusal as its session and token are gone).
        for res in [&a, &b] {
            assert!(
                [303, 403, 409].contains(&res.status().as_u16()),
                "round {round}: {}",
                res.status()
            );
        }
        assert_eq!(
            active_admins(&app),
            1,
            "round {round}: one administrator is left"
        );
        let done = app
            .audit_rows("user.role_change")
            .into_iter()
            .filter(|c| c.outcome == "success")
            .count();
        assert_eq!(done, round + 1, "round {round}: one demotion succeeded");
    }
}

both_backends!(
    role_change_ends_the_users_sessions_and_is_audited,
    the_last_active_admin_can_be_neither_demoted_nor_disabled,
    admins_demoting_each_other_at_once_leave_one,
);
