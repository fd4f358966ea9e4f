//! Creating an account: the new user must choose their own password; the form reports
//! each problem and keeps what was typed.

use super::*;

async fn admin_creates_a_user_who_must_choose_their_own_password(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;

    let form = app.get_html("/admin/users/new").await;
    assert_eq!(form.status(), 200);
    let form = body(form).await;
    assert_eq!(h1_count(&form), 1);
    for field in [
        r#"name="email""#,
        r#"name="role""#,
        r#"name="password""#,
        r#"name="csrf_token""#,
    ] {
        assert!(form.contains(field), "{field} missing");
    }
    assert!(form.contains(r#"<label for="password">One-time password</label>"#));

    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "New.Clinician@Example.org"),
            ("role", "uploader"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 303);
    let page = location(&res);
    let id = page.strip_prefix("/admin/users/").unwrap().to_string();

    let row = user_facts(&app, &id);
    assert_eq!(row.email, "new.clinician@example.org");
    assert_eq!(row.role, "uploader");
    assert!(row.must_change_password);
    assert!(!row.disabled);
    assert!(row.password_hash.starts_with("$2b$"));

    let created = app.audit_rows("user.create");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].outcome, "success");
    assert_eq!(created[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(created[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(created[0].details["email"], "new.clinician@example.org");
    assert_eq!(created[0].details["role"], "uploader");
    assert!(!created[0].details.to_string().contains(ONE_TIME));

    let shown = body(app.get_html(&page).await).await;
    assert!(shown.contains("Account created for new.clinician@example.org"));
    let list = body(app.get_html("/admin/users").await).await;
    assert!(list.contains("new.clinician@example.org") && list.contains("Uploader (clinician)"));

    // The new user signs in with the one-time password and must choose their own first.
    let clinician = browser_signed_in(&app, "new.clinician@example.org", ONE_TIME).await;
    let res = clinician.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/account/password");
}

async fn create_form_reports_each_problem_and_keeps_what_was_typed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.admin().await;
    app.create_user("taken@example.org", "uploader", PW);
    let users_before = user_count(&app);

    // A malformed address: its message under the field, the role kept, no password echoed.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "not an email"),
            ("role", "auditor"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains(r#"<div class="field has-error">"#), "{html}");
    assert!(html.contains(r#"aria-describedby="email-error""#));
    assert!(
        html.contains(
            r#"<p class="field-error" id="email-error">Email address must not contain spaces.</p>"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"value="not an email""#));
    assert!(html.contains(r#"<option value="auditor" selected>"#));
    assert!(!html.contains(ONE_TIME));
    assert_eq!(h1_count(&html), 1);

    // The same address in other letter case is taken.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "Taken@Example.ORG"),
            ("role", "admin"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("An account with this email address already exists."));
    assert!(html.contains(r#"value="Taken@Example.ORG""#));
    assert!(html.contains(r#"<option value="admin" selected>"#));
    assert!(!html.contains(ONE_TIME));

    // Too short: the password's own message, the other values kept.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "short@example.org"),
            ("role", "uploader"),
            ("password", "too short"),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Password must be at least 15 characters long (yours has 9)."));
    assert!(html.contains(r#"aria-describedby="password-hint password-error""#));
    assert!(html.contains(r#"value="short@example.org""#));
    assert!(!html.contains("too short"));

    // A role that does not exist.
    let res = admin_post(
        &app,
        "/admin/users",
        &[
            ("email", "role@example.org"),
            ("role", "root"),
            ("password", ONE_TIME),
        ],
    )
    .await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Role must be one of: admin, uploader, auditor."));
    assert!(!html.contains(ONE_TIME));

    assert_eq!(user_count(&app), users_before, "nothing was created");
    assert!(app.audit_rows("user.create").is_empty());
}

both_backends!(
    admin_creates_a_user_who_must_choose_their_own_password,
    create_form_reports_each_problem_and_keeps_what_was_typed,
);
