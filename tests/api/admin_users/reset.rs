//! Resetting a password: a one-time password that ends the user's sessions.

use super::*;

async fn reset_password_sets_a_one_time_password_and_ends_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    let path = format!("/admin/users/{id}/reset-password");
    let old_hash = user_facts(&app, &id).password_hash;

    // Too short: refused on the page, nothing echoed, nothing changed.
    let res = admin_post(&app, &path, &[("password", "short one")]).await;
    assert_eq!(res.status(), 422);
    let html = body(res).await;
    assert!(html.contains("Password must be at least 15 characters long (yours has 9)."));
    assert!(!html.contains("short one"));
    assert_eq!(user_facts(&app, &id).password_hash, old_hash);
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let res = admin_post(&app, &path, &[("password", ONE_TIME)]).await;
    assert_eq!(res.status(), 303);
    let row = user_facts(&app, &id);
    assert!(row.must_change_password);
    assert_ne!(row.password_hash, old_hash);
    assert_eq!(home(&app, &clinician).await, "/login", "signed out at once");

    let (old, _) = app.new_browser();
    assert_eq!(
        app.login_with(&old, "clin@example.org", PW).await.status(),
        401
    );
    let fresh = browser_signed_in(&app, "clin@example.org", ONE_TIME).await;
    let res = fresh.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(location(&res), "/account/password");

    let resets = app.audit_rows("user.password_reset");
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(resets[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(resets[0].details["sessions_ended"], 1);
    assert!(!resets[0].details.to_string().contains(ONE_TIME));
}

both_backends!(reset_password_sets_a_one_time_password_and_ends_sessions,);
