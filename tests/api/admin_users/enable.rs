//! Disabling an account ends its live session; enabling it restores access.

use super::*;

async fn disable_ends_the_live_session_and_enable_restores_access(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin().await;
    let id = app.create_user("clin@example.org", "uploader", PW);
    let clinician = browser_signed_in(&app, "clin@example.org", PW).await;
    assert_eq!(home(&app, &clinician).await, "/uploads");

    let res = admin_post(&app, &format!("/admin/users/{id}/disable"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(user_facts(&app, &id).disabled);
    assert_eq!(
        session_count(&app, &id),
        0,
        "sessions deleted with the change"
    );
    assert_eq!(home(&app, &clinician).await, "/login");
    let (other, _) = app.new_browser();
    let res = app.login_with(&other, "clin@example.org", PW).await;
    assert_eq!(res.status(), 401);
    assert!(body(res).await.contains("Email or password is incorrect."));
    let list = body(app.get_html("/admin/users").await).await;
    assert!(list.contains(r#"<span class="badge badge-bad">Disabled</span>"#));

    let disabled = app.audit_rows("user.disable");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].actor.as_deref(), Some(admin.id.as_str()));
    assert_eq!(disabled[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(disabled[0].details["sessions_ended"], 1);

    let res = admin_post(&app, &format!("/admin/users/{id}/enable"), &[]).await;
    assert_eq!(res.status(), 303);
    assert!(!user_facts(&app, &id).disabled);
    browser_signed_in(&app, "clin@example.org", PW).await;
    let enabled = app.audit_rows("user.enable");
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(enabled[0].outcome, "success");
}

both_backends!(disable_ends_the_live_session_and_enable_restores_access,);
